//! Helpers shared by the session integration tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mcp_session::{Handler, RequestContext};
use mcp_transport_core::message::to_raw;
use mcp_transport_core::transport::{BoxFuture, from_io};
use mcp_transport_core::{Codec, ErrorObject, Limits, PeerInfo, RawValue, Request, Transport};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, Lines, ReadHalf, WriteHalf};

/// Upper bound of every test, to turn a hang into a failure (never a timing assertion).
pub const HANG: Duration = Duration::from_secs(5);

/// Runs `f`, failing the test if it has not finished within [`HANG`].
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG, f).await.expect("test hung (no progress within the hang limit)")
}

/// A raw JSON value from a `serde_json::Value`.
pub fn raw(v: Value) -> Box<RawValue> {
    to_raw(&v).expect("serializable")
}

/// A raw JSON value parsed back into a `serde_json::Value`.
pub fn value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).expect("valid JSON")
}

/// The type of a request-serving closure.
pub type HandlerFn =
    dyn Fn(Request, RequestContext) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> + Send + Sync;

/// A [`Handler`] made of a closure.
pub struct FnHandler(Box<HandlerFn>);

impl Handler for FnHandler {
    fn handle_request(
        &self,
        req: Request,
        ctx: RequestContext,
    ) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> {
        (self.0)(req, ctx)
    }
}

/// Wraps a closure as a handler.
pub fn handler<F>(f: F) -> Arc<dyn Handler>
where
    F: Fn(Request, RequestContext) -> BoxFuture<'static, Result<Box<RawValue>, ErrorObject>> + Send + Sync + 'static,
{
    Arc::new(FnHandler(Box::new(f)))
}

/// The test's end of a newline-delimited JSON byte stream.
pub struct Wire {
    lines: Lines<BufReader<ReadHalf<DuplexStream>>>,
    write: WriteHalf<DuplexStream>,
}

impl Wire {
    /// Writes `text` followed by a newline.
    pub async fn send_line(&mut self, text: &str) {
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(b'\n');
        self.send_bytes(&bytes).await;
    }

    /// Writes raw bytes as they are.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.expect("write to the wire");
        self.write.flush().await.expect("flush the wire");
    }

    /// Writes a JSON value as one line.
    pub async fn send(&mut self, v: &Value) {
        self.send_line(&v.to_string()).await;
    }

    /// The next line, or `None` at the end of the stream.
    pub async fn recv_line(&mut self) -> Option<String> {
        self.lines.next_line().await.expect("read from the wire")
    }

    /// The next line, parsed as JSON.
    pub async fn recv(&mut self) -> Value {
        let line = self.recv_line().await.expect("the wire ended unexpectedly");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON on the wire ({e}): {line}"))
    }

    /// Half-closes the test's writing direction.
    pub async fn shutdown(&mut self) {
        self.write.shutdown().await.expect("shutdown the wire");
    }
}

/// A newline-delimited JSON transport over an in-memory byte stream, and the test's raw end of it.
pub fn duplex_transport() -> (Transport, Wire) {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (read, write) = tokio::io::split(ours);
    let transport = from_io(read, write, Codec::lines(), Limits::default(), PeerInfo::new("duplex"));
    let (read, write) = tokio::io::split(theirs);
    (transport, Wire { lines: BufReader::new(read).lines(), write })
}
