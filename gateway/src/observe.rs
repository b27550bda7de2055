//! Observability: Prometheus metrics through the `metrics` facade, a tracing span per
//! forwarded request, and the admin HTTP router (`/metrics`, `/healthz`, `/readyz`).
//!
//! Metrics (labels in braces):
//! - `mcp_gateway_requests_total{upstream, method, item, outcome, cache}`: requests routed to
//!   an upstream, answered by it or by the cache; `outcome` is `ok`, `rpc_error` (the upstream
//!   answered with an error) or `refused`/`failed`; `cache` is `hit` (answered from the cache),
//!   `miss` (cacheable, forwarded) or `off` (not cacheable).
//! - `mcp_gateway_request_duration_seconds{upstream, method, item, cache}`: latency histogram
//!   (buckets 0.5 ms … 1 s, 2 s, 5 s, 10 s, 30 s, 60 s).
//! - `mcp_gateway_errors_total{upstream, method, code}`: failures by JSON-RPC code.
//! - `mcp_gateway_request_bytes_total{upstream}` / `mcp_gateway_response_bytes_total{upstream}`:
//!   bytes sent to and received from upstreams (cache hits excluded).
//! - `mcp_gateway_result_tokens_estimate_total{upstream, item}`: result bytes / 4 received
//!   from upstreams (cache hits excluded).
//! - `mcp_gateway_principal_result_tokens_estimate_total{principal}`: result bytes / 4
//!   delivered to each principal, cache hits included (what its token budget counts).
//! - `mcp_gateway_principal_token_budget{principal}`: tokens per window of the principals
//!   with a `token_budget`; `mcp_gateway_principal_token_budget_spent{principal}`: tokens they
//!   spent in their current window (0 once it ends).
//! - `mcp_gateway_rate_limited_total{scope, target}`: rate-limit refusals; `scope` is
//!   `global`, `upstream`, `principal` or `tool`, `target` the upstream, principal or tool
//!   (empty for `global`).
//! - `mcp_gateway_circuit_breaker_state{upstream}`: 0 closed, 1 open, 2 half-open.
//! - `mcp_gateway_upstream_up{upstream}`: 1 when connected, 0 otherwise (from start).
//! - `mcp_gateway_sessions{principal}`: open downstream sessions.
//! - `mcp_gateway_cache_lookups_total{method, outcome}`: cache lookups, `hit` or `miss`.
//!
//! `item` is the namespaced tool or prompt name when the upstream listed it, else `other`,
//! so clients cannot grow the label set; principals, upstreams and rate-limit targets come
//! from the configuration. Gauges that depend on time (breaker states, budget windows) are
//! brought up to date when `/metrics` is read.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use mcp_transport_core::RawValue;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::Error;
use crate::policy::{BreakerState, Cached, Call, CallFuture, token_estimate};

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets in seconds (2 s for the p95 alert; up to the default request timeout).
const BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// Installs the Prometheus recorder as the process's `metrics` recorder (once). `None` when
/// another recorder was installed first.
pub(crate) fn prometheus() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("mcp_gateway_request_duration_seconds".into()),
                    &BUCKETS,
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Records metrics and opens a span for every call.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// See [`ObserveLayer`].
#[derive(Clone)]
pub(crate) struct Observe<S> {
    inner: S,
}

