//! The raw floors: echo servers and clients with no MCP logic at all, sending the very bytes
//! our transports send. Each of our transports is held to the floor of its own kind.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_quic::{QuicClientConfig, QuicServerConfig, QuicUrl, raw};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::driver::{Driver, LinesDriver, serve_lines};
use crate::{BenchError, Exchange};

/// The kinds of raw floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FloorKind {
    /// tokio `UnixStream`, newline-delimited.
    Uds,
    /// tokio `TcpStream` with `TCP_NODELAY`, newline-delimited.
    Tcp,
    /// fastwebsockets over TCP, one text frame per message (no HTTP upgrade: the floor of the
    /// frames alone).
    Ws,
    /// quinn with our transport settings, one long-lived bidirectional stream,
    /// newline-delimited.
    Quic,
    /// axum answering each POST with the response bytes; a pooled hyper client with
    /// `TCP_NODELAY`.
    Http,
    /// A child process copying requests from its stdin and answering on its stdout.
    Pipe,
}

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup { case: "raw floor".into(), reason: e.to_string() }
}

fn response_line(exchange: &Exchange) -> Arc<Vec<u8>> {
    let mut line = exchange.response.clone();
    line.push(b'\n');
    Arc::new(line)
}

/// Binds a floor server at `listen` (a path for [`FloorKind::Uds`], `host:port` for the others)
/// on the current runtime and returns the address clients connect to.
pub async fn start_server(kind: FloorKind, listen: &str, exchange: &Exchange) -> Result<String, BenchError> {
    let line = response_line(exchange);
    match kind {
        FloorKind::Uds => {
            let listener = UnixListener::bind(listen).map_err(|e| setup(format!("{listen}: {e}")))?;
            tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    let line = line.clone();
                    tokio::spawn(async move {
                        let (r, w) = s.into_split();
                        serve_lines(r, w, &line).await
                    });
                }
            });
            Ok(listen.to_owned())
        }
        FloorKind::Tcp => {
            let listener = TcpListener::bind(listen).await.map_err(|e| setup(format!("{listen}: {e}")))?;
            let addr = listener.local_addr().map_err(setup)?;
            tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    let _ = s.set_nodelay(true);
                    let line = line.clone();
                    tokio::spawn(async move {
                        let (r, w) = s.into_split();
                        serve_lines(r, w, &line).await
                    });
                }
            });
            Ok(addr.to_string())
        }
        FloorKind::Ws => {
            let listener = TcpListener::bind(listen).await.map_err(|e| setup(format!("{listen}: {e}")))?;
            let addr = listener.local_addr().map_err(setup)?;
            let response = Arc::new(exchange.response.clone());
            tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(serve_ws(s, response.clone()));
                }
            });
            Ok(addr.to_string())
        }
        FloorKind::Quic => {
            let addr: SocketAddr = listen.parse().map_err(|e| setup(format!("{listen}: {e}")))?;
            let config = QuicServerConfig::default();
            let identity = config.identity.load().map_err(setup)?;
            let server = raw::server_config(&config, &identity, addr.ip().is_loopback()).map_err(setup)?;
            let endpoint = raw::endpoint(addr, Some(server)).map_err(setup)?;
            let local = endpoint.local_addr().map_err(setup)?;
            tokio::spawn(async move {
                while let Some(incoming) = endpoint.accept().await {
                    let line = line.clone();
                    tokio::spawn(async move {
                        let Ok(conn) = incoming.await else { return };
                        while let Ok((send, recv)) = conn.accept_bi().await {
                            let line = line.clone();
                            tokio::spawn(async move { serve_lines(recv, send, &line).await });
                        }
                    });
                }
            });
            Ok(QuicUrl::from_addr(local, Some(identity.fingerprint())).to_string())
        }
        FloorKind::Http => {
            use axum::serve::ListenerExt;
            let listener = TcpListener::bind(listen).await.map_err(|e| setup(format!("{listen}: {e}")))?;
            let addr = listener.local_addr().map_err(setup)?;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let body = Bytes::from(exchange.response.clone());
            let app = axum::Router::new().route(
                "/mcp",
                axum::routing::post(move |_: Bytes| {
                    let body = body.clone();
                    async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
            Ok(format!("http://{addr}/mcp"))
        }
        FloorKind::Pipe => Err(setup("the pipe floor runs as a child process, not a listener")),
    }
}

async fn serve_ws(s: TcpStream, response: Arc<Vec<u8>>) {
    let mut ws = WebSocket::after_handshake(s, Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    loop {
        match ws.read_frame().await {
            Ok(frame) if frame.opcode == OpCode::Text => {
                if ws.write_frame(Frame::text(Payload::Borrowed(&response))).await.is_err() {
                    return;
                }
            }
            Ok(frame) if frame.opcode == OpCode::Close => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Connects a raw client to a floor server started by [`start_server`].
pub async fn connect(kind: FloorKind, endpoint: &str, exchange: &Exchange) -> Result<Box<dyn Driver>, BenchError> {
    let response_len = exchange.response.len();
    match kind {
        FloorKind::Uds => {
            let s = UnixStream::connect(endpoint).await.map_err(|e| setup(format!("{endpoint}: {e}")))?;
            let (r, w) = s.into_split();
            Ok(Box::new(LinesDriver::new(r, w, &exchange.request, response_len)))
        }
        FloorKind::Tcp => {
            let s = TcpStream::connect(endpoint).await.map_err(|e| setup(format!("{endpoint}: {e}")))?;
            s.set_nodelay(true).map_err(setup)?;
            let (r, w) = s.into_split();
            Ok(Box::new(LinesDriver::new(r, w, &exchange.request, response_len)))
        }
        FloorKind::Ws => {
            let s = TcpStream::connect(endpoint).await.map_err(|e| setup(format!("{endpoint}: {e}")))?;
            s.set_nodelay(true).map_err(setup)?;
            let ws = WebSocket::after_handshake(s, Role::Client);
            Ok(Box::new(WsDriver { ws, request: exchange.request.clone(), response_len }))
        }
        FloorKind::Quic => {
            let url = QuicUrl::parse(endpoint).map_err(setup)?;
            let (endpoint, conn) = raw::connect(&url, &QuicClientConfig::default()).await.map_err(setup)?;
            let (send, recv) = conn.open_bi().await.map_err(setup)?;
            let lines = LinesDriver::new(recv, send, &exchange.request, response_len);
            Ok(Box::new(QuicDriver { lines, _conn: conn, _endpoint: endpoint }))
        }
        FloorKind::Http => {
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let client = HyperClient::builder(TokioExecutor::new()).build(connector);
            let body = Bytes::from(exchange.request.clone());
            Ok(Box::new(HttpDriver { client, url: endpoint.to_owned(), body, response_len }))
        }
        FloorKind::Pipe => Err(setup("the pipe floor is reached through a child process")),
    }
}

struct WsDriver {
    ws: WebSocket<TcpStream>,
    request: Vec<u8>,
    response_len: usize,
}

impl WsDriver {
    async fn read_one(&mut self) -> Result<(), BenchError> {
        let frame = self.ws.read_frame().await.map_err(BenchError::trip)?;
        match frame.opcode {
            OpCode::Text if frame.payload.len() == self.response_len => Ok(()),
            op => Err(BenchError::RoundTrip(format!("{op:?} frame of {} bytes", frame.payload.len()))),
        }
    }
}

impl Driver for WsDriver {
    fn round_trip(&mut self) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(async move {
            self.ws.write_frame(Frame::text(Payload::Borrowed(&self.request))).await.map_err(BenchError::trip)?;
            self.read_one().await
        })
    }

    fn burst(&mut self, k: usize) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(async move {
            for _ in 0..k {
                self.ws.write_frame(Frame::text(Payload::Borrowed(&self.request))).await.map_err(BenchError::trip)?;
            }
            for _ in 0..k {
                self.read_one().await?;
            }
            Ok(())
        })
    }
}

struct QuicDriver {
    lines: LinesDriver<quinn::RecvStream, quinn::SendStream>,
    _conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

impl Driver for QuicDriver {
    fn round_trip(&mut self) -> BoxFuture<'_, Result<(), BenchError>> {
        self.lines.round_trip()
    }

    fn burst(&mut self, k: usize) -> BoxFuture<'_, Result<(), BenchError>> {
        self.lines.burst(k)
    }
}

struct HttpDriver {
    client: HyperClient<HttpConnector, Full<Bytes>>,
    url: String,
    body: Bytes,
    response_len: usize,
}

impl HttpDriver {
    async fn post(&self) -> Result<(), BenchError> {
        let req = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .body(Full::new(self.body.clone()))
            .map_err(BenchError::trip)?;
        let resp = self.client.request(req).await.map_err(BenchError::trip)?;
        let got = resp.into_body().collect().await.map_err(BenchError::trip)?.to_bytes();
        if got.len() != self.response_len {
            return Err(BenchError::RoundTrip(format!(
                "{} bytes where {} were expected",
                got.len(),
                self.response_len
            )));
        }
        Ok(())
    }
}

impl Driver for HttpDriver {
    fn round_trip(&mut self) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(self.post())
    }

    fn burst(&mut self, k: usize) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(crate::driver::concurrently(k, || self.post()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Size;

    #[tokio::test]
    async fn every_listening_floor_answers_round_trips_and_bursts() {
        let exchange = Exchange::new(Size::K1);
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("floor.sock");
        for (kind, listen) in [
            (FloorKind::Uds, uds.to_str().unwrap()),
            (FloorKind::Tcp, "127.0.0.1:0"),
            (FloorKind::Ws, "127.0.0.1:0"),
            (FloorKind::Quic, "127.0.0.1:0"),
            (FloorKind::Http, "127.0.0.1:0"),
        ] {
            let endpoint = start_server(kind, listen, &exchange).await.unwrap();
            let mut driver = connect(kind, &endpoint, &exchange).await.unwrap();
            driver.round_trip().await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            driver.burst(16).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        }
    }
}
