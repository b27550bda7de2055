//! The harness against the reference server (everything passes) and against small
//! misbehaving servers (the harness reports, times out per check, carries on, never hangs).

use std::sync::Arc;
use std::time::Duration;

use mcp_conformance::wire::LineWire;
use mcp_conformance::{Baseline, Connector, Options, RawWire, SpecChoice, Status, checks, run};
use mcp_reference_server::ReferenceServer;
use mcp_session::PeerConfig;
use mcp_session::server::ServerSession;
use mcp_transport_core::transport::{BoxFuture, from_io};
use mcp_transport_core::{Codec, Limits, PeerInfo, Transport};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

type Serve = Arc<dyn Fn(DuplexStream) + Send + Sync>;

/// Connects through in-memory pipes to a server started per connection.
struct Local {
    serve: Serve,
}

fn limits() -> Limits {
    Limits { max_message_size: 32 << 20, ..Limits::default() }
}

impl Connector for Local {
    fn describe(&self) -> String {
        "in-memory pipe".into()
    }

    fn connect(&self) -> BoxFuture<'_, Result<Transport, String>> {
        Box::pin(async move {
            let (a, b) = tokio::io::duplex(1 << 20);
            (self.serve)(b);
            let (r, w) = tokio::io::split(a);
            Ok(from_io(r, w, Codec::lines(), limits(), PeerInfo::default()))
        })
    }

    fn connect_raw(&self) -> BoxFuture<'_, Option<Result<Box<dyn RawWire>, String>>> {
        Box::pin(async move {
            let (a, b) = tokio::io::duplex(1 << 20);
            (self.serve)(b);
            let (r, w) = tokio::io::split(a);
            Some(Ok(Box::new(LineWire::new(r, w)) as Box<dyn RawWire>))
        })
    }
}

fn reference() -> Arc<Local> {
    let app = Arc::new(ReferenceServer::new());
    Arc::new(Local {
        serve: Arc::new(move |io| {
            let (r, w) = tokio::io::split(io);
            let t = from_io(r, w, Codec::lines(), limits(), PeerInfo::default());
            ServerSession::serve(app.clone(), t, PeerConfig::default());
        }),
    })
}

fn options(spec: SpecChoice, timeout: Duration) -> Options {
    Options {
        spec,
        call_tools: vec![("echo".into(), json!({"text": "hello"})), ("test_simple_text".into(), json!({}))],
        check_timeout: timeout,
        latency_samples: 20,
        budgets: None,
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f).await.expect("the harness hung")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_passes_everything_in_both_generations() {
    for spec in [SpecChoice::Legacy("2025-11-25".into()), SpecChoice::Modern, SpecChoice::Auto] {
        let report = bounded(run(
            reference(),
            options(spec.clone(), Duration::from_secs(20)),
            &checks::all(),
            &Baseline::default(),
        ))
        .await
        .expect("connect");
        let bad: Vec<_> = report.results.iter().filter(|r| matches!(r.status, Status::Fail | Status::Warn)).collect();
        assert!(bad.is_empty(), "{spec:?}:\n{}", report.to_text());
        assert!(report.count(Status::Pass) >= 15, "{}", report.to_text());
        // Large messages ran (echo was named), not skipped.
        let large = report.results.iter().find(|r| r.id == "transport.message-10mb").unwrap();
        assert_eq!(large.status, Status::Pass, "{}", report.to_text());
    }
}

#[tokio::test]
async fn reports_render_in_every_format() {
    let report = bounded(run(
        reference(),
        options(SpecChoice::Auto, Duration::from_secs(20)),
        &checks::all(),
        &Baseline::default(),
    ))
    .await
    .unwrap();
    let json: Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(json["results"].as_array().unwrap().len(), checks::all().len());
    let junit = report.to_junit();
    assert!(junit.starts_with("<?xml") && junit.contains("<testsuite") && junit.contains("jsonrpc.method-not-found"));
    assert!(report.to_text().contains("passed"));
}

/// How a misbehaving server misbehaves after answering `initialize` properly.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Closes the connection at the first request after the handshake.
    Crash,
    /// Never answers anything after the handshake.
    Hang,
    /// Answers every request with a line that is not JSON.
    Garbage,
    /// Answers every request with the wrong id.
    WrongId,
    /// Never answers `tools/list`; answers the rest with an empty result.
    IgnoresOne,
    /// Sends 10,000 notifications before every answer.
    Floods,
}

