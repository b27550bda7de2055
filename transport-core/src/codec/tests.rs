//! Sans-IO tests of the three codecs: round trips, split points, the size limit, end of stream,
//! MessagePack edge cases, and property tests over arbitrary input.

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Value, json};
use tokio_util::codec::{Decoder, Encoder};

use super::{Codec, DEFAULT_MAX_MESSAGE_SIZE, Format, Framing};
use crate::Error;
use crate::message::{
    ErrorObject, Id, Incoming, InvalidMessage, Message, Notification, RawValue, Request, Response, codes, to_raw,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A decoded item in a comparable form: messages as their compact JSON text.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Message(String),
    Batch(Vec<Result<String, InvalidMessage>>),
    Invalid(InvalidMessage),
}

impl From<Incoming> for Frame {
    fn from(item: Incoming) -> Self {
        match item {
            Incoming::Message(m) => Frame::Message(text(&m)),
            Incoming::Batch(items) => Frame::Batch(items.into_iter().map(|r| r.map(|m| text(&m))).collect()),
            Incoming::Invalid(e) => Frame::Invalid(e),
        }
    }
}

fn text(m: &Message) -> String {
    String::from_utf8(m.to_vec()).expect("messages serialize to UTF-8")
}

/// The three codecs under test, each with a name for assertion messages.
fn codecs() -> [(&'static str, Codec); 3] {
    [
        ("lines", Codec::lines()),
        ("length-prefixed json", Codec::length_prefixed_json()),
        ("length-prefixed msgpack", Codec::length_prefixed_msgpack()),
    ]
}

fn encode_one(codec: &mut Codec, m: &Message) -> BytesMut {
    let mut dst = BytesMut::new();
    codec.encode(m, &mut dst).expect("encode");
    dst
}

/// Decodes every complete frame in `buf` (never at end of stream).
fn drain(codec: &mut Codec, buf: &mut BytesMut, out: &mut Vec<Frame>) {
    while let Some(item) = codec.decode(buf).expect("decode reports problems as Incoming::Invalid") {
        out.push(item.into());
    }
}

/// Decodes what is left at end of stream, the way `FramedRead` does.
fn finish(codec: &mut Codec, buf: &mut BytesMut, out: &mut Vec<Frame>) -> Result<(), Error> {
    while let Some(item) = codec.decode_eof(buf)? {
        out.push(item.into());
    }
    Ok(())
}

/// Feeds `chunks` one at a time, decoding after each; does not signal end of stream.
fn decode_chunks<'a>(codec: &mut Codec, chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Frame>, BytesMut) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        drain(codec, &mut buf, &mut out);
    }
    (out, buf)
}

/// Splits `bytes` into chunks whose sizes cycle through `sizes` (each at least 1).
fn chunked<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        let (head, tail) = rest.split_at(n);
        chunks.push(head);
        rest = tail;
        i += 1;
    }
    chunks
}

fn length_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

fn expect_invalid(frame: &Frame) -> &InvalidMessage {
    match frame {
        Frame::Invalid(e) => e,
        other => panic!("expected Incoming::Invalid, got {other:?}"),
    }
}

fn sample_messages() -> Vec<Message> {
    vec![
        Request::new(
            1_i64,
            "tools/call",
            &json!({"name": "echo", "arguments": {"s": "line\nbreak \"quoted\" \\ \r\t"}}),
        )
        .unwrap()
        .into(),
        Request { id: Id::from("req-ü\n\"x\"\u{2028}"), method: "ping".into(), params: None }.into(),
        Request::new(i64::MIN, "m/ü", &json!([1, "two", null, true, {"k": [0.5, -3]}])).unwrap().into(),
        Notification::new("notifications/progress", &json!({"progress": 0.5, "total": 1, "token": "t"}))
            .unwrap()
            .into(),
        Notification { method: "notifications/initialized".into(), params: None }.into(),
        Response::success(Id::Number(7), to_raw(&json!({"content": [{"type": "text", "text": "hi\n"}]})).unwrap())
            .into(),
        Response::success(Id::from(""), to_raw(&json!(null)).unwrap()).into(),
        Response::success(Id::Number(i64::MAX), to_raw(&json!("a string result")).unwrap()).into(),
        Response::error(Some(Id::Number(-1)), ErrorObject::method_not_found("nope")).into(),
        Response::error(None, ErrorObject::parse_error("bad input").with_data(&json!({"at": [1, 2]}))).into(),
    ]
}

/// All sample messages one by one, then the samples as one batch, then a one-element batch.
fn encoded_samples(codec: &mut Codec) -> (BytesMut, Vec<Frame>) {
    let samples = sample_messages();
    let mut buf = BytesMut::new();
    let mut expected = Vec::new();
    for m in &samples {
        codec.encode(m, &mut buf).expect("encode message");
        expected.push(Frame::Message(text(m)));
    }
    codec.encode(&samples[..], &mut buf).expect("encode batch");
    expected.push(Frame::Batch(samples.iter().map(|m| Ok(text(m))).collect()));
    codec.encode(&samples[3..4], &mut buf).expect("encode batch of one");
    expected.push(Frame::Batch(vec![Ok(text(&samples[3]))]));
    (buf, expected)
}

