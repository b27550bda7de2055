//! One soak client: a 2025-11-25 session over a raw transport, making mixed calls one after
//! the other and checking every response against its request (id and content).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mcp_transport_core::message::to_raw;
use mcp_transport_core::{ErrorObject, Id, Incoming, Message, Notification, Request, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::soak::Downstream;

/// What one client saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    /// Calls answered with the expected result.
    pub(crate) ok: u64,
    /// Calls answered with a JSON-RPC error, by code.
    pub(crate) errors: BTreeMap<i64, u64>,
    /// Calls with no answer within the call timeout or before the connection ended.
    pub(crate) lost: u64,
    /// Responses for a call that had already been answered.
    pub(crate) duplicated: u64,
    /// Responses whose id names no call of this client, or whose content is not the answer
    /// to the call of that id.
    pub(crate) mismatched: u64,
    /// Answers that came after their call had been counted as lost.
    pub(crate) late: u64,
    /// Frames that were not a response, request or notification (invalid frames, batches).
    pub(crate) unexpected: u64,
    /// Latency of every answered call.
    pub(crate) latencies: Vec<Duration>,
    /// Latency of answered calls by where they were served: an upstream's name, or
    /// `gateway` for what the gateway answers itself (`tools/list`, `ping`).
    pub(crate) by_target: BTreeMap<String, Vec<Duration>>,
    /// Why the client could not connect or stopped early, if it did.
    pub(crate) failure: Option<String>,
}

impl Tally {
    /// Adds `other` into this tally.
    pub(crate) fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.mismatched += other.mismatched;
        self.late += other.late;
        self.unexpected += other.unexpected;
        self.latencies.extend(other.latencies);
        for (target, latencies) in other.by_target {
            self.by_target.entry(target).or_default().extend(latencies);
        }
    }
}

/// One call of the mix and how to check its answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    /// `tools/call` of `<upstream>__echo` with a text unique to the client and call.
    Echo { tool: String, text: String },
    /// `tools/call` of `<upstream>__payload`, answered with `bytes` letters.
    Payload { tool: String, bytes: usize },
    /// `tools/call` of `<upstream>__sleep`, answered after `ms`.
    Sleep { tool: String, ms: u64 },
    /// The first page of `tools/list`: every name carries a known upstream prefix.
    ListTools,
    /// `ping`, answered with an empty object.
    Ping,
}

/// The payload sizes of the mix.
const PAYLOAD_SIZES: [usize; 3] = [256, 4096, 65_536];

impl Call {
    /// The `seq`-th call of client `client`: half echo, then payloads, short sleeps, lists and
    /// pings, spread over the upstreams.
    pub(crate) fn pick(client: usize, seq: u64, upstreams: &[String], sep: &str) -> Call {
        let spread = client as u64 + seq;
        let upstream = &upstreams[(spread % upstreams.len() as u64) as usize];
        let tool = |name: &str| format!("{upstream}{sep}{name}");
        match seq % 20 {
            0..=9 => Call::Echo { tool: tool("echo"), text: format!("client {client} call {seq}") },
            10..=12 => Call::Payload { tool: tool("payload"), bytes: PAYLOAD_SIZES[(spread % 3) as usize] },
            13 | 14 => Call::Sleep { tool: tool("sleep"), ms: 1 + spread % 20 },
            15..=17 => Call::ListTools,
            _ => Call::Ping,
        }
    }

    /// Where it is served: the upstream's name, or `gateway`.
    pub(crate) fn target(&self) -> &str {
        match self {
            Call::Echo { tool, .. } | Call::Payload { tool, .. } | Call::Sleep { tool, .. } => {
                tool.rsplit_once(crate::soak::SEPARATOR).map_or(tool.as_str(), |(upstream, _)| upstream)
            }
            Call::ListTools | Call::Ping => "gateway",
        }
    }

