//! Round trips over WebSocket on loopback, measured side by side in one run: raw
//! fastwebsockets echo, raw tokio-tungstenite echo (8 KiB read buffer), and this crate's
//! transport (client `Transport` ↔ server `Transport`).
//!
//! `cargo run --release -p mcp-transport-ws --example ws_floor [-- WORKERS RUNS]`
//!
//! Payloads (the shapes of ../shared/PERF.md): "1 KB" is a 284-byte `tools/call` request
//! answered by a 961-byte response; "32 KB" a 58-byte `tools/list` request answered by a
//! 32,018-byte response. Every path sends exactly these bytes as text frames. The raw echoes
//! answer each frame with the pre-encoded response; ours parses each message's envelope,
//! builds a `Response` with the request's id and the (cloned) result, and encodes it.
//! 20,000 round trips after 2,000 warm-up; both ends run as tasks on one multi-thread runtime
//! (2 workers by default), never on the thread that blocks on it; medians of the runs.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use futures_util::{SinkExt, StreamExt};
use mcp_transport_core::{Incoming, Message, Response};
use mcp_transport_ws::{WsClientConfig, WsConfig, WsListener, connect};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role as TRole, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Utf8Bytes};

const WARMUP: usize = 2_000;
const N: usize = 20_000;

/// A request and its response, as JSON text.
#[derive(Clone)]
struct Exchange {
    name: &'static str,
    request: String,
    response: String,
}

/// Pads `template` (with one `{}`) with `x`s to exactly `size` bytes.
fn padded(template: &str, size: usize) -> String {
    let base = template.replace("{}", "").len();
    template.replace("{}", &"x".repeat(size - base))
}

fn exchanges() -> Vec<Exchange> {
    let one = Exchange {
        name: "1 KB",
        request: padded(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"{}"}}}"#,
            284,
        ),
        response: padded(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{}"}]}}"#, 961),
    };
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let text = Exchange {
        name: "32 KB text",
        request: list.into(),
        response: padded(r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{}"}]}}"#, 32_018),
    };
    // About 200 tool objects: the envelope parser must step through every token of them.
    let tools: String = (0..)
        .map(|i| {
            format!(
                r#"{{"name":"tool_{i}","description":"Tool number {i} of the fixture list.","inputSchema":{{"type":"object","properties":{{"text":{{"type":"string"}}}}}}}},"#
            )
        })
        .scan(0usize, |len, t| {
            *len += t.len();
            (*len < 31_000).then_some(t)
        })
        .collect();
    let head = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}"#, tools);
    let tail = r#"{"name":"last","description":"{}","inputSchema":{"type":"object"}}]}}"#;
    let response = format!("{head}{}", padded(tail, 32_018 - head.len()));
    let structured = Exchange { name: "32 KB tools/list", request: list.into(), response };
    for x in [&text, &structured] {
        assert_eq!((x.request.len(), x.response.len()), (58, 32_018));
    }
    assert_eq!((one.request.len(), one.response.len()), (284, 961));
    vec![one, text, structured]
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (client, server) = tokio::join!(TcpStream::connect(listener.local_addr().expect("addr")), listener.accept());
    let (client, (server, _)) = (client.expect("connect"), server.expect("accept"));
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    (client, server)
}

/// Records a round trip once the warm-up is over.
fn record(samples: &mut Vec<Duration>, i: usize, start: Instant) {
    if i >= WARMUP {
        samples.push(start.elapsed());
    }
}