impl<S: Service<Call, Response = Box<RawValue>, Error = Error, Future = CallFuture>> Service<Call> for Observe<S> {
    type Response = Box<RawValue>;
    type Error = Error;
    type Future = CallFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> CallFuture {
        let upstream = call.upstream.config.name.clone();
        let method = call.method;
        let item = call.label.clone();
        let principal = call.principal.to_string();
        let cache = call.cached.label();
        let hit = matches!(call.cached, Cached::Hit(_));
        let request_bytes = call.params.as_ref().map_or(0, |p| p.get().len());
        let span = tracing::info_span!("gateway_call", principal = %call.principal, upstream = %upstream, method, item = %item, cache);
        let fut = self.inner.call(call);
        Box::pin(
            async move {
                let started = Instant::now();
                if !hit {
                    metrics::counter!("mcp_gateway_request_bytes_total", "upstream" => upstream.clone())
                        .increment(request_bytes as u64);
                }
                let result = fut.await;
                let elapsed = started.elapsed().as_secs_f64();
                metrics::histogram!("mcp_gateway_request_duration_seconds", "upstream" => upstream.clone(), "method" => method, "item" => item.clone(), "cache" => cache)
                    .record(elapsed);
                let outcome = match &result {
                    Ok(raw) => {
                        let tokens = token_estimate(raw);
                        if !hit {
                            let bytes = raw.get().len() as u64;
                            metrics::counter!("mcp_gateway_response_bytes_total", "upstream" => upstream.clone()).increment(bytes);
                            metrics::counter!("mcp_gateway_result_tokens_estimate_total", "upstream" => upstream.clone(), "item" => item.clone())
                                .increment(tokens);
                        }
                        metrics::counter!("mcp_gateway_principal_result_tokens_estimate_total", "principal" => principal)
                            .increment(tokens);
                        "ok"
                    }
                    Err(e) => {
                        let code = e.to_error_object().code;
                        metrics::counter!("mcp_gateway_errors_total", "upstream" => upstream.clone(), "method" => method, "code" => code.to_string())
                            .increment(1);
                        tracing::debug!(error = %e, "call failed");
                        match e {
                            Error::Upstream { source: mcp_session::SessionError::Rpc { .. }, .. } => "rpc_error",
                            Error::RateLimited { .. }
                            | Error::TokenBudgetExhausted { .. }
                            | Error::CircuitOpen { .. }
                            | Error::UpstreamDown { .. } => "refused",
                            _ => "failed",
                        }
                    }
                };
                metrics::counter!("mcp_gateway_requests_total", "upstream" => upstream, "method" => method, "item" => item, "outcome" => outcome, "cache" => cache)
                    .increment(1);
                result
            }
            .instrument(span),
        )
    }
}

/// What the admin endpoints need from the gateway.
pub(crate) trait Health: Send + Sync + 'static {
    /// Whether the gateway can serve: the required upstreams (or, when none is required, at
    /// least one) are ready; the text lists each upstream's state.
    fn readiness(&self) -> (bool, String);

    /// Every upstream's name and circuit-breaker state now.
    fn breaker_states(&self) -> Vec<(String, BreakerState)>;

    /// Brings the time-dependent gauges other than breaker states up to date (token-budget
    /// windows that ended).
    fn refresh_gauges(&self);
}

/// The value of `mcp_gateway_circuit_breaker_state` for a state.
pub(crate) fn breaker_gauge(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed => 0.0,
        BreakerState::Open => 1.0,
        BreakerState::HalfOpen => 2.0,
    }
}

/// Sets the gauges that depend on time, before `/metrics` renders them.
pub(crate) fn refresh_gauges(health: &dyn Health) {
    for (upstream, state) in health.breaker_states() {
        metrics::gauge!("mcp_gateway_circuit_breaker_state", "upstream" => upstream).set(breaker_gauge(state));
    }
    health.refresh_gauges();
}

/// The admin router: `/metrics` (Prometheus text), `/healthz` (the process is alive) and
/// `/readyz` (200 when ready, else 503; the body lists every upstream's state).
pub(crate) fn admin_router(health: Arc<dyn Health>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(h): State<Arc<dyn Health>>| async move {
                refresh_gauges(h.as_ref());
                match prometheus() {
                    Some(h) => (StatusCode::OK, h.render()),
                    None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder not installed\n".to_owned()),
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(h): State<Arc<dyn Health>>| async move {
                let (ready, text) = h.readiness();
                (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, text)
            }),
        )
        .with_state(health)
}
