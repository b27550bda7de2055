//! Child processes (hostile output, deaths, the shutdown sequence, stderr, environment) and
//! the server side over this process's own stdin/stdout (in a child process).

mod common;

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{READY_METHOD, STEP};
use mcp_transport_core::message::{codes, to_raw};
use mcp_transport_core::testing::request;
use mcp_transport_core::{Error as CoreError, Id, Incoming, Message, Notification, Response, Transport};
use mcp_transport_stdio::{ChildConfig, StdioChild, StdioConfig, spawn, stdio_transport};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use serde_json::Value;

/// A child running `sh -c script` (with `$0` = `sh` and `$1`... = `args`).
fn sh(script: &str) -> ChildConfig {
    ChildConfig::new("/bin/sh").args(["-c", script, "sh"])
}

fn start(config: ChildConfig) -> (StdioChild, Transport) {
    let mut child = spawn(config).expect("spawn");
    let transport = child.take_transport().expect("transport");
    (child, transport)
}

async fn recv(t: &mut Transport) -> Option<Result<Incoming, CoreError>> {
    tokio::time::timeout(STEP, t.receiver.recv()).await.expect("no progress in time")
}

async fn notification(t: &mut Transport) -> Notification {
    match recv(t).await {
        Some(Ok(Incoming::Message(Message::Notification(n)))) => n,
        other => panic!("expected a notification, got {other:?}"),
    }
}

fn params(n: &Notification) -> Value {
    serde_json::from_str(n.params.as_ref().expect("params").get()).expect("JSON params")
}

