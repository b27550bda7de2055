//! Log levels and `notifications/message`.
//!
//! In the 2025 generation the client picks the minimum level per connection with
//! `logging/setLevel` (everything is sent until it does). In 2026-07-28 each request opts in
//! with `_meta["io.modelcontextprotocol/logLevel"]`; without it the server sends no log messages
//! for that request.

use mcp_session::Peer;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;

/// The `logger` name on every log message of this server.
pub(crate) const LOGGER: &str = "mcpt-reference-server";

/// Syslog severities, as MCP names them, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Normal but significant.
    Notice,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical condition.
    Critical,
    /// Action must be taken immediately.
    Alert,
    /// The system is unusable.
    Emergency,
}

impl LogLevel {
    /// Reads a level from its MCP name; -32602 for anything else.
    pub(crate) fn parse(value: &serde_json::Value, method: &'static str) -> Result<Self, ServerError> {
        serde_json::from_value(value.clone())
            .map_err(|_| ServerError::invalid_params(method, format!("{value} is not a log level (debug … emergency)")))
    }
}

#[derive(Serialize)]
struct MessageParams<'a> {
    level: LogLevel,
    logger: &'static str,
    data: &'a str,
}

/// Sends log messages for one request, at or above its minimum level.
#[derive(Debug, Clone)]
pub(crate) struct Logger {
    peer: Peer,
    /// The minimum level; `None` sends nothing.
    min: Option<LogLevel>,
}

impl Logger {
    /// A logger sending to `peer` messages at `min` or above (`None`: none at all).
    pub(crate) fn new(peer: Peer, min: Option<LogLevel>) -> Self {
        Self { peer, min }
    }

    /// Whether a message at `level` would be sent.
    pub(crate) fn enabled(&self, level: LogLevel) -> bool {
        self.min.is_some_and(|min| level >= min)
    }

    /// Sends `notifications/message` if `level` is enabled. A send failure (the connection
    /// went away) is only traced: the request's own answer will fail the same way.
    pub(crate) async fn log(&self, level: LogLevel, data: &str) {
        if !self.enabled(level) {
            return;
        }
        let params = MessageParams { level, logger: LOGGER, data };
        if let Err(e) = self.peer.notify("notifications/message", &params).await {
            tracing::debug!(error = %e, "could not send notifications/message");
        }
    }
}

/// `logging/setLevel` params.
#[derive(Deserialize)]
pub(crate) struct SetLevelParams {
    pub(crate) level: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn levels_parse_and_order_by_severity() {
        let all = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];
        let parsed: Vec<LogLevel> =
            all.iter().map(|l| LogLevel::parse(&json!(l), "logging/setLevel").expect(l)).collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]), "{parsed:?}");
        assert_eq!(serde_json::to_value(LogLevel::Warning).unwrap(), json!("warning"));
    }

    #[test]
    fn unknown_levels_are_invalid_params() {
        for bad in [json!("verbose"), json!(3), json!(null), json!("INFO")] {
            let err = LogLevel::parse(&bad, "logging/setLevel").unwrap_err();
            assert_eq!(err.to_error_object(false).code, -32602, "{bad}");
        }
    }

    #[test]
    fn message_params_shape() {
        let v = serde_json::to_value(MessageParams { level: LogLevel::Info, logger: LOGGER, data: "x" }).unwrap();
        assert_eq!(v, json!({ "level": "info", "logger": LOGGER, "data": "x" }));
    }
}
