//! An in-memory transport pair: messages pass through bounded channels without encoding.

use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{BoxFuture, Inbound, Limits, Outbound, Outgoing, PeerInfo, Receiver, Sender, Transport};
use crate::Error;
use crate::message::Incoming;

/// Two connected in-memory transports. The outbound queue is bounded in messages
/// (`limits.max_queued_messages`); messages larger than `limits.max_message_size`, measured as
/// compact JSON, are refused as on a real transport.
pub fn memory_pair(limits: Limits) -> (Transport, Transport) {
    let (a_tx, a_rx) = mpsc::channel(limits.max_queued_messages.max(1));
    let (b_tx, b_rx) = mpsc::channel(limits.max_queued_messages.max(1));
    let make = |tx, rx| Transport {
        sender: Sender::new(std::sync::Arc::new(MemoryOutbound {
            tx: Mutex::new(Some(tx)),
            limit: limits.max_message_size,
        })),
        receiver: Receiver::new(Box::new(MemoryInbound { rx })),
        peer: PeerInfo::new("memory"),
    };
    (make(a_tx, b_rx), make(b_tx, a_rx))
}

struct MemoryOutbound {
    tx: Mutex<Option<mpsc::Sender<Outgoing>>>,
    limit: usize,
}

struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MemoryOutbound {
    fn channel(&self, item: &Outgoing) -> Result<mpsc::Sender<Outgoing>, Error> {
        let mut counter = Counter(0);
        let written = match item {
            Outgoing::Message(m) => serde_json::to_writer(&mut counter, m),
            Outgoing::Batch(ms) => serde_json::to_writer(&mut counter, ms),
        };
        written.map_err(|e| Error::Encode(e.to_string()))?;
        if counter.0 > self.limit {
            return Err(Error::TooLarge { size: counter.0, limit: self.limit });
        }
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(Error::Closed)
    }
}

impl Outbound for MemoryOutbound {
    fn send(&self, item: Outgoing, _inline: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let tx = self.channel(&item)?;
            tx.send(item).await.map_err(|_| Error::Closed)
        })
    }

    fn try_send(&self, item: Outgoing) -> Result<(), Error> {
        self.channel(&item)?.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Full,
            mpsc::error::TrySendError::Closed(_) => Error::Closed,
        })
    }

    fn close(&self, _deadline: Duration) -> BoxFuture<'_, Result<(), Error>> {
        self.release();
        Box::pin(async { Ok(()) })
    }

    fn is_closed(&self) -> bool {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(|tx| tx.is_closed())
    }

    fn release(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

struct MemoryInbound {
    rx: mpsc::Receiver<Outgoing>,
}

impl Inbound for MemoryInbound {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|item| {
                Ok(match item {
                    Outgoing::Message(m) => Incoming::Message(m),
                    Outgoing::Batch(ms) => Incoming::Batch(ms.into_iter().map(Ok).collect()),
                })
            })
        })
    }
}
