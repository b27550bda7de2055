//! Round-trip latency of raw quinn against our QUIC transport, measured side by side in one run.
//!
//! ```text
//! cargo run --release -p mcp-transport-quic --example quic_floor
//! ```
//!
//! Rows: raw quinn echo on one long-lived bidirectional stream with quinn's default settings
//! (endpoint and transport), the same with our settings (the loopback profile), raw quinn with
//! a new stream per request and our settings, and our transport in session mode and in request
//! mode (a transport-level echo: the server answers each request with a fixed result; no MCP
//! session logic, so the JSON envelope is parsed on both ends). Every row uses our TLS setup
//! (TLS 1.3, ring, ALPN `mcp`). Payloads as in shared/PERF.md: a 284-byte `tools/call` request
//! answered by a 961-byte response ("1 KB"), and a 58-byte `tools/list` request answered by a
//! 32,018-byte response ("32 KB"). Both ends run in this process on a 2-worker tokio runtime;
//! the measurement runs inside `tokio::spawn`. 2,000 warm-up round trips, then `ROUNDS`
//! (default 20,000, for both sizes) timed ones.
//!
//! Options (environment): `QUIC_FLOOR_PROFILES="payload:window,..."` (bytes) adds raw quinn
//! rows with other loopback profiles; `QUIC_FLOOR_ACK_FREQUENCY=1` adds a row where the server
//! also uses the ACK frequency extension; `ROUNDS=n` changes the count;
//! `QUIC_FLOOR_ONLY=raw-default|raw|raw-per-request|session|request` runs one row alone (for
//! profiling), and `QUIC_FLOOR_1KB_ONLY=1` with it only the 1 KB payload.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcp_transport_core::message::RawValue;
use mcp_transport_core::{Id, Incoming, Message, Request, Response, Transport};
use mcp_transport_quic::{
    LoopbackProfile, Mode, QuicClientConfig, QuicListener, QuicServerConfig, QuicUrl, ServerIdentity, connect, raw,
};
use quinn::rustls;

const WARMUP: usize = 2_000;

/// One request/response payload pair.
struct Payload {
    name: &'static str,
    request: Message,
    result: Box<RawValue>,
}

fn payloads() -> Vec<Payload> {
    vec![
        Payload { name: "1 KB", request: request("tools/call", 284), result: result(961) },
        Payload { name: "32 KB", request: request("tools/list", 58), result: result(32_018) },
    ]
}

