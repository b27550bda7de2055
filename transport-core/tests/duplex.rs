//! The shared transport suite against byte-stream transports over in-memory pipes, once per
//! framing.

use mcp_transport_core::testing::{Harness, RawPeer, StreamRawPeer};
use mcp_transport_core::transport::{BoxFuture, from_io};
use mcp_transport_core::{Codec, Limits, PeerInfo, Transport};

fn stream_pair(codec: Codec, limits: Limits) -> (Transport, Transport) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let peer = PeerInfo::new("duplex");
    (from_io(ar, aw, codec.clone(), limits, peer.clone()), from_io(br, bw, codec, limits, peer))
}

macro_rules! suite_for {
    ($module:ident, $codec:expr) => {
        mod $module {
            use super::*;

            struct Duplex;

            impl Harness for Duplex {
                fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)> {
                    Box::pin(async move { stream_pair($codec, limits) })
                }

                fn raw(&self, limits: Limits) -> BoxFuture<'_, Option<(Box<dyn RawPeer>, Transport)>> {
                    Box::pin(async move {
                        let codec = $codec;
                        let framing = codec.framing();
                        let (a, b) = tokio::io::duplex(64 * 1024);
                        let (br, bw) = tokio::io::split(b);
                        let peer = PeerInfo::new("duplex");
                        let server = from_io(br, bw, codec, limits, peer);
                        Some((Box::new(StreamRawPeer::new(a, framing)) as Box<dyn RawPeer>, server))
                    })
                }
            }

            mcp_transport_core::transport_suite!(Duplex);
        }
    };
}

suite_for!(lines, Codec::lines());
suite_for!(length_json, Codec::length_prefixed_json());
