//! Arbitrary bytes through `Codec::length_prefixed_msgpack()`, split in two chunks, then end of
//! stream. Must never panic; `mcp_transport_core_fuzz::decode_split` lists what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_transport_core::Codec;

fuzz_target!(|data: &[u8]| {
    mcp_transport_core_fuzz::decode_split(Codec::length_prefixed_msgpack(), data);
});
