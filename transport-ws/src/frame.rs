//! Sans-IO WebSocket framing (RFC 6455 §5): bytes in, [`Event`]s out; frames out into buffers.
//!
//! The decoder enforces the frame limit from the header alone (before any payload is
//! buffered), reassembles fragmented messages up to the message limit, and skips the bytes of
//! a message over that limit as they arrive. No extensions are negotiated, so every reserved
//! bit must be clear.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Opcodes (RFC 6455 §5.2).
pub(crate) mod opcode {
    /// Continuation of a fragmented message.
    pub(crate) const CONTINUATION: u8 = 0x0;
    /// A text frame (UTF-8).
    pub(crate) const TEXT: u8 = 0x1;
    /// A binary frame.
    pub(crate) const BINARY: u8 = 0x2;
    /// Connection close.
    pub(crate) const CLOSE: u8 = 0x8;
    /// Ping.
    pub(crate) const PING: u8 = 0x9;
    /// Pong.
    pub(crate) const PONG: u8 = 0xA;
}

/// Close status codes (RFC 6455 §7.4.1) used by this crate.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (here: the idle timeout expired).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the WebSocket protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data frame of a type the negotiated subprotocol does not carry.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A Close frame arrived without a status code (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// Text that is not valid UTF-8 inside a control frame.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame larger than the frame limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// An unexpected condition inside this endpoint.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Which end of the connection the codec serves; decides the masking rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones.
    Client,
}

/// What the decoder found.
#[derive(Debug)]
pub(crate) enum Event {
    /// A complete data message (all its fragments, unmasked).
    Data {
        /// Whether it was sent as binary (else text).
        binary: bool,
        /// The reassembled payload.
        payload: BytesMut,
    },
    /// A data message over the message limit; its bytes are being skipped.
    TooLarge {
        /// Its size, or the size seen so far for a fragmented message.
        size: u64,
        /// Whether the whole size is known (an unfragmented message).
        exact: bool,
    },
    /// A ping carrying this payload (at most 125 bytes).
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A Close frame.
    Close {
        /// The status code, if the frame had one.
        code: Option<u16>,
        /// The reason text.
        reason: String,
    },
}

/// A violation that fails the connection with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The close code to send.
    pub(crate) code: u16,
    /// What was wrong.
    pub(crate) reason: String,
}

impl Violation {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into() }
    }
}

/// A message being reassembled from fragments.
#[derive(Debug)]
struct Partial {
    binary: bool,
    buf: BytesMut,
    /// Bytes seen so far (also counted while discarding).
    size: u64,
    /// Over the limit: fragments are skipped until the final one.
    discarding: bool,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    header_len: usize,
}

/// The decoding half of the codec.
#[derive(Debug)]
pub(crate) struct Decoder {
    role: Role,
    max_frame: u64,
    max_message: u64,
    partial: Option<Partial>,
    /// Payload bytes of the current frame still to be skipped.
    skipping: u64,
}

impl Decoder {
    /// A decoder for `role` with the given frame and message limits, in payload bytes.
    pub(crate) fn new(role: Role, max_frame: usize, max_message: usize) -> Self {
        Self { role, max_frame: max_frame as u64, max_message: max_message as u64, partial: None, skipping: 0 }
    }

    /// Whether the decoder is inside a frame or a fragmented message.
    pub(crate) fn mid_message(&self) -> bool {
        self.partial.is_some() || self.skipping > 0
    }

    fn would_discard(&self, h: &Header) -> bool {
        if is_control(h.opcode) {
            return false;
        }
        match &self.partial {
            Some(p) => p.discarding || p.size.saturating_add(h.len) > self.max_message,
            None => h.len > self.max_message,
        }
    }

