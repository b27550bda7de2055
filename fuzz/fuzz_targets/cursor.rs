//! The gateway's pagination cursors (`mcp-gateway`, feature `fuzzing`): a client hands them
//! back as it likes.
//!
//! The first input byte picks the mode. Even: the rest, as text, is decoded as a client's
//! cursor; it must never panic, and a cursor that decodes re-encodes to one that decodes to the
//! same position. Odd: the next 8 bytes are an upstream index and the rest an upstream's own
//! cursor (absent when empty); what the gateway encodes must decode to exactly that.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::{fuzz_decode_cursor, fuzz_encode_cursor};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Some((u, c)) = fuzz_decode_cursor(&text) {
            let again = fuzz_encode_cursor(u, c.clone());
            assert_eq!(fuzz_decode_cursor(&again), Some((u, c)), "{text:?} re-encoded as {again:?}");
        }
    } else {
        let (index, cursor) = rest.split_at(rest.len().min(8));
        let mut bytes = [0u8; 8];
        bytes[..index.len()].copy_from_slice(index);
        let u = u64::from_le_bytes(bytes) as usize;
        let c = (!cursor.is_empty()).then(|| String::from_utf8_lossy(cursor).into_owned());
        let encoded = fuzz_encode_cursor(u, c.clone());
        assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{encoded:?}");
        assert_eq!(fuzz_decode_cursor(&encoded), Some((u, c)), "{encoded:?}");
    }
});
