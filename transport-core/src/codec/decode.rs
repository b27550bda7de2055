//! Decoding: framing, the size limit, and the hand-off to the envelope parser.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::{Codec, Format, Framing};
use crate::Error;
use crate::message::{Incoming, InvalidMessage};

/// Where the decoder is within the stream.
#[derive(Debug, Clone)]
pub(super) enum State {
    /// Reading a frame; for lines, the first `scanned` buffered bytes hold no newline.
    Reading { scanned: usize },
    /// Skipping an oversized frame: until the next newline (lines) or `remaining` bytes.
    Discarding { remaining: usize },
}

impl Default for State {
    fn default() -> Self {
        State::Reading { scanned: 0 }
    }
}

impl Decoder for Codec {
    type Item = Incoming;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, Error> {
        Ok(match self.framing {
            Framing::Lines => self.decode_line(src),
            Framing::LengthPrefixed => self.decode_prefixed(src),
        })
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Incoming>, Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        let discarding = matches!(self.state, State::Discarding { .. });
        self.state = State::default();
        let blank = self.framing == Framing::Lines && src.iter().all(u8::is_ascii_whitespace);
        let buffered = src.len();
        src.clear();
        // An oversized frame that never ended is still a truncated frame.
        if !discarding && (blank || buffered == 0) { Ok(None) } else { Err(Error::Truncated { buffered }) }
    }
}

impl Codec {
    fn decode_line(&mut self, src: &mut BytesMut) -> Option<Incoming> {
        loop {
            match &mut self.state {
                State::Discarding { .. } => match memchr::memchr(b'\n', src) {
                    Some(i) => {
                        src.advance(i + 1);
                        self.state = State::default();
                    }
                    None => {
                        src.clear();
                        return None;
                    }
                },
                State::Reading { scanned } => {
                    // A line may hold `max` bytes of message plus "\r\n".
                    let window = src.len().min(self.max_message_size + 2);
                    let start = (*scanned).min(window);
                    if let Some(off) = memchr::memchr(b'\n', &src[start..window]) {
                        let end = start + off;
                        let mut line = src.split_to(end + 1);
                        self.state = State::default();
                        line.truncate(end);
                        if line.last() == Some(&b'\r') {
                            line.truncate(end - 1);
                        }
                        if line.len() > self.max_message_size {
                            return Some(self.too_large(Some(line.len())));
                        }
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        return Some(self.parse_payload(&line));
                    }
                    if src.len() > self.max_message_size + 1 {
                        // Too long: skip it, keeping whatever follows its newline if buffered.
                        match memchr::memchr(b'\n', &src[window..]) {
                            Some(off) => src.advance(window + off + 1),
                            None => {
                                src.clear();
                                self.state = State::Discarding { remaining: usize::MAX };
                            }
                        }
                        return Some(self.too_large(None));
                    }
                    *scanned = src.len();
                    return None;
                }
            }
        }
    }

    fn decode_prefixed(&mut self, src: &mut BytesMut) -> Option<Incoming> {
        loop {
            match &mut self.state {
                State::Discarding { remaining } => {
                    let n = (*remaining).min(src.len());
                    src.advance(n);
                    *remaining -= n;
                    if *remaining > 0 {
                        return None;
                    }
                    self.state = State::default();
                }
                State::Reading { .. } => {
                    let header = src.get(..4)?;
                    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
                    if len > self.max_message_size {
                        src.advance(4);
                        self.state = State::Discarding { remaining: len };
                        return Some(self.too_large(Some(len)));
                    }
                    if src.len() < 4 + len {
                        src.reserve(4 + len - src.len());
                        return None;
                    }
                    src.advance(4);
                    let payload = src.split_to(len);
                    return Some(self.parse_payload(&payload));
                }
            }
        }
    }

    fn parse_payload(&self, payload: &[u8]) -> Incoming {
        match self.format {
            Format::Json => Incoming::parse(payload),
            Format::MessagePack => parse_msgpack(payload),
        }
    }
}

/// Parses one MessagePack-encoded frame (a message or a batch), transcoded to JSON first;
/// MessagePack that does not decode is a -32700 error. For message-oriented transports that
/// carry MessagePack frames themselves.
pub fn parse_msgpack(payload: &[u8]) -> Incoming {
    match msgpack_to_json(payload) {
        Ok(json) => Incoming::parse(&json),
        Err(reason) => Incoming::Invalid(InvalidMessage::parse(reason)),
    }
}

/// Nesting deeper than this is refused (the JSON parser refuses more than 128 anyway).
const MAX_MSGPACK_DEPTH: usize = 128;

/// Transcodes one MessagePack value to JSON text.
fn msgpack_to_json(payload: &[u8]) -> Result<Vec<u8>, String> {
    let mut rest = payload;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    de.set_max_depth(MAX_MSGPACK_DEPTH);
    let mut out = Vec::with_capacity(payload.len() + payload.len() / 2);
    let mut ser = serde_json::Serializer::new(&mut out);
    serde_transcode::transcode(&mut de, &mut ser).map_err(|e| format!("invalid MessagePack: {e}"))?;
    drop(de);
    if !rest.is_empty() {
        return Err(format!("invalid MessagePack: {} trailing bytes after the value", rest.len()));
    }
    Ok(out)
}
