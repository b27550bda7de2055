//! The shared transport test suite.
//!
//! Every transport crate runs the same tests by implementing [`Harness`] and invoking
//! [`transport_suite!`](crate::transport_suite) in an integration test:
//!
//! ```ignore
//! mcp_transport_core::transport_suite!(MyHarness::default());
//! ```
//!
//! Tests that need to put arbitrary bytes on the wire run only when the harness provides a
//! [`RawPeer`]. Every test is bounded by a generous deadline so a hang fails instead of
//! stalling the run; none asserts on timing.

use std::io;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::message::{Id, Incoming, Message, Notification, RawValue, Request, codes};
use crate::transport::BoxFuture;
use crate::{Error, Framing, Limits, Transport};

/// Deadline for any single step of a suite test.
const STEP: Duration = Duration::from_secs(20);

/// Produces connected transports for the suite.
pub trait Harness: Send + Sync {
    /// A connected (client, server) pair; `limits` apply to both ends.
    fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)>;

    /// A raw peer connected to a server transport with `limits`, for byte-level tests.
    /// `None` (the default) skips those tests, as for transports without a byte stream.
    fn raw(&self, _limits: Limits) -> BoxFuture<'_, Option<(Box<dyn RawPeer>, Transport)>> {
        Box::pin(async { None })
    }
}

/// A peer that writes arbitrary frame payloads, below the message layer.
pub trait RawPeer: Send {
    /// Sends one complete frame carrying `payload` verbatim.
    fn send_frame<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
    /// Sends the start of a frame announcing `payload` but carrying only its first half.
    fn send_truncated_frame<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>>;
    /// Receives one frame's payload; `None` at end of stream.
    fn recv_frame(&mut self) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>>;
    /// Closes the connection at once (no graceful shutdown of a frame in progress).
    fn vanish(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A [`RawPeer`] over a byte stream using one of the codec framings.
pub struct StreamRawPeer<S> {
    io: S,
    framing: Framing,
}

impl<S> StreamRawPeer<S> {
    /// Wraps a connected byte stream.
    pub fn new(io: S, framing: Framing) -> Self {
        Self { io, framing }
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> RawPeer for StreamRawPeer<S> {
    fn send_frame<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let mut frame = BytesMut::with_capacity(payload.len() + 4);
            match self.framing {
                Framing::Lines => {
                    frame.put_slice(payload);
                    frame.put_u8(b'\n');
                }
                Framing::LengthPrefixed => {
                    frame.put_u32(payload.len() as u32);
                    frame.put_slice(payload);
                }
            }
            self.io.write_all(&frame).await
        })
    }

    fn send_truncated_frame<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            if self.framing == Framing::LengthPrefixed {
                self.io.write_all(&(payload.len() as u32).to_be_bytes()).await?;
            }
            self.io.write_all(&payload[..payload.len() / 2]).await
        })
    }

    fn recv_frame(&mut self) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            match self.framing {
                Framing::Lines => loop {
                    let mut b = [0u8; 1];
                    if self.io.read(&mut b).await? == 0 {
                        return Ok(None);
                    }
                    if b[0] == b'\n' {
                        return Ok(Some(out));
                    }
                    out.push(b[0]);
                },
                Framing::LengthPrefixed => {
                    let mut len = [0u8; 4];
                    if let Err(e) = self.io.read_exact(&mut len).await {
                        return if e.kind() == io::ErrorKind::UnexpectedEof { Ok(None) } else { Err(e) };
                    }
                    out.resize(u32::from_be_bytes(len) as usize, 0);
                    self.io.read_exact(&mut out).await?;
                    Ok(Some(out))
                }
            }
        })
    }

    fn vanish(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { drop(self) })
    }
}

async fn step<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within {STEP:?}"),
    }
}

/// A request with id `i` whose params hold `pad` bytes of text.
pub fn request(i: i64, pad: usize) -> Message {
    let params = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(pad));
    Message::Request(Request {
        id: Id::Number(i),
        method: "tools/call".into(),
        params: Some(RawValue::from_string(params).expect("valid JSON")),
    })
}

