//! Why a request to the reference server failed, and the JSON-RPC error each reason becomes.

use mcp_transport_core::ErrorObject;
use mcp_transport_core::message::codes;
use serde::Serialize;

/// -32021: the request needs a client capability the client did not declare (2026-07-28).
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;

/// Why the reference server refused or failed a request.
///
/// Each variant maps to one JSON-RPC error ([`ServerError::to_error_object`]); the mapping
/// depends on the protocol generation only for [`ServerError::ResourceNotFound`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The method does not exist, or not in the negotiated protocol generation (-32601).
    #[error("Method not found: {method}{detail}")]
    MethodNotFound {
        /// The method requested.
        method: String,
        /// Why, when the method exists in another generation (starts with "; ").
        detail: &'static str,
    },
    /// The params of a request do not fit its method (-32602).
    #[error("Invalid params for {method}: {reason}")]
    InvalidParams {
        /// The method of the request.
        method: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// `tools/call` named a tool this server does not have (-32602).
    #[error("Unknown tool: {name}")]
    UnknownTool {
        /// The tool name requested.
        name: String,
    },
    /// `prompts/get` or `completion/complete` named a prompt this server does not have (-32602).
    #[error("Unknown prompt: {name}")]
    UnknownPrompt {
        /// The prompt name requested.
        name: String,
    },
    /// No resource has this URI (-32002 in the 2025 generation, -32602 in 2026-07-28), with
    /// the URI in `data`.
    #[error("Resource not found: {uri}")]
    ResourceNotFound {
        /// The URI requested.
        uri: String,
    },
    /// A list cursor this server did not issue (-32602).
    #[error("Invalid cursor for {method}: {cursor:?}")]
    InvalidCursor {
        /// The list method.
        method: &'static str,
        /// The cursor received.
        cursor: String,
    },
    /// A retried request carried a `requestState` that failed its integrity check, expired,
    /// or belongs to another tool or prompt (-32602).
    #[error("requestState rejected for {target}: {reason}")]
    InvalidRequestState {
        /// The tool or prompt the request addressed.
        target: String,
        /// Why the state was rejected.
        reason: &'static str,
    },
    /// The request needs input of a kind the client did not declare in its capabilities
    /// (-32021, with `data.requiredCapabilities`).
    #[error("{target} needs the client capability {capability:?}, which the request did not declare")]
    MissingCapability {
        /// The tool or prompt the request addressed.
        target: String,
        /// The missing capability (`sampling`, `elicitation` or `roots`).
        capability: &'static str,
    },
    /// The client did not provide the input a prompt needs (2025 generation, -32603).
    #[error("{target} could not get input from the client: {reason}")]
    InputUnavailable {
        /// The prompt the request addressed.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// A notification belonging to the request could not be sent (the connection is gone;
    /// -32603).
    #[error("could not send {method}: {reason}")]
    NotificationFailed {
        /// The notification method.
        method: &'static str,
        /// The session layer's error.
        reason: String,
    },
    /// A result could not be serialized (-32603).
    #[error("Internal error: could not encode the {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
}

impl ServerError {
    /// -32602 for `method` with a reason.
    pub(crate) fn invalid_params(method: &'static str, reason: impl Into<String>) -> Self {
        ServerError::InvalidParams { method, reason: reason.into() }
    }

    /// -32601 for `method`.
    pub(crate) fn method_not_found(method: &str) -> Self {
        ServerError::MethodNotFound { method: method.to_owned(), detail: "" }
    }

    /// -32603 for a value that could not be serialized.
    pub(crate) fn encode(what: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| ServerError::Encode { what, source }
    }

    /// The JSON-RPC error for this failure under the given generation (`modern` is
    /// 2026-07-28).
    pub fn to_error_object(&self, modern: bool) -> ErrorObject {
        let message = self.to_string();
        match self {
            ServerError::MethodNotFound { .. } => ErrorObject::new(codes::METHOD_NOT_FOUND, message),
            ServerError::InvalidParams { .. }
            | ServerError::UnknownTool { .. }
            | ServerError::UnknownPrompt { .. }
            | ServerError::InvalidCursor { .. }
            | ServerError::InvalidRequestState { .. } => ErrorObject::new(codes::INVALID_PARAMS, message),
            ServerError::ResourceNotFound { uri } => {
                #[derive(Serialize)]
                struct Data<'a> {
                    uri: &'a str,
                }
                let code = if modern { codes::INVALID_PARAMS } else { codes::RESOURCE_NOT_FOUND };
                ErrorObject::new(code, message).with_data(&Data { uri })
            }
            ServerError::MissingCapability { capability, .. } => {
                let mut caps = serde_json::Map::new();
                caps.insert((*capability).to_owned(), serde_json::Value::Object(serde_json::Map::new()));
                let data = serde_json::json!({ "requiredCapabilities": caps });
                ErrorObject::new(MISSING_REQUIRED_CLIENT_CAPABILITY, message).with_data(&data)
            }
            ServerError::InputUnavailable { .. }
            | ServerError::NotificationFailed { .. }
            | ServerError::Encode { .. } => ErrorObject::new(codes::INTERNAL_ERROR, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(e: &ErrorObject) -> serde_json::Value {
        serde_json::from_str(e.data.as_ref().expect("data").get()).expect("json")
    }

    #[test]
    fn resource_not_found_code_depends_on_the_generation() {
        let err = ServerError::ResourceNotFound { uri: "test://nope".into() };
        let legacy = err.to_error_object(false);
        assert_eq!(legacy.code, -32002);
        assert_eq!(data(&legacy), serde_json::json!({ "uri": "test://nope" }));
        let modern = err.to_error_object(true);
        assert_eq!(modern.code, -32602);
        assert_eq!(data(&modern), serde_json::json!({ "uri": "test://nope" }));
    }

    #[test]
    fn missing_capability_names_it_as_a_capabilities_object() {
        let err = ServerError::MissingCapability { target: "test_sampling".into(), capability: "sampling" };
        let obj = err.to_error_object(true);
        assert_eq!(obj.code, -32021);
        assert_eq!(data(&obj), serde_json::json!({ "requiredCapabilities": { "sampling": {} } }));
        assert!(obj.message.contains("test_sampling"), "{}", obj.message);
    }

    #[test]
    fn codes_of_the_other_variants() {
        assert_eq!(ServerError::method_not_found("x/y").to_error_object(true).code, -32601);
        assert_eq!(ServerError::UnknownTool { name: "t".into() }.to_error_object(false).code, -32602);
        assert_eq!(ServerError::UnknownPrompt { name: "p".into() }.to_error_object(false).code, -32602);
        let cursor = ServerError::InvalidCursor { method: "tools/list", cursor: "zz".into() };
        assert_eq!(cursor.to_error_object(false).code, -32602);
        let state = ServerError::InvalidRequestState { target: "t".into(), reason: "bad" };
        assert_eq!(state.to_error_object(true).code, -32602);
        let encode = ServerError::encode("result")(serde_json::from_str::<u8>("x").unwrap_err());
        assert_eq!(encode.to_error_object(true).code, -32603);
        let input = ServerError::InputUnavailable { target: "p".into(), reason: "no".into() };
        assert_eq!(input.to_error_object(false).code, -32603);
    }
}
