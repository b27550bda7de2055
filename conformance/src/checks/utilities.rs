//! Utilities: ping, cancellation, progress.

use std::time::Duration;

use mcp_session::RequestOptions;
use mcp_transport_core::message::to_raw;
use serde_json::{Value, json};

use super::{describe, short};
use crate::check::{Applies, Check, Outcome, Severity};
use crate::context::Context;

pub(super) const CHECKS: [Check; 4] = [
    Check {
        id: "ping",
        title: "ping is answered with an empty result",
        section: "basic/utilities/ping",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/utilities/ping",
        severity: Severity::Must,
        applies: Applies::Legacy,
        run: |ctx| Box::pin(ping(ctx)),
    },
    Check {
        id: "cancellation.late-cancel-harmless",
        title: "cancelling a request that was already answered is harmless",
        section: "basic/utilities/cancellation",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/utilities/cancellation",
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(late_cancel(ctx)),
    },
    Check {
        id: "cancellation.not-answered",
        title: "a request cancelled while in flight is not answered",
        section: "basic/utilities/cancellation",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/utilities/cancellation",
        severity: Severity::Should,
        applies: Applies::Capability("tools"),
        run: |ctx| Box::pin(cancel_unanswered(ctx)),
    },
    Check {
        id: "progress.token-and-order",
        title: "progress notifications echo the token and increase, before the response",
        section: "basic/utilities/progress",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/utilities/progress",
        severity: Severity::Must,
        applies: Applies::Capability("tools"),
        run: |ctx| Box::pin(progress(ctx)),
    },
];

async fn ping(ctx: &Context) -> Outcome {
    match ctx.client.request_raw("ping", None, RequestOptions::default()).await {
        Ok(raw) => match serde_json::from_str::<Value>(raw.get()) {
            Ok(Value::Object(m)) if m.keys().all(|k| k == "_meta") => Outcome::pass(),
            Ok(v) => Outcome::warn(format!("ping result should be empty: {}", short(&v))),
            Err(e) => Outcome::fail(format!("ping result is not JSON: {e}")),
        },
        Err(e) => Outcome::fail(describe(&e)),
    }
}

/// A request every server in this generation answers.
fn harmless(ctx: &Context) -> &'static str {
    if ctx.is_modern() { "server/discover" } else { "ping" }
}

async fn late_cancel(ctx: &Context) -> Outcome {
    let method = harmless(ctx);
    let Some(wire) = ctx.raw_session().await else {
        // Through the session layer: a request, its answer, then a cancel for it.
        if let Err(e) = ctx.client.request_raw(method, None, RequestOptions::default()).await {
            return Outcome::fail(describe(&e));
        }
        let _ = ctx.client.peer().notify("notifications/cancelled", &json!({"requestId": 1, "reason": "late"})).await;
        return match ctx.client.request_raw(method, None, RequestOptions::default()).await {
            Ok(_) => Outcome::pass(),
            Err(e) => Outcome::fail(format!("the session broke after a late cancel: {}", describe(&e))),
        };
    };
    let mut s = match wire {
        Ok(s) => s,
        Err(e) => return Outcome::fail(e),
    };
    let steps = async {
        s.send_json(&s.harmless_request(json!("answered-first"))).await?;
        s.response_to(&json!("answered-first")).await?;
        s.send_json(&json!({"jsonrpc":"2.0","method":"notifications/cancelled",
            "params":{"requestId":"answered-first","reason":"late cancel"}}))
            .await?;
        s.send_json(&s.harmless_request(json!("after-late-cancel"))).await?;
        s.response_to(&json!("after-late-cancel")).await
    };
    match steps.await {
        Ok(_) => Outcome::pass(),
        Err(e) => Outcome::fail(e),
    }
}

async fn cancel_unanswered(ctx: &Context) -> Outcome {
    let Some((name, args)) = ctx.options.call_tools.iter().find(|(n, _)| n.contains("progress") || n.contains("slow"))
    else {
        return Outcome::skip("needs a slow tool: name one with \"progress\" or \"slow\" in its name with --call-tool");
    };
    let mut s = match ctx.raw_session().await {
        None => return Outcome::skip("the transport carries no raw bytes"),
        Some(Err(e)) => return Outcome::fail(e),
        Some(Ok(s)) => s,
    };
    let call = json!({"jsonrpc":"2.0","id":"to-cancel","method":"tools/call",
        "params":{"name": name, "arguments": args, "_meta": {"progressToken": "cancel-check"}}});
    let call = s.with_meta(call);
    let steps = async {
        s.send_json(&call).await?;
        // Wait until the call is in flight: its first progress notification, or a moment.
        let finished_early = tokio::time::timeout(Duration::from_millis(300), async {
            while let Ok(Some(v)) = s.recv_json().await {
                if v.get("id") == Some(&json!("to-cancel")) {
                    return true;
                }
                if v.get("method") == Some(&json!("notifications/progress")) {
                    return false;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if finished_early {
            return Ok(None);
        }
        s.send_json(&json!({"jsonrpc":"2.0","method":"notifications/cancelled",
            "params":{"requestId":"to-cancel","reason":"conformance check"}}))
            .await?;
        // The tool may still be running; watch for an answer for a while.
        let window = (ctx.options.check_timeout / 3).min(Duration::from_secs(3));
        let answered = tokio::time::timeout(window, async {
            loop {
                match s.next_response().await {
                    Ok(resp) if resp.get("id") == Some(&json!("to-cancel")) => return Ok(true),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .unwrap_or(Ok(false))?;
        if answered {
            return Ok(Some(true));
        }
        s.send_json(&s.harmless_request(json!("marker"))).await?;
        s.response_to(&json!("marker")).await?;
        Ok::<Option<bool>, String>(Some(false))
    };
    match steps.await {
        Err(e) => Outcome::fail(e),
        Ok(None) => Outcome::skip(format!("{name} finished before it could be cancelled")),
        Ok(Some(false)) => Outcome::pass_with(format!("{name} was cancelled in flight and not answered")),
        Ok(Some(true)) => Outcome::fail(format!("{name} was answered after notifications/cancelled")),
    }
}

async fn progress(ctx: &Context) -> Outcome {
    let Some((name, args)) = ctx.options.call_tools.iter().find(|(n, _)| n.contains("progress")) else {
        return Outcome::skip("no tool with \"progress\" in its name was named with --call-tool");
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let params = match to_raw(&json!({ "name": name, "arguments": args })) {
        Ok(p) => p,
        Err(e) => return Outcome::fail(e.to_string()),
    };
    let opts = RequestOptions { timeout: Some(ctx.options.check_timeout), progress: Some(tx) };
    if let Err(e) = ctx.client.request_raw("tools/call", Some(params), opts).await {
        return Outcome::fail(describe(&e));
    }
    // Updates sent before the response are already queued; give stragglers a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut updates = Vec::new();
    while let Ok(p) = rx.try_recv() {
        updates.push(p);
    }
    if updates.is_empty() {
        return Outcome::skip(format!("{name} sent no progress notifications"));
    }
    for pair in updates.windows(2) {
        if pair[1].progress <= pair[0].progress {
            return Outcome::fail(format!("progress did not increase: {} then {}", pair[0].progress, pair[1].progress));
        }
    }
    Outcome::pass_with(format!("{} updates from {name}", updates.len()))
}
