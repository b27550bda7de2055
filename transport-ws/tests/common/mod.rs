//! Test helpers: a hand-written WebSocket client (independent of the crate's own framing)
//! and self-signed TLS material.
#![allow(dead_code)]

use std::io;
use std::sync::Arc;

use mcp_transport_core::testing::RawPeer;
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_ws::rustls;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A self-signed certificate for `localhost` and `127.0.0.1`: (cert PEM, key PEM).
pub(crate) fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("generate certificate");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A rustls client connector trusting `cert_pem`.
pub(crate) fn connector(cert_pem: &str) -> tokio_rustls::TlsConnector {
    let config = mcp_transport_ws::tls::client_config_from_pem(cert_pem.as_bytes()).expect("client config");
    tokio_rustls::TlsConnector::from(config)
}

/// TCP then TLS to a `wss://` listener at `addr`.
pub(crate) async fn tls_connect(
    addr: std::net::SocketAddr,
    cert_pem: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    connector(cert_pem).connect(name, tcp).await.expect("tls connect")
}

/// Sends an upgrade request with `extra` header lines (each ending in `\r\n`) and returns the
/// response head (up to the blank line) and any bytes after it.
pub(crate) async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    path: &str,
    extra: &str,
) -> (String, Vec<u8>) {
    let version = if extra.contains("Sec-WebSocket-Version") { "" } else { "Sec-WebSocket-Version: 13\r\n" };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{version}{extra}\r\n"
    );
    io.write_all(req.as_bytes()).await.expect("write request");
    read_head(io).await
}

/// Reads an HTTP response head; returns it and the bytes after it.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(io: &mut S) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
        let n = io.read(&mut chunk).await.expect("read response");
        assert!(n > 0, "connection closed before a complete response head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads everything until the peer closes (for error responses).
pub(crate) async fn read_to_end<S: AsyncRead + Unpin>(io: &mut S) -> String {
    read_rest(io, Vec::new()).await
}

/// `already` plus everything read until the peer closes.
pub(crate) async fn read_rest<S: AsyncRead + Unpin>(io: &mut S, already: Vec<u8>) -> String {
    let mut out = already;
    let _ = io.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One masked frame as a client sends it.
pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A frame as read from the server: (fin, opcode, payload).
pub(crate) type Frame = (bool, u8, Vec<u8>);

/// A WebSocket client speaking raw frames over an upgraded stream.
pub(crate) struct RawWs<S> {
    pub(crate) io: S,
    /// Bytes read but not yet parsed.
    pub(crate) pending: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> RawWs<S> {
    /// Upgrades `io` at `path` offering `mcp`.
    pub(crate) async fn open(mut io: S, path: &str) -> Self {
        let (head, pending) = upgrade(&mut io, path, "Sec-WebSocket-Protocol: mcp\r\n").await;
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { io, pending }
    }

    async fn fill(&mut self, n: usize) -> io::Result<bool> {
        let mut chunk = [0u8; 8192];
        while self.pending.len() < n {
            let got = self.io.read(&mut chunk).await?;
            if got == 0 {
                return Ok(false);
            }
            self.pending.extend_from_slice(&chunk[..got]);
        }
        Ok(true)
    }

    /// The next frame of any kind; `None` at end of stream.
    pub(crate) async fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if !self.fill(2).await? {
            return Ok(None);
        }
        let (b0, b1) = (self.pending[0], self.pending[1]);
        assert_eq!(b1 & 0x80, 0, "server frames are never masked");
        let (len, at) = match b1 & 0x7F {
            126 => {
                if !self.fill(4).await? {
                    return Ok(None);
                }
                (u16::from_be_bytes([self.pending[2], self.pending[3]]) as usize, 4)
            }
            127 => {
                if !self.fill(10).await? {
                    return Ok(None);
                }
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.pending[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            n => (n as usize, 2),
        };
        if !self.fill(at + len).await? {
            return Ok(None);
        }
        let payload = self.pending[at..at + len].to_vec();
        self.pending.drain(..at + len);
        Ok(Some((b0 & 0x80 != 0, b0 & 0x0F, payload)))
    }

    /// Reads frames until a Close; returns its code and reason.
    pub(crate) async fn close_code(&mut self) -> Option<(u16, String)> {
        loop {
            match self.next_frame().await {
                Ok(Some((_, 0x8, p))) if p.len() >= 2 => {
                    return Some((u16::from_be_bytes([p[0], p[1]]), String::from_utf8_lossy(&p[2..]).into_owned()));
                }
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> RawPeer for RawWs<S> {
    fn send_frame<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move { self.io.write_all(&client_frame(true, 0x1, payload)).await })
    }

    fn send_truncated_frame<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let frame = client_frame(true, 0x1, payload);
            let header = frame.len() - payload.len();
            self.io.write_all(&frame[..header + payload.len() / 2]).await
        })
    }

    fn recv_frame(&mut self) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            loop {
                match self.next_frame().await? {
                    None | Some((_, 0x8, _)) => return Ok(None),
                    Some((_, 0x1 | 0x2, payload)) => return Ok(Some(payload)),
                    Some(_) => continue,
                }
            }
        })
    }

    fn vanish(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { drop(self) })
    }
}

/// Arc'd server TLS config from PEM strings.
pub(crate) fn server_tls(cert: &str, key: &str) -> Arc<rustls::ServerConfig> {
    mcp_transport_ws::tls::server_config_from_pem(cert.as_bytes(), key.as_bytes()).expect("server config")
}
