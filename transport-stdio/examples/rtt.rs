//! Round trips of a ~1 KB request and its ~1 KB response to a child process over stdio, next
//! to raw-pipe floors measured in the same run.
//!
//! ```text
//! cargo run --release -p mcp-transport-stdio --example rtt [-- --runs R --n N --warmup W --workers K]
//! ```
//!
//! The child is this same example binary, started in one of its child modes:
//!
//! - `echo`: an MCP server over [`stdio_transport`] that answers each request with its params
//!   (non-blocking stdin/stdout, the default);
//! - `echo-blocking`: the same with `nonblocking: false` (tokio's blocking-pool stdio);
//! - `raw-echo`: a plain blocking loop copying stdin to stdout, for the floors.
//!
//! Cases, each one request in flight at a time:
//!
//! - **raw floor, blocking parent**: the parent writes the request line and reads the echoed
//!   line with blocking `std` pipe I/O; the child is `raw-echo`;
//! - **raw floor, tokio parent**: the same bytes through tokio's child pipes on the same
//!   runtime as the transport;
//! - **transport**: [`spawn`] + `Sender::send` + `Receiver::recv` against `echo`
//!   (and against `echo-blocking`).
//!
//! `--workers 0` (the default) runs the parent on a current-thread runtime; `K > 0` on a
//! multi-thread runtime with K workers, measuring from a spawned task. Each case runs `R`
//! times, interleaved; the table shows the median of the runs' percentiles.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mcp_transport_core::message::{RawValue, to_raw};
use mcp_transport_core::{Id, Incoming, Message, Request, Response};
use mcp_transport_stdio::{ChildConfig, StdioConfig, spawn, stdio_transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("echo") => echo(true),
        Some("echo-blocking") => echo(false),
        Some("raw-echo") => raw_echo(),
        Some("raw-echo-tokio") => raw_echo_tokio(),
        _ => measure(&args),
    }
}

/// The request of round trip `i`: a `tools/call` whose params make about 1 KB.
fn request(i: i64) -> Message {
    let params = format!(r#"{{"name":"echo","arguments":{{"text":"{}"}}}}"#, "x".repeat(940));
    Message::Request(Request {
        id: Id::Number(i),
        method: "tools/call".into(),
        params: Some(RawValue::from_string(params).expect("valid JSON")),
    })
}

fn echo(nonblocking: bool) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut t = stdio_transport(StdioConfig { nonblocking, ..StdioConfig::default() });
        while let Some(item) = t.receiver.recv().await {
            if let Ok(Incoming::Message(Message::Request(r))) = item {
                let result = r.params.unwrap_or_else(|| to_raw(&()).expect("null"));
                if t.sender.send(Response::success(r.id, result)).await.is_err() {
                    break;
                }
            }
        }
    });
}

fn raw_echo() {
    let mut stdin = io::stdin().lock();
    let mut stdout = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned().expect("dup stdout"));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stdout.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// The same copy loop on a current-thread tokio runtime, over the pipes in non-blocking mode.
fn raw_echo_tokio() {
    use tokio::net::unix::pipe;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().expect("dup");
        let mut stdin = pipe::Receiver::from_owned_fd(dup(io::stdin().as_fd())).expect("stdin is a pipe");
        let mut stdout = pipe::Sender::from_owned_fd(dup(io::stdout().as_fd())).expect("stdout is a pipe");
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stdout.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
}

struct Options {
    /// Cases to run (all when empty), by child mode name (`blocking` for the first floor).
    only: Vec<String>,
    runs: usize,
    n: usize,
    warmup: usize,
    workers: usize,
}

fn options(args: &[String]) -> Options {
    let mut o = Options { only: Vec::new(), runs: 3, n: 20_000, warmup: 2_000, workers: 0 };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--only" {
            o.only.extend(it.next().into_iter().map(|c| c.to_string()));
            continue;
        }
        let value = it.next().and_then(|v| v.parse().ok());
        let Some(value) = value else {
            eprintln!("usage: rtt [--runs R] [--n N] [--warmup W] [--workers K] [--only CASE]...");
            std::process::exit(2);
        };
        match flag.as_str() {
            "--runs" => o.runs = value,
            "--n" => o.n = value,
            "--warmup" => o.warmup = value,
            "--workers" => o.workers = value,
            _ => {
                eprintln!("unknown option {flag}");
                std::process::exit(2);
            }
        }
    }
    o
}

fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn exe() -> std::path::PathBuf {
    std::env::current_exe().expect("path of this example")
}

/// Blocking parent, blocking child: the floor of a pipe round trip.
fn raw_blocking(warmup: usize, n: usize) -> Vec<Duration> {
    let mut child = std::process::Command::new(exe())
        .arg("raw-echo")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn raw-echo");
    let mut to = child.stdin.take().expect("stdin");
    let mut from = io::BufReader::new(child.stdout.take().expect("stdout"));
    let line = [request(1).to_vec(), b"\n".to_vec()].concat();
    let mut back = Vec::with_capacity(line.len());
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let start = Instant::now();
        to.write_all(&line).expect("write");
        back.clear();
        from.read_until(b'\n', &mut back).expect("read");
        if i >= warmup {
            samples.push(start.elapsed());
        }
        assert_eq!(back.len(), line.len());
    }
    drop(to);
    child.wait().expect("raw-echo exit");
    samples
}