async fn next_message(t: &mut Transport) -> Message {
    match step("recv", t.receiver.recv()).await {
        Some(Ok(Incoming::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn request_id(m: &Message) -> i64 {
    match m.id() {
        Some(Id::Number(n)) => *n,
        other => panic!("expected a numeric id, got {other:?}"),
    }
}

/// Messages arrive complete and in the order sent.
pub async fn ordering<H: Harness>(h: &H) {
    let (client, mut server) = h.pair(Limits::default()).await;
    let sender = client.sender.clone();
    let writer = tokio::spawn(async move {
        for i in 0..2000 {
            let msg = request(i, (i as usize * 37) % 3000);
            // Inline writes and writer-task writes interleave without reordering.
            if i % 3 == 0 { sender.feed(msg).await } else { sender.send(msg).await }.expect("send");
        }
    });
    for i in 0..2000 {
        assert_eq!(request_id(&next_message(&mut server).await), i);
    }
    writer.await.expect("writer");
}

/// Many tasks sending through clones of one sender: nothing lost, each task's order kept.
pub async fn concurrent_senders<H: Harness>(h: &H) {
    let (client, mut server) = h.pair(Limits::default()).await;
    let tasks = 8;
    let per_task = 250;
    for t in 0..tasks {
        let sender = client.sender.clone();
        tokio::spawn(async move {
            for i in 0..per_task {
                sender.send(request(t * 1_000_000 + i, 64)).await.expect("send");
            }
        });
    }
    let mut last = vec![-1i64; tasks as usize];
    for _ in 0..tasks * per_task {
        let id = request_id(&next_message(&mut server).await);
        let (t, i) = ((id / 1_000_000) as usize, id % 1_000_000);
        assert_eq!(i, last[t] + 1, "task {t} reordered");
        last[t] = i;
    }
}

/// Requests one way, responses the other, on the same connection.
pub async fn both_directions<H: Harness>(h: &H) {
    let (mut client, mut server) = h.pair(Limits::default()).await;
    let echo = tokio::spawn(async move {
        while let Some(Ok(Incoming::Message(Message::Request(r)))) = server.receiver.recv().await {
            let resp = crate::Response::success(r.id, r.params.unwrap_or_else(|| crate::message::to_raw(&()).unwrap()));
            server.sender.send(resp).await.expect("send response");
        }
    });
    for i in 0..200 {
        client.sender.send(request(i, 500)).await.expect("send");
        let m = next_message(&mut client).await;
        assert!(matches!(&m, Message::Response(r) if r.id == Some(Id::Number(i)) && r.outcome.is_ok()));
    }
    drop(client);
    step("echo end", echo).await.expect("echo task");
}

/// A message just under the limit passes; one over it is refused locally and the transport
/// keeps working.
pub async fn large_messages<H: Harness>(h: &H) {
    let limit = 4 * 1024 * 1024;
    let limits = Limits { max_message_size: limit, ..Limits::default() };
    let (client, mut server) = h.pair(limits).await;
    let overhead = request(1, 0).to_vec().len();
    client.sender.send(request(1, limit - overhead)).await.expect("largest message");
    let got = next_message(&mut server).await;
    assert_eq!(got.to_vec().len(), limit);
    match client.sender.send(request(2, limit - overhead + 1)).await {
        Err(Error::TooLarge { size, limit: l }) => assert!(size > l),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    client.sender.send(request(3, 10)).await.expect("send after refusal");
    assert_eq!(request_id(&next_message(&mut server).await), 3);
}

/// A JSON-RPC batch array arrives as one batch.
pub async fn batch_frame<H: Harness>(h: &H) {
    let (client, mut server) = h.pair(Limits::default()).await;
    client.sender.send_batch(vec![request(1, 1), request(2, 1)]).await.expect("batch");
    match step("recv", server.receiver.recv()).await {
        Some(Ok(Incoming::Batch(items))) => {
            let ids: Vec<i64> = items.iter().map(|m| request_id(m.as_ref().expect("valid"))).collect();
            assert_eq!(ids, [1, 2]);
        }
        other => panic!("expected a batch, got {other:?}"),
    }
}

/// A reader that never reads: `try_send` reports Full and `send` waits, long before memory
/// grows past the queue bounds plus the kernel's buffers.
pub async fn slow_reader_is_bounded<H: Harness>(h: &H) {
    let limits = Limits { max_queued_messages: 64, max_queued_bytes: 256 * 1024, ..Limits::default() };
    let (client, _server) = h.pair(limits).await;
    let msg = request(0, 16 * 1024);
    let mut sent = 0usize;
    loop {
        match client.sender.try_send(msg.clone()) {
            Ok(()) => sent += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("unexpected error: {e}"),
        }
        // 1 GiB would mean the queue is unbounded.
        assert!(sent < 65_536, "try_send never reported Full");
        if sent.is_multiple_of(64) {
            tokio::task::yield_now().await;
        }
    }
    let blocked = tokio::time::timeout(Duration::from_millis(200), client.sender.send(msg)).await;
    assert!(blocked.is_err(), "send completed although the queue is full");
}

/// `close` flushes everything queued, then the peer sees a clean end.
pub async fn clean_close<H: Harness>(h: &H) {
    let (client, mut server) = h.pair(Limits::default()).await;
    let reader = tokio::spawn(async move {
        for i in 0..100 {
            assert_eq!(request_id(&next_message(&mut server).await), i);
        }
        assert!(step("end", server.receiver.recv()).await.is_none(), "expected a clean end");
    });
    for i in 0..100 {
        client.sender.send(request(i, 2000)).await.expect("send");
    }
    step("close", client.sender.close(Duration::from_secs(10))).await.expect("close");
    assert!(matches!(client.sender.send(request(0, 0)).await, Err(Error::Closed)));
    step("reader", reader).await.expect("reader");
}

/// Dropping every sender flushes and ends the stream, like `close`.
pub async fn drop_flushes<H: Harness>(h: &H) {
    let (client, mut server) = h.pair(Limits::default()).await;
    for i in 0..50 {
        client.sender.send(request(i, 100)).await.expect("send");
    }
    drop(client.sender);
    for i in 0..50 {
        assert_eq!(request_id(&next_message(&mut server).await), i);
    }
    assert!(step("end", server.receiver.recv()).await.is_none());
}

/// After one side closes its sending half, the other direction keeps working.
pub async fn half_close<H: Harness>(h: &H) {
    let (mut client, mut server) = h.pair(Limits::default()).await;
    client.sender.send(request(1, 10)).await.expect("send");
    client.sender.close(Duration::from_secs(10)).await.expect("close");
    assert_eq!(request_id(&next_message(&mut server).await), 1);
    assert!(step("end", server.receiver.recv()).await.is_none());
    for i in 0..10 {
        server.sender.send(request(i, 10)).await.expect("send after peer half-close");
    }
    for i in 0..10 {
        assert_eq!(request_id(&next_message(&mut client).await), i);
    }
}

/// Dropping `recv` futures at arbitrary points loses nothing.
pub async fn recv_is_cancel_safe<H: Harness>(h: &H) {
    let (client, mut server) = h.pair(Limits::default()).await;
    let sender = client.sender.clone();
    tokio::spawn(async move {
        for i in 0..300 {
            sender.send(request(i, 20_000)).await.expect("send");
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let mut next = 0;
    let deadline = tokio::time::Instant::now() + STEP;
    while next < 300 {
        assert!(tokio::time::Instant::now() < deadline, "stalled at message {next}");
        if let Ok(item) = tokio::time::timeout(Duration::from_micros(50), server.receiver.recv()).await {
            match item {
                Some(Ok(Incoming::Message(m))) => {
                    assert_eq!(request_id(&m), next);
                    next += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// Frames above the receiver's limit are refused without buffering, and the stream goes on.
pub async fn oversized_frame_refused<H: Harness>(h: &H) {
    let limits = Limits { max_message_size: 64 * 1024, ..Limits::default() };
    let Some((mut raw, mut server)) = h.raw(limits).await else { return };
    let writer = tokio::spawn(async move {
        raw.send_frame(&request(1, 1024 * 1024).to_vec()).await.expect("send big frame");
        raw.send_frame(&request(2, 10).to_vec()).await.expect("send small frame");
        raw
    });
    match step("recv", server.receiver.recv()).await {
        Some(Ok(Incoming::Invalid(e))) => {
            assert_eq!(e.code, codes::INVALID_REQUEST);
            assert!(e.reason.contains("limit"), "{}", e.reason);
        }
        other => panic!("expected an oversized-frame error, got {other:?}"),
    }
    assert_eq!(request_id(&next_message(&mut server).await), 2);
    drop(step("writer", writer).await);
}

/// Marks a case where any JSON-RPC error is the right answer.
const ANY_ERROR: i64 = 0;

/// Each kind of malformed frame is reported with its JSON-RPC code; the stream goes on.
pub async fn malformed_frames<H: Harness>(h: &H) {
    let Some((mut raw, mut server)) = h.raw(Limits::default()).await else { return };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let cases: Vec<(&[u8], i64)> = vec![
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", codes::PARSE_ERROR),
        (b"this is not json", codes::PARSE_ERROR),
        (b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", codes::INVALID_REQUEST),
        (b"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", codes::INVALID_REQUEST),
        (b"{\"jsonrpc\":\"2.0\",\"id\":4}", codes::INVALID_REQUEST),
        (deep.as_bytes(), ANY_ERROR),
    ];
    let payloads: Vec<Vec<u8>> = cases.iter().map(|(p, _)| p.to_vec()).collect();
    let writer = tokio::spawn(async move {
        for payload in &payloads {
            raw.send_frame(payload).await.expect("send");
        }
        raw.send_frame(&request(7, 10).to_vec()).await.expect("send");
        raw
    });
    for (payload, code) in &cases {
        match step("recv", server.receiver.recv()).await {
            Some(Ok(Incoming::Invalid(_))) if *code == ANY_ERROR => {}
            Some(Ok(Incoming::Batch(items))) if *code == ANY_ERROR => assert!(items.iter().all(|i| i.is_err())),
            Some(Ok(Incoming::Invalid(e))) => assert_eq!(
                e.code,
                *code,
                "{:?}: {}",
                String::from_utf8_lossy(&payload[..payload.len().min(40)]),
                e.reason
            ),
            other => panic!("expected an error item, got {other:?}"),
        }
    }
    assert_eq!(request_id(&next_message(&mut server).await), 7);
    drop(step("writer", writer).await);
}

/// A peer that disappears in the middle of a frame ends the stream with an error, not a hang.
pub async fn peer_vanishes_mid_message<H: Harness>(h: &H) {
    let Some((mut raw, mut server)) = h.raw(Limits::default()).await else { return };
    raw.send_frame(&request(1, 10).to_vec()).await.expect("send");
    let partial = request(2, 5000).to_vec();
    raw.send_truncated_frame(&partial).await.expect("send partial");
    raw.vanish().await;
    assert_eq!(request_id(&next_message(&mut server).await), 1);
    match step("recv after vanish", server.receiver.recv()).await {
        Some(Err(_)) | None => {}
        other => panic!("expected an error or end, got {other:?}"),
    }
    // The server's sending half fails cleanly once the peer is gone.
    let notice = Notification { method: "notifications/message".into(), params: None };
    let mut failed = false;
    for _ in 0..1000 {
        if server.sender.send(notice.clone()).await.is_err() {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(failed, "sending to a vanished peer kept succeeding");
}

/// Runs the whole suite against a harness, one `#[tokio::test]` per case.
#[macro_export]
macro_rules! transport_suite {
    ($harness:expr) => {
        $crate::transport_suite!(@cases $harness;
            ordering, concurrent_senders, both_directions, large_messages, batch_frame,
            slow_reader_is_bounded, clean_close, drop_flushes, half_close, recv_is_cancel_safe,
            oversized_frame_refused, malformed_frames, peer_vanishes_mid_message);
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::testing::$case(&$harness).await;
            }
        )*
    };
}