fn misbehaving(kind: Misbehaviour) -> Arc<Local> {
    Arc::new(Local {
        serve: Arc::new(move |io| {
            tokio::spawn(async move {
                let (r, mut w) = tokio::io::split(io);
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(msg) = serde_json::from_str::<Value>(&line) else { continue };
                    let Some(id) = msg.get("id").cloned() else { continue };
                    let method = msg.get("method").and_then(Value::as_str).unwrap_or_default();
                    let reply = if method == "initialize" {
                        json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25",
                            "capabilities":{"tools":{}},"serverInfo":{"name":"bad","version":"0"}}})
                        .to_string()
                    } else if method == "server/discover" {
                        json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"no"}}).to_string()
                    } else {
                        match kind {
                            Misbehaviour::Crash => return,
                            Misbehaviour::Hang => continue,
                            Misbehaviour::Garbage => "}}}garbage{{{".to_string(),
                            Misbehaviour::WrongId => json!({"jsonrpc":"2.0","id":"not-yours","result":{}}).to_string(),
                            Misbehaviour::IgnoresOne if method == "tools/list" => continue,
                            Misbehaviour::IgnoresOne | Misbehaviour::Floods => {
                                json!({"jsonrpc":"2.0","id":id,"result":{"tools":[]}}).to_string()
                            }
                        }
                    };
                    let mut out = String::new();
                    if matches!(kind, Misbehaviour::Floods) && method != "initialize" {
                        for i in 0..10_000 {
                            out.push_str(
                                &json!({"jsonrpc":"2.0","method":"notifications/message",
                                "params":{"level":"info","data":i}})
                                .to_string(),
                            );
                            out.push('\n');
                        }
                    }
                    out.push_str(&reply);
                    out.push('\n');
                    if w.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_servers_are_reported_and_never_hang_the_harness() {
    for kind in [
        Misbehaviour::Crash,
        Misbehaviour::Hang,
        Misbehaviour::Garbage,
        Misbehaviour::WrongId,
        Misbehaviour::IgnoresOne,
        Misbehaviour::Floods,
    ] {
        let opts = options(SpecChoice::Auto, Duration::from_secs(1));
        let report = bounded(run(misbehaving(kind), opts, &checks::all(), &Baseline::default())).await;
        let report = report.unwrap_or_else(|e| panic!("{kind:?}: the handshake is fine, so the run must start: {e}"));
        assert!(report.failed(), "{kind:?} should fail some check:\n{}", report.to_text());
        assert_eq!(report.results.len(), checks::all().len(), "{kind:?}: every check reported");
        let ping = report.results.iter().find(|r| r.id == "ping").unwrap();
        match kind {
            Misbehaviour::IgnoresOne | Misbehaviour::Floods => {
                let list = report.results.iter().find(|r| r.id == "latency.tools-list").unwrap();
                if matches!(kind, Misbehaviour::IgnoresOne) {
                    assert_eq!(list.status, Status::Fail, "{}", report.to_text());
                }
            }
            _ => assert_eq!(ping.status, Status::Fail, "{kind:?}: {}", report.to_text()),
        }
        for r in &report.results {
            if r.status == Status::Fail {
                assert!(!r.detail.is_empty(), "{kind:?}: {} failed without saying what it saw", r.id);
            }
        }
    }
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_connect_error() {
    let dead = Arc::new(Local { serve: Arc::new(drop) });
    let err =
        bounded(run(dead, options(SpecChoice::Auto, Duration::from_millis(300)), &checks::all(), &Baseline::default()))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
