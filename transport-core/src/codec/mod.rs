//! Sans-IO framing codecs: bytes in, [`Incoming`] frames out; [`Message`]s in, bytes out.
//!
//! Three wire formats are offered:
//!
//! | framing | payload | use |
//! |---|---|---|
//! | newline-delimited ([`Framing::Lines`], the default) | JSON | stdio, Unix sockets, QUIC streams |
//! | 4-byte big-endian length prefix ([`Framing::LengthPrefixed`]) | JSON | byte streams where both sides opt in |
//! | 4-byte big-endian length prefix | MessagePack ([`Format::MessagePack`]) | byte streams where both sides opt in |
//!
//! Every decoder enforces [`Codec::max_message_size`] before buffering a message: a line that
//! grows past the limit without a newline, or a length prefix above it, is reported as an
//! [`Incoming::Invalid`] item and its bytes are skipped as they arrive, so the stream stays
//! usable and memory stays bounded. Line encoding never emits a raw newline inside a message:
//! JSON whitespace newlines inside raw values are rewritten as spaces.

mod decode;
mod encode;

pub use decode::parse_msgpack;

use crate::message::{Incoming, InvalidMessage};

/// The default maximum size of one message: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// How messages are delimited on a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// One message per line, terminated by `\n` (a preceding `\r` is accepted on input).
    #[default]
    Lines,
    /// Each message preceded by its length as a 4-byte big-endian unsigned integer.
    LengthPrefixed,
}

/// How a message is encoded inside a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// UTF-8 JSON.
    #[default]
    Json,
    /// MessagePack, transcoded to and from the JSON message model at the edge.
    /// Only valid with [`Framing::LengthPrefixed`].
    MessagePack,
}

/// A codec for one direction pair of a byte stream: implements tokio-util's `Decoder` (yielding
/// [`Incoming`]) and `Encoder` for [`Message`](crate::Message) and message batches.
#[derive(Debug, Clone)]
pub struct Codec {
    framing: Framing,
    format: Format,
    max_message_size: usize,
    state: decode::State,
}

impl Default for Codec {
    fn default() -> Self {
        Self::lines()
    }
}

impl Codec {
    /// Newline-delimited JSON with the default size limit.
    pub fn lines() -> Self {
        Self::new(Framing::Lines, Format::Json)
    }

    /// Length-prefixed JSON with the default size limit.
    pub fn length_prefixed_json() -> Self {
        Self::new(Framing::LengthPrefixed, Format::Json)
    }

    /// Length-prefixed MessagePack with the default size limit.
    pub fn length_prefixed_msgpack() -> Self {
        Self::new(Framing::LengthPrefixed, Format::MessagePack)
    }

    /// A codec with the given framing and format. MessagePack always uses length prefixes.
    pub fn new(framing: Framing, format: Format) -> Self {
        let framing = if format == Format::MessagePack { Framing::LengthPrefixed } else { framing };
        Self { framing, format, max_message_size: DEFAULT_MAX_MESSAGE_SIZE, state: decode::State::default() }
    }

    /// Sets the maximum size of one message, in bytes of its encoded payload.
    pub fn with_max_message_size(mut self, limit: usize) -> Self {
        self.max_message_size = limit.clamp(1, u32::MAX as usize);
        self
    }

    /// The maximum size of one message.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The payload format.
    pub fn format(&self) -> Format {
        self.format
    }

    fn too_large(&self, size: Option<usize>) -> Incoming {
        let reason = match size {
            Some(n) => format!("message of {n} bytes exceeds the limit of {} bytes", self.max_message_size),
            None => format!("message exceeds the limit of {} bytes", self.max_message_size),
        };
        Incoming::Invalid(InvalidMessage::invalid(None, reason))
    }
}

#[cfg(test)]
mod tests;
