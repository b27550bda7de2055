//! Transport behaviour: large messages, many requests in flight, clean shutdown.

use std::time::Duration;

use mcp_session::RequestOptions;
use serde_json::{Value, json};

use super::{describe, list_all};
use crate::check::{Applies, Check, Outcome, Severity};
use crate::context::Context;

const TRANSPORTS: &str = "https://modelcontextprotocol.io/specification/2025-11-25/basic/transports";

pub(super) const CHECKS: [Check; 4] = [
    Check {
        id: "transport.message-1mb",
        title: "a 1 MB message round trips through an echo-like tool",
        section: "basic/transports",
        link: TRANSPORTS,
        severity: Severity::Must,
        applies: Applies::Capability("tools"),
        run: |ctx| Box::pin(large(ctx, 1 << 20)),
    },
    Check {
        id: "transport.message-10mb",
        title: "a 10 MB message round trips through an echo-like tool",
        section: "basic/transports",
        link: TRANSPORTS,
        severity: Severity::Should,
        applies: Applies::Capability("tools"),
        run: |ctx| Box::pin(large(ctx, 10 << 20)),
    },
    Check {
        id: "transport.concurrent-100",
        title: "100 concurrent requests are all answered and matched",
        section: "basic/index#requests",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/index#requests",
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(concurrent(ctx)),
    },
    Check {
        id: "transport.clean-shutdown",
        title: "when the client ends its side, the server ends the connection",
        section: "basic/lifecycle#shutdown",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/lifecycle#shutdown",
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(shutdown(ctx)),
    },
];

/// The echo-like tool named with `--call-tool` and its string argument.
async fn echo_tool(ctx: &Context) -> Result<(String, String), String> {
    let named: Vec<&String> = ctx.options.call_tools.iter().map(|(n, _)| n).filter(|n| n.contains("echo")).collect();
    let Some(name) = named.first() else {
        return Err("no echo-like tool (a tool with \"echo\" in its name) was named with --call-tool".into());
    };
    let tools = list_all(ctx, "tools/list", "tools").await?;
    let tool = tools.iter().find(|t| t.get("name") == Some(&json!(name))).ok_or(format!("no tool {name:?}"))?;
    let schema = &tool["inputSchema"];
    let required = schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
    let arg = required
        .iter()
        .filter_map(Value::as_str)
        .find(|k| schema.pointer(&format!("/properties/{k}/type")) == Some(&json!("string")))
        .ok_or(format!("{name} has no required string argument to echo"))?;
    Ok(((*name).clone(), arg.to_owned()))
}

async fn large(ctx: &Context, size: usize) -> Outcome {
    let (name, arg) = match echo_tool(ctx).await {
        Ok(t) => t,
        Err(e) => return Outcome::skip(e),
    };
    let payload: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    // A session of its own, so a slow server cannot hold up the checks that follow.
    let client = match ctx.fresh_client().await {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e),
    };
    let result: Value =
        match client.request("tools/call", &json!({ "name": name, "arguments": { arg: payload } })).await {
            Ok(r) => r,
            Err(e) => return Outcome::fail(describe(&e)),
        };
    let echoed = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .any(|t| t.contains(&payload));
    Outcome::require(echoed, || format!("the {size}-byte text did not come back intact from {name}"))
}

async fn concurrent(ctx: &Context) -> Outcome {
    let method = if ctx.is_modern() { "server/discover" } else { "ping" };
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let client = ctx.client.clone();
        set.spawn(async move {
            let params =
                if client.is_modern() { Some(mcp_transport_core::message::to_raw(&json!({})).ok()) } else { None };
            client.request_raw(method, params.flatten(), RequestOptions::default()).await
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(describe(&e)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Outcome::require(failures.is_empty(), || format!("{} of 100 failed: {}", failures.len(), failures[0]))
}

async fn shutdown(ctx: &Context) -> Outcome {
    let client = match ctx.fresh_client().await {
        Ok(c) => c,
        Err(e) => return Outcome::fail(e),
    };
    let peer = client.peer().clone();
    if let Err(e) = peer.sender().close(Duration::from_secs(5)).await {
        return Outcome::fail(format!("closing our side failed: {e}"));
    }
    match tokio::time::timeout(ctx.options.check_timeout / 2, peer.closed()).await {
        Ok(()) => Outcome::pass(),
        Err(_) => Outcome::fail("the server kept the connection open after the client ended its side"),
    }
}
