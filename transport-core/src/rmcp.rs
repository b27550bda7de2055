//! Interop with rmcp, the official Rust MCP SDK (feature `rmcp`).
//!
//! [`RmcpTransport`] makes any of our transports an `rmcp::transport::Transport`, so an rmcp
//! client or server runs over Unix sockets, WebSocket, QUIC or anything else built on this
//! crate: `client_handler.serve(transport.into_rmcp()).await`.
//!
//! Messages cross the boundary as JSON text: rmcp's typed messages are serialized and parsed
//! into our envelope on the way out, and the reverse on the way in. Frames that are not valid
//! JSON-RPC are answered with their JSON-RPC error (-32700 / -32600) directly, as our own
//! session layer does, and are not handed to rmcp.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::time::Duration;

use rmcp::service::{RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};

use crate::message::{Incoming, InvalidMessage, Message};
use crate::{Error, Receiver, Sender, Transport};

/// How long `close` waits for queued messages to be written.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// One of our transports, seen by rmcp as its `Transport<R>` for role `R`
/// (`rmcp::RoleClient` or `rmcp::RoleServer`).
pub struct RmcpTransport<R> {
    sender: Sender,
    receiver: Receiver,
    role: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for RmcpTransport<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RmcpTransport").finish_non_exhaustive()
    }
}

impl Transport {
    /// This transport as an rmcp transport for role `R`.
    pub fn into_rmcp<R: ServiceRole>(self) -> RmcpTransport<R> {
        RmcpTransport { sender: self.sender, receiver: self.receiver, role: PhantomData }
    }
}

fn to_ours<T: serde::Serialize>(item: &T) -> Result<Message, Error> {
    let bytes = serde_json::to_vec(item).map_err(|e| Error::Encode(e.to_string()))?;
    Message::from_slice(&bytes).map_err(|e| Error::Encode(format!("rmcp produced an invalid message: {e}")))
}

async fn answer_invalid(sender: &Sender, e: &InvalidMessage) {
    tracing::warn!(code = e.code, reason = %e.reason, "invalid message received");
    if let Err(err) = sender.send(e.to_response()).await {
        tracing::debug!(error = %err, "could not answer an invalid message");
    }
}

impl<R: ServiceRole> rmcp::transport::Transport<R> for RmcpTransport<R> {
    type Error = Error;

    fn name() -> Cow<'static, str> {
        "mcp-transports".into()
    }

    fn send(&mut self, item: TxJsonRpcMessage<R>) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let sender = self.sender.clone();
        let msg = to_ours(&item);
        async move { sender.send(msg?).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<R>> {
        {
            loop {
                match self.receiver.recv().await? {
                    Ok(Incoming::Message(m)) => match serde_json::from_slice(&m.to_vec()) {
                        Ok(rx) => return Some(rx),
                        Err(e) => {
                            let invalid = InvalidMessage {
                                code: crate::message::codes::INVALID_REQUEST,
                                id: m.id().cloned(),
                                reason: format!("not an MCP message: {e}"),
                            };
                            answer_invalid(&self.sender, &invalid).await;
                        }
                    },
                    Ok(Incoming::Batch(_)) => {
                        let invalid = InvalidMessage {
                            code: crate::message::codes::INVALID_REQUEST,
                            id: None,
                            reason: "JSON-RPC batch arrays are not supported".into(),
                        };
                        answer_invalid(&self.sender, &invalid).await;
                    }
                    Ok(Incoming::Invalid(e)) => answer_invalid(&self.sender, &e).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "connection failed");
                        return None;
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Error> {
        self.sender.close(CLOSE_DEADLINE).await
    }
}
