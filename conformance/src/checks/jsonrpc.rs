//! JSON-RPC: error codes, ids, notifications, malformed input, batches.

use serde_json::{Value, json};

use super::{describe, expect_code, short};
use crate::check::{Applies, Check, Outcome, Severity};
use crate::context::{Context, RawSession};

const MESSAGES: &str = "https://modelcontextprotocol.io/specification/2025-11-25/basic/index#messages";

pub(super) const CHECKS: [Check; 7] = [
    Check {
        id: "jsonrpc.method-not-found",
        title: "an unknown method gets -32601",
        section: "basic/index#messages",
        link: MESSAGES,
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(method_not_found(ctx)),
    },
    Check {
        id: "jsonrpc.invalid-params",
        title: "tools/call with a non-string name gets -32602",
        section: "server/tools#error-handling",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/server/tools#error-handling",
        severity: Severity::Should,
        applies: Applies::Capability("tools"),
        run: |ctx| Box::pin(invalid_params(ctx)),
    },
    Check {
        id: "jsonrpc.string-id",
        title: "a string id is echoed exactly",
        section: "basic/index#requests",
        link: MESSAGES,
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(echo_id(ctx, json!("mcpt-é-\"quoted\"-id"))),
    },
    Check {
        id: "jsonrpc.integer-id",
        title: "an integer id is echoed exactly",
        section: "basic/index#requests",
        link: MESSAGES,
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(echo_id(ctx, json!(424_242))),
    },
    Check {
        id: "jsonrpc.notification-unanswered",
        title: "a notification is never answered",
        section: "basic/index#notifications",
        link: MESSAGES,
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(notification_unanswered(ctx)),
    },
    Check {
        id: "jsonrpc.parse-error",
        title: "malformed JSON gets -32700 with a null id, and the connection goes on",
        section: "basic/index#responses",
        link: MESSAGES,
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(parse_error(ctx)),
    },
    Check {
        id: "jsonrpc.batch-refused",
        title: "a JSON-RPC batch array is refused (batching was removed in 2025-06-18)",
        section: "changelog 2025-06-18",
        link: "https://modelcontextprotocol.io/specification/2025-06-18/changelog",
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(batch_refused(ctx)),
    },
];

async fn method_not_found(ctx: &Context) -> Outcome {
    match ctx.client.request::<_, Value>("mcpt/no-such-method", &json!({})).await {
        Ok(v) => Outcome::fail(format!("an unknown method was answered with a result: {}", short(&v))),
        Err(e) => match e.rpc_error() {
            Some(err) if err.code == -32601 => Outcome::pass(),
            Some(err) => Outcome::fail(format!("expected -32601, got {}: {}", err.code, err.message)),
            None => Outcome::fail(describe(&e)),
        },
    }
}

async fn invalid_params(ctx: &Context) -> Outcome {
    match ctx.client.request::<_, Value>("tools/call", &json!({ "name": 42, "arguments": {} })).await {
        Ok(v) => Outcome::fail(format!("accepted a numeric tool name: {}", short(&v))),
        Err(e) => match e.rpc_error() {
            Some(err) if err.code == -32602 => Outcome::pass(),
            Some(err) => Outcome::fail(format!("expected -32602, got {}: {}", err.code, err.message)),
            None => Outcome::fail(describe(&e)),
        },
    }
}

async fn raw_session(ctx: &Context) -> Result<Option<RawSession>, String> {
    match ctx.raw_session().await {
        None => Ok(None),
        Some(s) => s.map(Some),
    }
}

async fn echo_id(ctx: &Context, id: Value) -> Outcome {
    let mut s = match raw_session(ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => return Outcome::skip("the transport carries no raw bytes"),
        Err(e) => return Outcome::fail(e),
    };
    let req = s.harmless_request(id.clone());
    if let Err(e) = s.send_json(&req).await {
        return Outcome::fail(e);
    }
    match s.next_response().await {
        Err(e) => Outcome::fail(e),
        Ok(resp) => {
            Outcome::require(resp.get("id") == Some(&id), || format!("sent id {id}, got back {}", short(&resp)))
        }
    }
}

async fn notification_unanswered(ctx: &Context) -> Outcome {
    let mut s = match raw_session(ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => return Outcome::skip("the transport carries no raw bytes"),
        Err(e) => return Outcome::fail(e),
    };
    let note = json!({"jsonrpc":"2.0","method":"notifications/mcpt-unknown","params":{}});
    let req = s.harmless_request(json!("after-notification"));
    if let Err(e) = async {
        s.send_json(&note).await?;
        s.send_json(&req).await
    }
    .await
    {
        return Outcome::fail(e);
    }
    match s.next_response().await {
        Err(e) => Outcome::fail(e),
        Ok(resp) if resp.get("id") == Some(&json!("after-notification")) => Outcome::pass(),
        Ok(resp) => Outcome::fail(format!("the notification was answered: {}", short(&resp))),
    }
}

async fn parse_error(ctx: &Context) -> Outcome {
    let mut s = match raw_session(ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => return Outcome::skip("the transport carries no raw bytes"),
        Err(e) => return Outcome::fail(e),
    };
    if let Err(e) = s.send_raw(b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ").await {
        return Outcome::fail(e);
    }
    let resp = match s.next_response().await {
        Ok(r) => r,
        Err(e) => return Outcome::fail(format!("no -32700 answer to malformed JSON: {e}")),
    };
    if let Err(e) = expect_code(&resp, -32700) {
        return Outcome::fail(e);
    }
    if resp.get("id") != Some(&Value::Null) {
        return Outcome::fail(format!("the -32700 error must carry a null id: {}", short(&resp)));
    }
    let req = s.harmless_request(json!("after-parse-error"));
    if let Err(e) = s.send_json(&req).await {
        return Outcome::fail(format!("the connection did not survive: {e}"));
    }
    match s.response_to(&json!("after-parse-error")).await {
        Ok(_) => Outcome::pass(),
        Err(e) => Outcome::fail(format!("the connection did not survive: {e}")),
    }
}

async fn batch_refused(ctx: &Context) -> Outcome {
    if ctx.version() == "2025-03-26" {
        return Outcome::skip("2025-03-26 requires batch support");
    }
    let mut s = match raw_session(ctx).await {
        Ok(Some(s)) => s,
        Ok(None) => return Outcome::skip("the transport carries no raw bytes"),
        Err(e) => return Outcome::fail(e),
    };
    let batch = Value::Array(vec![s.harmless_request(json!("in-batch"))]);
    if let Err(e) = s.send_json(&batch).await {
        return Outcome::fail(e);
    }
    // Skip the server's own notifications and requests; the answer is an array or a response.
    let answer = loop {
        match s.recv_json().await {
            Ok(Some(v)) if v.get("method").is_some() => continue,
            other => break other,
        }
    };
    match answer {
        Err(e) => Outcome::fail(e),
        Ok(None) => Outcome::pass_with("the server closed the connection"),
        Ok(Some(Value::Array(items))) => {
            Outcome::fail(format!("the batch was processed: {}", short(&Value::Array(items))))
        }
        Ok(Some(v)) if v.get("error").is_some() => Outcome::pass_with(format!("refused with {}", short(&v["error"]))),
        Ok(Some(v)) => Outcome::fail(format!("expected an error, got {}", short(&v))),
    }
}
