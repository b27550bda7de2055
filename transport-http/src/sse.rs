//! Server-Sent Events: the few event shapes the server writes, and an incremental decoder
//! (the WHATWG event-stream interpretation) with a size limit for the client.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// `id: <id>\ndata: <json>\n\n`.
pub(crate) fn event(id: Option<&str>, json: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(json.len() + id.map_or(0, str::len) + 16);
    if let Some(id) = id {
        b.put_slice(b"id: ");
        b.put_slice(id.as_bytes());
        b.put_u8(b'\n');
    }
    b.put_slice(b"data: ");
    b.put_slice(json);
    b.put_slice(b"\n\n");
    b.freeze()
}

/// The priming event: an id, the reconnection delay, and empty data.
pub(crate) fn priming(id: &str, retry_ms: u64) -> Bytes {
    Bytes::from(format!("id: {id}\nretry: {retry_ms}\ndata:\n\n"))
}

/// Only the reconnection delay (no event is dispatched).
pub(crate) fn retry(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n\n"))
}

/// A dispatched event.
#[derive(Debug)]
pub(crate) struct SseEvent {
    /// The `event:` type, when one was given.
    pub(crate) kind: Option<String>,
    /// The data lines, joined with `\n`.
    pub(crate) data: Vec<u8>,
}

impl SseEvent {
    /// Whether this is a `message` event (the only kind MCP sends).
    pub(crate) fn is_message(&self) -> bool {
        self.kind.as_deref().is_none_or(|k| k == "message")
    }
}

/// The stream broke the decoder's size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SSE event larger than the limit of {limit} bytes")]
pub(crate) struct TooLong {
    pub(crate) limit: usize,
}

/// An incremental event-stream decoder. Lines and events longer than the limit are refused
/// before they are buffered whole.
#[derive(Debug)]
pub(crate) struct SseDecoder {
    buf: BytesMut,
    /// The previous chunk ended with `\r`: a leading `\n` belongs to that line end.
    skip_lf: bool,
    data: Vec<u8>,
    has_data: bool,
    kind: Option<String>,
    id_buffer: Option<String>,
    last_id: Option<String>,
    retry: Option<u64>,
    limit: usize,
}

impl SseDecoder {
    /// A decoder accepting events of up to `limit` bytes of data.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            skip_lf: false,
            data: Vec::new(),
            has_data: false,
            kind: None,
            id_buffer: None,
            last_id: None,
            retry: None,
            limit,
        }
    }

    /// The id of the last event seen (the value to send as `Last-Event-ID`).
    pub(crate) fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// The last `retry:` value, in milliseconds.
    pub(crate) fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Appends received bytes.
    pub(crate) fn push(&mut self, mut chunk: &[u8]) {
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, if one is buffered.
    pub(crate) fn next_event(&mut self) -> Result<Option<SseEvent>, TooLong> {
        loop {
            let Some(end) = memchr::memchr2(b'\n', b'\r', &self.buf) else {
                // Room for the field name, the data itself and a little slack.
                if self.buf.len() > self.limit + 64 {
                    return Err(TooLong { limit: self.limit });
                }
                return Ok(None);
            };
            let line = self.buf.split_to(end);
            let terminator = self.buf[0];
            self.buf.advance(1);
            if terminator == b'\r' {
                if self.buf.is_empty() {
                    self.skip_lf = true;
                } else if self.buf[0] == b'\n' {
                    self.buf.advance(1);
                }
            }
            if let Some(event) = self.line(&line)? {
                return Ok(Some(event));
            }
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, TooLong> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (field, mut value) = match memchr::memchr(b':', line) {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &[][..]),
        };
        if value.first() == Some(&b' ') {
            value = &value[1..];
        }
        match field {
            b"data" => {
                if self.data.len() + usize::from(self.has_data) + value.len() > self.limit {
                    return Err(TooLong { limit: self.limit });
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.kind = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => self.id_buffer = Some(String::from_utf8_lossy(value).into_owned()),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if let Some(id) = self.id_buffer.take() {
            self.last_id = Some(id);
        }
        let kind = self.kind.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent { kind, data: std::mem::take(&mut self.data) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(decoder: &mut SseDecoder) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        while let Some(e) = decoder.next_event().unwrap() {
            out.push((decoder.last_id().map(str::to_owned), String::from_utf8(e.data).unwrap()));
        }
        out
    }

    #[test]
    fn decodes_what_the_server_writes_in_any_split() {
        let mut wire = priming("3-0", 1500).to_vec();
        wire.extend_from_slice(&event(Some("3-1"), br#"{"a":1}"#));
        wire.extend_from_slice(&event(None, br#"{"b":2}"#));
        for split in 0..wire.len() {
            let mut d = SseDecoder::new(1024);
            d.push(&wire[..split]);
            let mut got = events(&mut d);
            d.push(&wire[split..]);
            got.extend(events(&mut d));
            let want = vec![
                (Some("3-0".into()), String::new()),
                (Some("3-1".into()), r#"{"a":1}"#.into()),
                (Some("3-1".into()), r#"{"b":2}"#.into()),
            ];
            assert_eq!(got, want, "split at {split}");
            assert_eq!(d.retry(), Some(1500));
        }
    }

    #[test]
    fn line_endings_comments_and_multiline_data() {
        let mut d = SseDecoder::new(1024);
        d.push(b": keep-alive\r\ndata: a\rdata:b\r\n\r\nevent: other\ndata: x\n\nretry: oops\n\n");
        let first = d.next_event().unwrap().unwrap();
        assert_eq!(first.data, b"a\nb");
        assert!(first.is_message());
        let second = d.next_event().unwrap().unwrap();
        assert!(!second.is_message());
        assert!(d.next_event().unwrap().is_none());
        assert_eq!(d.retry(), None);
    }

    #[test]
    fn a_carriage_return_at_a_chunk_end_is_one_line_end() {
        let mut d = SseDecoder::new(1024);
        d.push(b"data: a\r");
        assert!(d.next_event().unwrap().is_none());
        d.push(b"\n\r\n");
        assert_eq!(d.next_event().unwrap().unwrap().data, b"a");
    }

    #[test]
    fn oversized_lines_and_events_are_refused() {
        let mut d = SseDecoder::new(16);
        d.push(&[b'x'; 200]);
        assert_eq!(d.next_event().unwrap_err(), TooLong { limit: 16 });
        let mut d = SseDecoder::new(16);
        d.push(b"data: 0123456789\ndata: 0123456789\n\n");
        assert!(d.next_event().is_err());
    }
}

#[cfg(all(test, feature = "fuzzing"))]
mod fuzz_property {
    #[test]
    fn cutting_the_stream_anywhere_gives_the_same_events() {
        let stream = b"retry: 5\r\nid: 7\r\ndata: a\r\n\r\n: comment\nevent: message\ndata: b\ndata: c\n\n";
        for cut in 0..stream.len() {
            assert_eq!(crate::fuzz_sse(stream, &[cut, cut + 1], 1024), 2, "cut at {cut}");
        }
    }
}