/// Raw fastwebsockets: the server echoes the pre-encoded response to every text frame.
async fn raw_fastwebsockets(x: &Exchange) -> Vec<Duration> {
    let (client, server) = tcp_pair().await;
    let response = x.response.clone().into_bytes();
    tokio::spawn(async move {
        let mut ws = WebSocket::after_handshake(server, Role::Server);
        ws.set_auto_close(true);
        ws.set_auto_pong(true);
        loop {
            match ws.read_frame().await {
                Ok(frame) if frame.opcode == OpCode::Text => {
                    if ws.write_frame(Frame::text(Payload::Borrowed(&response))).await.is_err() {
                        return;
                    }
                }
                Ok(frame) if frame.opcode == OpCode::Close => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let mut ws = WebSocket::after_handshake(client, Role::Client);
    let request = x.request.clone().into_bytes();
    let mut samples = Vec::with_capacity(N);
    for i in 0..WARMUP + N {
        let start = Instant::now();
        ws.write_frame(Frame::text(Payload::Borrowed(&request))).await.expect("write");
        let frame = ws.read_frame().await.expect("read");
        assert_eq!(frame.payload.len(), x.response.len());
        record(&mut samples, i, start);
    }
    let _ = ws.write_frame(Frame::close(1000, b"")).await;
    samples
}

/// Raw tokio-tungstenite with an 8 KiB read buffer on both ends.
async fn raw_tungstenite(x: &Exchange) -> Vec<Duration> {
    let (client, server) = tcp_pair().await;
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let response = Utf8Bytes::from(x.response.clone());
    tokio::spawn(async move {
        let mut ws = WebSocketStream::from_raw_socket(server, TRole::Server, Some(config)).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_text() && ws.send(tungstenite::Message::Text(response.clone())).await.is_err() {
                return;
            }
        }
    });
    let mut ws = WebSocketStream::from_raw_socket(client, TRole::Client, Some(config)).await;
    let request = Utf8Bytes::from(x.request.clone());
    let mut samples = Vec::with_capacity(N);
    for i in 0..WARMUP + N {
        let start = Instant::now();
        ws.send(tungstenite::Message::Text(request.clone())).await.expect("send");
        match ws.next().await {
            Some(Ok(tungstenite::Message::Text(t))) => assert_eq!(t.len(), x.response.len()),
            other => panic!("unexpected {other:?}"),
        }
        record(&mut samples, i, start);
    }
    let _ = ws.close(None).await;
    samples
}

/// This crate: client `Transport` ↔ server `Transport` over `ws://127.0.0.1`.
async fn ours(x: &Exchange) -> Vec<Duration> {
    let listener = WsListener::bind("ws://127.0.0.1:0/mcp", WsConfig::default()).await.expect("bind");
    let config = WsClientConfig::default();
    let (client, server) = tokio::join!(connect(listener.url(), &config), listener.accept());
    let (mut client, mut server) = (client.expect("connect"), server.expect("accept"));
    let request = Message::from_slice(x.request.as_bytes()).expect("request");
    let Message::Response(template) = Message::from_slice(x.response.as_bytes()).expect("response") else {
        panic!("not a response")
    };
    assert_eq!(request.to_vec(), x.request.as_bytes(), "the same bytes go on the wire");
    assert_eq!(Message::Response(template.clone()).to_vec(), x.response.as_bytes());
    let result = template.outcome.expect("a result");
    tokio::spawn(async move {
        while let Some(Ok(Incoming::Message(Message::Request(r)))) = server.receiver.recv().await {
            if server.sender.send(Response::success(r.id, result.clone())).await.is_err() {
                return;
            }
        }
    });
    let mut samples = Vec::with_capacity(N);
    for i in 0..WARMUP + N {
        let start = Instant::now();
        client.sender.send(request.clone()).await.expect("send");
        match client.receiver.recv().await {
            Some(Ok(Incoming::Message(Message::Response(_)))) => {}
            other => panic!("unexpected {other:?}"),
        }
        record(&mut samples, i, start);
    }
    samples
}

#[derive(Clone, Copy)]
struct Summary {
    p50: f64,
    p99: f64,
}

fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    Summary { p50: at(0.50), p99: at(0.99) }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// Mean cost of parsing the envelopes of the request and the response, as the two receivers
/// of one round trip do (transport-core's `Incoming::parse`; every transport pays it).
fn parse_cost(x: &Exchange) -> f64 {
    let start = Instant::now();
    for _ in 0..2_000 {
        std::hint::black_box(Incoming::parse(std::hint::black_box(x.request.as_bytes())));
        std::hint::black_box(Incoming::parse(std::hint::black_box(x.response.as_bytes())));
    }
    start.elapsed().as_secs_f64() * 1e6 / 2_000.0
}

const PATHS: [&str; 3] = [
    "raw fastwebsockets echo",
    "raw tokio-tungstenite echo, 8 KiB read buffer",
    "mcp-transport-ws Transport ↔ Transport",
];

async fn measure(path: usize, x: &Exchange) -> Summary {
    summarize(match path {
        0 => raw_fastwebsockets(x).await,
        1 => raw_tungstenite(x).await,
        _ => ours(x).await,
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    // An optional filter, for profiling: a substring of "PAYLOAD | PATH" (e.g. "1 KB | mcp").
    let filter = args.next().unwrap_or_default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("runtime");
    let xs = exchanges();
    let cases: Vec<(usize, usize)> = (0..xs.len())
        .flat_map(|e| (0..PATHS.len()).map(move |p| (e, p)))
        .filter(|&(e, p)| format!("{} | {}", xs[e].name, PATHS[p]).contains(&filter))
        .collect();
    let mut results: Vec<Vec<Summary>> = vec![Vec::new(); cases.len()];
    let mut parse: Vec<Vec<f64>> = vec![Vec::new(); xs.len()];
    for _ in 0..runs {
        for (c, &(e, p)) in cases.iter().enumerate() {
            let x = xs[e].clone();
            // Every measurement runs as a task on the worker pool, never on the blocking thread.
            let s = rt.block_on(async move { tokio::spawn(async move { measure(p, &x).await }).await.expect("task") });
            results[c].push(s);
        }
        for (e, x) in xs.iter().enumerate() {
            let x = x.clone();
            parse[e].push(rt.block_on(async move { tokio::spawn(async move { parse_cost(&x) }).await.expect("task") }));
        }
    }
    println!("{workers} worker(s), {runs} run(s), {N} round trips after {WARMUP} warm-up; µs, medians of runs");
    println!();
    println!("| payload | path | p50 | p99 | p50 / fastest raw p50 |");
    println!("|---|---|---|---|---|");
    for (e, x) in xs.iter().enumerate() {
        let mine: Vec<(usize, Summary)> = cases
            .iter()
            .zip(&results)
            .filter(|((ce, _), _)| *ce == e)
            .map(|((_, p), r)| {
                (
                    *p,
                    Summary {
                        p50: median(r.iter().map(|s| s.p50).collect()),
                        p99: median(r.iter().map(|s| s.p99).collect()),
                    },
                )
            })
            .collect();
        let fastest = mine.iter().filter(|(p, _)| *p < 2).map(|(_, s)| s.p50).fold(f64::INFINITY, f64::min);
        for (p, s) in &mine {
            println!("| {} | {} | {:.1} | {:.1} | {:.2} |", x.name, PATHS[*p], s.p50, s.p99, s.p50 / fastest);
        }
        let parsed = median(parse[e].clone());
        println!(
            "| {} | (envelope parse of request + response alone, `Incoming::parse`, mean) | {parsed:.1} | | |",
            x.name
        );
        if let Some((_, ours)) = mine.iter().find(|(p, _)| *p == 2) {
            let rest = ours.p50 - parsed;
            println!("| {} | (mcp-transport-ws p50 minus that parse) | {rest:.1} | | {:.2} |", x.name, rest / fastest);
        }
    }
}