/// A request with id 1 whose encoding is `size` bytes.
fn request(method: &str, size: usize) -> Message {
    let make = |pad: usize| {
        let params = if pad == 0 { "{}".to_owned() } else { format!(r#"{{"p":"{}"}}"#, "x".repeat(pad)) };
        Message::Request(Request { id: Id::Number(1), method: method.into(), params: Some(raw(params)) })
    };
    let base = make(0).to_vec().len();
    // `{"p":"…"}` is 6 bytes longer than `{}` plus the padding.
    if size <= base + 6 { make(0) } else { make(size - base - 6) }
}

/// A result whose response (id 1) encodes to `size` bytes.
fn result(size: usize) -> Box<RawValue> {
    let make = |pad: usize| raw(format!(r#"{{"content":[{{"type":"text","text":"{}"}}]}}"#, "y".repeat(pad)));
    let len = |r: &RawValue| Message::Response(Response::success(Id::Number(1), r.to_owned())).to_vec().len();
    let base = len(&make(0));
    make(size.saturating_sub(base))
}

fn raw(s: String) -> Box<RawValue> {
    RawValue::from_string(s).expect("valid JSON")
}

fn line(m: &Message) -> Vec<u8> {
    let mut v = m.to_vec();
    v.push(b'\n');
    v
}

/// Percentiles of round-trip times, in microseconds.
fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// A raw echo: the client writes the request bytes, the server answers with the response
/// bytes. Either over one long-lived bidirectional stream, or (`per_request`) over a new
/// stream per request, which the client finishes after the request and the server after the
/// response.
async fn raw_echo(
    server_endpoint: quinn::Endpoint,
    connect: impl std::future::Future<Output = quinn::Connection>,
    request: Vec<u8>,
    response: Bytes,
    rounds: usize,
    per_request: bool,
) -> Vec<Duration> {
    let req_len = request.len();
    let resp_len = response.len();
    let server = tokio::spawn(async move {
        let conn = server_endpoint.accept().await.expect("incoming").await.expect("handshake");
        let mut buf = vec![0u8; req_len];
        let mut long_lived = None;
        loop {
            let (mut send, mut recv) = match long_lived.take() {
                Some(streams) => streams,
                None => match conn.accept_bi().await {
                    Ok(streams) => streams,
                    Err(_) => break,
                },
            };
            let read = if per_request {
                recv.read_to_end(req_len).await.map(drop).map_err(drop)
            } else {
                recv.read_exact(&mut buf).await.map_err(drop)
            };
            if read.is_err() || send.write_all(&response).await.is_err() {
                break;
            }
            if per_request {
                let _ = send.finish();
            } else {
                long_lived = Some((send, recv));
            }
        }
    });
    let conn = connect.await;
    let mut long_lived = None;
    let mut buf = vec![0u8; resp_len];
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..WARMUP + rounds {
        let start = Instant::now();
        let (mut send, mut recv) = match long_lived.take() {
            Some(streams) => streams,
            None => conn.open_bi().await.expect("open"),
        };
        send.write_all(&request).await.expect("write");
        if per_request {
            send.finish().expect("finish");
            let got = recv.read_to_end(resp_len).await.expect("read");
            assert_eq!(got.len(), resp_len);
        } else {
            recv.read_exact(&mut buf).await.expect("read");
            long_lived = Some((send, recv));
        }
        if i >= WARMUP {
            samples.push(start.elapsed());
        }
    }
    conn.close(0u32.into(), b"done");
    let _ = server.await;
    samples
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

/// Raw quinn with quinn's defaults (endpoint and transport), our TLS (ALPN mcp, ring).
async fn raw_default(p: &Payload, rounds: usize) -> Vec<Duration> {
    let identity = ServerIdentity::default().load().expect("certificate");
    let mut server = raw::server_config(&QuicServerConfig::default(), &identity, false).expect("server config");
    server.transport_config(Arc::new(quinn::TransportConfig::default()));
    let endpoint = quinn::Endpoint::server(server, localhost()).expect("server endpoint");
    let addr = endpoint.local_addr().expect("addr");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.certificate_der().to_vec().into()).expect("root");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"mcp".to_vec()];
    let client =
        quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("quic tls")));
    let client_endpoint = quinn::Endpoint::client(localhost()).expect("client endpoint");
    let connect = async move {
        client_endpoint.connect_with(client, addr, "localhost").expect("connect").await.expect("handshake")
    };
    raw_echo(endpoint, connect, line(&p.request), response_bytes(p), rounds, false).await
}

/// Raw quinn with our endpoint and transport settings (the loopback profile given), on one
/// long-lived stream or a stream per request.
async fn raw_tuned(p: &Payload, rounds: usize, profile: Option<LoopbackProfile>) -> Vec<Duration> {
    raw_ours(p, rounds, profile, false).await
}

async fn raw_ours(p: &Payload, rounds: usize, profile: Option<LoopbackProfile>, per_request: bool) -> Vec<Duration> {
    raw_ours_with(p, rounds, profile, per_request, false).await
}

/// `ack_frequency`: the server (the sender of the large responses) also asks the client to
/// acknowledge less often (the QUIC ACK frequency extension, quinn's default parameters).
async fn raw_ours_with(
    p: &Payload,
    rounds: usize,
    profile: Option<LoopbackProfile>,
    per_request: bool,
    ack_frequency: bool,
) -> Vec<Duration> {
    let mut config = QuicServerConfig::default();
    config.settings.loopback = profile;
    let identity = config.identity.load().expect("certificate");
    let mut server = raw::server_config(&config, &identity, true).expect("server config");
    if ack_frequency {
        let settings = &config.settings;
        let mut transport = raw::transport_config(settings, settings.max_concurrent_streams, true);
        transport.ack_frequency_config(Some(quinn::AckFrequencyConfig::default()));
        server.transport_config(Arc::new(transport));
    }
    let endpoint = raw::endpoint(localhost(), Some(server)).expect("server endpoint");
    let url = QuicUrl::from_addr(endpoint.local_addr().expect("addr"), Some(identity.fingerprint()));
    let mut client = QuicClientConfig::default();
    client.settings.loopback = profile;
    let connect = async move {
        let (_endpoint, conn) = raw::connect(&url, &client).await.expect("connect");
        conn
    };
    raw_echo(endpoint, connect, line(&p.request), response_bytes(p), rounds, per_request).await
}

fn response_bytes(p: &Payload) -> Bytes {
    Bytes::from(line(&Message::Response(Response::success(Id::Number(1), p.result.clone()))))
}

/// Our transport: the server answers each request with the payload's result.
async fn ours(p: &Payload, rounds: usize, mode: Mode) -> Vec<Duration> {
    let config = QuicServerConfig { mode, ..QuicServerConfig::default() };
    let listener = QuicListener::bind(localhost(), config).await.expect("bind");
    let url = listener.url().to_string();
    let result = p.result.clone();
    let server = tokio::spawn(async move {
        let Transport { sender, mut receiver, .. } = listener.accept().await.expect("accept");
        while let Some(Ok(Incoming::Message(Message::Request(r)))) = receiver.recv().await {
            if sender.send(Response::success(r.id, result.clone())).await.is_err() {
                break;
            }
        }
    });
    let client_config = QuicClientConfig { mode, ..QuicClientConfig::default() };
    let Transport { sender, mut receiver, .. } = connect(&url, &client_config).await.expect("connect");
    let mut samples = Vec::with_capacity(rounds);
    let Message::Request(template) = &p.request else { unreachable!("payload requests are requests") };
    for i in 0..WARMUP + rounds {
        let mut req = template.clone();
        req.id = Id::Number(i as i64);
        let start = Instant::now();
        sender.send(req).await.expect("send");
        match receiver.recv().await {
            Some(Ok(Incoming::Message(Message::Response(r)))) if r.id == Some(Id::Number(i as i64)) => {}
            other => panic!("unexpected {other:?}"),
        }
        if i >= WARMUP {
            samples.push(start.elapsed());
        }
    }
    sender.close(Duration::from_secs(5)).await.expect("close");
    drop((sender, receiver));
    let _ = server.await;
    samples
}

fn parse_profiles() -> Vec<LoopbackProfile> {
    std::env::var("QUIC_FLOOR_PROFILES")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (payload, window) = s.split_once(':').expect("payload:window");
            LoopbackProfile {
                udp_payload: payload.parse().expect("payload bytes"),
                initial_window: window.parse().expect("window bytes"),
            }
        })
        .collect()
}

