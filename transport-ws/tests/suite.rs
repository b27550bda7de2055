//! The shared transport suite over `ws://` and over `wss://` (self-signed certificate).
//!
//! The raw peer is a hand-written WebSocket client: each suite frame is one masked text frame
//! carrying the payload bytes verbatim (invalid UTF-8 included), so the byte-level cases test
//! the server's decoding of real frames.

mod common;

use mcp_transport_core::testing::{Harness, RawPeer};
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{Limits, Transport};
use mcp_transport_ws::{ClientTls, WsClientConfig, WsConfig, WsListener, connect};
use tokio::net::TcpStream;

use common::RawWs;

async fn pair(listener: WsListener, client: WsClientConfig) -> (Transport, Transport) {
    let (c, s) = tokio::join!(connect(listener.url(), &client), listener.accept());
    (c.expect("connect"), s.expect("accept"))
}

mod plain {
    use super::*;

    fn server_config(limits: Limits) -> WsConfig {
        WsConfig { limits, ..WsConfig::default() }
    }

    struct Ws;

    impl Harness for Ws {
        fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)> {
            Box::pin(async move {
                let listener = WsListener::bind("ws://127.0.0.1:0/mcp", server_config(limits)).await.expect("bind");
                pair(listener, WsClientConfig { limits, ..WsClientConfig::default() }).await
            })
        }

        fn raw(&self, limits: Limits) -> BoxFuture<'_, Option<(Box<dyn RawPeer>, Transport)>> {
            Box::pin(async move {
                let listener = WsListener::bind("ws://127.0.0.1:0/mcp", server_config(limits)).await.expect("bind");
                let tcp = TcpStream::connect(listener.local_addr()).await.expect("tcp connect");
                let (raw, server) = tokio::join!(RawWs::open(tcp, "/mcp"), listener.accept());
                Some((Box::new(raw) as Box<dyn RawPeer>, server.expect("accept")))
            })
        }
    }

    mcp_transport_core::transport_suite!(Ws);
}

mod tls {
    use super::*;

    struct Wss {
        cert: String,
        key: String,
    }

    impl Default for Wss {
        fn default() -> Self {
            let (cert, key) = common::self_signed();
            Self { cert, key }
        }
    }

    impl Wss {
        async fn listener(&self, limits: Limits) -> WsListener {
            let config =
                WsConfig { limits, tls: Some(common::server_tls(&self.cert, &self.key)), ..WsConfig::default() };
            WsListener::bind("wss://127.0.0.1:0/mcp", config).await.expect("bind")
        }
    }

    impl Harness for Wss {
        fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)> {
            Box::pin(async move {
                let listener = self.listener(limits).await;
                let trust = mcp_transport_ws::tls::client_config_from_pem(self.cert.as_bytes()).expect("trust");
                pair(listener, WsClientConfig { limits, tls: ClientTls::Config(trust), ..WsClientConfig::default() })
                    .await
            })
        }

        fn raw(&self, limits: Limits) -> BoxFuture<'_, Option<(Box<dyn RawPeer>, Transport)>> {
            Box::pin(async move {
                let listener = self.listener(limits).await;
                let open =
                    async { RawWs::open(common::tls_connect(listener.local_addr(), &self.cert).await, "/mcp").await };
                let (raw, server) = tokio::join!(open, listener.accept());
                Some((Box::new(raw) as Box<dyn RawPeer>, server.expect("accept")))
            })
        }
    }

    mcp_transport_core::transport_suite!(Wss::default());
}