/// The error a child that died inside a line leaves: `Io(UnexpectedEof)` naming the status.
fn assert_died_mid_message(item: Option<Result<Incoming, CoreError>>, status: &str) {
    match item {
        Some(Err(CoreError::Io(e))) => {
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
            let text = e.to_string();
            assert!(text.contains(status) && text.contains("in the middle of a message"), "{text}");
        }
        other => panic!("expected a mid-message error, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_on_stdout_becomes_invalid_items() {
    let script =
        r#"printf 'not json\n\377\376 not UTF-8\n{"jsonrpc":"2.0"}\n[]\n{"jsonrpc":"2.0","method":"after"}\n'"#;
    let (mut child, mut t) = start(sh(script));
    let mut codes_seen = Vec::new();
    for _ in 0..4 {
        match recv(&mut t).await {
            Some(Ok(Incoming::Invalid(e))) => codes_seen.push(e.code),
            other => panic!("expected an invalid item, got {other:?}"),
        }
    }
    assert_eq!(codes_seen, [codes::PARSE_ERROR, codes::PARSE_ERROR, codes::INVALID_REQUEST, codes::INVALID_REQUEST]);
    assert_eq!(notification(&mut t).await.method, "after");
    assert!(recv(&mut t).await.is_none(), "a successful exit ends the stream cleanly");
    assert!(child.shutdown().await.expect("shutdown").success());
}

#[tokio::test]
async fn oversized_line_is_skipped_and_reading_goes_on() {
    let script = r#"head -c 100000 /dev/zero | tr '\0' 'x'; printf '\n{"jsonrpc":"2.0","method":"after"}\n'"#;
    let limits = mcp_transport_core::Limits { max_message_size: 4096, ..Default::default() };
    let (mut child, mut t) = start(sh(script).limits(limits));
    match recv(&mut t).await {
        Some(Ok(Incoming::Invalid(e))) => assert_eq!(e.code, codes::INVALID_REQUEST),
        other => panic!("expected the oversized line to be refused, got {other:?}"),
    }
    assert_eq!(notification(&mut t).await.method, "after");
    assert!(child.shutdown().await.expect("shutdown").success());
}

#[tokio::test]
async fn child_dying_mid_message_fails_the_receiver() {
    let (child, mut t) = start(sh(r#"printf '{"jsonrpc":"2.0","id":1,"res'; exit 3"#));
    assert_died_mid_message(recv(&mut t).await, "exit status: 3");
    assert!(recv(&mut t).await.is_none());
    let status = tokio::time::timeout(STEP, child.exited()).await.expect("exit").expect("status");
    assert_eq!(status.code(), Some(3));
    assert_eq!(child.try_wait().expect("status").map(|s| s.code()), Some(Some(3)));
}

#[tokio::test]
async fn unsuccessful_exit_between_messages_is_an_error() {
    let (_child, mut t) = start(sh(r#"printf '{"jsonrpc":"2.0","method":"last"}\n'; exit 4"#));
    assert_eq!(notification(&mut t).await.method, "last");
    match recv(&mut t).await {
        Some(Err(CoreError::Io(e))) => assert!(e.to_string().contains("exit status: 4"), "{e}"),
        other => panic!("expected the exit status, got {other:?}"),
    }
    assert!(recv(&mut t).await.is_none());
}

/// A grandchild that keeps the pipes open cannot keep the transport alive once the child
/// has exited: the receiver ends and sends fail. (The grandchild sleeps longer than the hang
/// guard, so only the exit can end the receiver in time.)
#[tokio::test]
async fn exit_ends_the_transport_despite_a_grandchild_holding_the_pipes() {
    let script = r#"sleep 120 <&0 &
printf '{"jsonrpc":"2.0","method":"pid","params":{"pid":%d}}\n{"jsonrpc":"2.0","id":1,' $!
exit 5"#;
    let (_child, mut t) = start(sh(script));
    let grandchild = params(&notification(&mut t).await)["pid"].as_i64().expect("pid");
    let grandchild = nix::unistd::Pid::from_raw(i32::try_from(grandchild).expect("pid"));
    assert_died_mid_message(recv(&mut t).await, "exit status: 5");
    let mut failed = false;
    for i in 0..100 {
        if t.sender.send(request(i, 10)).await.is_err() {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = nix::sys::signal::kill(grandchild, nix::sys::signal::Signal::SIGKILL);
    assert!(failed, "sends to an exited child kept succeeding");
}

#[tokio::test]
async fn shutdown_closes_stdin_and_a_well_behaved_child_exits() {
    let (mut child, _t) = start(sh("cat >/dev/null; exit 0"));
    assert!(child.try_wait().expect("no status yet").is_none());
    let status = child.shutdown().await.expect("shutdown");
    assert_eq!(status.code(), Some(0), "exited by itself on end of input: {status}");
    assert_eq!(child.shutdown().await.expect("again").code(), Some(0));
}

fn short_waits(config: ChildConfig) -> ChildConfig {
    config.shutdown_timeouts(Duration::from_millis(200), Duration::from_millis(200))
}

#[tokio::test]
async fn child_ignoring_stdin_eof_gets_sigterm() {
    let (mut child, _t) = start(short_waits(sh("exec sleep 60")));
    let status = child.shutdown().await.expect("shutdown");
    assert_eq!(status.signal(), Some(nix::sys::signal::Signal::SIGTERM as i32), "{status}");
}

#[tokio::test]
async fn child_ignoring_sigterm_gets_sigkill() {
    let (mut child, _t) = start(short_waits(sh(r#"trap "" TERM; exec sleep 60"#)));
    let status = child.shutdown().await.expect("shutdown");
    assert_eq!(status.signal(), Some(nix::sys::signal::Signal::SIGKILL as i32), "{status}");
}

#[tokio::test]
async fn dropping_the_handle_stops_the_child() {
    let (child, _t) = start(short_waits(sh("exec sleep 60")));
    let exited = child.exited();
    drop(child);
    let status = tokio::time::timeout(STEP, exited).await.expect("stopped in time").expect("status");
    assert_eq!(status.signal(), Some(nix::sys::signal::Signal::SIGTERM as i32), "{status}");
}

#[tokio::test]
async fn spawn_failure_names_the_program() {
    let err = spawn(ChildConfig::new("/nonexistent/mcp-server")).expect_err("no such program");
    assert!(err.to_string().contains("/nonexistent/mcp-server"), "{err}");
}

/// 10 MB on stderr, partly in lines far longer than the line limit: the child is never
/// blocked by it and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_stderr_does_not_block_the_child() {
    let script = r#"{ head -c 5000000 /dev/zero | tr '\0' 'e'; yes 'a line of stderr output' | head -n 220000; } >&2
printf '{"jsonrpc":"2.0","method":"done"}\n'"#;
    let (mut child, mut t) = start(sh(script));
    assert_eq!(notification(&mut t).await.method, "done");
    assert!(child.shutdown().await.expect("shutdown").success());
}

/// One captured `tracing` event: target and fields (the message under "message").
#[derive(Debug, Clone)]
struct Captured {
    target: String,
    fields: BTreeMap<String, String>,
}

/// Records the stderr events of one child (other tests' children log too).
#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
    pid: Arc<Mutex<Option<String>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let target = event.metadata().target();
        if target != "mcp_transport_stdio::child" {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        if fields.contains_key("pid") && fields.get("pid") == self.pid.lock().unwrap().as_ref() {
            self.events.lock().unwrap().push(Captured { target: target.into(), fields });
        }
    }
}

/// Stderr lines become events with the child's pid and program; an over-long line is split
/// into pieces of the configured size.
#[tokio::test]
async fn stderr_lines_reach_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    // A global subscriber: a thread-local one (`set_default`) can miss events when other
    // tests run on other threads without one (callsite interest is cached process-wide).
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    let capture = CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
            .expect("no other global subscriber in this test binary");
        capture
    });
    let script = r#"printf 'first line\r\nsecond \377\n' >&2; head -c 2500 /dev/zero | tr '\0' 'x' >&2"#;
    let mut config = sh(script);
    config.stderr_max_line = 1000;
    let (mut child, _t) = start(config);
    let pid = child.pid().to_string();
    // Set before this task yields, so before the stderr task (on this thread) runs.
    *capture.pid.lock().unwrap() = Some(pid.clone());
    assert!(child.shutdown().await.expect("shutdown").success());
    let lines = tokio::time::timeout(STEP, async {
        loop {
            let lines: Vec<Captured> = capture
                .events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e.target == "mcp_transport_stdio::child" && e.fields.get("pid") == Some(&pid))
                .cloned()
                .collect();
            if lines.len() >= 5 {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("five stderr events");
    let x = |n: usize| "x".repeat(n);
    let expected: [(String, bool); 5] = [
        ("first line".into(), false),
        ("second \u{fffd}".into(), false),
        (x(1000), true),
        (x(1000), true),
        (x(500), false),
    ];
    assert_eq!(lines.len(), 5, "{lines:?}");
    for (event, (text, partial)) in lines.iter().zip(expected) {
        assert_eq!(event.fields.get("message"), Some(&text), "{event:?}");
        assert_eq!(event.fields.get("pid"), Some(&pid));
        assert_eq!(event.fields.get("program").map(String::as_str), Some("/bin/sh"));
        assert_eq!(event.fields.get("partial").map(String::as_str), partial.then_some("true"));
    }
}

const REPORT: &str = r#"printf '{"jsonrpc":"2.0","method":"report","params":{"var":"%s","pwd":"%s","arg":"%s","names":"%s"}}\n' "$MCP_TEST_VAR" "$(pwd -P)" "$1" "$(env | cut -d= -f1 | sort | tr '\n' ' ')""#;

#[tokio::test]
async fn env_args_and_cwd_are_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = sh(REPORT).arg("an argument").env("MCP_TEST_VAR", "a value").cwd(dir.path());
    let (_child, mut t) = start(config);
    let report = params(&notification(&mut t).await);
    assert_eq!(report["var"], "a value");
    assert_eq!(report["arg"], "an argument");
    let cwd = dir.path().canonicalize().expect("canonical path");
    assert_eq!(report["pwd"], cwd.to_str().expect("UTF-8 path"));
    let names = report["names"].as_str().expect("names");
    assert!(names.split(' ').any(|n| n == "PATH"), "the environment is inherited: {names}");
}

#[tokio::test]
async fn env_clear_leaves_only_the_given_variables() {
    let (_child, mut t) = start(sh(REPORT).env_clear().env("MCP_TEST_VAR", "only"));
    let report = params(&notification(&mut t).await);
    assert_eq!(report["var"], "only");
    // The shell itself exports PWD.
    assert_eq!(report["names"], "MCP_TEST_VAR PWD ");
}

const ECHO_ENV: &str = "MCP_STDIO_TEST_ECHO";

/// Entry point of the echo server child (not a test: it does nothing unless started by the
/// tests below, and then ends the process with its own status).
#[test]
#[ignore = "entry point of the echo server child process"]
fn echo_server_child() {
    let Ok(mode) = std::env::var(ECHO_ENV) else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let code = rt.block_on(echo_server(mode == "nonblocking"));
    std::process::exit(code)
}

fn stdin_nonblocking() -> bool {
    let flags = fcntl(io::stdin().as_fd(), FcntlArg::F_GETFL).expect("F_GETFL");
    OFlag::from_bits_retain(flags).contains(OFlag::O_NONBLOCK)
}

/// Serves on this process's stdin/stdout: answers each request with its params, closes
/// stdout on `test/close-stdout`, ends at end of input. Exit status 0, or 2 on a transport
/// error, 3 if stdin was left non-blocking after the transport was dropped.
async fn echo_server(nonblocking: bool) -> i32 {
    let mut t = stdio_transport(StdioConfig { nonblocking, ..StdioConfig::default() });
    let ready = serde_json::json!({ "nonblocking": stdin_nonblocking() });
    let ready = Notification { method: READY_METHOD.into(), params: Some(to_raw(&ready).expect("JSON")) };
    if t.sender.send(ready).await.is_err() {
        return 2;
    }
    loop {
        match t.receiver.recv().await {
            Some(Ok(Incoming::Message(Message::Request(r)))) => {
                let result = r.params.unwrap_or_else(|| to_raw(&()).expect("null"));
                if t.sender.send(Response::success(r.id, result)).await.is_err() {
                    return 2;
                }
            }
            Some(Ok(Incoming::Message(Message::Notification(n)))) if n.method == "test/close-stdout" => {
                if t.sender.close(STEP).await.is_err() {
                    return 2;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => return 2,
            None => break,
        }
    }
    drop(t);
    if nonblocking && stdin_nonblocking() { 3 } else { 0 }
}

async fn serve_over_own_stdio(mode: &str) {
    let config = common::child_mode("echo_server_child").env(ECHO_ENV, mode);
    let mut child = spawn(config).expect("spawn");
    let mut t = child.take_transport().expect("transport");
    assert!(child.take_transport().is_none(), "the transport is taken once");
    let ready = common::await_ready(&mut t).await;
    assert_eq!(params(&ready)["nonblocking"], mode == "nonblocking");

    let sizes = [0, 10, 1000, 100_000, 1024 * 1024];
    let sender = t.sender.clone();
    let writer = tokio::spawn(async move {
        for i in 0..200 {
            sender.send(request(i, sizes[i as usize % sizes.len()])).await.expect("send");
        }
    });
    for i in 0..200 {
        match recv(&mut t).await {
            Some(Ok(Incoming::Message(Message::Response(r)))) => {
                assert_eq!(r.id, Some(Id::Number(i)));
                let Message::Request(sent) = request(i, sizes[i as usize % sizes.len()]) else { unreachable!() };
                assert_eq!(r.outcome.expect("success").get(), sent.params.expect("params").get());
            }
            other => panic!("expected response {i}, got {other:?}"),
        }
    }
    writer.await.expect("writer");

    // The server closes its stdout while it keeps running: the client sees the end.
    t.sender.send(Notification { method: "test/close-stdout".into(), params: None }).await.expect("send");
    assert!(recv(&mut t).await.is_none(), "closing the server's sender ends the client's stream");
    assert!(child.try_wait().expect("status").is_none(), "the server still runs");
    // End of input: the server exits by itself, with status 0 (it was not signalled).
    t.sender.close(STEP).await.expect("close");
    let status = child.shutdown().await.expect("shutdown");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_nonblocking() {
    serve_over_own_stdio("nonblocking").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_blocking() {
    serve_over_own_stdio("blocking").await;
}
