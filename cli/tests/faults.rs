//! Faults behind `mcpt gateway`, end to end with real processes: an upstream killed with
//! calls in flight, an upstream that hangs (SIGSTOP), and a downstream client that stops
//! reading its answers.
//!
//! Timeouts here are hang guards only. What each fault looked like (codes, how long the
//! pending calls took to fail) is written to stderr: `cargo test -p mcpt --test faults --
//! --nocapture`.

#![allow(clippy::print_stderr, reason = "the tests log what each fault looked like")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::ServeProcess;
use mcp_session::SessionError;
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_transport_uds::{UdsAddr, UdsConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The longest any single step may take before the test calls it a hang.
const GUARD: Duration = Duration::from_secs(25);

/// Two `mcpt serve` upstreams (alpha, beta) on Unix sockets behind one `mcpt gateway`.
struct Rig {
    dir: tempfile::TempDir,
    alpha: Option<ServeProcess>,
    _beta: ServeProcess,
    gateway: ServeProcess,
}

impl Rig {
    /// Starts the upstreams and the gateway; `alpha_extra` is appended to alpha's
    /// `[[upstream]]` table.
    fn start(alpha_extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let alpha = ServeProcess::start(&unix(&dir.path().join("alpha.sock")), "unix:");
        let beta = ServeProcess::start(&unix(&dir.path().join("beta.sock")), "unix:");
        let config = dir.path().join("gateway.toml");
        // A short backoff keeps the recovery within seconds (the default backs off up to 30 s).
        // The breaker keeps its defaults (open for 30 s after 5 failures): a killed upstream
        // with 5 calls in flight opens it, and the reconnection must close it again.
        let text = format!(
            "listen = [\"{}\"]\nhealth_interval = \"off\"\n\n[backoff]\ninitial = \"100ms\"\nmax = \"1s\"\n\n\
             [[upstream]]\nname = \"alpha\"\nurl = \"{}\"\n{alpha_extra}\n\
             [[upstream]]\nname = \"beta\"\nurl = \"{}\"\n",
            unix(&dir.path().join("gateway.sock")),
            unix(&dir.path().join("alpha.sock")),
            unix(&dir.path().join("beta.sock")),
        );
        std::fs::write(&config, text).unwrap();
        let config = config.display().to_string();
        let gateway = ServeProcess::start_command(&["gateway", "--config", &config], "unix:");
        Rig { dir, alpha: Some(alpha), _beta: beta, gateway }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn alpha_pid(&self) -> u32 {
        self.alpha.as_ref().expect("alpha runs").pid()
    }

    /// A new MCP client session on the gateway.
    async fn client(&self) -> Client {
        let addr = UdsAddr::parse(&self.gateway.url).unwrap();
        let transport = mcp_transport_uds::connect(&addr, &UdsConfig::default()).await.unwrap();
        let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
        Client::connect(transport, opts).await.unwrap()
    }
}

fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`) to a process.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Calls a tool under the hang guard.
async fn call(client: &Client, tool: &str, args: Value) -> Result<Value, SessionError> {
    tokio::time::timeout(GUARD, client.call_tool(tool, &args))
        .await
        .unwrap_or_else(|_| panic!("{tool} hung for {GUARD:?}"))
}

/// `echo` through the gateway must answer with its text.
async fn echo_works(client: &Client, tool: &str, text: &str) {
    let result = call(client, tool, json!({ "text": text })).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert_eq!(result["content"][0]["text"], text, "{result}");
}

/// Polls `echo` on `tool` until it answers (the upstream is back), under the hang guard.
/// Returns the errors seen meanwhile.
async fn until_echo_works(client: &Client, tool: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + GUARD;
    loop {
        match call(client, tool, json!({ "text": "back" })).await {
            Ok(result) => {
                assert_eq!(result["content"][0]["text"], "back", "{result}");
                return seen;
            }
            Err(e) => {
                let e = e.rpc_error().map_or_else(|| e.to_string(), |o| format!("{} {}", o.code, o.message));
                // One entry per kind of error, not per countdown of "retry after".
                let e = e.split("; retry after").next().unwrap_or_default().to_owned();
                if seen.last() != Some(&e) {
                    seen.push(e);
                }
            }
        }
        assert!(Instant::now() < deadline, "{tool} did not recover within {GUARD:?}; errors: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The JSON-RPC error of a failed call, or a panic naming what came instead.
fn rpc_error(outcome: &Result<Value, SessionError>) -> (i64, String) {
    match outcome {
        Err(e) => match e.rpc_error() {
            Some(o) => (o.code, o.message.clone()),
            None => panic!("a JSON-RPC error was expected, not {e}"),
        },
        Ok(v) => panic!("the call was expected to fail: {v}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upstream_fails_pending_calls_at_once_and_comes_back() {
    let mut rig = Rig::start("");
    let one = rig.client().await;
    let two = rig.client().await;
    echo_works(&one, "alpha__echo", "before").await;
    echo_works(&two, "beta__echo", "before").await;

    // Five calls that would take 30 s, from two sessions.
    let mut pending = Vec::new();
    for i in 0..5 {
        let client = if i % 2 == 0 { one.clone() } else { two.clone() };
        pending.push(tokio::spawn(async move {
            let outcome = client.call_tool("alpha__sleep", &json!({ "ms": 30_000 })).await;
            (outcome, Instant::now())
        }));
    }
    // Let them reach alpha (if one had not, it fails the same way: alpha is gone).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    signal(rig.alpha_pid(), "KILL");
    echo_works(&one, "beta__echo", "while alpha dies").await;

    for task in pending {
        let (outcome, at) = tokio::time::timeout(GUARD, task)
            .await
            .expect("a pending call hung after its upstream was killed")
            .unwrap();
        let (code, message) = rpc_error(&outcome);
        eprintln!("pending alpha__sleep failed {:?} after the kill: {code} {message}", at - killed);
        assert_eq!(code, mcp_gateway::UPSTREAM_UNAVAILABLE, "{message}");
        assert!(message.contains("alpha"), "the error names the upstream: {message}");
    }

    // While alpha is down: calls to it fail with -32030, beta works on the same sessions.
    for client in [&one, &two] {
        let (code, message) = rpc_error(&call(client, "alpha__echo", json!({ "text": "down" })).await);
        eprintln!("alpha__echo while alpha is down: {code} {message}");
        assert_eq!(code, mcp_gateway::UPSTREAM_UNAVAILABLE, "{message}");
        assert!(message.contains("alpha"), "{message}");
        echo_works(client, "beta__echo", "alpha is down").await;
    }

    // alpha comes back on the same socket path: the gateway reconnects, same sessions.
    drop(rig.alpha.take());
    rig.alpha = Some(ServeProcess::start(&unix(&rig.path("alpha.sock")), "unix:"));
    let restarted = Instant::now();
    let seen = until_echo_works(&one, "alpha__echo").await;
    eprintln!("alpha__echo answered again {:?} after the restart; errors meanwhile: {seen:?}", restarted.elapsed());
    echo_works(&two, "alpha__echo", "two is back too").await;
    echo_works(&two, "beta__echo", "beta still").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_times_out_and_recovers_after_sigcont() {
    let rig = Rig::start("request_timeout = \"1s\"\n");
    let client = rig.client().await;
    echo_works(&client, "alpha__echo", "before").await;

    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.call_tool("alpha__sleep", &json!({ "ms": 30_000 })).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopped = Instant::now();
    signal(rig.alpha_pid(), "STOP");
    // Resumes alpha even when an assertion below fails, so nothing outlives the test stopped.
    struct Resume(u32);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").args(["-CONT", &self.0.to_string()]).status();
        }
    }
    let resume = Resume(rig.alpha_pid());

    let outcome = tokio::time::timeout(GUARD, pending).await.expect("the pending call hung").unwrap();
    let (code, message) = rpc_error(&outcome);
    eprintln!("pending alpha__sleep failed {:?} after SIGSTOP: {code} {message}", stopped.elapsed());
    assert_eq!(code, -32001, "the gateway's request timeout: {message}");
    assert!(message.contains("alpha"), "{message}");

    // A call that alpha would answer at once also times out while alpha is stopped.
    let asked = Instant::now();
    let (code, message) = rpc_error(&call(&client, "alpha__echo", json!({ "text": "stopped" })).await);
    eprintln!("alpha__echo while stopped failed after {:?}: {code} {message}", asked.elapsed());
    assert_eq!(code, -32001, "{message}");
    assert!(message.contains("alpha"), "{message}");
    echo_works(&client, "beta__echo", "alpha is stopped").await;

    drop(resume);
    let resumed = Instant::now();
    let seen = until_echo_works(&client, "alpha__echo").await;
    eprintln!("alpha__echo answered again {:?} after SIGCONT; errors meanwhile: {seen:?}", resumed.elapsed());
    echo_works(&client, "beta__echo", "after").await;
}

/// Resident memory of a process, in bytes (`VmRSS` in `/proc/<pid>/status`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

/// Requests a client that never reads sends: 2,000 answers of 1 MB would be 2 GB if the
/// gateway buffered them without bound.
const UNREAD_REQUESTS: usize = 2_000;
const ANSWER_BYTES: usize = 1_000_000;
/// Growth of the gateway's resident memory the test tolerates: far below what the unread
/// answers add up to.
const GROWTH_BOUND: u64 = 256 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_grow_the_gateway_without_bound() {
    let rig = Rig::start("");
    let pid = rig.gateway.pid();
    let other = rig.client().await;
    // Warm both paths (and the allocator) before the baseline.
    echo_works(&other, "alpha__echo", "warm").await;
    let warm = call(&other, "alpha__payload", json!({ "bytes": ANSWER_BYTES })).await.unwrap();
    assert_eq!(warm["content"][0]["text"].as_str().map(str::len), Some(ANSWER_BYTES));
    let start = rss(pid);

    let mut stream = tokio::net::UnixStream::connect(rig.path("gateway.sock")).await.unwrap();
    let init = json!({ "jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "stuck", "version": "0" } } });
    stream.write_all(format!("{init}\n").as_bytes()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let answer: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(answer["id"], "init", "{answer}");
    write.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n").await.unwrap();

    // From here on nothing is read from `lines`: the answers pile up at the gateway.
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = written.clone();
        tokio::spawn(async move {
            for id in 0..UNREAD_REQUESTS {
                let req = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": { "name": "alpha__payload", "arguments": { "bytes": ANSWER_BYTES } } });
                write.write_all(format!("{req}\n").as_bytes()).await.unwrap();
                written.fetch_add(1, Ordering::Relaxed);
            }
            write
        })
    };

    // Watch the gateway while the writer runs, until it is done or has been blocked for a
    // while (the gateway stopped reading: backpressure), then while another client is served.
    let mut peak = start;
    let mut last = (0, Instant::now());
    let mut others: Option<tokio::task::JoinHandle<()>> = None;
    let watch_started = Instant::now();
    loop {
        let now = rss(pid);
        peak = peak.max(now);
        assert!(
            now < start + GROWTH_BOUND,
            "the gateway grew from {} MiB to {} MiB with {} unread requests written",
            start >> 20,
            now >> 20,
            written.load(Ordering::Relaxed)
        );
        let n = written.load(Ordering::Relaxed);
        if n != last.0 {
            last = (n, Instant::now());
        }
        match &others {
            None if writer.is_finished() || last.1.elapsed() > Duration::from_secs(2) => {
                eprintln!(
                    "stuck client: {n} of {UNREAD_REQUESTS} requests written ({}) after {:?}",
                    if writer.is_finished() { "all written" } else { "the write blocked: backpressure" },
                    watch_started.elapsed()
                );
                // Another client is still served, by both upstreams, with answers of both
                // sizes, and a new session too; meanwhile the gateway is watched.
                let other = other.clone();
                let fresh = rig.client().await;
                others = Some(tokio::spawn(async move {
                    echo_works(&other, "beta__echo", "still served").await;
                    echo_works(&other, "alpha__echo", "alpha too").await;
                    let big = call(&other, "alpha__payload", json!({ "bytes": ANSWER_BYTES })).await.unwrap();
                    assert_eq!(big["content"][0]["text"].as_str().map(str::len), Some(ANSWER_BYTES));
                    echo_works(&fresh, "beta__echo", "a new session too").await;
                    // Answers still on their way to the stuck session have arrived by now.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }));
            }
            Some(task) if task.is_finished() => break,
            _ => {}
        }
        assert!(watch_started.elapsed() < 3 * GUARD, "the watch loop hung");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    others.unwrap().await.expect("the other clients were served");
    let end = rss(pid);
    eprintln!(
        "gateway RSS {} MiB before, peak {} MiB, {} MiB at the end; {} requests written",
        start >> 20,
        peak >> 20,
        end >> 20,
        written.load(Ordering::Relaxed)
    );
    assert!(end < start + GROWTH_BOUND);
    writer.abort();
    drop(lines);
}
