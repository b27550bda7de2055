//! A [`RawWire`] over any byte stream using newline-delimited framing.

use std::io;

use mcp_transport_core::transport::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::context::RawWire;

/// Longest line accepted from the server (larger ones are an error, not unbounded growth).
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Newline-delimited frames over a byte stream (Unix sockets, stdio, QUIC streams).
/// Receiving is cancel-safe: a partly read line stays buffered.
pub struct LineWire<R, W> {
    read: BufReader<R>,
    write: W,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> LineWire<R, W> {
    /// Wraps the two halves of a connected stream.
    pub fn new(read: R, write: W) -> Self {
        Self { read: BufReader::new(read), write, line: Vec::new() }
    }
}

impl<R: AsyncRead + Unpin + Send, W: AsyncWrite + Unpin + Send> RawWire for LineWire<R, W> {
    fn send<'a>(&'a mut self, payload: &'a [u8]) -> BoxFuture<'a, io::Result<()>> {
        Box::pin(async move {
            let mut frame = Vec::with_capacity(payload.len() + 1);
            frame.extend_from_slice(payload);
            frame.push(b'\n');
            self.write.write_all(&frame).await?;
            self.write.flush().await
        })
    }

    fn recv(&mut self) -> BoxFuture<'_, io::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            loop {
                let buf = self.read.fill_buf().await?;
                if buf.is_empty() {
                    return Ok(None);
                }
                let (used, done) = match memchr_newline(buf) {
                    Some(i) => {
                        self.line.extend_from_slice(&buf[..i]);
                        (i + 1, true)
                    }
                    None => {
                        self.line.extend_from_slice(buf);
                        (buf.len(), false)
                    }
                };
                self.read.consume(used);
                if self.line.len() > MAX_LINE {
                    self.line.clear();
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a line longer than {MAX_LINE} bytes"),
                    ));
                }
                if done {
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Ok(Some(line));
                }
            }
        })
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}