async fn measure() -> String {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(20_000);
    let payloads = payloads();
    let mut out = String::new();
    let default_profile = LoopbackProfile::default();
    out.push_str(&format!(
        "request/response sizes: {}\n",
        payloads
            .iter()
            .map(|p| format!(
                "{} = {} B request, {} B response",
                p.name,
                line(&p.request).len() - 1,
                response_bytes(p).len() - 1
            ))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    out.push_str(&format!(
        "loopback profile: {} B UDP payload, {} B initial window; {WARMUP} warm-up + {rounds} round trips\n\n",
        default_profile.udp_payload, default_profile.initial_window
    ));
    out.push_str("| path | 1 KB p50 / p99 (µs) | 32 KB p50 / p99 (µs) |\n|---|---|---|\n");
    let mut rows: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut add = |name: String, results: Vec<(f64, f64)>| {
        rows.push((name, results));
    };
    let only = std::env::var("QUIC_FLOOR_ONLY").ok();
    if only.is_some() {
        // Profiling one row: run it and report it alone.
        let mut r = Vec::new();
        let skip_32k = std::env::var("QUIC_FLOOR_1KB_ONLY").is_ok();
        for p in payloads.iter().take(if skip_32k { 1 } else { 2 }) {
            r.push(stats(match only.as_deref() {
                Some("raw-default") => raw_default(p, rounds).await,
                Some("raw") => raw_tuned(p, rounds, Some(default_profile)).await,
                Some("raw-per-request") => raw_ours(p, rounds, Some(default_profile), true).await,
                Some("session") => ours(p, rounds, Mode::Session).await,
                Some("request") => ours(p, rounds, Mode::Request).await,
                other => panic!("QUIC_FLOOR_ONLY={other:?}: use raw-default, raw, session or request"),
            }));
        }
        let cells: Vec<String> = r.iter().map(|(p50, p99)| format!("{p50:.1} / {p99:.1}")).collect();
        out.push_str(&format!("| {} | {} |\n", only.unwrap_or_default(), cells.join(" | ")));
        return out;
    }
    let mut r = Vec::new();
    for p in &payloads {
        r.push(stats(raw_default(p, rounds).await));
    }
    add("raw quinn, one stream, quinn defaults".into(), r);
    let mut r = Vec::new();
    for p in &payloads {
        r.push(stats(raw_tuned(p, rounds, Some(default_profile)).await));
    }
    add("raw quinn, one stream, our settings".into(), r);
    let mut r = Vec::new();
    for p in &payloads {
        r.push(stats(raw_ours(p, rounds, Some(default_profile), true).await));
    }
    add("raw quinn, stream per request, our settings".into(), r);
    if std::env::var("QUIC_FLOOR_ACK_FREQUENCY").is_ok() {
        let mut r = Vec::new();
        for p in &payloads {
            r.push(stats(raw_ours_with(p, rounds, Some(default_profile), false, true).await));
        }
        add("raw quinn, one stream, our settings + ACK frequency".into(), r);
    }
    for profile in parse_profiles() {
        let mut r = Vec::new();
        for p in &payloads {
            r.push(stats(raw_tuned(p, rounds, Some(profile)).await));
        }
        add(format!("raw quinn, payload {} B, window {} B", profile.udp_payload, profile.initial_window), r);
    }
    for (mode, name) in [(Mode::Session, "ours, session mode"), (Mode::Request, "ours, request mode")] {
        let mut r = Vec::new();
        for p in &payloads {
            r.push(stats(ours(p, rounds, mode).await));
        }
        add(name.into(), r);
    }
    for (name, results) in &rows {
        out.push_str(&format!(
            "| {name} | {:.1} / {:.1} | {:.1} / {:.1} |\n",
            results[0].0, results[0].1, results[1].0, results[1].1
        ));
    }
    let find = |n: &str| rows.iter().find(|(name, _)| name == n).map(|(_, r)| r.clone()).expect("row");
    let raw_ours = find("raw quinn, one stream, our settings");
    out.push('\n');
    let raw_per_request = find("raw quinn, stream per request, our settings");
    for name in ["ours, session mode", "ours, request mode"] {
        let r = find(name);
        out.push_str(&format!(
            "{name}: 1 KB p50 = {:.2}x raw quinn one stream (our settings), {:.2}x raw quinn one stream (defaults), \
             {:.2}x raw quinn stream per request; 32 KB p50 = {:.2}x our 1 KB\n",
            r[0].0 / raw_ours[0].0,
            r[0].0 / find("raw quinn, one stream, quinn defaults")[0].0,
            r[0].0 / raw_per_request[0].0,
            r[1].0 / r[0].0
        ));
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let report = runtime.block_on(async { tokio::spawn(measure()).await.expect("measurement task") });
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
}
