//! 2026-07-28: every POST is its own short-lived transport. The request metadata headers are
//! checked against the body; the answer is JSON when the response comes first, else SSE.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, StatusCode};
use mcp_transport_core::message::codes;
use mcp_transport_core::transport::{BoxFuture, Outbound, Outgoing};
use mcp_transport_core::{Error, Id, Incoming, Message, PeerInfo, Receiver, Request, Sender, Transport};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::body::{self, HttpResponse, ResponseBody, rpc_error};
use super::{ConnInfo, Core};
use crate::budget::{Budget, InTx, inbound_channel};
use crate::headers::{self, BadHeader, LEGACY_VERSIONS, META_PROTOCOL_VERSION, MODERN_VERSION};
use crate::sse;
use crate::{Generations, ParamHeaderLookup};

/// The HTTP status of a JSON answer, from its JSON-RPC error code.
fn status_for(msg: &Message) -> StatusCode {
    match msg {
        Message::Response(r) => match &r.outcome {
            Ok(_) => StatusCode::OK,
            Err(e) => match e.code {
                codes::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
                codes::PARSE_ERROR
                | codes::INVALID_REQUEST
                | codes::INVALID_PARAMS
                | codes::HEADER_MISMATCH
                | MISSING_CLIENT_CAPABILITY
                | codes::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
                _ => StatusCode::OK,
            },
        },
        _ => StatusCode::OK,
    }
}

/// -32021: the request needs a client capability that was not declared.
const MISSING_CLIENT_CAPABILITY: i64 = -32021;

fn mismatch(id: Option<Id>, detail: String) -> HttpResponse {
    rpc_error(StatusCode::BAD_REQUEST, id, codes::HEADER_MISMATCH, format!("Header mismatch: {detail}"))
}

/// Checks `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` against a request's body.
fn check_headers(h: &HeaderMap, req: &Request, header_version: &str) -> Result<(), String> {
    let facts = headers::body_facts(req.params.as_deref());
    match &facts.version {
        Some(Some(v)) if v != header_version => {
            return Err(format!(
                "MCP-Protocol-Version header value '{}' does not match _meta[\"{META_PROTOCOL_VERSION}\"] '{}'",
                body::snippet(header_version),
                body::snippet(v)
            ));
        }
        Some(None) => return Err(format!("_meta[\"{META_PROTOCOL_VERSION}\"] is not a string")),
        _ => {}
    }
    match headers::text(h, &headers::METHOD) {
        Err(BadHeader) => return Err("Mcp-Method header is repeated or not visible ASCII".into()),
        Ok(None) => return Err("missing Mcp-Method header".into()),
        Ok(Some(m)) if m != req.method => {
            return Err(format!(
                "Mcp-Method header value '{}' does not match body method '{}'",
                body::snippet(m),
                body::snippet(&req.method)
            ));
        }
        Ok(Some(_)) => {}
    }
    let Some(source) = headers::name_source(&req.method) else { return Ok(()) };
    let body_value = source.pick(&facts);
    match headers::text(h, &headers::NAME) {
        Err(BadHeader) => Err("Mcp-Name header is repeated or not visible ASCII".into()),
        Ok(None) => match body_value {
            Some(v) => Err(format!("missing Mcp-Name header ({} is '{}')", source.field(), body::snippet(v))),
            // Nothing to mirror: the session answers the malformed params.
            None => Ok(()),
        },
        Ok(Some(raw)) => {
            let decoded =
                headers::decode_value(raw).map_err(|_| "Mcp-Name header has an invalid Base64 value".to_owned())?;
            if Some(decoded.as_ref()) == body_value {
                Ok(())
            } else {
                Err(format!(
                    "Mcp-Name header value '{}' does not match body value '{}'",
                    body::snippet(&decoded),
                    body::snippet(body_value.unwrap_or("(absent)"))
                ))
            }
        }
    }
}

