//! What a request says about its client: capabilities and the log level it asked for.
//!
//! In 2026-07-28 both travel in every request's `_meta`; in the 2025 generation the
//! capabilities were sent in `initialize` (which the session layer keeps to itself, so they
//! are unknown here) and the log level is connection state.

use mcp_session::protocol::META_CLIENT_CAPABILITIES;
use mcp_transport_core::RawValue;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ServerError;
use crate::logging::LogLevel;

/// `_meta` key of the per-request log level (2026-07-28).
pub(crate) const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// The kinds of input a server may ask a client for, and the capability each needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum InputKind {
    /// `elicitation/create`.
    Elicitation,
    /// `sampling/createMessage`.
    Sampling,
    /// `roots/list`.
    Roots,
}

impl InputKind {
    /// The request method.
    pub(crate) fn method(self) -> &'static str {
        match self {
            InputKind::Elicitation => "elicitation/create",
            InputKind::Sampling => "sampling/createMessage",
            InputKind::Roots => "roots/list",
        }
    }

    /// The client capability that allows it.
    pub(crate) fn capability(self) -> &'static str {
        match self {
            InputKind::Elicitation => "elicitation",
            InputKind::Sampling => "sampling",
            InputKind::Roots => "roots",
        }
    }
}

/// The client capabilities that apply to a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ClientCaps {
    /// Declared in this request's `_meta` (2026-07-28).
    Declared(Map<String, Value>),
    /// Not visible to the application (2025 generation): requests are tried, and a client that
    /// cannot serve one answers with an error.
    Unknown,
}

impl ClientCaps {
    /// Whether the client may be asked for input of this kind (`Unknown` allows it).
    pub(crate) fn allows(&self, kind: InputKind) -> bool {
        match self {
            ClientCaps::Declared(caps) => caps.get(kind.capability()).is_some_and(Value::is_object),
            ClientCaps::Unknown => true,
        }
    }
}

/// The `_meta` members of a 2026-07-28 request this server uses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestMeta {
    /// The client capabilities of this request.
    pub(crate) caps: ClientCaps,
    /// The log level the request opted in to, if any.
    pub(crate) log_level: Option<LogLevel>,
}

/// Reads `_meta` from a 2026-07-28 request's params (the session layer has already checked
/// that the required members are there).
pub(crate) fn modern_meta(params: Option<&RawValue>, method: &'static str) -> Result<RequestMeta, ServerError> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta", default)]
        meta: Option<Map<String, Value>>,
    }
    let meta = match params {
        Some(raw) => serde_json::from_str::<Params>(raw.get())
            .map_err(|e| ServerError::invalid_params(method, format!("params: {e}")))?
            .meta
            .unwrap_or_default(),
        None => Map::new(),
    };
    let caps = match meta.get(META_CLIENT_CAPABILITIES) {
        Some(Value::Object(caps)) => caps.clone(),
        _ => Map::new(),
    };
    let log_level = meta.get(META_LOG_LEVEL).map(|v| LogLevel::parse(v, method)).transpose()?;
    Ok(RequestMeta { caps: ClientCaps::Declared(caps), log_level })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_transport_core::message::to_raw;
    use serde_json::json;

    fn meta(v: Value) -> Result<RequestMeta, ServerError> {
        modern_meta(Some(&to_raw(&v).unwrap()), "tools/call")
    }

    #[test]
    fn reads_capabilities_and_log_level() {
        let m = meta(json!({ "_meta": {
            "io.modelcontextprotocol/clientCapabilities": { "sampling": {}, "roots": {} },
            "io.modelcontextprotocol/logLevel": "warning"
        }}))
        .unwrap();
        assert!(m.caps.allows(InputKind::Sampling));
        assert!(m.caps.allows(InputKind::Roots));
        assert!(!m.caps.allows(InputKind::Elicitation));
        assert_eq!(m.log_level, Some(LogLevel::Warning));
    }

    #[test]
    fn no_level_means_no_logging_and_unknown_caps_allow_everything() {
        let m = meta(json!({ "_meta": { "io.modelcontextprotocol/clientCapabilities": {} } })).unwrap();
        assert_eq!(m.log_level, None);
        assert!(!m.caps.allows(InputKind::Sampling));
        assert!(ClientCaps::Unknown.allows(InputKind::Elicitation));
    }

    #[test]
    fn a_capability_must_be_an_object() {
        let m =
            meta(json!({ "_meta": { "io.modelcontextprotocol/clientCapabilities": { "sampling": true } } })).unwrap();
        assert!(!m.caps.allows(InputKind::Sampling));
    }

    #[test]
    fn a_bad_log_level_is_invalid_params() {
        let err = meta(json!({ "_meta": { "io.modelcontextprotocol/logLevel": "loud" } })).unwrap_err();
        assert_eq!(err.to_error_object(true).code, -32602);
    }

    #[test]
    fn kinds_name_methods_and_capabilities() {
        assert_eq!(InputKind::Elicitation.method(), "elicitation/create");
        assert_eq!(InputKind::Sampling.method(), "sampling/createMessage");
        assert_eq!(InputKind::Roots.method(), "roots/list");
        assert_eq!(InputKind::Roots.capability(), "roots");
    }
}
