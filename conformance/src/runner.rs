//! Runs the checks that apply, each within its deadline.

use std::sync::Arc;
use std::time::Instant;

use mcp_session::client::Client;

use crate::baseline::Baseline;
use crate::check::{Applies, Check, Outcome, Status};
use crate::context::{Connector, Context, Options, client_options};
use crate::error::Error;
use crate::report::{CheckResult, Report};

/// Which MCP generation the harness speaks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpecChoice {
    /// `server/discover` first (2026-07-28); the 2025 handshake when that is not understood.
    #[default]
    Auto,
    /// The stateful generation, offering this version in `initialize`.
    Legacy(String),
    /// 2026-07-28.
    Modern,
}

impl std::str::FromStr for SpecChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SpecChoice::Auto),
            "2026-07-28" => Ok(SpecChoice::Modern),
            v if mcp_session::protocol::is_legacy(v) => Ok(SpecChoice::Legacy(v.to_owned())),
            other => {
                Err(format!("unknown spec {other:?}: expected auto, 2026-07-28, 2025-11-25, 2025-06-18 or 2025-03-26"))
            }
        }
    }
}

fn applies(check: &Check, ctx: &Context) -> Result<(), String> {
    match check.applies {
        Applies::Always => Ok(()),
        Applies::Legacy if !ctx.is_modern() => Ok(()),
        Applies::Legacy => Err("applies to the 2025 generation only".into()),
        Applies::Modern if ctx.is_modern() => Ok(()),
        Applies::Modern => Err("applies to 2026-07-28 only".into()),
        Applies::Capability(c) if ctx.has_capability(c) => Ok(()),
        Applies::LegacyCapability(c) if !ctx.is_modern() && ctx.has_capability(c) => Ok(()),
        Applies::Capability(c) | Applies::LegacyCapability(c) => {
            Err(format!("the server does not advertise the {c:?} capability (or not in this generation)"))
        }
    }
}

/// Connects to the target, runs every applicable check and returns the report.
pub async fn run(
    connector: Arc<dyn Connector>,
    options: Options,
    checks: &[Check],
    baseline: &Baseline,
) -> Result<Report, Error> {
    let target = connector.describe();
    let connect_err = |reason: String| Error::Connect { target: target.clone(), reason };
    let transport = connector.connect().await.map_err(connect_err)?;
    let opts = client_options(&options.spec, options.check_timeout);
    let client = Client::connect(transport, opts).await.map_err(|e| connect_err(e.to_string()))?;
    let ctx = Context::new(connector, options, client);
    let mut results = Vec::with_capacity(checks.len());
    for check in checks {
        let started = Instant::now();
        let span = tracing::info_span!("check", id = check.id);
        let _enter = span.enter();
        let outcome = match applies(check, &ctx) {
            Err(reason) => Outcome::skip(reason),
            Ok(()) => match tokio::time::timeout(ctx.options.check_timeout, (check.run)(&ctx)).await {
                Ok(outcome) => outcome,
                Err(_) => Outcome::fail(format!("no verdict within {:?}", ctx.options.check_timeout)),
            },
        };
        let outcome = match (outcome.status, check.severity) {
            (Status::Fail, crate::Severity::Should) => Outcome::warn(outcome.detail),
            _ => outcome,
        };
        let outcome = baseline.apply(check.id, outcome);
        tracing::debug!(status = ?outcome.status, detail = %outcome.detail, "check done");
        results.push(CheckResult::new(check, outcome, started.elapsed()));
    }
    let server = ctx.client.server();
    Ok(Report {
        target: ctx.target(),
        protocol_version: server.protocol_version.clone(),
        server_name: server.server_info.as_ref().map(|i| format!("{} {}", i.name, i.version)),
        results,
    })
}
