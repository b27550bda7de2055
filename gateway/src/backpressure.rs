//! Backpressure on downstream sessions: at most [`MAX_UNANSWERED`] requests of one session
//! are being served or have an answer waiting for room in its outbound queue.
//!
//! The session layer reads a connection's requests as they come and serves each on its own
//! task; an answer then waits for room in the connection's (bounded) outbound queue. A client
//! that keeps sending requests but never reads the answers would make the gateway hold every
//! answer it cannot write. Here the transport of every downstream session is wrapped:
//!
//! - the receiving half takes a permit from the session's semaphore before it hands a request
//!   (or a batch holding requests) to the session, and stops reading while none is free: the
//!   client's writes then block on the socket instead of the gateway's memory growing;
//! - [`Gate::take`]/[`Gate::give_back`] let the request's handler hold its permit while it runs
//!   (a cancelled handler is dropped and frees it), then leave it with the answer;
//! - the sending half frees the permit once the answer is in the outbound queue (or could not
//!   be sent).
//!
//! Answers the session gives without the gateway's handler (`initialize`, `ping`, refusals)
//! are sent right away and free their permit the same way. A batch counts as one request and
//! frees its permit with its batch answer (or the error that refuses it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use mcp_transport_core::transport::{BoxFuture, Inbound, Outbound, Outgoing};
use mcp_transport_core::{Error, Id, Incoming, Message, Receiver, Sender, Transport};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// Most requests of one downstream session that are being served or whose answers wait to be
/// written. Beyond it the gateway stops reading that session's connection.
pub(crate) const MAX_UNANSWERED: usize = 64;

/// What a permit belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A request, by its id.
    Request(Id),
    /// A batch array holding requests (answered by one batch array, or refused by one error
    /// without an id).
    Batch,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The permits of one downstream session's requests that are not held by a running handler.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Several entries per key when a client reuses an id while an answer is still queued.
    parked: Mutex<HashMap<Key, Vec<OwnedSemaphorePermit>>>,
}

impl Gate {
    fn park(&self, key: Key, permit: OwnedSemaphorePermit) {
        lock(&self.parked).entry(key).or_default().push(permit);
    }

    fn unpark(&self, key: &Key) -> Option<OwnedSemaphorePermit> {
        let mut parked = lock(&self.parked);
        let permits = parked.get_mut(key)?;
        let permit = permits.pop();
        if permits.is_empty() {
            parked.remove(key);
        }
        permit
    }

    /// The permit of request `id`, for its handler to hold while it runs (`None` for requests
    /// inside a batch, whose batch holds one).
    pub(crate) fn take(&self, id: &Id) -> Option<OwnedSemaphorePermit> {
        self.unpark(&Key::Request(id.clone()))
    }

    /// Leaves the permit of request `id` with its answer: it is freed once the answer is
    /// queued for writing.
    pub(crate) fn give_back(&self, id: Id, permit: OwnedSemaphorePermit) {
        self.park(Key::Request(id), permit);
    }
}

/// Wraps a downstream transport: returns it with both halves gated, and the session's gate.
pub(crate) fn gate(transport: Transport, limit: usize) -> (Transport, Arc<Gate>) {
    let gate = Arc::new(Gate::default());
    let Transport { sender, receiver, peer } = transport;
    let inbound = GatedInbound {
        inner: receiver,
        gate: gate.clone(),
        permits: PollSemaphore::new(Arc::new(Semaphore::new(limit))),
        held: None,
    };
    let outbound = GatedOutbound { inner: sender, gate: gate.clone() };
    let transport =
        Transport { sender: Sender::new(Arc::new(outbound)), receiver: Receiver::new(Box::new(inbound)), peer };
    (transport, gate)
}

/// The key of a frame that needs a permit, if it does.
fn admission(incoming: &Incoming) -> Option<Key> {
    match incoming {
        Incoming::Message(Message::Request(req)) => Some(Key::Request(req.id.clone())),
        Incoming::Batch(items) if items.iter().any(|i| matches!(i, Ok(Message::Request(_)))) => Some(Key::Batch),
        _ => None,
    }
}

struct GatedInbound {
    inner: Receiver,
    gate: Arc<Gate>,
    permits: PollSemaphore,
    /// A request read while no permit was free; nothing more is read until it is handed on.
    held: Option<(Incoming, Key)>,
}

impl Inbound for GatedInbound {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        let (incoming, key) = match self.held.take() {
            Some(held) => held,
            None => match self.inner.poll_recv(cx) {
                Poll::Ready(Some(Ok(incoming))) => match admission(&incoming) {
                    Some(key) => (incoming, key),
                    None => return Poll::Ready(Some(Ok(incoming))),
                },
                other => return other,
            },
        };
        match self.permits.poll_acquire(cx) {
            Poll::Ready(Some(permit)) => {
                self.gate.park(key, permit);
                Poll::Ready(Some(Ok(incoming)))
            }
            // The semaphore is never closed; were it, the request would pass ungated.
            Poll::Ready(None) => Poll::Ready(Some(Ok(incoming))),
            Poll::Pending => {
                tracing::debug!(limit = MAX_UNANSWERED, "too many unanswered requests; reading paused");
                self.held = Some((incoming, key));
                Poll::Pending
            }
        }
    }
}

struct GatedOutbound {
    inner: Sender,
    gate: Arc<Gate>,
}

