//! Pushes up to 1 GiB of 64 KiB messages at a Unix-socket peer that never reads, and reports
//! how much was accepted and the resident memory of this process while it tries.
//!
//! `cargo run --release -p mcp-bench --example slow_reader`
#![allow(clippy::print_stdout)]

use std::time::Duration;

use mcp_transport_core::message::RawValue;
use mcp_transport_core::{Codec, Id, Message, Request};
use mcp_transport_uds::UdsConfig;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // A listener whose accepted connections are never read: bind and accept, then hold.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("unix://{}", dir.path().join("never-reads.sock").display());
    let addr = mcp_transport_uds::UdsAddr::parse(&url).expect("addr");
    let listener = mcp_transport_uds::UdsListener::bind(addr.clone(), UdsConfig::default()).await.expect("bind");
    let held = tokio::spawn(async move {
        let t = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(t);
    });
    let t = mcp_transport_uds::connect(&addr, &UdsConfig { codec: Codec::lines(), ..UdsConfig::default() })
        .await
        .expect("connect");
    let params = RawValue::from_string(format!("{{\"pad\":\"{}\"}}", "x".repeat(64 * 1024))).expect("json");
    let msg = Message::Request(Request { id: Id::Number(1), method: "tools/call".into(), params: Some(params) });
    let size = msg.to_vec().len() as u64 + 1;
    let target = 1u64 << 30;
    let before = rss_kib();
    let mut accepted = 0u64;
    let mut peak = before;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while accepted < target && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), t.sender.send(msg.clone())).await {
            Ok(Ok(())) => accepted += size,
            Ok(Err(e)) => panic!("send failed: {e}"),
            Err(_) => {} // blocked: the queue is full, as it should be
        }
        peak = peak.max(rss_kib());
    }
    println!("tried to push 1 GiB of {size}-byte messages at a reader that never reads (5 s)");
    println!("accepted before send blocked: {:.1} MiB", accepted as f64 / (1 << 20) as f64);
    println!("resident memory: {:.1} MiB before, peak {:.1} MiB", before as f64 / 1024.0, peak as f64 / 1024.0);
    held.abort();
}
