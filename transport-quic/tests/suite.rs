//! The shared transport suite over QUIC, in session mode and in request mode, with a
//! self-signed certificate pinned by its fingerprint.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use mcp_transport_core::testing::{Harness, RawPeer, StreamRawPeer};
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{Framing, Limits, Transport};
use mcp_transport_quic::{Mode, QuicClientConfig, QuicListener, QuicServerConfig, QuicSettings, connect, raw};
use tokio::io::AsyncWrite;

/// Request mode holds one stream per request in flight. Several suite cases send up to 2000
/// requests that are never answered, so the harness allows that many at once.
const STREAMS: u32 = 2100;

fn settings(limits: Limits, keep_alive: bool) -> QuicSettings {
    let mut settings =
        if keep_alive { QuicClientConfig::default().settings } else { QuicServerConfig::default().settings };
    settings.limits = limits;
    settings.max_concurrent_streams = STREAMS;
    settings
}

async fn listener(mode: Mode, limits: Limits) -> QuicListener {
    let config = QuicServerConfig { mode, settings: settings(limits, false), ..QuicServerConfig::default() };
    QuicListener::bind("127.0.0.1:0".parse().expect("address"), config).await.expect("bind")
}

fn client_config(mode: Mode, limits: Limits) -> QuicClientConfig {
    QuicClientConfig { mode, settings: settings(limits, true), ..QuicClientConfig::default() }
}

async fn quic_pair(mode: Mode, limits: Limits) -> (Transport, Transport) {
    let listener = listener(mode, limits).await;
    let url = listener.url().to_string();
    let config = client_config(mode, limits);
    let (client, server) = tokio::join!(connect(&url, &config), listener.accept());
    (client.expect("connect"), server.expect("accept"))
}

/// The sending half of the raw peer's stream. QUIC discards data not yet sent when a
/// connection closes, so when the peer "vanishes" (drops the stream), this first finishes the
/// stream and waits until the server acknowledged every byte written (as a TCP socket would
/// deliver them before its FIN), then closes the connection.
struct LingeringSend {
    send: Option<quinn::SendStream>,
    conn: quinn::Connection,
}

impl AsyncWrite for LingeringSend {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.send.as_mut() {
            Some(send) => AsyncWrite::poll_write(Pin::new(send), cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.send.as_mut() {
            Some(send) => Pin::new(send).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl Drop for LingeringSend {
    fn drop(&mut self) {
        if let Some(mut send) = self.send.take() {
            let conn = self.conn.clone();
            tokio::spawn(async move {
                let _ = send.finish();
                let _ = send.stopped().await;
                conn.close(0u32.into(), b"vanished");
            });
        }
    }
}

/// A raw quinn bidirectional stream; dropping it ends the stream and the connection.
async fn quic_raw(mode: Mode, limits: Limits) -> (Box<dyn RawPeer>, Transport) {
    let listener = listener(mode, limits).await;
    let config = client_config(mode, limits);
    let url = listener.url();
    let raw_peer = async {
        let (_endpoint, conn) = raw::connect(&url, &config).await.expect("raw connect");
        let (mut send, recv) = conn.open_bi().await.expect("open stream");
        // The server sees a stream once data arrives on it: announce it with an empty line,
        // as our client does.
        send.write_all(b"\n").await.expect("announce the stream");
        tokio::io::join(recv, LingeringSend { send: Some(send), conn })
    };
    let (io, server) = tokio::join!(raw_peer, listener.accept());
    (Box::new(StreamRawPeer::new(io, Framing::Lines)), server.expect("accept"))
}

macro_rules! suite_for {
    ($module:ident, $mode:expr) => {
        mod $module {
            use super::*;

            struct Quic;

            impl Harness for Quic {
                fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)> {
                    Box::pin(quic_pair($mode, limits))
                }

                fn raw(&self, limits: Limits) -> BoxFuture<'_, Option<(Box<dyn RawPeer>, Transport)>> {
                    Box::pin(async move { Some(quic_raw($mode, limits).await) })
                }
            }

            mcp_transport_core::transport_suite!(Quic);
        }
    };
}

suite_for!(session, Mode::Session);
suite_for!(request, Mode::Request);
