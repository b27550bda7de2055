//! The shared transport suite over Unix sockets, once per framing.

use mcp_transport_core::testing::{Harness, RawPeer, StreamRawPeer};
use mcp_transport_core::transport::BoxFuture;
use mcp_transport_core::{Codec, Limits, Transport};
use mcp_transport_uds::{UdsAddr, UdsConfig, UdsListener, connect};
use tokio::net::UnixStream;

/// A listener on a fresh socket file in a temporary directory. The directory and the
/// listener may go once the connections are up.
async fn listener(codec: Codec, limits: Limits) -> (tempfile::TempDir, UdsListener) {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = UdsAddr::Path(dir.path().join("suite.sock"));
    let config = UdsConfig { codec, limits, ..UdsConfig::default() };
    let listener = UdsListener::bind(addr, config).await.expect("bind");
    (dir, listener)
}

async fn uds_pair(codec: Codec, limits: Limits) -> (Transport, Transport) {
    let (_dir, listener) = listener(codec.clone(), limits).await;
    let config = UdsConfig { codec, limits, ..UdsConfig::default() };
    let (client, server) = tokio::join!(connect(listener.local_addr(), &config), listener.accept());
    (client.expect("connect"), server.expect("accept"))
}

async fn uds_raw(codec: Codec, limits: Limits) -> (Box<dyn RawPeer>, Transport) {
    let framing = codec.framing();
    let (_dir, listener) = listener(codec, limits).await;
    let path = listener.local_addr().as_path().expect("a path").to_owned();
    let (raw, server) = tokio::join!(UnixStream::connect(path), listener.accept());
    (Box::new(StreamRawPeer::new(raw.expect("connect"), framing)), server.expect("accept"))
}

macro_rules! suite_for {
    ($module:ident, $codec:expr) => {
        mod $module {
            use super::*;

            struct Uds;

            impl Harness for Uds {
                fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)> {
                    Box::pin(uds_pair($codec, limits))
                }

                fn raw(&self, limits: Limits) -> BoxFuture<'_, Option<(Box<dyn RawPeer>, Transport)>> {
                    Box::pin(async move { Some(uds_raw($codec, limits).await) })
                }
            }

            mcp_transport_core::transport_suite!(Uds);
        }
    };
}

suite_for!(lines, Codec::lines());
suite_for!(length_json, Codec::length_prefixed_json());
