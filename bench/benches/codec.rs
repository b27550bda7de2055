//! Codec and envelope costs: encode/decode at 1 KB, 32 KB and 1 MB for every framing, and the
//! envelope parse with serde_json (ours) against simd-json and sonic-rs.
//!
//! `cargo bench -p mcp-bench --bench codec`
#![allow(missing_docs, reason = "criterion's macros generate undocumented functions")]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcp_transport_core::message::RawValue;
use mcp_transport_core::{Codec, Id, Incoming, Message, Request};
use tokio_util::codec::{Decoder, Encoder};

/// A `tools/call` request whose params hold about `size` bytes.
fn message(size: usize) -> Message {
    let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let params = format!("{{\"name\":\"echo\",\"arguments\":{{\"text\":\"{text}\"}}}}");
    Message::Request(Request {
        id: Id::Number(7),
        method: "tools/call".into(),
        params: Some(RawValue::from_string(params).expect("valid JSON")),
    })
}

const SIZES: [(&str, usize); 3] = [("1KB", 1_000), ("32KB", 32_000), ("1MB", 1_000_000)];

fn codecs() -> [(&'static str, Codec); 3] {
    [
        ("lines", Codec::lines()),
        ("length-json", Codec::length_prefixed_json()),
        ("length-msgpack", Codec::length_prefixed_msgpack()),
    ]
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for (label, size) in SIZES {
        let msg = message(size);
        g.throughput(Throughput::Bytes(size as u64));
        for (name, mut codec) in codecs() {
            let mut buf = BytesMut::with_capacity(size * 2);
            g.bench_with_input(BenchmarkId::new(name, label), &msg, |b, msg| {
                b.iter(|| {
                    buf.clear();
                    codec.encode(black_box(msg), &mut buf).expect("encode");
                })
            });
        }
    }
    g.finish();
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    for (label, size) in SIZES {
        let msg = message(size);
        g.throughput(Throughput::Bytes(size as u64));
        for (name, mut codec) in codecs() {
            let mut frame = BytesMut::new();
            codec.encode(&msg, &mut frame).expect("encode");
            let frame = frame.freeze();
            g.bench_with_input(BenchmarkId::new(name, label), &frame, |b, frame| {
                b.iter(|| {
                    let mut src = BytesMut::from(&frame[..]);
                    match codec.decode(&mut src).expect("decode") {
                        Some(Incoming::Message(m)) => black_box(m),
                        other => panic!("unexpected {other:?}"),
                    };
                })
            });
        }
    }
    g.finish();
}

#[derive(serde::Deserialize)]
#[allow(dead_code, reason = "the fields are what the parse reads")]
struct SonicEnvelope<'a> {
    jsonrpc: &'a str,
    id: Option<i64>,
    #[serde(borrow)]
    method: Option<&'a str>,
    #[serde(borrow)]
    params: Option<sonic_rs::LazyValue<'a>>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code, reason = "the fields are what the parse reads")]
struct SimdEnvelope<'a> {
    jsonrpc: &'a str,
    id: Option<i64>,
    #[serde(borrow)]
    method: Option<&'a str>,
    params: Option<simd_json::OwnedValue>,
}

fn envelope(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    for (label, size) in SIZES {
        let bytes = message(size).to_vec();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("serde_json-raw", label), &bytes, |b, bytes| {
            b.iter(|| black_box(Incoming::parse(black_box(bytes))))
        });
        g.bench_with_input(BenchmarkId::new("sonic-rs-lazy", label), &bytes, |b, bytes| {
            b.iter(|| black_box(sonic_rs::from_slice::<SonicEnvelope<'_>>(black_box(bytes)).expect("parse").id))
        });
        g.bench_with_input(BenchmarkId::new("simd-json-copy", label), &bytes, |b, bytes| {
            b.iter(|| {
                let mut copy = bytes.clone();
                black_box(simd_json::serde::from_slice::<SimdEnvelope<'_>>(&mut copy).expect("parse").id)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encode, decode, envelope);
criterion_main!(benches);
