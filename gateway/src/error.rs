//! The gateway's error type, and the one place where failures become JSON-RPC errors.

use std::time::Duration;

use mcp_session::SessionError;
use mcp_transport_core::ErrorObject;
use mcp_transport_core::message::codes;
use serde::Serialize;

/// JSON-RPC code of a request refused by a rate limit (`data.retryAfterMs` says when to retry).
pub const RATE_LIMITED: i64 = -32029;
/// JSON-RPC code of a request refused because the upstream is unavailable (not connected, or
/// its circuit breaker is open; `data.retryAfterMs` when known).
pub const UPSTREAM_UNAVAILABLE: i64 = -32030;
/// JSON-RPC code of a request refused because the principal may not use the upstream or tool.
pub const FORBIDDEN: i64 = -32031;
/// JSON-RPC code of a request refused because the gateway is shutting down.
pub const SHUTTING_DOWN: i64 = -32032;
/// JSON-RPC code of a request refused because the principal has spent its token budget for
/// the current window (`data`: `budgetTokens`, `spentTokens`, `windowMs`, `retryAfterMs`,
/// `resetsAtUnixMs`).
pub const TOKEN_BUDGET_EXHAUSTED: i64 = -32033;

/// Why a gateway operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file could not be read.
    #[error("{file}: {source}")]
    ConfigRead {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration is invalid; the position is 1-based.
    #[error("{file}:{line}:{column}: {message}")]
    Config {
        /// The file (or the name given to the text).
        file: String,
        /// Line of the offending value.
        line: usize,
        /// Column of the offending value.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The admin HTTP listener could not be bound or failed.
    #[error("admin listener {addr}: {source}")]
    Admin {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A downstream connection presented no credential that names a principal.
    #[error("connection from {peer}: {reason}")]
    Unauthorized {
        /// The peer's address.
        peer: String,
        /// What was missing or wrong.
        reason: String,
    },
    /// The gateway is shutting down and takes no new connections or calls.
    #[error("the gateway is shutting down")]
    ShuttingDown,
    /// A request named an upstream that does not exist (or a name without the separator).
    #[error("{what}: no upstream is named {upstream:?}")]
    UnknownUpstream {
        /// The name or URI that was routed.
        what: String,
        /// The upstream part of it.
        upstream: String,
    },
    /// The gateway does not serve this method.
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// A request could not be routed (missing name, URI without an owner, bad cursor).
    #[error("{0}")]
    BadRequest(String),
    /// The principal may not use this upstream or tool.
    #[error("principal {principal:?} may not use {target}")]
    Forbidden {
        /// The principal.
        principal: String,
        /// The upstream or namespaced tool.
        target: String,
    },
    /// A rate limit refused the request.
    #[error("rate limit {scope} exceeded; retry after {retry_after:?}")]
    RateLimited {
        /// Which limit (`global`, `upstream crm`, `principal alice`, `tool crm__search`).
        scope: String,
        /// When the next request would be allowed.
        retry_after: Duration,
    },
    /// The principal has spent its token budget for the current window.
    #[error(
        "principal {principal:?} has spent {spent} of its {budget} result tokens for this window; \
         the window resets in {resets_in:?}"
    )]
    TokenBudgetExhausted {
        /// The principal.
        principal: String,
        /// Tokens allowed per window.
        budget: u64,
        /// Tokens spent in the current window.
        spent: u64,
        /// The window's length.
        window: Duration,
        /// When the current window ends.
        resets_in: Duration,
    },
    /// The upstream's circuit breaker is open.
    #[error("upstream {upstream}: circuit open; retry after {retry_after:?}")]
    CircuitOpen {
        /// The upstream.
        upstream: String,
        /// When the breaker lets a probe through.
        retry_after: Duration,
    },
    /// The upstream is not connected.
    #[error("upstream {upstream} is not connected")]
    UpstreamDown {
        /// The upstream.
        upstream: String,
    },
    /// The upstream's session failed or answered with an error.
    #[error("upstream {upstream}: {source}")]
    Upstream {
        /// The upstream.
        upstream: String,
        /// The session error.
        source: SessionError,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetryData<'a> {
    retry_after_ms: u64,
    scope: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BudgetData<'a> {
    scope: String,
    principal: &'a str,
    budget_tokens: u64,
    spent_tokens: u64,
    window_ms: u64,
    retry_after_ms: u64,
    resets_at_unix_ms: u64,
}

impl Error {
    /// The JSON-RPC error a downstream client receives for this failure: the single point
    /// where gateway and policy failures become JSON-RPC errors. An upstream's own JSON-RPC
    /// error passes through unchanged.
    pub fn to_error_object(&self) -> ErrorObject {
        let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        match self {
            Error::RateLimited { scope, retry_after } => ErrorObject::new(RATE_LIMITED, self.to_string())
                .with_data(&RetryData { retry_after_ms: ms(retry_after), scope }),
            Error::CircuitOpen { upstream, retry_after } => ErrorObject::new(UPSTREAM_UNAVAILABLE, self.to_string())
                .with_data(&RetryData { retry_after_ms: ms(retry_after), scope: upstream }),
            Error::TokenBudgetExhausted { principal, budget, spent, window, resets_in } => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let resets_at = u64::try_from((now + *resets_in).as_millis()).unwrap_or(u64::MAX);
                ErrorObject::new(TOKEN_BUDGET_EXHAUSTED, self.to_string()).with_data(&BudgetData {
                    scope: format!("principal {principal}"),
                    principal,
                    budget_tokens: *budget,
                    spent_tokens: *spent,
                    window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
                    retry_after_ms: ms(resets_in),
                    resets_at_unix_ms: resets_at,
                })
            }
            Error::UpstreamDown { .. } => ErrorObject::new(UPSTREAM_UNAVAILABLE, self.to_string()),
            Error::Forbidden { .. } | Error::Unauthorized { .. } => ErrorObject::new(FORBIDDEN, self.to_string()),
            Error::ShuttingDown => ErrorObject::new(SHUTTING_DOWN, self.to_string()),
            Error::MethodNotFound(m) => ErrorObject::method_not_found(m),
            Error::UnknownUpstream { .. } | Error::BadRequest(_) => ErrorObject::invalid_params(self),
            Error::Upstream { source, upstream } => match source {
                SessionError::Rpc { error, .. } => error.clone(),
                SessionError::TimedOut { .. } => ErrorObject::new(codes::REQUEST_TIMEOUT, self.to_string()),
                SessionError::Closed { .. } | SessionError::Transport(_) => {
                    ErrorObject::new(UPSTREAM_UNAVAILABLE, format!("upstream {upstream}: {source}"))
                }
                _ => ErrorObject::internal(self),
            },
            Error::ConfigRead { .. } | Error::Config { .. } | Error::Admin { .. } => ErrorObject::internal(self),
        }
    }

    /// Whether this failure says the upstream is unhealthy (it counts against its circuit
    /// breaker): transport failures, timeouts and closed connections, not JSON-RPC errors.
    pub fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            Error::Upstream {
                source: SessionError::TimedOut { .. } | SessionError::Closed { .. } | SessionError::Transport(_),
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(e: &ErrorObject) -> serde_json::Value {
        serde_json::from_str(e.data.as_ref().expect("data").get()).unwrap()
    }

    #[test]
    fn rate_limit_errors_say_when_to_retry() {
        let e = Error::RateLimited { scope: "tool a__b".into(), retry_after: Duration::from_millis(1500) };
        let obj = e.to_error_object();
        assert_eq!(obj.code, RATE_LIMITED);
        assert_eq!(data(&obj)["retryAfterMs"], 1500);
        assert_eq!(data(&obj)["scope"], "tool a__b");
        let open = Error::CircuitOpen { upstream: "crm".into(), retry_after: Duration::ZERO }.to_error_object();
        assert_eq!(open.code, UPSTREAM_UNAVAILABLE);
        assert_eq!(data(&open)["retryAfterMs"], 1, "never tells a client to retry at once");
    }

    #[test]
    fn budget_errors_say_budget_spent_and_reset() {
        let e = Error::TokenBudgetExhausted {
            principal: "alice".into(),
            budget: 1000,
            spent: 1040,
            window: Duration::from_secs(3600),
            resets_in: Duration::from_secs(600),
        };
        let obj = e.to_error_object();
        assert_eq!(obj.code, TOKEN_BUDGET_EXHAUSTED);
        assert!(obj.message.contains("spent 1040 of its 1000 result tokens"), "{}", obj.message);
        let d = data(&obj);
        assert_eq!((d["budgetTokens"].as_u64(), d["spentTokens"].as_u64()), (Some(1000), Some(1040)));
        assert_eq!((d["windowMs"].as_u64(), d["retryAfterMs"].as_u64()), (Some(3_600_000), Some(600_000)));
        assert_eq!(d["scope"], "principal alice");
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let resets_at = d["resetsAtUnixMs"].as_u64().unwrap();
        assert!(resets_at > now_ms && resets_at <= now_ms + 600_000, "{resets_at} vs {now_ms}");
    }

    #[test]
    fn upstream_rpc_errors_pass_through() {
        let inner = ErrorObject::new(-32002, "Resource not found");
        let e = Error::Upstream {
            upstream: "a".into(),
            source: SessionError::Rpc { method: "resources/read".into(), error: inner.clone() },
        };
        assert_eq!(e.to_error_object(), inner);
        assert!(!e.is_upstream_failure());
        let closed =
            Error::Upstream { upstream: "a".into(), source: SessionError::Closed { method: "tools/call".into() } };
        assert!(closed.is_upstream_failure());
        assert_eq!(closed.to_error_object().code, UPSTREAM_UNAVAILABLE);
    }
}
