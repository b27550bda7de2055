//! Bounded queues: the outbound budget (messages and bytes waiting to be delivered) and the
//! inbound channel that feeds a transport's receiver.

use std::sync::Arc;
use std::task::{Context, Poll};

use mcp_transport_core::transport::Inbound;
use mcp_transport_core::{Error, Incoming, Limits};
use tokio::sync::{Semaphore, TryAcquireError, mpsc, oneshot};

/// Permits for messages and bytes waiting in an outbound queue. A message larger than the
/// whole byte budget costs the whole budget, so it is still accepted when the queue is empty.
#[derive(Debug)]
pub(crate) struct Budget {
    messages: Semaphore,
    bytes: Semaphore,
    max_bytes: u32,
}

impl Budget {
    pub(crate) fn new(limits: &Limits) -> Self {
        let max_bytes = limits.max_queued_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        Self {
            messages: Semaphore::new(limits.max_queued_messages.clamp(1, Semaphore::MAX_PERMITS)),
            bytes: Semaphore::new(max_bytes as usize),
            max_bytes,
        }
    }

    /// What a message of `len` encoded bytes costs.
    pub(crate) fn cost(&self, len: usize) -> u32 {
        (len.min(u32::MAX as usize) as u32).clamp(1, self.max_bytes)
    }

    /// Waits for room; `Err(Closed)` once the budget is closed.
    pub(crate) async fn acquire(&self, cost: u32) -> Result<(), Error> {
        let m = self.messages.acquire().await.map_err(|_| Error::Closed)?;
        let b = self.bytes.acquire_many(cost).await.map_err(|_| Error::Closed)?;
        m.forget();
        b.forget();
        Ok(())
    }

    /// Takes room at once, or fails with `Full` (or `Closed`).
    pub(crate) fn try_acquire(&self, cost: u32) -> Result<(), Error> {
        let map = |e| match e {
            TryAcquireError::NoPermits => Error::Full,
            TryAcquireError::Closed => Error::Closed,
        };
        let m = self.messages.try_acquire().map_err(map)?;
        let b = self.bytes.try_acquire_many(cost).map_err(map)?;
        m.forget();
        b.forget();
        Ok(())
    }

    /// Returns the room held by `messages` messages costing `bytes` in total.
    pub(crate) fn release(&self, messages: usize, bytes: usize) {
        if messages > 0 {
            self.messages.add_permits(messages);
            self.bytes.add_permits(bytes);
        }
    }

    /// Fails every waiting and future acquisition with `Closed`.
    pub(crate) fn close(&self) {
        self.messages.close();
        self.bytes.close();
    }
}

/// Who waits for the receiver to take a message.
#[derive(Debug)]
struct Ack {
    tx: oneshot::Sender<()>,
    /// Wait for the poll after the one that took the message.
    after_reaction: bool,
}

/// A queued message, its byte cost, and who waits for the receiver to take it.
type Item = (Incoming, u32, Option<Ack>);

/// Creates the inbound channel of a transport, bounded in messages and bytes.
pub(crate) fn inbound_channel(limits: &Limits) -> (InTx, InRx) {
    let (tx, rx) = mpsc::channel(limits.max_queued_messages.max(1));
    let max = limits.max_queued_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
    let bytes = Arc::new(Semaphore::new(max as usize));
    (InTx { tx, bytes: bytes.clone(), max }, InRx { rx, bytes, pending_ack: None })
}

/// The sending side of an inbound channel. Cloning it keeps the receiver open.
#[derive(Debug, Clone)]
pub(crate) struct InTx {
    tx: mpsc::Sender<Item>,
    bytes: Arc<Semaphore>,
    max: u32,
}

impl InTx {
    /// Queues `item` (of `len` bytes on the wire), waiting for room. `Err` when the receiver
    /// is gone.
    pub(crate) async fn send(&self, item: Incoming, len: usize) -> Result<(), Incoming> {
        self.push(item, len, None).await
    }

    /// Queues `item`; the returned receiver resolves once the transport's receiver has taken
    /// it or, with `after_reaction`, once the receiver has taken it and then been polled again
    /// (or dropped): by then a session has reacted to the message (a handler that answers at
    /// once has sent its answer). `Err` when the receiver is gone.
    pub(crate) async fn send_acked(
        &self,
        item: Incoming,
        len: usize,
        after_reaction: bool,
    ) -> Result<oneshot::Receiver<()>, ()> {
        let (ack, taken) = oneshot::channel();
        self.push(item, len, Some(Ack { tx: ack, after_reaction })).await.map_err(|_| ())?;
        Ok(taken)
    }

    async fn push(&self, item: Incoming, len: usize, ack: Option<Ack>) -> Result<(), Incoming> {
        let cost = (len.min(u32::MAX as usize) as u32).clamp(1, self.max);
        match self.bytes.acquire_many(cost).await {
            Ok(p) => p.forget(),
            Err(_) => return Err(item),
        }
        match self.tx.send((item, cost, ack)).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError((item, _, _))) => {
                self.bytes.add_permits(cost as usize);
                Err(item)
            }
        }
    }

    /// Resolves once the receiver has been dropped.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The receiving side of an inbound channel: ends once every [`InTx`] is gone.
#[derive(Debug)]
pub(crate) struct InRx {
    rx: mpsc::Receiver<Item>,
    bytes: Arc<Semaphore>,
    /// The acknowledgement of the last message taken, sent at the next poll.
    pending_ack: Option<oneshot::Sender<()>>,
}

impl Drop for InRx {
    fn drop(&mut self) {
        if let Some(ack) = self.pending_ack.take() {
            let _ = ack.send(());
        }
        // Wakes senders waiting for byte room that would never come back.
        self.bytes.close();
    }
}

impl Inbound for InRx {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        if let Some(ack) = self.pending_ack.take() {
            let _ = ack.send(());
        }
        self.rx.poll_recv(cx).map(|item| {
            item.map(|(item, cost, ack)| {
                self.bytes.add_permits(cost as usize);
                match ack {
                    Some(a) if a.after_reaction => self.pending_ack = Some(a.tx),
                    Some(a) => {
                        let _ = a.tx.send(());
                    }
                    None => {}
                }
                Ok(item)
            })
        })
    }
}
