//! `--otlp-endpoint` (cargo feature `otel`): a short command's spans reach an OTLP/HTTP
//! collector as protobuf trace exports, and a bad endpoint is refused up front.
#![cfg(feature = "otel")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;

/// One POST the fake collector received on /v1/traces.
#[derive(Debug, Clone)]
struct Export {
    content_type: Option<String>,
    body: Bytes,
}

type Received = Arc<Mutex<Vec<Export>>>;

async fn traces(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> (StatusCode, HeaderMap) {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    received.lock().unwrap().push(Export { content_type, body });
    // An empty body is a valid (empty) ExportTraceServiceResponse.
    let mut reply = HeaderMap::new();
    reply.insert(header::CONTENT_TYPE, "application/x-protobuf".parse().unwrap());
    (StatusCode::OK, reply)
}

/// Starts a collector on 127.0.0.1 that records the POSTs to /v1/traces; returns its base URL.
async fn collector(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/v1/traces", post(traces)).with_state(received);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_bench_exports_its_spans_as_otlp_protobuf() {
    let received = Received::default();
    let endpoint = collector(received.clone()).await;
    let run = tokio::process::Command::new(common::MCPT)
        .args(["--otlp-endpoint", &endpoint])
        .args(["bench", "--transports", "uds", "--placement", "in-process"])
        .args(["--rounds", "10", "--throughput-ms", "5"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    // Hang guard only.
    let out = tokio::time::timeout(Duration::from_secs(120), run).await.expect("mcpt bench hung").expect("run mcpt");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\nstderr: {stderr}", out.status);
    let exports = received.lock().unwrap().clone();
    assert!(!exports.is_empty(), "no OTLP export arrived at {endpoint}/v1/traces; stderr: {stderr}");
    for export in &exports {
        assert_eq!(export.content_type.as_deref(), Some("application/x-protobuf"), "{export:?}");
    }
    assert!(exports.iter().any(|e| !e.body.is_empty()), "every export was empty: {exports:?}");
    // The resource (service.name = "mcpt") and span names travel as plain protobuf strings.
    let all: Vec<u8> = exports.iter().flat_map(|e| e.body.iter().copied()).collect();
    let contains = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"service.name") && contains(b"mcpt"), "no service.name = mcpt in the exports");
    assert!(contains(b"bench_setup"), "the bench_setup span was not exported");
}

#[test]
fn an_endpoint_that_is_not_an_http_url_is_refused() {
    let out = std::process::Command::new(common::MCPT)
        .args(["--otlp-endpoint", "unix:///tmp/collector.sock", "bench", "--rounds", "1"])
        .output()
        .expect("run mcpt");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("--otlp-endpoint") && stderr.contains("http://"), "stderr: {stderr}");
}
