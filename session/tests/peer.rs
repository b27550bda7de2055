//! Integration tests of [`mcp_session::Peer`]: correlation, timeouts, cancellation, progress,
//! requests in both directions, JSON-RPC error handling on the wire, and connection end.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{bounded, duplex_transport, handler, raw, value};
use mcp_session::{Handler, Peer, PeerConfig, RequestContext, RequestOptions, SessionError};
use mcp_transport_core::message::codes;
use mcp_transport_core::transport::memory_pair;
use mcp_transport_core::{ErrorObject, Id, Incoming, Limits, Message, Notification, Request, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A client peer and a server peer serving `server` over an in-memory pair.
fn connected(server: Arc<dyn Handler>) -> (Peer, Peer) {
    let (a, b) = memory_pair(Limits::default());
    let client = Peer::client(a, PeerConfig::default());
    let server = Peer::start(b, server, PeerConfig::default());
    (client, server)
}

/// A handler that sends the context of every `never` request to the test and never answers it,
/// and answers `echo` with its params.
fn never_answers() -> (Arc<dyn Handler>, mpsc::UnboundedReceiver<RequestContext>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let h = handler(move |req, ctx| {
        let tx = tx.clone();
        Box::pin(async move {
            match req.method.as_str() {
                "never" => {
                    tx.send(ctx).expect("test alive");
                    std::future::pending().await
                }
                "echo" => Ok(raw(json!({ "echo": req.params.as_deref().map(value) }))),
                m => Err(ErrorObject::method_not_found(m)),
            }
        })
    });
    (h, rx)
}

fn opts(timeout: Duration) -> RequestOptions {
    RequestOptions { timeout: Some(timeout), progress: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correlates_many_concurrent_requests_answered_out_of_order() {
    bounded(async {
        let server = handler(|req, _ctx| {
            Box::pin(async move {
                let n = value(req.params.as_deref().expect("params"))["n"].as_u64().expect("n");
                // A delay that varies per request, so the answers leave out of order.
                tokio::time::sleep(Duration::from_millis((n * 37) % 101)).await;
                Ok(raw(json!({ "n": n, "method": req.method, "id": req.id })))
            })
        });
        let (client, _server) = connected(server);
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..200u64 {
            let client = client.clone();
            tasks.spawn(async move {
                let method = format!("m/{n}");
                let result = client.request_raw(&method, Some(raw(json!({ "n": n }))), RequestOptions::default()).await;
                (n, method, result)
            });
        }
        let mut seen = HashSet::new();
        let mut ids = HashSet::new();
        while let Some(joined) = tasks.join_next().await {
            let (n, method, result) = joined.expect("task");
            let result = value(&result.unwrap_or_else(|e| panic!("request {n} failed: {e}")));
            assert_eq!(result["n"], json!(n), "request {n} got another request's result: {result}");
            assert_eq!(result["method"], json!(method));
            assert!(ids.insert(result["id"].clone()), "request id {} used twice", result["id"]);
            seen.insert(n);
        }
        assert_eq!(seen.len(), 200);
    })
    .await
}

#[tokio::test]
async fn timeout_returns_timed_out_and_cancels_the_server_side() {
    bounded(async {
        let (h, mut contexts) = never_answers();
        let (client, server) = connected(h);
        let after = Duration::from_millis(100);
        let err = client.request_raw("never", None, opts(after)).await.expect_err("must time out");
        match &err {
            SessionError::TimedOut { method, after: a } => {
                assert_eq!(method, "never");
                assert_eq!(*a, after);
            }
            other => panic!("expected TimedOut, got {other:?}"),
        }
        let ctx = contexts.recv().await.expect("the server saw the request");
        // The client sent notifications/cancelled: the server cancels the request's token,
        // while the connection itself stays open.
        ctx.cancelled.cancelled().await;
        assert!(!server.is_closed() && !client.is_closed());

        // A late answer to the timed-out request is discarded without harm.
        let late = Response::success(ctx.id.clone(), raw(json!({ "late": true })));
        server.sender().send(late).await.expect("send late answer");
        let r = client.request_raw("echo", Some(raw(json!({ "k": 1 }))), RequestOptions::default()).await;
        assert_eq!(value(&r.expect("echo after a late answer")), json!({ "echo": { "k": 1 } }));
        assert!(!client.is_closed());
    })
    .await
}

#[tokio::test]
async fn dropping_the_request_future_sends_cancelled() {
    bounded(async {
        let (h, mut contexts) = never_answers();
        let (client, _server) = connected(h);
        let ctx = {
            let request = client.request_raw("never", None, RequestOptions::default());
            tokio::select! {
                r = request => panic!("never answered, yet got {r:?}"),
                ctx = contexts.recv() => ctx.expect("the server saw the request"),
            }
            // `request` is dropped here, unanswered.
        };
        ctx.cancelled.cancelled().await;
        // The connection is still usable.
        let r = client.request_raw("echo", None, RequestOptions::default()).await.expect("echo");
        assert_eq!(value(&r), json!({ "echo": null }));
    })
    .await
}

#[tokio::test]
async fn a_cancelled_request_is_not_answered() {
    bounded(async {
        let server = handler(|req, _ctx| {
            Box::pin(async move {
                match req.method.as_str() {
                    "slow" => tokio::time::sleep(Duration::from_millis(100)).await,
                    // Answered well after any uncancelled `slow` would have been.
                    "after" => tokio::time::sleep(Duration::from_millis(300)).await,
                    m => return Err(ErrorObject::method_not_found(m)),
                }
                Ok(raw(json!({ "method": req.method })))
            })
        });
        let (transport, mut wire) = duplex_transport();
        let _server = Peer::start(transport, server, PeerConfig::default());
        wire.send_line(r#"{"jsonrpc":"2.0","id":7,"method":"slow"}"#).await;
        wire.send_line(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"x"}}"#)
            .await;
        // A control request that is not cancelled, then the ping-like one.
        wire.send_line(r#"{"jsonrpc":"2.0","id":9,"method":"slow"}"#).await;
        wire.send_line(r#"{"jsonrpc":"2.0","id":8,"method":"after"}"#).await;
        let mut ids = Vec::new();
        loop {
            let msg = wire.recv().await;
            assert_ne!(msg["id"], json!(7), "the cancelled request was answered: {msg}");
            ids.push(msg["id"].clone());
            if msg["id"] == json!(8) {
                assert_eq!(msg["result"], json!({ "method": "after" }));
                break;
            }
        }
        assert!(ids.contains(&json!(9)), "the uncancelled control request was not answered: {ids:?}");
    })
    .await
}

#[tokio::test]
async fn progress_updates_reach_the_requester() {
    bounded(async {
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        let server = handler(move |req, ctx| {
            let seen_tx = seen_tx.clone();
            Box::pin(async move {
                for i in 1..=3 {
                    ctx.progress(f64::from(i), Some(3.0), Some(format!("step {i}")))
                        .await
                        .map_err(ErrorObject::internal)?;
                }
                let sent_token = value(req.params.as_deref().expect("params"))["_meta"]["progressToken"].clone();
                seen_tx.send((ctx.progress_token.clone(), sent_token)).expect("test alive");
                Ok(raw(json!({ "done": true })))
            })
        });
        let (client, _server) = connected(server);
        let (tx, mut rx) = mpsc::channel(8);
        let params = raw(json!({ "keep": "me" }));
        let ro = RequestOptions { timeout: None, progress: Some(tx) };
        let result = client.request_raw("work", Some(params), ro).await.expect("work");
        assert_eq!(value(&result), json!({ "done": true }));

        let (ctx_token, wire_token) = seen_rx.recv().await.expect("handler ran");
        let token = ctx_token.expect("the request carried a progress token");
        assert_eq!(serde_json::to_value(&token).unwrap(), wire_token);

        let mut updates = Vec::new();
        while let Some(p) = rx.recv().await {
            updates.push(p);
        }
        assert_eq!(updates.len(), 3, "{updates:?}");
        for (i, p) in updates.iter().enumerate() {
            assert_eq!(p.progress_token, token);
            assert_eq!(p.total, Some(3.0));
            assert_eq!(p.message.as_deref(), Some(format!("step {}", i + 1).as_str()));
        }
        assert!(updates.windows(2).all(|w| w[0].progress < w[1].progress), "{updates:?}");
    })
    .await
}

#[tokio::test]
async fn requests_flow_in_both_directions() {
    bounded(async {
        let (a, b) = memory_pair(Limits::default());
        let client_handler = handler(|req, _ctx| {
            Box::pin(async move {
                match req.method.as_str() {
                    "roots/list" => Ok(raw(json!({ "roots": [{ "uri": "file:///work" }] }))),
                    m => Err(ErrorObject::method_not_found(m)),
                }
            })
        });
        let server_handler = handler(|req, ctx| {
            Box::pin(async move {
                assert_eq!(req.method, "tools/call");
                let roots = ctx
                    .peer
                    .request_raw("roots/list", None, RequestOptions::default())
                    .await
                    .map_err(ErrorObject::internal)?;
                Ok(raw(json!({ "fromClient": value(&roots) })))
            })
        });
        let client = Peer::start(a, client_handler, PeerConfig::default());
        let _server = Peer::start(b, server_handler, PeerConfig::default());
        let r = client.request_raw("tools/call", Some(raw(json!({}))), RequestOptions::default()).await;
        assert_eq!(value(&r.expect("tools/call")), json!({ "fromClient": { "roots": [{ "uri": "file:///work" }] } }));
    })
    .await
}

#[tokio::test]
async fn peer_client_answers_requests_with_method_not_found() {
    bounded(async {
        let (a, b) = memory_pair(Limits::default());
        let asker = Peer::client(a, PeerConfig::default());
        let _client = Peer::client(b, PeerConfig::default());
        let err = asker.request_raw("sampling/createMessage", None, RequestOptions::default()).await.unwrap_err();
        let rpc = err.rpc_error().unwrap_or_else(|| panic!("expected an RPC error, got {err:?}"));
        assert_eq!(rpc.code, codes::METHOD_NOT_FOUND);
    })
    .await
}

/// A server over a raw wire whose handler answers every request with its method and params.
fn echo_over_wire() -> (Peer, common::Wire) {
    let server = handler(|req, _ctx| {
        Box::pin(async move {
            if req.method == "hold" {
                // Keeps the request in flight for a while.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(raw(json!({ "method": req.method, "params": req.params.as_deref().map(value) })))
        })
    });
    let (transport, wire) = duplex_transport();
    (Peer::start(transport, server, PeerConfig::default()), wire)
}

#[tokio::test]
async fn invalid_json_gets_parse_error_with_null_id_and_the_connection_goes_on() {
    bounded(async {
        let (_server, mut wire) = echo_over_wire();
        wire.send_line(r#"{"jsonrpc":"2.0","id":1,"method":"#).await;
        let resp = wire.recv().await;
        assert_eq!(resp["jsonrpc"], "2.0");
        assert_eq!(resp.get("id"), Some(&Value::Null), "{resp}");
        assert_eq!(resp["error"]["code"], json!(codes::PARSE_ERROR), "{resp}");
        assert!(resp.get("result").is_none());

        wire.send_line(r#"{"jsonrpc":"2.0","id":2,"method":"next"}"#).await;
        let resp = wire.recv().await;
        assert_eq!(resp, json!({ "jsonrpc": "2.0", "id": 2, "result": { "method": "next", "params": null } }));
    })
    .await
}

#[tokio::test]
async fn wrong_jsonrpc_version_gets_invalid_request_with_the_id_echoed() {
    bounded(async {
        let (_server, mut wire) = echo_over_wire();
        wire.send_line(r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#).await;
        let resp = wire.recv().await;
        assert_eq!(resp["id"], json!(5), "{resp}");
        assert_eq!(resp["error"]["code"], json!(codes::INVALID_REQUEST), "{resp}");

        wire.send_line(r#"{"jsonrpc":"1.0","id":"five","method":"ping"}"#).await;
        let resp = wire.recv().await;
        assert_eq!(resp["id"], json!("five"), "{resp}");
        assert_eq!(resp["error"]["code"], json!(codes::INVALID_REQUEST), "{resp}");
    })
    .await
}

#[tokio::test]
async fn string_and_integer_ids_are_echoed_exactly() {
    bounded(async {
        let (_server, mut wire) = echo_over_wire();
        // "1" and 1 are distinct ids, in flight at the same time.
        let ids =
            [json!("1"), json!(1), json!("abc"), json!(-7), json!(0), json!(""), json!(9_007_199_254_740_993_i64)];
        for id in &ids {
            wire.send(&json!({ "jsonrpc": "2.0", "id": id, "method": "hold", "params": { "id": id } })).await;
        }
        let mut pending: Vec<Value> = ids.to_vec();
        while !pending.is_empty() {
            let line = wire.recv_line().await.expect("a response");
            let resp: Value = serde_json::from_str(&line).unwrap();
            assert!(resp.get("error").is_none(), "{line}");
            let id = resp["id"].clone();
            // Echoed exactly: the same JSON type and the same text.
            assert_eq!(resp["result"]["params"]["id"], id, "{line}");
            assert!(line.contains(&format!("\"id\":{id}")), "{line}");
            let at = pending.iter().position(|p| *p == id).unwrap_or_else(|| panic!("unexpected id in {line}"));
            pending.remove(at);
        }
    })
    .await
}

#[tokio::test]
async fn pending_requests_fail_with_closed_when_the_connection_ends() {
    bounded(async {
        let (a, mut b) = memory_pair(Limits::default());
        let client = Peer::client(a, PeerConfig::default());
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..3 {
            let client = client.clone();
            tasks.spawn(async move { client.request_raw(&format!("m{n}"), None, RequestOptions::default()).await });
        }
        for _ in 0..3 {
            match b.receiver.recv().await {
                Some(Ok(Incoming::Message(Message::Request(_)))) => {}
                other => panic!("expected a request, got {other:?}"),
            }
        }
        drop(b);
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("task") {
                Err(SessionError::Closed { method }) => assert!(method.starts_with('m')),
                other => panic!("expected Closed, got {other:?}"),
            }
        }
        client.closed().await;
        assert!(client.is_closed());
    })
    .await
}

#[tokio::test]
async fn requests_being_served_are_cancelled_when_the_connection_ends() {
    bounded(async {
        let (h, mut contexts) = never_answers();
        let (a, b) = memory_pair(Limits::default());
        let server = Peer::start(b, h, PeerConfig::default());
        a.sender.send(Request { id: Id::Number(1), method: "never".into(), params: None }).await.unwrap();
        let ctx = contexts.recv().await.expect("served");
        // The client goes away entirely.
        drop(a);
        ctx.cancelled.cancelled().await;
        server.closed().await;
    })
    .await
}

#[tokio::test]
async fn a_request_after_the_connection_ended_fails_promptly() {
    bounded(async {
        let (a, b) = memory_pair(Limits::default());
        let client = Peer::client(a, PeerConfig::default());
        // The other side stops sending (end of its stream) but still reads.
        let (b_sender, _b_receiver) = b.split();
        drop(b_sender);
        client.closed().await;
        // Default timeout is 60 s: only a prompt failure passes within the hang limit.
        let err = client.request_raw("tools/list", None, RequestOptions::default()).await.unwrap_err();
        assert!(matches!(err, SessionError::Closed { .. } | SessionError::Transport(_)), "{err:?}");
    })
    .await
}

#[tokio::test]
async fn shutdown_closes_the_sending_half() {
    bounded(async {
        let (a, mut b) = memory_pair(Limits::default());
        let client = Peer::client(a, PeerConfig::default());
        client.shutdown();
        assert!(client.is_closed());
        // The other side reads the end of the stream.
        match b.receiver.recv().await {
            None => {}
            other => panic!("expected the end of the stream, got {other:?}"),
        }
        assert!(client.sender().is_closed());
    })
    .await
}

#[tokio::test]
async fn a_request_cancelled_before_its_handler_resumes_is_not_answered() {
    bounded(async {
        for round in 0..32 {
            let server = handler(|req, _ctx| {
                Box::pin(async move {
                    if req.method == "yield" {
                        // Not ready at the first poll: the request is served on its own task.
                        tokio::task::yield_now().await;
                    }
                    Ok(raw(json!({ "method": req.method })))
                })
            });
            let (a, mut b) = memory_pair(Limits::default());
            let _server = Peer::start(a, server, PeerConfig::default());
            let cancel = Notification::new("notifications/cancelled", &json!({ "requestId": 1 })).unwrap();
            b.sender.send(Request { id: Id::Number(1), method: "yield".into(), params: None }).await.unwrap();
            b.sender.send(cancel).await.unwrap();
            b.sender.send(Request { id: Id::Number(2), method: "now".into(), params: None }).await.unwrap();
            loop {
                let resp = match b.receiver.recv().await {
                    Some(Ok(Incoming::Message(Message::Response(r)))) => r,
                    other => panic!("expected a response, got {other:?}"),
                };
                assert_ne!(resp.id, Some(Id::Number(1)), "round {round}: the cancelled request was answered");
                if resp.id == Some(Id::Number(2)) {
                    // One more round trip, so a late answer to 1 would have been seen.
                    b.sender.send(Request { id: Id::Number(3), method: "now".into(), params: None }).await.unwrap();
                } else if resp.id == Some(Id::Number(3)) {
                    break;
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_request_that_could_not_be_sent_is_not_cancelled_on_the_wire() {
    bounded(async {
        let limits = Limits { max_message_size: 256, ..Limits::default() };
        let (a, mut b) = memory_pair(limits);
        let client = Peer::client(a, PeerConfig::default());
        let big = raw(json!({ "blob": "x".repeat(1024) }));
        let err = client.request_raw("big", Some(big), RequestOptions::default()).await.unwrap_err();
        assert!(matches!(err, SessionError::Transport(_)), "{err:?}");
        client.notify("notifications/marker", &json!({})).await.unwrap();
        match b.receiver.recv().await {
            Some(Ok(Incoming::Message(Message::Notification(n)))) => {
                assert_eq!(n.method, "notifications/marker", "sent for a request never issued: {n:?}");
            }
            other => panic!("expected the marker notification, got {other:?}"),
        }
    })
    .await
}

#[test]
fn shutting_down_outside_a_runtime_does_not_panic() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (client, server) = runtime.block_on(async {
        let (handler, _contexts) = never_answers();
        let (client, server) = connected(handler);
        let echoed: Value = client.request("echo", &json!({ "x": 1 })).await.unwrap();
        assert_eq!(echoed["echo"]["x"], 1);
        (client, server)
    });
    // No runtime is current here: ending the session must not need one.
    client.shutdown();
    server.shutdown();
    drop((client, server));
    drop(runtime);
}
