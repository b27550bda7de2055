//! Errors of session operations.

use std::time::Duration;

use mcp_transport_core::ErrorObject;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] mcp_transport_core::Error),
    /// The peer answered with a JSON-RPC error.
    #[error("{method}: {error}")]
    Rpc {
        /// The method of the request.
        method: String,
        /// The error object the peer sent.
        error: ErrorObject,
    },
    /// No response arrived in time; `notifications/cancelled` was sent.
    #[error("{method} timed out after {after:?}")]
    TimedOut {
        /// The method of the request.
        method: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The connection ended before the response arrived.
    #[error("connection closed before {method} was answered")]
    Closed {
        /// The method of the request.
        method: String,
    },
    /// The peer chose a protocol version this side does not speak.
    #[error("unsupported protocol version {offered:?} (supported: {supported:?})")]
    UnsupportedVersion {
        /// The version the peer chose.
        offered: String,
        /// The versions this side supports.
        supported: Vec<String>,
    },
    /// A result did not have the expected shape.
    #[error("invalid {method} result: {reason}")]
    InvalidResult {
        /// The method of the request.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// Parameters could not be serialized.
    #[error("could not serialize params: {0}")]
    Encode(#[from] serde_json::Error),
}

impl SessionError {
    /// The JSON-RPC error object, if the peer answered with one.
    pub fn rpc_error(&self) -> Option<&ErrorObject> {
        match self {
            SessionError::Rpc { error, .. } => Some(error),
            _ => None,
        }
    }
}
