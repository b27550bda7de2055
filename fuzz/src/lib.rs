//! Shared driver for the decoder fuzz targets.

use bytes::BytesMut;
use mcp_transport_core::message::codes;
use mcp_transport_core::{Codec, Framing, Incoming, Message};
use tokio_util::codec::Decoder;

/// A small limit, so the size-limit paths are reached with small inputs.
const SMALL_LIMIT: usize = 64;

/// Feeds `data[1..]` to `codec` in two chunks, then ends the stream with `decode_eof`.
///
/// The first byte chooses the split point (its low 7 bits, proportionally to the input length)
/// and the size limit (its high bit: a 64-byte limit instead of the default). Checked on the way:
/// `decode` never fails, the buffer stays within the limit, invalid frames carry a JSON-RPC
/// code, and every decoded message survives a serialize/parse round trip.
pub fn decode_split(codec: Codec, data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut codec = if first & 0x80 != 0 {
        codec.with_max_message_size(SMALL_LIMIT)
    } else {
        codec
    };
    let split = usize::from(first & 0x7f) * rest.len() / 0x7f;
    let mut buf = BytesMut::new();
    for chunk in [&rest[..split], &rest[split..]] {
        buf.extend_from_slice(chunk);
        while let Some(item) = codec
            .decode(&mut buf)
            .expect("decode reports problems as Incoming::Invalid")
        {
            check(item);
        }
        check_buffered(&codec, &buf);
    }
    // Like FramedRead at end of stream: call decode_eof until it has nothing more.
    while let Ok(Some(item)) = codec.decode_eof(&mut buf) {
        check(item);
    }
    assert!(buf.is_empty(), "decode_eof left {} bytes", buf.len());
}

fn check_buffered(codec: &Codec, buf: &BytesMut) {
    let limit = codec.max_message_size();
    match codec.framing() {
        // A line may hold `limit` bytes plus "\r"; past that it is discarded.
        Framing::Lines => assert!(
            buf.len() <= limit + 1,
            "{} bytes buffered, limit {limit}",
            buf.len()
        ),
        // At most a header and an unfinished payload within the limit.
        Framing::LengthPrefixed => assert!(
            buf.len() < limit + 4,
            "{} bytes buffered, limit {limit}",
            buf.len()
        ),
    }
}

fn check(item: Incoming) {
    match item {
        Incoming::Message(m) => check_message(&m),
        Incoming::Batch(items) => {
            assert!(!items.is_empty(), "empty batches are invalid");
            for item in items {
                match item {
                    Ok(m) => check_message(&m),
                    Err(e) => check_code(e.code),
                }
            }
        }
        Incoming::Invalid(e) => check_code(e.code),
    }
}

fn check_code(code: i64) {
    assert!(
        code == codes::PARSE_ERROR || code == codes::INVALID_REQUEST,
        "unexpected code {code}"
    );
}

/// A parsed message re-serializes to JSON that parses back to the same message.
pub fn check_message(m: &Message) {
    let text = m.to_vec();
    match Message::from_slice(&text) {
        Ok(again) => assert_eq!(
            String::from_utf8_lossy(&again.to_vec()),
            String::from_utf8_lossy(&text),
            "re-parsed message differs"
        ),
        Err(e) => panic!(
            "re-serialized message {:?} does not parse: {e}",
            String::from_utf8_lossy(&text)
        ),
    }
}