    /// Decodes the next event from `src`, consuming its bytes; `Ok(None)` when more are needed.
    pub(crate) fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Event>, Violation> {
        loop {
            if self.skipping > 0 {
                let n = self.skipping.min(src.len() as u64);
                src.advance(n as usize);
                self.skipping -= n;
                if self.skipping > 0 {
                    return Ok(None);
                }
                continue;
            }
            let Some(h) = parse_header(src)? else { return Ok(None) };
            match (self.role, h.mask) {
                (Role::Server, None) => {
                    return Err(Violation::new(close_code::PROTOCOL_ERROR, "client frames must be masked"));
                }
                (Role::Client, Some(_)) => {
                    return Err(Violation::new(close_code::PROTOCOL_ERROR, "server frames must not be masked"));
                }
                _ => {}
            }
            if is_control(h.opcode) {
                return self.control(&h, src);
            }
            if h.len > self.max_frame {
                return Err(Violation::new(
                    close_code::MESSAGE_TOO_BIG,
                    format!("frame of {} bytes exceeds the frame limit of {} bytes", h.len, self.max_frame),
                ));
            }
            match (h.opcode, &self.partial) {
                (opcode::CONTINUATION, None) => {
                    return Err(Violation::new(close_code::PROTOCOL_ERROR, "continuation frame outside a message"));
                }
                (opcode::TEXT | opcode::BINARY, Some(_)) => {
                    return Err(Violation::new(
                        close_code::PROTOCOL_ERROR,
                        "new data frame before the fragmented message ended",
                    ));
                }
                _ => {}
            }
            if self.would_discard(&h) {
                src.advance(h.header_len);
                self.skipping = h.len;
                let event = match self.partial.as_mut() {
                    Some(p) if p.discarding => None,
                    Some(p) => {
                        p.discarding = true;
                        p.size = p.size.saturating_add(h.len);
                        p.buf = BytesMut::new();
                        Some(Event::TooLarge { size: p.size, exact: false })
                    }
                    None => Some(Event::TooLarge { size: h.len, exact: h.fin }),
                };
                if h.fin {
                    self.partial = None;
                } else if self.partial.is_none() {
                    let binary = h.opcode == opcode::BINARY;
                    self.partial = Some(Partial { binary, buf: BytesMut::new(), size: h.len, discarding: true });
                }
                match event {
                    Some(e) => return Ok(Some(e)),
                    None => continue,
                }
            }
            let total = h.header_len + h.len as usize;
            if src.len() < total {
                // Grow towards the frame's size at most by doubling, so a peer that announces a
                // large frame and sends little costs little memory.
                src.reserve((total - src.len()).min(src.len().max(64 * 1024)));
                return Ok(None);
            }
            src.advance(h.header_len);
            let mut payload = src.split_to(h.len as usize);
            if let Some(key) = h.mask {
                apply_mask(&mut payload, key);
            }
            match self.partial.take() {
                None if h.fin => return Ok(Some(Event::Data { binary: h.opcode == opcode::BINARY, payload })),
                None => {
                    let binary = h.opcode == opcode::BINARY;
                    self.partial = Some(Partial { binary, size: h.len, buf: payload, discarding: false });
                }
                Some(mut p) => {
                    p.size += h.len;
                    p.buf.extend_from_slice(&payload);
                    if h.fin {
                        return Ok(Some(Event::Data { binary: p.binary, payload: p.buf }));
                    }
                    self.partial = Some(p);
                }
            }
        }
    }

    /// Handles a control frame once fully buffered; `Ok(None)` if it is not yet complete.
    fn control(&mut self, h: &Header, src: &mut BytesMut) -> Result<Option<Event>, Violation> {
        if !h.fin {
            return Err(Violation::new(close_code::PROTOCOL_ERROR, "fragmented control frame"));
        }
        if h.len > 125 {
            return Err(Violation::new(
                close_code::PROTOCOL_ERROR,
                format!("control frame of {} bytes (at most 125 allowed)", h.len),
            ));
        }
        let total = h.header_len + h.len as usize;
        if src.len() < total {
            return Ok(None);
        }
        src.advance(h.header_len);
        let mut payload = src.split_to(h.len as usize);
        if let Some(key) = h.mask {
            apply_mask(&mut payload, key);
        }
        Ok(Some(match h.opcode {
            opcode::PING => Event::Ping(payload.freeze()),
            opcode::PONG => Event::Pong,
            _ => parse_close(&payload)?,
        }))
    }
}

