//! Round-trip latency of a 1 KB request over Streamable HTTP: this crate's client and server
//! transports (one 2025 session, an echo loop on the server transport) next to the raw floor
//! (an axum POST echo and a pooled hyper client with `TCP_NODELAY`), measured in the same run.
//!
//! ```text
//! cargo run --release -p mcp-transport-http --example rtt [ROUNDS] [WARMUP]
//! ```
//!
//! Defaults: 20,000 round trips after 2,000 warm-up ones, on a 2-worker runtime, each loop
//! inside `tokio::spawn`.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_transport_core::message::to_raw;
use mcp_transport_core::{Id, Incoming, Message, Request, Response, Transport};
use mcp_transport_http::{HttpClientConfig, HttpListener, HttpServerConfig, connect};
use serde_json::json;

const PAD: usize = 1024;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Stats { p50: percentile(&samples, 0.50), p99: percentile(&samples, 0.99), mean }
}

/// The echo loop on the server side of a session.
async fn echo(mut t: Transport) {
    while let Some(Ok(Incoming::Message(m))) = t.receiver.recv().await {
        if let Message::Request(r) = m {
            let result = r.params.unwrap_or_else(|| to_raw(&json!({})).expect("raw"));
            if t.sender.send(Response::success(r.id, result)).await.is_err() {
                return;
            }
        }
    }
}

async fn ours(rounds: usize, warmup: usize) -> Vec<Duration> {
    let listener =
        HttpListener::bind("127.0.0.1:0".parse().expect("address"), HttpServerConfig::default()).await.expect("bind");
    let url = listener.url();
    tokio::spawn(async move {
        while let Ok(t) = listener.accept().await {
            tokio::spawn(echo(t));
        }
    });
    let mut client = connect(&url, HttpClientConfig::default()).await.expect("connect");
    let init =
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "rtt", "version": "0"}});
    client.sender.send(Request::new(0, "initialize", &init).expect("request")).await.expect("send");
    client.receiver.recv().await.expect("initialize result").expect("ok");
    let params = json!({"name": "echo", "arguments": {"pad": "x".repeat(PAD)}});
    let params = to_raw(&params).expect("raw");
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..(warmup + rounds) {
        let req = Request { id: Id::Number(i as i64 + 1), method: "tools/call".into(), params: Some(params.clone()) };
        let start = Instant::now();
        client.sender.send(req).await.expect("send");
        match client.receiver.recv().await {
            Some(Ok(Incoming::Message(Message::Response(r)))) if r.outcome.is_ok() => {}
            other => panic!("unexpected {other:?}"),
        }
        if i >= warmup {
            samples.push(start.elapsed());
        }
    }
    samples
}

async fn raw(rounds: usize, warmup: usize) -> Vec<Duration> {
    use axum::serve::{Listener, ListenerExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let addr: SocketAddr = listener.local_addr().expect("address");
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(|body: Bytes| async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(http);
    let body = Bytes::from(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"pad": "x".repeat(PAD)}}})
        .to_string(),
    );
    let url = format!("http://{addr}/mcp");
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..(warmup + rounds) {
        let req = http::Request::post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(body.clone()))
            .expect("request");
        let start = Instant::now();
        let resp = client.request(req).await.expect("response");
        let got = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(got.len(), body.len());
        if i >= warmup {
            samples.push(start.elapsed());
        }
    }
    samples
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let warmup: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // RTT_ONLY=raw|ours runs one side (for profiling); both by default.
    let only = std::env::var("RTT_ONLY").unwrap_or_default();
    let (raw_s, ours_s) = rt.block_on(async {
        let raw_s = if only == "ours" { Vec::new() } else { tokio::spawn(raw(rounds, warmup)).await.expect("raw") };
        let ours_s = if only == "raw" { Vec::new() } else { tokio::spawn(ours(rounds, warmup)).await.expect("ours") };
        (raw_s, ours_s)
    });
    if !only.is_empty() {
        let s = stats(if only == "raw" { raw_s } else { ours_s });
        println!("{only}: p50 {:?} p99 {:?}", s.p50, s.p99);
        return;
    }
    let (raw_s, ours_s) = (stats(raw_s), stats(ours_s));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("1 KB round trip, {rounds} rounds after {warmup} warm-up, 2-worker runtime");
    println!("| path | p50 µs | p99 µs | mean µs |");
    println!("|---|---:|---:|---:|");
    println!(
        "| raw axum POST echo, pooled hyper client | {:.1} | {:.1} | {:.1} |",
        us(raw_s.p50),
        us(raw_s.p99),
        us(raw_s.mean)
    );
    println!(
        "| mcp-transport-http client → server transport (2025 session) | {:.1} | {:.1} | {:.1} |",
        us(ours_s.p50),
        us(ours_s.p99),
        us(ours_s.mean)
    );
    println!("p50 ratio {:.2}x, p99 ratio {:.2}x", us(ours_s.p50) / us(raw_s.p50), us(ours_s.p99) / us(raw_s.p99));
}