/// Tokio parent (the transport's runtime), blocking child, the same bytes.
async fn raw_tokio(child_mode: &str, warmup: usize, n: usize) -> Vec<Duration> {
    let mut child = tokio::process::Command::new(exe())
        .arg(child_mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn raw-echo");
    let mut to = child.stdin.take().expect("stdin");
    let mut from = child.stdout.take().expect("stdout");
    let line = [request(1).to_vec(), b"\n".to_vec()].concat();
    let mut buf = vec![0u8; 64 * 1024];
    let mut samples = Vec::with_capacity(n);
    for i in 0..warmup + n {
        let start = Instant::now();
        to.write_all(&line).await.expect("write");
        let mut got = 0;
        while got == 0 || buf[got - 1] != b'\n' {
            let k = from.read(&mut buf[got..]).await.expect("read");
            assert!(k > 0, "raw-echo ended");
            got += k;
        }
        if i >= warmup {
            samples.push(start.elapsed());
        }
        assert_eq!(got, line.len());
    }
    drop(to);
    child.wait().await.expect("raw-echo exit");
    samples
}

/// No I/O: the codec work of one round trip (encode the request, decode it, encode the
/// response, decode it), to show what message processing costs next to the floors.
fn codec_only(warmup: usize, n: usize) -> Vec<Duration> {
    use tokio_util::bytes::BytesMut;
    use tokio_util::codec::Decoder;
    let mut codec = mcp_transport_core::Codec::lines();
    let mut buf = BytesMut::with_capacity(4096);
    let mut samples = Vec::with_capacity(n);
    for i in 0..(warmup + n) as i64 {
        let msg = request(i);
        let start = Instant::now();
        codec.encode_value(&msg, &mut buf).expect("encode");
        let Some(Incoming::Message(Message::Request(r))) = codec.decode(&mut buf).expect("decode") else {
            panic!("not a request")
        };
        let resp = Message::Response(Response::success(r.id, r.params.expect("params")));
        codec.encode_value(&resp, &mut buf).expect("encode");
        let Some(Incoming::Message(Message::Response(_))) = codec.decode(&mut buf).expect("decode") else {
            panic!("not a response")
        };
        if i as usize >= warmup {
            samples.push(start.elapsed());
        }
    }
    samples
}

/// `spawn` + the transport against an `echo` child.
async fn transport(mode: &str, warmup: usize, n: usize) -> Vec<Duration> {
    let mut child = spawn(ChildConfig::new(exe()).arg(mode)).expect("spawn echo");
    let mut t = child.take_transport().expect("transport");
    let mut samples = Vec::with_capacity(n);
    for i in 0..(warmup + n) as i64 {
        let msg = request(i);
        let start = Instant::now();
        t.sender.send(msg).await.expect("send");
        match t.receiver.recv().await {
            Some(Ok(Incoming::Message(Message::Response(r)))) if r.id == Some(Id::Number(i)) => {}
            other => panic!("unexpected {other:?}"),
        }
        if i as usize >= warmup {
            samples.push(start.elapsed());
        }
    }
    t.sender.close(Duration::from_secs(5)).await.expect("close");
    let status = child.shutdown().await.expect("shutdown");
    assert!(status.success(), "echo child: {status}");
    samples
}

fn measure(args: &[String]) {
    let o = options(args);
    let rt = if o.workers == 0 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(o.workers).enable_all().build()
    }
    .expect("runtime");
    let on_runtime = |case: &str| {
        let case = case.to_string();
        let (warmup, n) = (o.warmup, o.n);
        rt.block_on(async move {
            let fut = async move {
                match case.as_str() {
                    "raw-echo" | "raw-echo-tokio" => raw_tokio(&case, warmup, n).await,
                    "echo" | "echo-blocking" => transport(&case, warmup, n).await,
                    _ => unreachable!("known cases"),
                }
            };
            if o.workers == 0 { fut.await } else { tokio::spawn(fut).await.expect("measurement task") }
        })
    };
    let cases = [
        ("raw floor: blocking parent, blocking child", "blocking"),
        ("raw floor: tokio parent, blocking child", "raw-echo"),
        ("raw floor: tokio parent, tokio child", "raw-echo-tokio"),
        ("transport -> stdio_transport child (non-blocking)", "echo"),
        ("transport -> stdio_transport child (blocking pool)", "echo-blocking"),
        ("codec only: encode + decode request and response, no I/O", "codec"),
    ];
    let mut p50 = vec![Vec::new(); cases.len()];
    let mut p99 = vec![Vec::new(); cases.len()];
    for _ in 0..o.runs {
        for (k, (_, case)) in cases.iter().enumerate() {
            if !o.only.is_empty() && !o.only.iter().any(|c| c == case) {
                continue;
            }
            let mut samples = match *case {
                "blocking" => raw_blocking(o.warmup, o.n),
                "codec" => codec_only(o.warmup, o.n),
                _ => on_runtime(case),
            };
            let (a, b) = percentiles(&mut samples);
            p50[k].push(a);
            p99[k].push(b);
        }
    }
    let runtime = if o.workers == 0 { "current-thread".to_string() } else { format!("{}-worker", o.workers) };
    println!(
        "{} round trips of a {}-byte request after {} warm-up, {} runs (median of runs), {runtime} parent runtime",
        o.n,
        request(1).to_vec().len() + 1,
        o.warmup,
        o.runs
    );
    println!("| case | p50 µs | p99 µs | p50 / floor 1 | p50 / floor 2 | p50 / floor 3 |");
    println!("|---|---|---|---|---|---|");
    let floor = |k: usize| if p50[k].is_empty() { f64::NAN } else { median(p50[k].clone()) };
    let floors = [floor(0), floor(1), floor(2)];
    for (k, (label, _)) in cases.iter().enumerate() {
        if p50[k].is_empty() {
            continue;
        }
        let (a, b) = (median(p50[k].clone()), median(p99[k].clone()));
        let ratios = floors.map(|f| format!("{:.2}", a / f));
        println!("| {label} | {a:.1} | {b:.1} | {} |", ratios.join(" | "));
    }
}