// ---------------------------------------------------------------------------------------------
// Round trips and split points
// ---------------------------------------------------------------------------------------------

#[test]
fn round_trip_of_every_message_kind_and_batches() {
    for (name, mut codec) in codecs() {
        let (mut buf, expected) = encoded_samples(&mut codec);
        let mut out = Vec::new();
        drain(&mut codec, &mut buf, &mut out);
        assert_eq!(out, expected, "{name}");
        assert!(buf.is_empty(), "{name}: {} bytes left over", buf.len());
    }
}

#[test]
fn each_message_encodes_to_one_frame() {
    for (name, mut codec) in codecs() {
        for m in sample_messages() {
            let mut buf = encode_one(&mut codec, &m);
            match codec.framing() {
                Framing::Lines => {
                    assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1, "{name}");
                    assert_eq!(buf.last(), Some(&b'\n'), "{name}");
                }
                Framing::LengthPrefixed => {
                    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    assert_eq!(len + 4, buf.len(), "{name}");
                }
            }
            let item = codec.decode(&mut buf).unwrap().expect("a whole frame");
            assert_eq!(Frame::from(item), Frame::Message(text(&m)), "{name}");
            assert!(codec.decode(&mut buf).unwrap().is_none(), "{name}");
        }
    }
}

#[test]
fn decode_across_every_split_point() {
    for (name, mut codec) in codecs() {
        let (buf, expected) = encoded_samples(&mut codec);
        for split in 0..=buf.len() {
            let (out, rest) = decode_chunks(&mut codec, [&buf[..split], &buf[split..]]);
            assert_eq!(out, expected, "{name}, split at {split}");
            assert!(rest.is_empty(), "{name}, split at {split}");
        }
    }
}

#[test]
fn decode_one_byte_at_a_time() {
    for (name, mut codec) in codecs() {
        let (buf, expected) = encoded_samples(&mut codec);
        let (out, rest) = decode_chunks(&mut codec, buf.chunks(1));
        assert_eq!(out, expected, "{name}");
        assert!(rest.is_empty(), "{name}");
        for size in [2, 3, 5, 7, 64, 1000] {
            let (out, _) = decode_chunks(&mut codec, buf.chunks(size));
            assert_eq!(out, expected, "{name}, chunks of {size}");
        }
    }
}

#[test]
fn msgpack_codec_emits_msgpack_not_json() {
    let mut codec = Codec::length_prefixed_msgpack();
    assert_eq!((codec.framing(), codec.format()), (Framing::LengthPrefixed, Format::MessagePack));
    assert_eq!(Codec::new(Framing::Lines, Format::MessagePack).framing(), Framing::LengthPrefixed);
    let m: Message = Notification { method: "n".into(), params: None }.into();
    let buf = encode_one(&mut codec, &m);
    // A fixmap of two entries: "jsonrpc" => "2.0", "method" => "n".
    assert_eq!(buf[4], 0x82);
    assert_eq!(codec.max_message_size(), DEFAULT_MAX_MESSAGE_SIZE);
}

// ---------------------------------------------------------------------------------------------
// Line framing specifics
// ---------------------------------------------------------------------------------------------

#[test]
fn lines_accept_crlf() {
    let a = text(&sample_messages()[0]);
    let b = text(&sample_messages()[3]);
    let input = format!("{a}\r\n{b}\r\n");
    let mut codec = Codec::lines();
    let (out, rest) = decode_chunks(&mut codec, [input.as_bytes()]);
    assert_eq!(out, vec![Frame::Message(a.clone()), Frame::Message(b.clone())]);
    assert!(rest.is_empty());
    // The "\r" may arrive in a different chunk from the "\n".
    for split in 0..=input.len() {
        let (out, _) = decode_chunks(&mut codec, [&input.as_bytes()[..split], &input.as_bytes()[split..]]);
        assert_eq!(out, vec![Frame::Message(a.clone()), Frame::Message(b.clone())], "split at {split}");
    }
}

#[test]
fn lines_skip_blank_lines() {
    let a = text(&sample_messages()[4]);
    let input = format!("\n\n   \r\n\t\n{a}\n\r\n \n{a}\n\n");
    let mut codec = Codec::lines();
    let (out, rest) = decode_chunks(&mut codec, [input.as_bytes()]);
    assert_eq!(out, vec![Frame::Message(a.clone()), Frame::Message(a)]);
    assert!(rest.is_empty());
}

