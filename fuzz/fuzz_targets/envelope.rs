//! Arbitrary bytes through the envelope parser. Whatever parses as a message (alone or inside a
//! batch) must re-serialize to JSON that parses back to the same JSON text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_transport_core::Incoming;

fuzz_target!(|data: &[u8]| {
    match Incoming::parse(data) {
        Incoming::Message(m) => {
            let text = m.to_vec();
            match Incoming::parse(&text) {
                Incoming::Message(again) => assert_eq!(
                    String::from_utf8_lossy(&again.to_vec()),
                    String::from_utf8_lossy(&text),
                    "re-parsed message differs"
                ),
                other => panic!(
                    "re-serialized {:?} parsed as {other:?}",
                    String::from_utf8_lossy(&text)
                ),
            }
        }
        Incoming::Batch(items) => {
            for m in items.iter().flatten() {
                mcp_transport_core_fuzz::check_message(m);
            }
        }
        Incoming::Invalid(_) => {}
    }
});
