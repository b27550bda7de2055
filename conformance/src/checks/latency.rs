//! Latency of the simplest requests, against a budget when one is given.

use std::time::{Duration, Instant};

use mcp_session::RequestOptions;
use mcp_transport_core::message::to_raw;
use serde_json::json;

use super::describe;
use crate::check::{Applies, Check, Outcome, Severity};
use crate::context::Context;

pub(super) const CHECKS: [Check; 2] = [
    Check {
        id: "latency.ping",
        title: "p50 / p99 of ping (2025) or server/discover (2026-07-28)",
        section: "basic/utilities/ping",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/utilities/ping",
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(measure(ctx, false)),
    },
    Check {
        id: "latency.tools-list",
        title: "p50 / p99 of tools/list",
        section: "server/tools#listing-tools",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/server/tools#listing-tools",
        severity: Severity::Must,
        applies: Applies::Capability("tools"),
        run: |ctx| Box::pin(measure(ctx, true)),
    },
];

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
}

async fn measure(ctx: &Context, list: bool) -> Outcome {
    let method = match (list, ctx.is_modern()) {
        (true, _) => "tools/list",
        (false, true) => "server/discover",
        (false, false) => "ping",
    };
    let n = ctx.options.latency_samples.max(1);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let params = if list || ctx.is_modern() { to_raw(&json!({})).ok() } else { None };
        let start = Instant::now();
        if let Err(e) = ctx.client.request_raw(method, params, RequestOptions::default()).await {
            return Outcome::fail(describe(&e));
        }
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
    let detail = format!("{method}: p50 {p50:.3} ms, p99 {p99:.3} ms over {n} calls");
    let budget = ctx
        .options
        .budgets
        .as_ref()
        .map(|b| if list { (b.tools_list_p50_ms, b.tools_list_p99_ms) } else { (b.ping_p50_ms, b.ping_p99_ms) });
    match budget {
        Some((Some(max), _)) if p50 > max => Outcome::fail(format!("{detail}: p50 above the budget of {max} ms")),
        Some((_, Some(max))) if p99 > max => Outcome::fail(format!("{detail}: p99 above the budget of {max} ms")),
        _ => Outcome::pass_with(detail),
    }
}