/// Checks the `Mcp-Param-*` headers of a `tools/call` against its arguments.
fn check_param_headers(h: &HeaderMap, req: &Request, lookup: &ParamHeaderLookup) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Call {
        name: Option<String>,
        #[serde(default)]
        arguments: Value,
    }
    let Some(Ok(call)) = req.params.as_deref().map(|p| serde_json::from_str::<Call>(p.get())) else { return Ok(()) };
    let Some(tool) = call.name else { return Ok(()) };
    for param in lookup.get(&tool) {
        let shown = format!("Mcp-Param-{}", param.header);
        let Ok(name) = HeaderName::from_bytes(format!("mcp-param-{}", param.header.to_ascii_lowercase()).as_bytes())
        else {
            continue;
        };
        let mut body = Some(&call.arguments);
        for key in &param.path {
            body = body.and_then(|v| v.get(key));
        }
        let body = body.filter(|v| !v.is_null());
        let path = param.path.join(".");
        match (headers::text(h, &name), body) {
            (Err(BadHeader), _) => return Err(format!("{shown} header is repeated or not visible ASCII")),
            (Ok(None), None) => {}
            (Ok(None), Some(_)) => return Err(format!("missing {shown} header (arguments.{path} has a value)")),
            (Ok(Some(_)), None) => return Err(format!("{shown} header is present but arguments.{path} has no value")),
            (Ok(Some(raw)), Some(value)) => {
                let decoded =
                    headers::decode_value(raw).map_err(|_| format!("{shown} header has an invalid Base64 value"))?;
                let same = match value {
                    Value::String(s) => *s == decoded,
                    Value::Bool(b) => decoded == if *b { "true" } else { "false" },
                    Value::Number(n) => n.as_f64().zip(decoded.parse::<f64>().ok()).is_some_and(|(a, b)| a == b),
                    _ => false,
                };
                if !same {
                    return Err(format!(
                        "{shown} header value '{}' does not match arguments.{path}",
                        body::snippet(&decoded)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// POST with a 2026 `MCP-Protocol-Version`.
pub(crate) async fn post(
    core: &Arc<Core>,
    conn: &ConnInfo,
    h: &HeaderMap,
    incoming: Incoming,
    len: usize,
    header_version: &str,
) -> HttpResponse {
    // Each POST is its own transport and carries its own token: nothing is shared between
    // requests, so one client's token never reaches another's transport.
    let token = super::bearer_token(h);
    if !core.authorized(token.as_ref()) {
        return body::unauthorized(
            super::request_id(&incoming),
            token.is_some(),
            "Unauthorized: this server does not accept the bearer token (or its absence)",
        );
    }
    let peer = PeerInfo::new(format!("http://{}", conn.remote)).with_bearer_token(token);
    let msg = match incoming {
        Incoming::Message(m) => m,
        Incoming::Batch(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::INVALID_REQUEST,
                "JSON-RPC batch arrays are not part of protocol 2026-07-28",
            );
        }
        Incoming::Invalid(e) => return rpc_error(StatusCode::BAD_REQUEST, e.id.clone(), e.code, e.reason.clone()),
    };
    match msg {
        Message::Response(r) => rpc_error(
            StatusCode::BAD_REQUEST,
            r.id,
            codes::INVALID_REQUEST,
            "clients do not send JSON-RPC responses in protocol 2026-07-28",
        ),
        Message::Notification(n) => {
            match headers::text(h, &headers::METHOD) {
                Ok(Some(m)) if m != n.method => {
                    return mismatch(
                        None,
                        format!(
                            "Mcp-Method header value '{}' does not match body method '{}'",
                            body::snippet(m),
                            body::snippet(&n.method)
                        ),
                    );
                }
                Err(BadHeader) => return mismatch(None, "Mcp-Method header is repeated or not visible ASCII".into()),
                _ => {}
            }
            let (tx, rx) = inbound_channel(&core.config.limits);
            if tx.send(Incoming::Message(Message::Notification(n)), len).await.is_err() {
                return body::empty(StatusCode::ACCEPTED);
            }
            drop(tx);
            let transport =
                Transport { sender: Sender::new(Arc::new(NoOutbound)), receiver: Receiver::new(Box::new(rx)), peer };
            if !core.hand_over(transport).await {
                return unavailable(None);
            }
            body::empty(StatusCode::ACCEPTED)
        }
        Message::Request(req) => {
            let body_version = headers::body_facts(req.params.as_deref()).version;
            if body_version.is_none() && header_version != MODERN_VERSION {
                // Nothing in the body names the version: the header alone asks for one we lack.
                let supported: &[&str] = match core.config.generations {
                    Generations::Modern => &[MODERN_VERSION],
                    _ => &[MODERN_VERSION, LEGACY_VERSIONS[0], LEGACY_VERSIONS[1], LEGACY_VERSIONS[2]],
                };
                return super::unsupported_version(Some(req.id), header_version, supported);
            }
            let checked = check_headers(h, &req, header_version).and_then(|()| match &core.config.param_headers {
                Some(lookup) if req.method == "tools/call" => check_param_headers(h, &req, lookup),
                _ => Ok(()),
            });
            if let Err(detail) = checked {
                return mismatch(Some(req.id), detail);
            }
            exchange(core, conn, req, len, peer).await
        }
    }
}

fn unavailable(id: Option<Id>) -> HttpResponse {
    rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        codes::INTERNAL_ERROR,
        "Service Unavailable: the server is shutting down",
    )
}

/// Serves one request: a transport for it, then its answer.
async fn exchange(core: &Arc<Core>, conn: &ConnInfo, req: Request, len: usize, peer: PeerInfo) -> HttpResponse {
    let id = req.id.clone();
    let limits = &core.config.limits;
    let (tx, rx) = inbound_channel(limits);
    if tx.send(Incoming::Message(Message::Request(req)), len).await.is_err() {
        return unavailable(Some(id));
    }
    let ex = Arc::new(Exchange {
        id: id.clone(),
        budget: Budget::new(limits),
        max_message_size: limits.max_message_size,
        backlog: core.config.stream_backlog,
        state: Mutex::new(ExState {
            inbound: Some(tx),
            queue: VecDeque::new(),
            waker: None,
            streaming: false,
            response_queued: false,
            sender_closed: false,
            done: false,
            kill: conn.kill.clone(),
        }),
    });
    let transport = Transport {
        sender: Sender::new(Arc::new(ExchangeOutbound(ex.clone()))),
        receiver: Receiver::new(Box::new(rx)),
        peer,
    };
    // Dropped with this future when the client goes away: that cancels the request.
    let mut guard = CancelGuard(Some(ex.clone()));
    if !core.hand_over(transport).await {
        return unavailable(Some(id));
    }
    match std::future::poll_fn(|cx| ex.poll_first(cx)).await {
        First::Response(json, status) => {
            guard.0 = None;
            body::json(status, json)
        }
        First::Stream => {
            guard.0 = None;
            body::sse(ResponseBody::Exchange(ExchangeBody { ex, ended: false }))
        }
        First::Closed => {
            guard.0 = None;
            rpc_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(id),
                codes::INTERNAL_ERROR,
                "Internal error: the server closed the request without answering it",
            )
        }
    }
}

struct ExState {
    /// Feeds the receiver; dropped when the exchange is over, which ends the receiver.
    inbound: Option<InTx>,
    /// Outgoing messages: JSON, budget cost, and the HTTP status when it is the response.
    queue: VecDeque<(Vec<u8>, u32, Option<StatusCode>)>,
    waker: Option<Waker>,
    /// The answer is an SSE stream.
    streaming: bool,
    response_queued: bool,
    sender_closed: bool,
    /// The response went out, or the client went away.
    done: bool,
    kill: CancellationToken,
}

/// One 2026-07-28 request and its answer.
pub(crate) struct Exchange {
    id: Id,
    budget: Budget,
    max_message_size: usize,
    backlog: usize,
    state: Mutex<ExState>,
}

enum First {
    Response(Bytes, StatusCode),
    Stream,
    Closed,
}

impl Exchange {
    fn lock(&self) -> MutexGuard<'_, ExState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn poll_first(&self, cx: &mut Context<'_>) -> Poll<First> {
        let mut st = self.lock();
        if let Some((_, _, status)) = st.queue.front() {
            return Poll::Ready(match status {
                Some(status) => {
                    let status = *status;
                    let (json, cost, _) = st.queue.pop_front().unwrap_or_default();
                    self.finish(&mut st);
                    drop(st);
                    self.budget.release(1, cost as usize);
                    First::Response(Bytes::from(json), status)
                }
                None => {
                    st.streaming = true;
                    First::Stream
                }
            });
        }
        if st.done || st.sender_closed {
            self.finish(&mut st);
            return Poll::Ready(First::Closed);
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The exchange is over: the receiver ends and further sends fail.
    fn finish(&self, st: &mut ExState) {
        st.done = true;
        st.inbound = None;
        self.budget.close();
    }

    /// The client went away: 2026-07-28 treats that as cancelling the request.
    fn cancel(&self) {
        let mut st = self.lock();
        if st.done {
            return;
        }
        tracing::debug!(id = %self.id, "client went away; request cancelled");
        let released = (st.queue.len(), st.queue.iter().map(|q| q.1 as usize).sum());
        st.queue.clear();
        self.finish(&mut st);
        drop(st);
        self.budget.release(released.0, released.1);
    }

    fn encode(&self, msg: &Message) -> Result<(Vec<u8>, u32, Option<StatusCode>), Error> {
        let status = match msg {
            Message::Request(r) => {
                return Err(Error::Protocol(format!(
                    "cannot send request {:?}: servers do not send requests in protocol 2026-07-28 \
                     (return an input_required result instead)",
                    r.method
                )));
            }
            Message::Response(r) if r.id.as_ref() != Some(&self.id) => {
                return Err(Error::Protocol(format!(
                    "this transport carries request {} only; a response to {:?} has nowhere to go",
                    self.id, r.id
                )));
            }
            Message::Response(_) => Some(status_for(msg)),
            Message::Notification(_) => None,
        };
        let mut json = Vec::with_capacity(msg.size_hint());
        serde_json::to_writer(&mut json, msg).map_err(|e| Error::Encode(e.to_string()))?;
        if json.len() > self.max_message_size {
            return Err(Error::TooLarge { size: json.len(), limit: self.max_message_size });
        }
        let cost = self.budget.cost(json.len() + 16);
        Ok((json, cost, status))
    }

    fn enqueue(&self, item: (Vec<u8>, u32, Option<StatusCode>)) -> Result<(), Error> {
        let mut st = self.lock();
        let cost = item.1;
        if st.done || st.response_queued || st.sender_closed {
            drop(st);
            self.budget.release(1, cost as usize);
            return Err(Error::Closed);
        }
        st.response_queued = item.2.is_some();
        st.queue.push_back(item);
        if let Some(w) = st.waker.take() {
            w.wake();
        }
        if st.streaming && st.queue.len() > self.backlog {
            tracing::warn!(id = %self.id, "closing a connection that does not read its SSE stream; request cancelled");
            st.kill.cancel();
            drop(st);
            self.cancel();
        }
        Ok(())
    }

    fn poll_data(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut st = self.lock();
        if st.queue.is_empty() {
            if st.done || st.sender_closed {
                self.finish(&mut st);
                return Poll::Ready(None);
            }
            st.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let mut out = BytesMut::new();
        let mut released = (0usize, 0usize);
        let mut answered = false;
        while let Some((json, cost, status)) = st.queue.pop_front() {
            out.extend_from_slice(&sse::event(None, &json));
            released.0 += 1;
            released.1 += cost as usize;
            answered |= status.is_some();
        }
        if answered {
            self.finish(&mut st);
        }
        drop(st);
        self.budget.release(released.0, released.1);
        Poll::Ready(Some(out.freeze()))
    }
}

struct CancelGuard(Option<Arc<Exchange>>);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(ex) = self.0.take() {
            ex.cancel();
        }
    }
}

/// The body of a 2026-07-28 SSE answer.
pub(crate) struct ExchangeBody {
    ex: Arc<Exchange>,
    ended: bool,
}

impl ExchangeBody {
    /// Whether the stream has ended (its last event may already be out).
    pub(crate) fn is_end(&self) -> bool {
        self.ended
    }

    pub(crate) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let r = self.ex.poll_data(cx);
        match &r {
            Poll::Ready(None) => self.ended = true,
            Poll::Ready(Some(_)) => self.ended = self.ex.lock().done,
            Poll::Pending => {}
        }
        r
    }
}

impl Drop for ExchangeBody {
    fn drop(&mut self) {
        // A body dropped before the response went out: the client closed the stream.
        self.ex.cancel();
    }
}

struct ExchangeOutbound(Arc<Exchange>);

impl Outbound for ExchangeOutbound {
    fn send(&self, item: Outgoing, _inline: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let msgs = match item {
                Outgoing::Message(m) => vec![m],
                Outgoing::Batch(ms) => ms,
            };
            for m in msgs {
                let item = self.0.encode(&m)?;
                self.0.budget.acquire(item.1).await?;
                self.0.enqueue(item)?;
            }
            Ok(())
        })
    }

    fn try_send(&self, item: Outgoing) -> Result<(), Error> {
        let msgs = match item {
            Outgoing::Message(m) => vec![m],
            Outgoing::Batch(ms) => ms,
        };
        for m in msgs {
            let item = self.0.encode(&m)?;
            self.0.budget.try_acquire(item.1)?;
            self.0.enqueue(item)?;
        }
        Ok(())
    }

    fn close(&self, _deadline: Duration) -> BoxFuture<'_, Result<(), Error>> {
        self.release();
        Box::pin(async { Ok(()) })
    }

    fn is_closed(&self) -> bool {
        let st = self.0.lock();
        st.done || st.response_queued || st.sender_closed
    }

    fn release(&self) {
        let mut st = self.0.lock();
        st.sender_closed = true;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
}

/// The sending half of a notification's transport: there is nobody to send to.
struct NoOutbound;

impl Outbound for NoOutbound {
    fn send(&self, _item: Outgoing, _inline: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Err(Error::Closed) })
    }

    fn try_send(&self, _item: Outgoing) -> Result<(), Error> {
        Err(Error::Closed)
    }

    fn close(&self, _deadline: Duration) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn is_closed(&self) -> bool {
        true
    }
}