fn is_control(op: u8) -> bool {
    op & 0x8 != 0
}

/// Parses a frame header from the front of `src`; `Ok(None)` if it is not complete yet.
fn parse_header(src: &[u8]) -> Result<Option<Header>, Violation> {
    let [b0, b1, ..] = *src else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(Violation::new(close_code::PROTOCOL_ERROR, "reserved bits set (no extension was negotiated)"));
    }
    let op = b0 & 0x0F;
    if !matches!(op, 0x0..=0x2 | 0x8..=0xA) {
        return Err(Violation::new(close_code::PROTOCOL_ERROR, format!("unknown opcode {op:#x}")));
    }
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7F {
        126 => match src.get(2..4) {
            Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
            None => return Ok(None),
        },
        127 => match src.get(2..10) {
            Some(b) => {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                let len = u64::from_be_bytes(n);
                if len >> 63 != 0 {
                    return Err(Violation::new(close_code::PROTOCOL_ERROR, "payload length has its top bit set"));
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (n as u64, 2),
    };
    let mask = if masked {
        let Some(k) = src.get(at..at + 4) else { return Ok(None) };
        at += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some(Header { fin: b0 & 0x80 != 0, opcode: op, mask, len, header_len: at }))
}

fn parse_close(payload: &[u8]) -> Result<Event, Violation> {
    match payload {
        [] => Ok(Event::Close { code: None, reason: String::new() }),
        [_] => Err(Violation::new(close_code::PROTOCOL_ERROR, "Close frame with a 1-byte payload")),
        [a, b, rest @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !valid_close_code(code) {
                return Err(Violation::new(close_code::PROTOCOL_ERROR, format!("invalid close code {code}")));
            }
            let reason = std::str::from_utf8(rest)
                .map_err(|_| Violation::new(close_code::INVALID_PAYLOAD, "Close reason is not valid UTF-8"))?;
            Ok(Event::Close { code: Some(code), reason: reason.to_owned() })
        }
    }
}

/// Whether `code` may appear in a Close frame (RFC 6455 §7.4, IANA registry).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// XORs `buf` with the 4-byte masking key, starting at key offset 0.
pub(crate) fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key offset is 0 again.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Most bytes a frame header can take (2 + 8 length + 4 mask).
pub(crate) const MAX_HEADER: usize = 14;

/// Writes the header of a final frame with `opcode` and `len` payload bytes into the end of
/// `dst[..MAX_HEADER]`, returning where it starts.
pub(crate) fn write_header(dst: &mut [u8; MAX_HEADER], op: u8, len: usize, mask: Option<[u8; 4]>) -> usize {
    let mut head = [0u8; MAX_HEADER];
    head[0] = 0x80 | op;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = if len < 126 {
        head[1] = mask_bit | len as u8;
        2
    } else if len <= u16::MAX as usize {
        head[1] = mask_bit | 126;
        head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        head[1] = mask_bit | 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    if let Some(k) = mask {
        head[n..n + 4].copy_from_slice(&k);
        n += 4;
    }
    let start = MAX_HEADER - n;
    dst[start..].copy_from_slice(&head[..n]);
    start
}

/// Appends one complete final frame to `dst`.
pub(crate) fn encode_frame(dst: &mut BytesMut, op: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    let mut head = [0u8; MAX_HEADER];
    let start = write_header(&mut head, op, payload.len(), mask);
    dst.reserve(MAX_HEADER - start + payload.len());
    dst.put_slice(&head[start..]);
    let at = dst.len();
    dst.put_slice(payload);
    if let Some(k) = mask {
        apply_mask(&mut dst[at..], k);
    }
}

/// The payload of a Close frame: the code, then the reason cut to fit 123 bytes at a char
/// boundary.
pub(crate) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = Vec::with_capacity(2 + cut);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..cut]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, op: u8, payload: &[u8], mask: Option<[u8; 4]>) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame(&mut out, op, payload, mask);
        if !fin {
            out[0] &= 0x7F;
        }
        out
    }

    fn decode_all(dec: &mut Decoder, bytes: &[u8]) -> Result<Vec<Event>, Violation> {
        let mut src = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(e) = dec.decode(&mut src)? {
            out.push(e);
        }
        Ok(out)
    }

    const KEY: Option<[u8; 4]> = Some([1, 2, 3, 4]);

    #[test]
    fn masked_text_round_trip_every_length_class() {
        for len in [0usize, 1, 125, 126, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut dec = Decoder::new(Role::Server, 1 << 20, 1 << 20);
            let events = decode_all(&mut dec, &frame(true, opcode::TEXT, &payload, KEY)).unwrap();
            match &events[..] {
                [Event::Data { binary: false, payload: p }] => assert_eq!(&p[..], &payload[..], "len {len}"),
                other => panic!("len {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let mut wire = frame(false, opcode::TEXT, b"hello ", KEY);
        wire.extend_from_slice(&frame(true, opcode::PING, b"p", KEY));
        wire.extend_from_slice(&frame(true, opcode::CONTINUATION, b"world", KEY));
        let mut dec = Decoder::new(Role::Server, 1024, 1024);
        let mut src = BytesMut::new();
        let mut events = Vec::new();
        for b in wire.iter() {
            src.put_u8(*b);
            while let Some(e) = dec.decode(&mut src).unwrap() {
                events.push(e);
            }
        }
        assert!(matches!(&events[0], Event::Ping(p) if &p[..] == b"p"));
        assert!(matches!(&events[1], Event::Data { payload, .. } if &payload[..] == b"hello world"));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn masking_rules_per_role() {
        let unmasked = frame(true, opcode::TEXT, b"x", None);
        let err = decode_all(&mut Decoder::new(Role::Server, 64, 64), &unmasked).unwrap_err();
        assert_eq!(err.code, close_code::PROTOCOL_ERROR);
        let masked = frame(true, opcode::TEXT, b"x", KEY);
        let err = decode_all(&mut Decoder::new(Role::Client, 64, 64), &masked).unwrap_err();
        assert_eq!(err.code, close_code::PROTOCOL_ERROR);
        assert_eq!(decode_all(&mut Decoder::new(Role::Client, 64, 64), &unmasked).unwrap().len(), 1);
    }

    #[test]
    fn frame_over_the_frame_limit_is_1009_from_the_header() {
        let mut dec = Decoder::new(Role::Server, 100, 1000);
        // Only the header of a 1 MiB frame: refused before any payload arrives.
        let wire = frame(true, opcode::TEXT, &vec![b'a'; 1 << 20], KEY);
        let err = decode_all(&mut dec, &wire[..14]).unwrap_err();
        assert_eq!(err.code, close_code::MESSAGE_TOO_BIG);
        assert!(err.reason.contains("frame limit"), "{}", err.reason);
    }

    #[test]
    fn message_over_the_message_limit_is_skipped() {
        let mut dec = Decoder::new(Role::Server, 1 << 20, 10);
        let mut wire = frame(true, opcode::TEXT, &[b'a'; 50], KEY);
        wire.extend_from_slice(&frame(true, opcode::TEXT, b"ok", KEY));
        let mut src = BytesMut::from(&wire[..]);
        assert!(matches!(dec.decode(&mut src), Ok(Some(Event::TooLarge { size: 50, exact: true }))));
        assert!(matches!(dec.decode(&mut src), Ok(Some(Event::Data { payload, .. })) if &payload[..] == b"ok"));
        // Fragmented: the limit is crossed by the second fragment, the rest is skipped.
        let mut wire = frame(false, opcode::TEXT, b"12345678", KEY);
        wire.extend_from_slice(&frame(false, opcode::CONTINUATION, b"12345678", KEY));
        wire.extend_from_slice(&frame(true, opcode::CONTINUATION, b"12345678", KEY));
        wire.extend_from_slice(&frame(true, opcode::TEXT, b"next", KEY));
        let events = decode_all(&mut dec, &wire).unwrap();
        assert!(matches!(events[0], Event::TooLarge { size: 16, exact: false }), "{events:?}");
        assert!(matches!(&events[1], Event::Data { payload, .. } if &payload[..] == b"next"));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn protocol_violations() {
        let cases: Vec<(BytesMut, u16)> = vec![
            (
                {
                    let mut f = frame(true, opcode::TEXT, b"x", KEY);
                    f[0] |= 0x40;
                    f
                },
                close_code::PROTOCOL_ERROR,
            ),
            (frame(true, 0x3, b"x", KEY), close_code::PROTOCOL_ERROR),
            (frame(true, opcode::CONTINUATION, b"x", KEY), close_code::PROTOCOL_ERROR),
            (frame(false, opcode::PING, b"x", KEY), close_code::PROTOCOL_ERROR),
            (frame(true, opcode::PING, &[0; 126], KEY), close_code::PROTOCOL_ERROR),
            (frame(true, opcode::CLOSE, &[3], KEY), close_code::PROTOCOL_ERROR),
            (frame(true, opcode::CLOSE, &999u16.to_be_bytes(), KEY), close_code::PROTOCOL_ERROR),
            (frame(true, opcode::CLOSE, &[3, 232, 0xff], KEY), close_code::INVALID_PAYLOAD),
            (
                {
                    let mut f = frame(false, opcode::TEXT, b"a", KEY);
                    f.extend_from_slice(&frame(true, opcode::TEXT, b"b", KEY));
                    f
                },
                close_code::PROTOCOL_ERROR,
            ),
            (BytesMut::from(&[0x81u8, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4][..]), close_code::PROTOCOL_ERROR),
        ];
        for (i, (wire, code)) in cases.into_iter().enumerate() {
            let err = decode_all(&mut Decoder::new(Role::Server, 1 << 20, 1 << 20), &wire).unwrap_err();
            assert_eq!(err.code, code, "case {i}: {}", err.reason);
        }
    }

    #[test]
    fn close_frames() {
        let events = decode_all(
            &mut Decoder::new(Role::Client, 64, 64),
            &frame(true, opcode::CLOSE, &close_payload(1001, "bye"), None),
        )
        .unwrap();
        assert!(matches!(&events[0], Event::Close { code: Some(1001), reason } if reason == "bye"));
        let events =
            decode_all(&mut Decoder::new(Role::Client, 64, 64), &frame(true, opcode::CLOSE, &[], None)).unwrap();
        assert!(matches!(&events[0], Event::Close { code: None, .. }));
        let long = "é".repeat(100);
        let payload = close_payload(1000, &long);
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    #[test]
    fn mask_matches_bytewise_xor() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let key = [0xA1, 0x02, 0xF3, 0x44];
            let mut fast = data.clone();
            apply_mask(&mut fast, key);
            let slow: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect();
            assert_eq!(fast, slow);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512), split in 0usize..512) {
            for role in [Role::Server, Role::Client] {
                let mut dec = Decoder::new(role, 300, 200);
                let split = split.min(bytes.len());
                let mut src = BytesMut::from(&bytes[..split]);
                let mut ok = true;
                while ok {
                    match dec.decode(&mut src) { Ok(Some(_)) => {}, Ok(None) => break, Err(_) => ok = false }
                }
                if ok {
                    src.extend_from_slice(&bytes[split..]);
                    while let Ok(Some(_)) = dec.decode(&mut src) {}
                }
            }
        }

        #[test]
        fn chunked_equals_whole(payloads in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 1..6), chunk in 1usize..64) {
            let mut wire = BytesMut::new();
            for p in &payloads {
                encode_frame(&mut wire, opcode::BINARY, p, Some([9, 8, 7, 6]));
            }
            let mut dec = Decoder::new(Role::Server, 1 << 16, 1 << 16);
            let mut src = BytesMut::new();
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                src.extend_from_slice(c);
                while let Some(e) = dec.decode(&mut src).unwrap() {
                    if let Event::Data { payload, .. } = e { got.push(payload.to_vec()); }
                }
            }
            proptest::prop_assert_eq!(got, payloads);
        }
    }
}