#[test]
fn raw_values_with_newlines_encode_to_one_line() {
    for raw in ["{\n\"a\": 1\n}", "{\r\n  \"a\":\r\n 1,\n\"b\": [\n2\n]}"] {
        let params = RawValue::from_string(raw.to_owned()).unwrap();
        let result = RawValue::from_string(raw.to_owned()).unwrap();
        let messages: Vec<Message> = vec![
            Request { id: Id::Number(1), method: "m".into(), params: Some(params.clone()) }.into(),
            Notification { method: "n".into(), params: Some(params) }.into(),
            Response::success(Id::Number(2), result).into(),
        ];
        let mut codec = Codec::lines();
        for m in &messages {
            let mut buf = encode_one(&mut codec, m);
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1, "{buf:?}");
            assert_eq!(buf.last(), Some(&b'\n'));
            assert!(!buf.contains(&b'\r'), "{buf:?}");
            let Some(Incoming::Message(decoded)) = codec.decode(&mut buf).unwrap() else {
                panic!("expected a message");
            };
            let decoded: Value = serde_json::from_slice(&decoded.to_vec()).unwrap();
            let original: Value = serde_json::from_slice(&m.to_vec()).unwrap();
            assert_eq!(decoded, original);
        }
        // Also as a batch.
        let mut buf = BytesMut::new();
        codec.encode(&messages[..], &mut buf).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        let item = codec.decode(&mut buf).unwrap();
        assert!(matches!(item, Some(Incoming::Batch(items)) if items.len() == 3));
    }
}

#[test]
fn strings_with_newlines_stay_escaped_on_lines() {
    let m: Message = Request::new("id\nwith\r\nbreaks", "a\nb", &json!({"s": "x\ny\r\n"})).unwrap().into();
    let mut codec = Codec::lines();
    let mut buf = encode_one(&mut codec, &m);
    assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
    let item = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(Frame::from(item), Frame::Message(text(&m)));
}

#[test]
fn malformed_lines_are_reported_and_the_stream_continues() {
    let good = text(&sample_messages()[0]);
    let input = format!("not json\n{{\"jsonrpc\":\"1.0\",\"id\":4,\"method\":\"x\"}}\n[]\n{good}\n");
    let mut codec = Codec::lines();
    let (out, _) = decode_chunks(&mut codec, [input.as_bytes()]);
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(expect_invalid(&out[0]).code, codes::PARSE_ERROR);
    assert_eq!(expect_invalid(&out[1]).code, codes::INVALID_REQUEST);
    assert_eq!(expect_invalid(&out[1]).id, Some(Id::Number(4)));
    assert_eq!(expect_invalid(&out[2]).code, codes::INVALID_REQUEST);
    assert_eq!(out[3], Frame::Message(good));
}

