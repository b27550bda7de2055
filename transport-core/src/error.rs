//! The error type of transport operations.

use std::time::Duration;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport is closed: it was closed locally, or the peer went away.
    #[error("transport closed")]
    Closed,
    /// The outbound queue is full (only from `try_send`); the message was not queued.
    #[error("outbound queue full")]
    Full,
    /// An operation did not finish before its deadline.
    #[error("{what} timed out after {after:?}")]
    TimedOut {
        /// What timed out.
        what: &'static str,
        /// The deadline that passed.
        after: Duration,
    },
    /// A message is larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The size of the message.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The stream ended in the middle of a message.
    #[error("stream ended inside a message ({buffered} bytes of an unfinished frame)")]
    Truncated {
        /// How many bytes of the unfinished frame had arrived.
        buffered: usize,
    },
    /// A message could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The peer broke the transport's protocol (framing, handshake, subprotocol).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// TLS failed (certificate, handshake, configuration).
    #[error("TLS: {0}")]
    Tls(String),
    /// An I/O error from the underlying stream.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A cheap copy of this error, for reporting one failure to several waiters.
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Closed => Error::Closed,
            Error::Full => Error::Full,
            Error::TimedOut { what, after } => Error::TimedOut { what, after: *after },
            Error::TooLarge { size, limit } => Error::TooLarge { size: *size, limit: *limit },
            Error::Truncated { buffered } => Error::Truncated { buffered: *buffered },
            Error::Encode(s) => Error::Encode(s.clone()),
            Error::Protocol(s) => Error::Protocol(s.clone()),
            Error::Tls(s) => Error::Tls(s.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