/// The permit an outgoing message frees, if it answers a request.
fn answers(m: &Message) -> Option<Key> {
    match m {
        Message::Response(resp) => Some(match &resp.id {
            Some(id) => Key::Request(id.clone()),
            None => Key::Batch,
        }),
        _ => None,
    }
}

/// Frees a permit when dropped: after the answer was queued, failed, or was given up.
struct Free<'a> {
    gate: &'a Gate,
    key: Option<Key>,
}

impl Drop for Free<'_> {
    fn drop(&mut self) {
        if let Some(key) = &self.key {
            drop(self.gate.unpark(key));
        }
    }
}

impl Outbound for GatedOutbound {
    fn send(&self, item: Outgoing, inline: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let key = match &item {
                Outgoing::Message(m) => answers(m),
                Outgoing::Batch(_) => Some(Key::Batch),
            };
            let _free = Free { gate: &self.gate, key };
            match item {
                Outgoing::Message(m) if inline => self.inner.send(m).await,
                Outgoing::Message(m) => self.inner.feed(m).await,
                Outgoing::Batch(b) => self.inner.send_batch(b).await,
            }
        })
    }

    fn try_send(&self, item: Outgoing) -> Result<(), Error> {
        match item {
            Outgoing::Message(m) => {
                // Answers are sent waiting for room; were one tried and refused, it is gone.
                let _free = Free { gate: &self.gate, key: answers(&m) };
                self.inner.try_send(m)
            }
            Outgoing::Batch(_) => {
                Err(Error::Protocol("a batch array is only sent by waiting for room (send_batch)".into()))
            }
        }
    }

    fn close(&self, deadline: Duration) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.inner.close(deadline))
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use mcp_transport_core::transport::{Limits, PeerInfo, from_io};
    use mcp_transport_core::{Codec, Request, Response};
    use serde_json::json;

    use super::*;

    const GUARD: Duration = Duration::from_secs(10);

    /// A gated server side and a raw client side, over an in-memory pipe.
    fn pair(limit: usize) -> (Sender, Receiver, Arc<Gate>, Sender) {
        let (x, y) = tokio::io::duplex(1 << 16);
        let (xr, xw) = tokio::io::split(x);
        let (yr, yw) = tokio::io::split(y);
        let server = from_io(xr, xw, Codec::lines(), Limits::default(), PeerInfo::new("client"));
        let client = from_io(yr, yw, Codec::lines(), Limits::default(), PeerInfo::new("gateway"));
        let (server, gate) = super::gate(server, limit);
        let (tx, rx) = server.split();
        (tx, rx, gate, client.sender)
    }

    async fn request(client: &Sender, id: i64) {
        client.send(Request::new(Id::Number(id), "tools/call", &json!({})).unwrap()).await.unwrap();
    }

    async fn next_id(rx: &mut Receiver) -> Id {
        match tokio::time::timeout(GUARD, rx.recv()).await.expect("a request arrives") {
            Some(Ok(Incoming::Message(Message::Request(r)))) => r.id,
            other => panic!("a request was expected: {other:?}"),
        }
    }

    /// Nothing is handed on: the next request waits for a permit.
    async fn waits(rx: &mut Receiver) {
        let next = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(next.is_err(), "a request beyond the limit was handed on: {next:?}");
    }

    async fn answer(tx: &Sender, id: i64) {
        tx.send(Response::success(Id::Number(id), mcp_transport_core::message::to_raw(&json!({})).unwrap()))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn requests_beyond_the_limit_wait_until_an_answer_is_queued() {
        let (tx, mut rx, gate, client) = pair(2);
        for id in 1..=3 {
            request(&client, id).await;
        }
        assert_eq!(next_id(&mut rx).await, Id::Number(1));
        assert_eq!(next_id(&mut rx).await, Id::Number(2));
        waits(&mut rx).await;
        // A request answered without a handler (its permit parked since it was read).
        answer(&tx, 1).await;
        assert_eq!(next_id(&mut rx).await, Id::Number(3));

        // A handler holds its permit, then leaves it with the answer: still counted.
        let permit = gate.take(&Id::Number(3)).expect("the permit of request 3");
        request(&client, 4).await;
        waits(&mut rx).await;
        gate.give_back(Id::Number(3), permit);
        waits(&mut rx).await;
        answer(&tx, 3).await;
        assert_eq!(next_id(&mut rx).await, Id::Number(4));

        // A cancelled handler drops its permit with it.
        request(&client, 5).await;
        waits(&mut rx).await;
        drop(gate.take(&Id::Number(2)).expect("the permit of request 2"));
        assert_eq!(next_id(&mut rx).await, Id::Number(5));
    }

    #[tokio::test]
    async fn notifications_and_responses_pass_without_permits() {
        let (_tx, mut rx, _gate, client) = pair(1);
        request(&client, 1).await;
        assert_eq!(next_id(&mut rx).await, Id::Number(1));
        client
            .send(mcp_transport_core::Notification::new("notifications/progress", &json!({})).unwrap())
            .await
            .unwrap();
        client
            .send(Response::success(Id::Number(7), mcp_transport_core::message::to_raw(&json!({})).unwrap()))
            .await
            .unwrap();
        for _ in 0..2 {
            let next = tokio::time::timeout(GUARD, rx.recv()).await.expect("passes at once");
            assert!(
                matches!(next, Some(Ok(Incoming::Message(Message::Notification(_) | Message::Response(_))))),
                "{next:?}"
            );
        }
    }
}
