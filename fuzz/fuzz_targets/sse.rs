//! The Streamable HTTP client's SSE decoder: no panic, bounded buffering, and the same events
//! whether the bytes arrive whole or cut at arbitrary places.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first bytes choose where the stream is cut; the rest is the stream.
    let (head, stream) = data.split_at(data.len().min(8));
    let cuts: Vec<usize> = head.iter().map(|b| *b as usize * 7).collect();
    mcp_transport_http::fuzz_sse(stream, &cuts, 4096);
});
