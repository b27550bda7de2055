//! One-way pipelined throughput on one Unix-socket connection: how many messages per second
//! a sender can push and a receiver can parse.

use std::time::Instant;

use mcp_transport_core::message::to_raw;
use mcp_transport_core::{Codec, Incoming, Limits, Message, Notification};
use mcp_transport_uds::{UdsAddr, UdsConfig, UdsListener};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::BenchError;

/// The message sent: a 306-byte `notifications/progress`.
fn notification() -> Message {
    let params = json!({ "progressToken": 1, "progress": 1, "message": "y".repeat(200) });
    Message::Notification(Notification {
        method: "notifications/progress".into(),
        params: Some(to_raw(&params).expect("static JSON")),
    })
}

/// Bytes of one message (without its newline).
pub fn message_len() -> usize {
    notification().to_vec().len()
}

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError::RoundTrip(e.to_string())
}

/// Raw floor: `n` newline-delimited messages written to a tokio `UnixStream` in 64 KiB chunks
/// and read by a `BufReader`, line by line. Returns messages per second.
pub async fn raw_uds_lines(n: usize) -> Result<f64, BenchError> {
    let msg = notification().to_vec();
    let (mut client, server) = UnixStream::pair().map_err(fail)?;
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::with_capacity(64 * 1024, server);
        let mut line = Vec::new();
        for _ in 0..n {
            line.clear();
            if lines.read_until(b'\n', &mut line).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
        }
        Ok(())
    });
    let start = Instant::now();
    let mut chunk = Vec::with_capacity(64 * 1024);
    for _ in 0..n {
        chunk.extend_from_slice(&msg);
        chunk.push(b'\n');
        if chunk.len() >= 60 * 1024 {
            client.write_all(&chunk).await.map_err(fail)?;
            chunk.clear();
        }
    }
    client.write_all(&chunk).await.map_err(fail)?;
    reader.await.map_err(fail)?.map_err(fail)?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Ours: `n` messages through `Sender::feed` (or `Sender::send` when `inline`) on the
/// Unix-socket transport, received and parsed by `Receiver::recv`. Returns messages per
/// second.
pub async fn transport_uds(n: usize, codec: Codec, inline: bool) -> Result<f64, BenchError> {
    let msg = notification();
    let dir = tempfile::tempdir().map_err(fail)?;
    let addr = UdsAddr::parse(&format!("unix://{}", dir.path().join("pipe.sock").display())).map_err(fail)?;
    let config = UdsConfig { codec, limits: Limits::default(), ..UdsConfig::default() };
    let listener = UdsListener::bind(addr.clone(), config.clone()).await.map_err(fail)?;
    let reader = tokio::spawn(async move {
        let mut t = listener.accept().await.map_err(fail)?;
        for _ in 0..n {
            match t.receiver.recv().await {
                Some(Ok(Incoming::Message(_))) => {}
                other => return Err(BenchError::RoundTrip(format!("unexpected {other:?}"))),
            }
        }
        Ok(())
    });
    let t = mcp_transport_uds::connect(&addr, &config).await.map_err(fail)?;
    let start = Instant::now();
    for _ in 0..n {
        if inline { t.sender.send(msg.clone()).await } else { t.sender.feed(msg.clone()).await }.map_err(fail)?;
    }
    reader.await.map_err(fail)??;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_paths_deliver_every_message() {
        assert!(raw_uds_lines(10_000).await.unwrap() > 0.0);
        for inline in [false, true] {
            assert!(transport_uds(10_000, Codec::lines(), inline).await.unwrap() > 0.0);
        }
        assert_eq!(message_len(), 306);
    }
}
