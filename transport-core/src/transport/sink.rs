//! A `futures::Sink` adapter over [`Sender`].

use std::pin::Pin;
use std::task::{Context, Poll};

use super::{BoxFuture, Sender};
use crate::Error;
use crate::message::Message;

/// A `Sink<Message>` that sends through a [`Sender`], one message in flight at a time.
pub struct SenderSink {
    sender: Sender,
    pending: Option<BoxFuture<'static, Result<(), Error>>>,
}

impl SenderSink {
    pub(super) fn new(sender: Sender) -> Self {
        Self { sender, pending: None }
    }

    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.pending.as_mut() {
            None => Poll::Ready(Ok(())),
            Some(fut) => {
                let res = std::task::ready!(fut.as_mut().poll(cx));
                self.pending = None;
                Poll::Ready(res)
            }
        }
    }
}

impl futures_sink::Sink<Message> for SenderSink {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        let this = self.get_mut();
        let sender = this.sender.clone();
        this.pending = Some(Box::pin(async move { sender.send(item).await }));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_pending(cx))?;
        let sender = this.sender.clone();
        this.pending = Some(Box::pin(async move { sender.close(std::time::Duration::from_secs(5)).await }));
        this.poll_pending(cx)
    }
}