    /// The request with id `id`.
    pub(crate) fn request(&self, id: i64) -> Request {
        let (method, params) = match self {
            Call::Echo { tool, text } => ("tools/call", Some(json!({ "name": tool, "arguments": { "text": text } }))),
            Call::Payload { tool, bytes } => {
                ("tools/call", Some(json!({ "name": tool, "arguments": { "bytes": bytes } })))
            }
            Call::Sleep { tool, ms } => ("tools/call", Some(json!({ "name": tool, "arguments": { "ms": ms } }))),
            Call::ListTools => ("tools/list", None),
            Call::Ping => ("ping", None),
        };
        Request {
            id: Id::Number(id),
            method: method.to_owned(),
            params: params.map(|p| to_raw(&p).expect("a JSON value serializes")),
        }
    }

    /// Whether `result` answers this call; `Err` says what is wrong.
    pub(crate) fn check(&self, result: &Value, upstreams: &[String], sep: &str) -> Result<(), String> {
        let text = || result.pointer("/content/0/text").and_then(Value::as_str);
        match self {
            Call::Echo { text: sent, .. } if text() == Some(sent.as_str()) => Ok(()),
            Call::Payload { bytes, .. }
                if text().is_some_and(|t| t.len() == *bytes && t.bytes().all(|b| b == b'x')) =>
            {
                Ok(())
            }
            Call::Sleep { ms, .. } if text() == Some(format!("slept {ms} ms").as_str()) => Ok(()),
            Call::ListTools => {
                let tools = result["tools"].as_array().ok_or("tools/list without a tools array")?;
                let known = |name: &str| {
                    upstreams.iter().any(|u| name.strip_prefix(u.as_str()).is_some_and(|r| r.starts_with(sep)))
                };
                match tools.iter().find(|t| !t["name"].as_str().is_some_and(known)) {
                    _ if tools.is_empty() => Err("tools/list returned no tools".to_owned()),
                    Some(t) => Err(format!("tools/list has a tool of no upstream: {t}")),
                    None => Ok(()),
                }
            }
            Call::Ping if result.as_object().is_some_and(|o| o.is_empty() || o.contains_key("_meta")) => Ok(()),
            _ => Err(format!("{self:?} answered with {}", shorten(&result.to_string()))),
        }
    }
}

/// At most 200 characters of `s`.
fn shorten(s: &str) -> String {
    s.chars().take(200).collect()
}

/// What every client shares.
pub(crate) struct Shared {
    /// Upstream names.
    pub(crate) upstreams: Vec<String>,
    /// Separator between upstream and tool names.
    pub(crate) separator: String,
    /// When to stop starting calls.
    pub(crate) deadline: Instant,
    /// How long one call may take before it counts as lost.
    pub(crate) call_timeout: Duration,
    /// Calls answered so far by all clients (for the samples).
    pub(crate) answered: AtomicU64,
}

