//! The shared transport suite against the in-memory pair.

use mcp_transport_core::testing::Harness;
use mcp_transport_core::transport::{BoxFuture, memory_pair};
use mcp_transport_core::{Limits, Transport};

struct Memory;

impl Harness for Memory {
    fn pair(&self, limits: Limits) -> BoxFuture<'_, (Transport, Transport)> {
        Box::pin(async move { memory_pair(limits) })
    }
}

mcp_transport_core::transport_suite!(Memory);