#[test]
fn deeply_nested_json_does_not_overflow_and_the_stream_continues() {
    let arrays = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let objects = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    // Nesting inside a raw member is skipped iteratively by the envelope parser.
    let params = format!("{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{objects}}}");
    let good = sample_messages()[3].clone();
    for (name, mut codec) in codecs().into_iter().take(2) {
        for (what, payload) in [("arrays", &arrays), ("objects", &objects), ("params", &params)] {
            let mut buf = BytesMut::new();
            match codec.framing() {
                Framing::Lines => {
                    buf.extend_from_slice(payload.as_bytes());
                    buf.extend_from_slice(b"\n");
                }
                Framing::LengthPrefixed => buf.extend_from_slice(&length_frame(payload.as_bytes())),
            }
            codec.encode(&good, &mut buf).unwrap();
            let mut out = Vec::new();
            drain(&mut codec, &mut buf, &mut out);
            assert_eq!(out.len(), 2, "{name}, {what}");
            match (&out[0], what) {
                (Frame::Message(_), "params") | (Frame::Invalid(_), _) => {}
                (Frame::Batch(items), "arrays") => {
                    assert!(items.iter().all(Result::is_err), "{name}")
                }
                (other, _) => panic!("{name}, {what}: {other:?}"),
            }
            assert_eq!(out[1], Frame::Message(text(&good)), "{name}, {what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The size limit
// ---------------------------------------------------------------------------------------------

#[test]
fn overlong_line_is_one_invalid_and_later_messages_decode() {
    let limit = 100;
    let good = text(&sample_messages()[4]);
    assert!(good.len() <= limit);
    for chunk in [1, 7, 64, 99, 100, 101, 102, 1000] {
        let mut codec = Codec::lines().with_max_message_size(limit);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // 1000 bytes with no newline, fed in chunks; the line's end arrives in a later chunk.
        for piece in [b'x'; 1000].chunks(chunk) {
            buf.extend_from_slice(piece);
            drain(&mut codec, &mut buf, &mut out);
            assert!(buf.len() <= limit + 2, "chunk {chunk}: {} bytes buffered", buf.len());
        }
        assert_eq!(out.len(), 1, "chunk {chunk}: {out:?}");
        let e = expect_invalid(&out[0]);
        assert_eq!(e.code, codes::INVALID_REQUEST);
        assert!(e.reason.contains(&limit.to_string()), "{}", e.reason);
        buf.extend_from_slice(b"xxxx\n");
        drain(&mut codec, &mut buf, &mut out);
        assert_eq!(out.len(), 1, "the rest of the overlong line is skipped silently");
        buf.extend_from_slice(format!("{good}\n{good}\r\n").as_bytes());
        drain(&mut codec, &mut buf, &mut out);
        assert_eq!(out[1..], [Frame::Message(good.clone()), Frame::Message(good.clone())], "chunk {chunk}");
        let mut tail = Vec::new();
        finish(&mut codec, &mut buf, &mut tail).unwrap();
        assert!(tail.is_empty());
    }
}

#[test]
fn line_length_boundaries() {
    let good = text(&sample_messages()[4]);
    let limit = good.len();
    let mut codec = Codec::lines().with_max_message_size(limit);
    // Exactly at the limit, with "\n" or "\r\n".
    let (out, _) = decode_chunks(&mut codec, [format!("{good}\n{good}\r\n").as_bytes()]);
    assert_eq!(out, vec![Frame::Message(good.clone()), Frame::Message(good.clone())]);
    // One byte over the limit (trailing JSON whitespace), newline in the same chunk.
    let (out, rest) = decode_chunks(&mut codec, [format!("{good} \n{good}\n").as_bytes()]);
    assert_eq!(out.len(), 2, "{out:?}");
    let e = expect_invalid(&out[0]);
    assert_eq!(e.code, codes::INVALID_REQUEST);
    assert!(e.reason.contains(&(limit + 1).to_string()) && e.reason.contains(&limit.to_string()), "{}", e.reason);
    assert_eq!(out[1], Frame::Message(good.clone()));
    assert!(rest.is_empty());
}

#[test]
fn ten_megabytes_without_newline_keep_the_buffer_bounded() {
    const LIMIT: usize = 1024 * 1024;
    let mut codec = Codec::lines().with_max_message_size(LIMIT);
    let chunk = vec![b'x'; 64 * 1024];
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    while fed < 10 * 1024 * 1024 {
        buf.extend_from_slice(&chunk);
        fed += chunk.len();
        drain(&mut codec, &mut buf, &mut out);
        assert!(buf.len() <= LIMIT + 2, "{} bytes buffered after {fed} bytes fed", buf.len());
    }
    assert_eq!(out.len(), 1, "exactly one Invalid for the whole overlong line");
    let e = expect_invalid(&out[0]);
    assert_eq!(e.code, codes::INVALID_REQUEST);
    assert!(e.reason.contains(&LIMIT.to_string()), "{}", e.reason);
    let good = text(&sample_messages()[0]);
    buf.extend_from_slice(format!("\n{good}\n").as_bytes());
    drain(&mut codec, &mut buf, &mut out);
    assert_eq!(out[1..], [Frame::Message(good)]);
}

#[test]
fn oversized_length_prefix_is_skipped_in_chunks() {
    let limit = 1024;
    let claimed = 10_000usize;
    for (name, codec) in codecs().into_iter().skip(1) {
        let mut codec = codec.with_max_message_size(limit);
        let good = sample_messages()[3].clone();
        let good_frame = encode_one(&mut codec, &good);
        // The payload of the oversized frame looks like more frames; it must be skipped anyway.
        let mut junk = Vec::new();
        while junk.len() < claimed {
            junk.extend_from_slice(&good_frame);
        }
        junk.truncate(claimed);
        let mut input = (claimed as u32).to_be_bytes().to_vec();
        input.extend_from_slice(&junk);
        input.extend_from_slice(&good_frame);
        for chunk in [1, 3, 333, 1024, 4096, input.len()] {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                drain(&mut codec, &mut buf, &mut out);
                assert!(buf.len() < 4 + limit, "{name}, chunk {chunk}: {} bytes buffered", buf.len());
            }
            assert_eq!(out.len(), 2, "{name}, chunk {chunk}: {out:?}");
            let e = expect_invalid(&out[0]);
            assert_eq!(e.code, codes::INVALID_REQUEST, "{name}");
            assert!(e.reason.contains(&claimed.to_string()) && e.reason.contains(&limit.to_string()), "{}", e.reason);
            assert_eq!(out[1], Frame::Message(text(&good)), "{name}, chunk {chunk}");
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn length_prefix_at_the_limit_is_accepted() {
    for (name, mut codec) in codecs().into_iter().skip(1) {
        let m = sample_messages()[0].clone();
        let frame = encode_one(&mut codec, &m);
        let payload = frame.len() - 4;
        let mut at = codec.clone().with_max_message_size(payload);
        let (out, _) = decode_chunks(&mut at, [&frame[..]]);
        assert_eq!(out, vec![Frame::Message(text(&m))], "{name}");
        let mut below = codec.clone().with_max_message_size(payload - 1);
        let (out, rest) = decode_chunks(&mut below, [&frame[..]]);
        assert_eq!(out.len(), 1, "{name}");
        assert_eq!(expect_invalid(&out[0]).code, codes::INVALID_REQUEST, "{name}");
        assert!(rest.is_empty(), "{name}");
    }
}

#[test]
fn encoding_above_the_limit_is_too_large_and_leaves_dst_unchanged() {
    for (name, codec) in codecs() {
        let mut codec = codec.with_max_message_size(64);
        let big: Message = Notification::new("m", &json!({"data": "x".repeat(100)})).unwrap().into();
        let small: Message = Notification { method: "m".into(), params: None }.into();
        let mut dst = BytesMut::from(&b"already queued"[..]);
        let err = codec.encode(&big, &mut dst).unwrap_err();
        assert!(matches!(err, Error::TooLarge { size, limit: 64 } if size > 64), "{name}: {err:?}");
        assert_eq!(&dst[..], b"already queued", "{name}");
        let batch = vec![small.clone(); 10];
        let err = codec.encode(&batch[..], &mut dst).unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 64, .. }), "{name}: {err:?}");
        assert_eq!(&dst[..], b"already queued", "{name}");
        // The codec stays usable.
        codec.encode(&small, &mut dst).unwrap();
        let mut frame = dst.split_off(b"already queued".len());
        assert_eq!(Frame::from(codec.decode(&mut frame).unwrap().unwrap()), Frame::Message(text(&small)), "{name}");
    }
}

#[test]
fn encoding_at_the_limit_succeeds_and_decodes_with_the_same_limit() {
    for (name, mut codec) in codecs() {
        let m = sample_messages()[5].clone();
        let frame = encode_one(&mut codec, &m);
        let overhead = if codec.framing() == Framing::Lines { 1 } else { 4 };
        let payload = frame.len() - overhead;
        let mut at = codec.clone().with_max_message_size(payload);
        let mut buf = encode_one(&mut at, &m);
        assert_eq!(buf, frame, "{name}");
        assert_eq!(Frame::from(at.decode(&mut buf).unwrap().unwrap()), Frame::Message(text(&m)), "{name}");
        let mut below = codec.clone().with_max_message_size(payload - 1);
        let mut dst = BytesMut::new();
        let err = below.encode(&m, &mut dst).unwrap_err();
        let Error::TooLarge { size, limit } = err else { panic!("{name}: {err:?}") };
        assert_eq!((size, limit), (payload, payload - 1), "{name}");
        assert!(dst.is_empty(), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// End of stream
// ---------------------------------------------------------------------------------------------

#[test]
fn eof_inside_a_frame_is_truncated() {
    for (name, mut codec) in codecs() {
        let frame = encode_one(&mut codec, &sample_messages()[0]);
        for cut in 1..frame.len() {
            let mut buf = BytesMut::from(&frame[..cut]);
            let mut out = Vec::new();
            let err = finish(&mut codec, &mut buf, &mut out).unwrap_err();
            assert!(matches!(err, Error::Truncated { buffered } if buffered == cut), "{name}, cut {cut}: {err:?}");
            assert!(out.is_empty(), "{name}");
            assert!(buf.is_empty(), "{name}");
            // The codec starts afresh after the error.
            let mut whole = frame.clone();
            assert!(matches!(codec.decode(&mut whole).unwrap(), Some(Incoming::Message(_))), "{name}");
        }
    }
}

#[test]
fn eof_after_complete_frames_returns_them() {
    for (name, mut codec) in codecs() {
        let (mut buf, expected) = encoded_samples(&mut codec);
        // Without any `decode` call first: `decode_eof` alone hands out every frame.
        let mut out = Vec::new();
        while !buf.is_empty() {
            out.push(Frame::from(codec.decode_eof(&mut buf).unwrap().expect("a frame")));
        }
        assert_eq!(out, expected, "{name}");
    }
}

#[test]
fn eof_with_only_whitespace_is_clean_on_lines() {
    let mut codec = Codec::lines();
    for input in ["", " ", "  \t ", "\n\n  ", "\r\n\r", "\r"] {
        let mut buf = BytesMut::from(input.as_bytes());
        let mut out = Vec::new();
        finish(&mut codec, &mut buf, &mut out).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert!(out.is_empty(), "{input:?}");
    }
    let good = text(&sample_messages()[0]);
    let mut buf = BytesMut::from(format!("{good}\n  \r\n \t").as_bytes());
    let mut out = Vec::new();
    finish(&mut codec, &mut buf, &mut out).unwrap();
    assert_eq!(out, vec![Frame::Message(good)]);
}

/// `FramedRead` calls `decode_eof` on an empty buffer at every clean end of stream.
#[test]
fn eof_on_an_empty_buffer_is_clean() {
    for (name, mut codec) in codecs() {
        // What a transport sees: `FramedRead` over a stream that ends cleanly after one frame.
        let frame = encode_one(&mut codec, &sample_messages()[0]);
        let mut framed = tokio_util::codec::FramedRead::new(&frame[..], codec.clone());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut next = || match futures_core::Stream::poll_next(std::pin::Pin::new(&mut framed), &mut cx) {
            std::task::Poll::Ready(item) => item,
            std::task::Poll::Pending => panic!("a byte slice is always ready"),
        };
        assert!(matches!(next(), Some(Ok(Incoming::Message(_)))), "{name}");
        let end = next();
        assert!(end.is_none(), "{name}: stream ends with {end:?}");
        // The cause: `decode_eof` on an empty buffer.
        let mut buf = BytesMut::new();
        let end = codec.decode_eof(&mut buf);
        assert!(matches!(end, Ok(None)), "{name}: {end:?}");
    }
}

#[test]
fn eof_while_skipping_an_oversized_frame_is_truncated() {
    let mut lines = Codec::lines().with_max_message_size(10);
    let (out, mut rest) = decode_chunks(&mut lines, [&[b'x'; 50][..]]);
    assert_eq!(out.len(), 1);
    // The oversized line was reported; its end never came, so the stream ended inside it.
    assert!(matches!(lines.decode_eof(&mut rest), Err(Error::Truncated { .. })));

    let mut prefixed = Codec::length_prefixed_json().with_max_message_size(64);
    let (out, mut rest) = decode_chunks(&mut prefixed, [&[0, 0, 1, 0, b'x', b'y'][..]]);
    assert_eq!(out.len(), 1);
    assert!(matches!(prefixed.decode_eof(&mut rest), Err(Error::Truncated { .. })));
    // The next stream starts afresh.
    let frame = encode_one(&mut prefixed, &sample_messages()[4]);
    let (out, _) = decode_chunks(&mut prefixed, [&frame[..]]);
    assert_eq!(out, vec![Frame::Message(text(&sample_messages()[4]))]);
}

// ---------------------------------------------------------------------------------------------
// MessagePack specifics
// ---------------------------------------------------------------------------------------------

#[test]
fn msgpack_garbage_is_a_parse_error() {
    let mut codec = Codec::length_prefixed_msgpack();
    let good = sample_messages()[0].clone();
    for payload in [&[0xc1][..], &[0xdb, 0xff, 0xff], b"{\"jsonrpc\":\"2.0\"}", &[0x82, 0xa1]] {
        let mut buf = BytesMut::from(&length_frame(payload)[..]);
        buf.extend_from_slice(&encode_one(&mut codec, &good));
        let mut out = Vec::new();
        drain(&mut codec, &mut buf, &mut out);
        assert_eq!(out.len(), 2, "{payload:?}: {out:?}");
        let e = expect_invalid(&out[0]);
        assert_eq!(e.code, codes::PARSE_ERROR, "{payload:?}: {e}");
        assert!(e.reason.contains("MessagePack"), "{}", e.reason);
        assert_eq!(out[1], Frame::Message(text(&good)));
    }
    // An empty payload is not a value either.
    let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
    let item = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(expect_invalid(&Frame::from(item)).code, codes::PARSE_ERROR);
}

#[test]
fn msgpack_well_formed_but_not_a_message_is_an_invalid_request() {
    let mut codec = Codec::length_prefixed_msgpack();
    // 42, and {"jsonrpc": "1.0"}.
    for payload in [&[0x2a][..], &[0x81, 0xa7, b'j', b's', b'o', b'n', b'r', b'p', b'c', 0xa3, b'1', b'.', b'0']] {
        let mut buf = BytesMut::from(&length_frame(payload)[..]);
        let item = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(expect_invalid(&Frame::from(item)).code, codes::INVALID_REQUEST, "{payload:?}");
    }
}

#[test]
fn msgpack_trailing_bytes_are_refused() {
    let mut codec = Codec::length_prefixed_msgpack();
    let frame = encode_one(&mut codec, &sample_messages()[0]);
    for extra in [&[0xc0][..], &[0x01, 0x02, 0x03], &frame[4..]] {
        let mut payload = frame[4..].to_vec();
        payload.extend_from_slice(extra);
        let mut buf = BytesMut::from(&length_frame(&payload)[..]);
        let item = codec.decode(&mut buf).unwrap().unwrap();
        let e = expect_invalid(&Frame::from(item)).clone();
        assert_eq!(e.code, codes::PARSE_ERROR);
        assert!(e.reason.contains("trailing"), "{}", e.reason);
        assert!(buf.is_empty());
    }
}

#[test]
fn msgpack_deep_nesting_is_invalid_without_overflow() {
    let mut codec = Codec::length_prefixed_msgpack();
    let good = sample_messages()[3].clone();
    // 100,000 nested one-element arrays around an empty array; and the same with maps.
    let mut arrays = vec![0x91; 100_000];
    arrays.push(0x90);
    let mut maps = [0x81, 0xa1, b'k'].repeat(100_000);
    maps.push(0x80);
    for payload in [arrays, maps] {
        let mut buf = BytesMut::from(&length_frame(&payload)[..]);
        buf.extend_from_slice(&encode_one(&mut codec, &good));
        let mut out = Vec::new();
        drain(&mut codec, &mut buf, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        expect_invalid(&out[0]);
        assert_eq!(out[1], Frame::Message(text(&good)));
    }
}

#[test]
fn msgpack_binary_and_integer_keys_transcode() {
    // {"jsonrpc":"2.0","id":1,"result":{1: bin8[0xff]}} — binary becomes an array of numbers,
    // integer keys become strings.
    let mut payload = vec![0x83];
    payload.extend_from_slice(&[0xa7, b'j', b's', b'o', b'n', b'r', b'p', b'c', 0xa3, b'2', b'.', b'0']);
    payload.extend_from_slice(&[0xa2, b'i', b'd', 0x01]);
    payload.extend_from_slice(&[0xa6, b'r', b'e', b's', b'u', b'l', b't', 0x81, 0x01, 0xc4, 0x01, 0xff]);
    let mut codec = Codec::length_prefixed_msgpack();
    let mut buf = BytesMut::from(&length_frame(&payload)[..]);
    let item = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(Frame::from(item), Frame::Message(r#"{"jsonrpc":"2.0","id":1,"result":{"1":[255]}}"#.into()));
}

/// An overlong line whose newline is already buffered: only that line is skipped; the
/// messages after it in the same buffer still decode.
#[test]
fn overlong_line_followed_by_messages_in_the_same_buffer() {
    let good = text(&sample_messages()[4]);
    let mut codec = Codec::lines().with_max_message_size(good.len());
    let input = format!("{}\n{good}\n{good}\n", "x".repeat(good.len() + 2));
    let (out, _) = decode_chunks(&mut codec, [input.as_bytes()]);
    assert_eq!(out.len(), 3, "{out:?}");
    expect_invalid(&out[0]);
    assert_eq!(out[1..], [Frame::Message(good.clone()), Frame::Message(good)]);
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z\"\\\\\n\r\t /é\u{0}\u{1f}\u{7f}\u{2028}😀]{0,12}",]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Floats that survive a text round trip exactly, so MessagePack compares equal too.
        (any::<i32>(), 0u32..8).prop_map(|(n, k)| Value::from(f64::from(n) / f64::from(1u32 << k))),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(arb_string(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_params() -> impl Strategy<Value = Box<RawValue>> {
    prop_oneof![
        4 => prop::collection::btree_map(arb_string(), arb_json(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => prop::collection::vec(arb_json(), 0..4).prop_map(Value::Array),
    ]
    .prop_map(|v| to_raw(&v).unwrap())
}

fn arb_id() -> impl Strategy<Value = Id> {
    prop_oneof![any::<i64>().prop_map(Id::Number), arb_string().prop_map(Id::from)]
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (arb_id(), arb_string(), prop::option::of(arb_params())).prop_map(|(id, method, params)| Request {
            id,
            method,
            params
        }
        .into()),
        (arb_string(), prop::option::of(arb_params()))
            .prop_map(|(method, params)| Notification { method, params }.into()),
        (arb_id(), arb_json()).prop_map(|(id, v)| Response::success(id, to_raw(&v).unwrap()).into()),
        (prop::option::of(arb_id()), any::<i64>(), arb_string(), prop::option::of(arb_json())).prop_map(
            |(id, code, message, data)| {
                // A `null` data member reads back as absent.
                let data = data.filter(|d| !d.is_null()).map(|d| to_raw(&d).unwrap());
                Response::error(id, ErrorObject { code, message, data }).into()
            }
        ),
    ]
}

/// Junk that reaches the interesting paths more often than uniform bytes: real frames, length
/// prefixes, newlines, JSON and MessagePack fragments.
fn arb_stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        arb_message().prop_map(|m| m.to_vec()),
        arb_message().prop_map(|m| {
            let mut frame = BytesMut::new();
            Codec::length_prefixed_msgpack().encode(&m, &mut frame).unwrap();
            frame.to_vec()
        }),
        any::<u32>().prop_map(|n| n.to_be_bytes().to_vec()),
        (0u32..64).prop_map(|n| n.to_be_bytes().to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"{\"jsonrpc\":\"2.0\",".to_vec()),
        Just(vec![0x91; 200]),
        Just(vec![0xdd, 0xff, 0xff, 0xff, 0xff]),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// Every codec, plus small-limit variants to reach the size-limit paths.
fn all_codecs() -> Vec<Codec> {
    let mut all: Vec<Codec> = codecs().into_iter().map(|(_, c)| c).collect();
    all.extend(codecs().into_iter().map(|(_, c)| c.with_max_message_size(24)));
    all.push(Codec::lines().with_max_message_size(1));
    all
}

/// Feeds `bytes` in chunks, checks the buffer bound after each, then ends the stream.
fn feed_and_finish(codec: &mut Codec, bytes: &[u8], sizes: &[usize]) -> (Vec<Frame>, Result<(), Error>) {
    let limit = codec.max_message_size();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunked(bytes, sizes) {
        buf.extend_from_slice(chunk);
        drain(codec, &mut buf, &mut out);
        match codec.framing() {
            Framing::Lines => assert!(buf.len() <= limit + 1, "{} bytes buffered, limit {limit}", buf.len()),
            Framing::LengthPrefixed => assert!(buf.len() < limit + 4, "{} bytes buffered, limit {limit}", buf.len()),
        }
    }
    let end = finish(codec, &mut buf, &mut out);
    assert!(buf.is_empty(), "decode_eof leaves nothing behind");
    (out, end)
}

fn proptest_config() -> ProptestConfig {
    // No regression files in the source tree; failures print the minimal input instead.
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        sizes in prop::collection::vec(1usize..300, 1..8),
    ) {
        for mut codec in all_codecs() {
            let _ = feed_and_finish(&mut codec, &bytes, &sizes);
            // `decode_eof` straight away, on the whole input.
            let mut buf = BytesMut::from(&bytes[..]);
            let mut out = Vec::new();
            let _ = finish(&mut codec, &mut buf, &mut out);
        }
    }

    #[test]
    fn structured_junk_never_panics(
        bytes in arb_stream(),
        sizes in prop::collection::vec(1usize..300, 1..8),
    ) {
        for mut codec in all_codecs() {
            let _ = feed_and_finish(&mut codec, &bytes, &sizes);
        }
    }

    #[test]
    fn generated_messages_round_trip(m in arb_message()) {
        for (name, mut codec) in codecs() {
            let mut buf = encode_one(&mut codec, &m);
            let mut out = Vec::new();
            drain(&mut codec, &mut buf, &mut out);
            prop_assert_eq!(&out, &vec![Frame::Message(text(&m))], "{}", name);
            prop_assert!(buf.is_empty());
        }
    }

    #[test]
    fn generated_batches_round_trip(batch in prop::collection::vec(arb_message(), 1..5)) {
        let expected = vec![Frame::Batch(batch.iter().map(|m| Ok(text(m))).collect())];
        for (name, mut codec) in codecs() {
            let mut buf = BytesMut::new();
            codec.encode(&batch[..], &mut buf).unwrap();
            let mut out = Vec::new();
            drain(&mut codec, &mut buf, &mut out);
            prop_assert_eq!(&out, &expected, "{}", name);
        }
    }

    #[test]
    fn chunking_does_not_change_decoded_messages(
        messages in prop::collection::vec(arb_message(), 1..6),
        sizes in prop::collection::vec(1usize..64, 1..10),
    ) {
        let expected: Vec<Frame> = messages.iter().map(|m| Frame::Message(text(m))).collect();
        for (name, mut codec) in codecs() {
            let mut bytes = BytesMut::new();
            for m in &messages {
                codec.encode(m, &mut bytes).unwrap();
            }
            let (whole, _) = decode_chunks(&mut codec, [&bytes[..]]);
            prop_assert_eq!(&whole, &expected, "{}", name);
            let (pieces, rest) = decode_chunks(&mut codec, chunked(&bytes, &sizes));
            prop_assert_eq!(&pieces, &expected, "{}", name);
            prop_assert!(rest.is_empty());
        }
    }

    #[test]
    fn chunking_does_not_change_decoding_of_junk(
        bytes in arb_stream(),
        sizes in prop::collection::vec(1usize..64, 1..10),
    ) {
        // Default limits only: see `overlong_line_followed_by_messages_in_the_same_buffer` for
        // the small-limit case on lines. Length prefixes are consistent at any limit.
        let mut candidates: Vec<Codec> = codecs().into_iter().map(|(_, c)| c).collect();
        candidates.push(Codec::length_prefixed_json().with_max_message_size(24));
        candidates.push(Codec::length_prefixed_msgpack().with_max_message_size(24));
        for codec in candidates {
            let whole = feed_and_finish(&mut codec.clone(), &bytes, &[usize::MAX]);
            let pieces = feed_and_finish(&mut codec.clone(), &bytes, &sizes);
            prop_assert_eq!(&whole.0, &pieces.0, "{:?}", codec);
            prop_assert_eq!(format!("{:?}", whole.1), format!("{:?}", pieces.1));
        }
    }
}