/// Runs client `index` over `via` at `endpoint` until the deadline, then closes it;
/// `on_ready` runs once its session is initialized.
pub(crate) async fn run(
    index: usize,
    via: Downstream,
    endpoint: String,
    shared: Arc<Shared>,
    on_ready: impl FnOnce(),
) -> Tally {
    let mut tally = Tally::default();
    let transport = match via.connect(&endpoint).await {
        Ok(t) => t,
        Err(e) => {
            tally.failure = Some(format!("client {index}: connecting over {via} to {endpoint}: {e}"));
            return tally;
        }
    };
    let (tx, mut rx) = transport.split();
    let mut session = Session { rx: &mut rx, tally: &mut tally, answered: HashSet::new(), lost: HashSet::new() };
    let init = Request {
        id: Id::Number(0),
        method: "initialize".to_owned(),
        params: Some(
            to_raw(&json!({
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": { "name": "mcpt-soak", "version": env!("CARGO_PKG_VERSION") }
            }))
            .expect("a JSON value serializes"),
        ),
    };
    let started = Instant::now();
    let handshake = match tx.send(init).await {
        Ok(()) => session.answer_to(0, started + shared.call_timeout, &tx).await,
        Err(e) => Err(format!("sending initialize: {e}")),
    };
    match handshake {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => session.tally.failure = Some(format!("client {index}: initialize refused: {}", e.message)),
        Err(e) => session.tally.failure = Some(format!("client {index}: initialize: {e}")),
    }
    if session.tally.failure.is_some() {
        return tally;
    }
    let initialized = Notification { method: "notifications/initialized".to_owned(), params: None };
    if let Err(e) = tx.send(initialized).await {
        session.tally.failure = Some(format!("client {index}: sending notifications/initialized: {e}"));
        return tally;
    }
    on_ready();
    let mut seq: u64 = 0;
    while Instant::now() < shared.deadline {
        seq += 1;
        let id = seq as i64;
        let call = Call::pick(index, seq, &shared.upstreams, &shared.separator);
        let sent = Instant::now();
        if let Err(e) = tx.send(call.request(id)).await {
            session.tally.lost += 1;
            session.tally.failure = Some(format!("client {index}: sending call {seq}: {e}"));
            break;
        }
        match session.answer_to(id, sent + shared.call_timeout, &tx).await {
            Ok(outcome) => {
                let took = sent.elapsed();
                session.tally.latencies.push(took);
                match session.tally.by_target.get_mut(call.target()) {
                    Some(v) => v.push(took),
                    None => drop(session.tally.by_target.insert(call.target().to_owned(), vec![took])),
                }
                shared.answered.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(result) => match call.check(&result, &shared.upstreams, &shared.separator) {
                        Ok(()) => session.tally.ok += 1,
                        Err(why) => {
                            session.tally.mismatched += 1;
                            tracing::warn!(client = index, call = seq, "mismatched answer: {why}");
                        }
                    },
                    Err(e) => {
                        *session.tally.errors.entry(e.code).or_default() += 1;
                        tracing::warn!(client = index, call = seq, code = e.code, "error answer: {}", e.message);
                    }
                }
            }
            Err(why) => {
                session.tally.lost += 1;
                session.lost.insert(id);
                tracing::warn!(client = index, call = seq, "lost: {why}");
                if why.starts_with("the connection") {
                    session.tally.failure = Some(format!("client {index}: {why}"));
                    break;
                }
            }
        }
    }
    // Anything still arriving (a duplicate, a late answer) is counted before closing.
    session.drain(Duration::from_millis(50), &tx).await;
    if let Err(e) = tx.close(Duration::from_secs(5)).await {
        tracing::debug!(client = index, "close: {e}");
    }
    tally
}

/// The receiving half of a client and what it has seen.
struct Session<'a> {
    rx: &'a mut mcp_transport_core::Receiver,
    tally: &'a mut Tally,
    answered: HashSet<i64>,
    lost: HashSet<i64>,
}

