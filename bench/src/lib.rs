//! Measurements of mcp-transports next to raw-socket floors, taken side by side in one run.
//!
//! Each function runs client and server in this process on the caller's tokio runtime and
//! returns raw samples; [`Summary`] turns them into percentiles. The payloads are a `tools/call`
//! of the reference server's `echo` tool: a request of about 1 KB answered by a response of
//! about 1 KB. The raw floors send the very same bytes.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_reference_server::ReferenceServer;
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_session::server::ServerSession;
use mcp_session::{PeerConfig, RequestOptions};
use mcp_transport_core::message::{RawValue, to_raw};
use mcp_transport_core::{Codec, Id, Incoming, Limits, Message, Request};
use mcp_transport_uds::{UdsAddr, UdsConfig, UdsListener};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Percentiles of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Number of samples.
    pub count: usize,
}

impl Summary {
    /// Summarizes samples (sorted in place).
    pub fn of(samples: &mut [Duration]) -> Summary {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Summary { p50: at(0.50), p99: at(0.99), count: samples.len() }
    }
}

/// The text argument that makes an `echo` call about 1 KB each way.
pub fn echo_text() -> String {
    "x".repeat(900)
}

fn echo_params() -> Box<RawValue> {
    to_raw(&json!({ "name": "echo", "arguments": { "text": echo_text() } })).expect("static JSON")
}

/// The exact request and response bytes of one `echo` round trip, as JSON.
pub fn captured_exchange() -> (Vec<u8>, Vec<u8>) {
    let req = Message::Request(Request { id: Id::Number(1), method: "tools/call".into(), params: Some(echo_params()) });
    let resp = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{}\"}}]}}}}",
        echo_text()
    );
    (req.to_vec(), resp.into_bytes())
}

/// Raw floor: a tokio `UnixStream` pair, 4-byte length prefix, a server task echoing the
/// captured response to each captured request.
pub async fn raw_uds_length_rtt(warmup: usize, n: usize) -> Vec<Duration> {
    let (req, resp) = captured_exchange();
    let (mut client, mut server) = UnixStream::pair().expect("socketpair");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::with_capacity(resp.len() + 4);
        out.extend_from_slice(&(resp.len() as u32).to_be_bytes());
        out.extend_from_slice(&resp);
        loop {
            let mut len = [0u8; 4];
            if server.read_exact(&mut len).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes(len) as usize;
            if server.read_exact(&mut buf[..len]).await.is_err() || server.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    let mut frame = Vec::with_capacity(req.len() + 4);
    frame.extend_from_slice(&(req.len() as u32).to_be_bytes());
    frame.extend_from_slice(&req);
    let mut buf = vec![0u8; 64 * 1024];
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let start = Instant::now();
        client.write_all(&frame).await.expect("write");
        let mut len = [0u8; 4];
        client.read_exact(&mut len).await.expect("read");
        client.read_exact(&mut buf[..u32::from_be_bytes(len) as usize]).await.expect("read");
        if i >= warmup {
            samples.push(start.elapsed());
        }
    }
    samples
}

/// Binds the reference server on a fresh socket in a temporary directory.
pub async fn reference_server_uds(codec: Codec) -> (tempfile::TempDir, UdsAddr) {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = UdsAddr::parse(&format!("unix://{}", dir.path().join("bench.sock").display())).expect("addr");
    let config = UdsConfig { codec, ..UdsConfig::default() };
    let listener = UdsListener::bind(addr.clone(), config).await.expect("bind");
    let app = Arc::new(ReferenceServer::new());
    tokio::spawn(async move {
        while let Ok(t) = listener.accept().await {
            ServerSession::serve(app.clone(), t, PeerConfig::default());
        }
    });
    (dir, addr)
}

/// Ours: a full `tools/call` of `echo` through the session layer (client and server) over
/// the Unix-socket transport with newline-delimited JSON, after `initialize`.
pub async fn session_uds_rtt(warmup: usize, n: usize) -> Vec<Duration> {
    let (_dir, addr) = reference_server_uds(Codec::lines()).await;
    let transport = mcp_transport_uds::connect(&addr, &UdsConfig::default()).await.expect("connect");
    let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    let client = Client::connect(transport, opts).await.expect("initialize");
    let params = echo_params();
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let start = Instant::now();
        let result = client.request_raw("tools/call", Some(params.clone()), RequestOptions::default()).await;
        let elapsed = start.elapsed();
        assert!(result.is_ok(), "tools/call failed: {result:?}");
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    samples
}

/// Raw floor: one-way newline-delimited messages over a tokio `UnixStream` pair, written in
/// large batches and read by a `BufReader`. Returns messages per second.
pub async fn raw_uds_lines_pipelined(n: usize) -> f64 {
    let msg = notification_bytes();
    let (client, server) = UnixStream::pair().expect("socketpair");
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::with_capacity(64 * 1024, server);
        let mut line = Vec::new();
        for _ in 0..n {
            line.clear();
            lines.read_until(b'\n', &mut line).await.expect("read");
        }
    });
    let start = Instant::now();
    let mut client = client;
    let mut chunk = Vec::with_capacity(64 * 1024);
    for _ in 0..n {
        chunk.extend_from_slice(&msg);
        chunk.push(b'\n');
        if chunk.len() >= 60 * 1024 {
            client.write_all(&chunk).await.expect("write");
            chunk.clear();
        }
    }
    client.write_all(&chunk).await.expect("write");
    reader.await.expect("reader");
    n as f64 / start.elapsed().as_secs_f64()
}

fn notification_bytes() -> Vec<u8> {
    let params = json!({ "progressToken": 1, "progress": 1, "message": "y".repeat(200) });
    let m = Message::Notification(mcp_transport_core::Notification {
        method: "notifications/progress".into(),
        params: Some(to_raw(&params).expect("static JSON")),
    });
    m.to_vec()
}

/// Ours: one-way messages through `Sender::feed` (or `Sender::send` when `inline`) on the
/// Unix-socket transport, received and parsed by `Receiver::recv`. Returns messages per second.
pub async fn transport_uds_pipelined(n: usize, codec: Codec, inline: bool) -> f64 {
    let msg = Message::from_slice(&notification_bytes()).expect("valid message");
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = UdsAddr::parse(&format!("unix://{}", dir.path().join("pipe.sock").display())).expect("addr");
    let config = UdsConfig { codec: codec.clone(), limits: Limits::default(), ..UdsConfig::default() };
    let listener = UdsListener::bind(addr.clone(), config.clone()).await.expect("bind");
    let reader = tokio::spawn(async move {
        let mut t = listener.accept().await.expect("accept");
        for _ in 0..n {
            match t.receiver.recv().await {
                Some(Ok(Incoming::Message(_))) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    let t = mcp_transport_uds::connect(&addr, &config).await.expect("connect");
    let start = Instant::now();
    for _ in 0..n {
        if inline { t.sender.send(msg.clone()).await } else { t.sender.feed(msg.clone()).await }.expect("send");
    }
    reader.await.expect("reader");
    n as f64 / start.elapsed().as_secs_f64()
}
