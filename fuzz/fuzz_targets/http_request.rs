//! The Streamable HTTP listener's checks on one request (`mcp-transport-http`, feature
//! `fuzzing`): DNS-rebinding `Host`/`Origin`, path, method, `Content-Type`, `Accept`,
//! `Content-Length`, the body as JSON-RPC, `MCP-Protocol-Version` and the generation it picks,
//! `Mcp-Session-Id`, and the 2026-07-28 `Mcp-Method`/`Mcp-Name`/`Mcp-Param-*` headers against
//! the body. No panic; every answer is a 4xx with an empty (`405`) or JSON-RPC error body; the
//! headers the crate's own client sends with a 2026-07-28 request are accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_transport_core::Message;

/// Headers beyond this many are ignored (hyper's default limit is 100).
const MAX_HEADERS: usize = 100;

fuzz_target!(|data: &[u8]| {
    // First byte: the listener configuration. Then an HTTP/1.1-style request: a request line,
    // header lines, a blank line, the body.
    let Some((&config, rest)) = data.split_first() else { return };
    let (head, body) = match rest.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&rest[..i], &rest[i + 4..]),
        None => (rest, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some(request_line) = lines.next() else { return };
    let mut words = request_line.split(|b| *b == b' ').filter(|w| !w.is_empty());
    let (Some(method), Some(target)) = (words.next(), words.next()) else { return };
    let headers: Vec<(&[u8], &[u8])> = lines
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            Some((&line[..colon], line[colon + 1..].trim_ascii()))
        })
        .take(MAX_HEADERS)
        .collect();
    let Some((status, answer)) = mcp_transport_http::fuzz_http_request(config, method, target, &headers, body)
    else {
        return;
    };
    match status {
        0 => assert!(answer.is_empty()),
        405 => assert!(answer.is_empty(), "405 with a body"),
        400..=499 => match Message::from_slice(&answer) {
            Ok(Message::Response(r)) => {
                let e = r.outcome.expect_err("an error response");
                assert!(e.code < 0, "error code {}", e.code);
            }
            _ => panic!("{status} without a JSON-RPC error: {:?}", String::from_utf8_lossy(&answer)),
        },
        _ => panic!("unexpected status {status}"),
    }
});
