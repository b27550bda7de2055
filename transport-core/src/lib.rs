//! The core of mcp-transports: the JSON-RPC 2.0 message model for MCP, sans-IO framing codecs,
//! and the [`Transport`] abstraction every transport crate implements.
//!
//! - [`message`]: [`Message`] with a lazy envelope (params and results stay raw JSON).
//! - [`codec`]: newline-delimited JSON, length-prefixed JSON and MessagePack, each with a size
//!   limit enforced before buffering.
//! - [`transport`]: [`Sender`] (cloneable, bounded, batching) and [`Receiver`] (cancel-safe),
//!   a byte-stream transport over any `AsyncRead`/`AsyncWrite`, and an in-memory pair.
//! - `testing` (feature): the shared test suite every transport runs.
//! - `rmcp` (feature): any transport as an rmcp (official Rust SDK) transport.
#![forbid(unsafe_code)]

pub mod codec;
mod error;
pub mod message;
#[cfg(feature = "rmcp")]
pub mod rmcp;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;

#[cfg(feature = "testing")]
pub mod testing;

pub use codec::{Codec, Format, Framing};
pub use error::Error;
pub use message::{ErrorObject, Id, Incoming, InvalidMessage, Message, Notification, RawValue, Request, Response};
pub use transport::{
    Authorize, BearerToken, ClientCertificate, Limits, PeerCredentials, PeerInfo, Receiver, Sender, Transport,
};