impl Session<'_> {
    /// Waits for the answer to `id`, counting everything else that arrives; `Err` when the
    /// deadline passes or the connection ends first.
    async fn answer_to(
        &mut self,
        id: i64,
        deadline: Instant,
        tx: &mcp_transport_core::Sender,
    ) -> Result<Result<Value, ErrorObject>, String> {
        loop {
            let next = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Err(format!("no answer to call {id} within the call timeout")),
                Ok(None) => return Err(format!("the connection ended while call {id} was pending")),
                Ok(Some(Err(e))) => return Err(format!("the connection failed while call {id} was pending: {e}")),
                Ok(Some(Ok(incoming))) => incoming,
            };
            if let Some(answer) = self.account(next, Some(id), tx).await {
                self.answered.insert(id);
                return Ok(answer);
            }
        }
    }

    /// Counts what arrives within `quiet` of each other after the last call.
    async fn drain(&mut self, quiet: Duration, tx: &mcp_transport_core::Sender) {
        while let Ok(Some(Ok(incoming))) = tokio::time::timeout(quiet, self.rx.recv()).await {
            self.account(incoming, None, tx).await;
        }
    }

    /// Accounts for one incoming frame; the answer when it is the response to `waiting`.
    async fn account(
        &mut self,
        incoming: Incoming,
        waiting: Option<i64>,
        tx: &mcp_transport_core::Sender,
    ) -> Option<Result<Value, ErrorObject>> {
        match incoming {
            Incoming::Message(Message::Response(Response { id: Some(Id::Number(n)), outcome })) => {
                if Some(n) == waiting {
                    return Some(match outcome {
                        Ok(raw) => Ok(serde_json::from_str(raw.get()).unwrap_or(Value::Null)),
                        Err(e) => Err(e),
                    });
                }
                if self.answered.contains(&n) {
                    self.tally.duplicated += 1;
                } else if self.lost.remove(&n) {
                    self.tally.late += 1;
                } else {
                    self.tally.mismatched += 1;
                }
                None
            }
            Incoming::Message(Message::Response(_)) => {
                self.tally.mismatched += 1;
                None
            }
            Incoming::Message(Message::Request(req)) => {
                // The gateway may ping its clients; anything else is not offered by this client.
                let outcome = if req.method == "ping" {
                    Ok(to_raw(&json!({})).expect("a JSON value serializes"))
                } else {
                    Err(ErrorObject::new(-32601, format!("{} is not offered by this client", req.method)))
                };
                let _ = tx.send(Response { id: Some(req.id), outcome }).await;
                None
            }
            Incoming::Message(Message::Notification(_)) => None,
            Incoming::Batch(_) | Incoming::Invalid(_) => {
                self.tally.unexpected += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ups() -> Vec<String> {
        vec!["uds".into(), "ws".into()]
    }

    #[test]
    fn the_mix_covers_every_kind_of_call_and_every_upstream() {
        let calls: Vec<Call> = (1..=40).map(|seq| Call::pick(3, seq, &ups(), "__")).collect();
        for kind in ["Echo", "Payload", "Sleep", "ListTools", "Ping"] {
            assert!(calls.iter().any(|c| format!("{c:?}").starts_with(kind)), "{kind}");
        }
        for up in ups() {
            assert!(calls.iter().any(|c| format!("{c:?}").contains(&format!("\"{up}__"))), "{up}");
        }
        for c in &calls {
            let served_by_gateway = matches!(c, Call::ListTools | Call::Ping);
            assert_eq!(c.target() == "gateway", served_by_gateway, "{c:?}");
            assert!(served_by_gateway || ups().iter().any(|u| u == c.target()), "{c:?}");
        }
        let req = Call::pick(3, 1, &ups(), "__").request(7);
        assert_eq!(req.id, Id::Number(7));
        let params: Value = serde_json::from_str(req.params.unwrap().get()).unwrap();
        assert_eq!(params["arguments"]["text"], "client 3 call 1");
    }

    #[test]
    fn checks_refuse_answers_to_other_calls() {
        let echo = Call::Echo { tool: "uds__echo".into(), text: "client 1 call 2".into() };
        let answer = |t: &str| json!({ "content": [{ "type": "text", "text": t }] });
        assert!(echo.check(&answer("client 1 call 2"), &ups(), "__").is_ok());
        assert!(echo.check(&answer("client 2 call 2"), &ups(), "__").is_err());
        let payload = Call::Payload { tool: "ws__payload".into(), bytes: 3 };
        assert!(payload.check(&answer("xxx"), &ups(), "__").is_ok());
        assert!(payload.check(&answer("xxxx"), &ups(), "__").is_err());
        let sleep = Call::Sleep { tool: "ws__sleep".into(), ms: 4 };
        assert!(sleep.check(&answer("slept 4 ms"), &ups(), "__").is_ok());
        let list = json!({ "tools": [{ "name": "uds__echo" }, { "name": "ws__sleep" }] });
        assert!(Call::ListTools.check(&list, &ups(), "__").is_ok());
        let foreign = json!({ "tools": [{ "name": "uds__echo" }, { "name": "quic__sleep" }] });
        assert!(Call::ListTools.check(&foreign, &ups(), "__").is_err());
        assert!(Call::ListTools.check(&json!({ "tools": [] }), &ups(), "__").is_err());
        assert!(Call::Ping.check(&json!({}), &ups(), "__").is_ok());
        assert!(Call::Ping.check(&answer("x"), &ups(), "__").is_err());
    }
}
