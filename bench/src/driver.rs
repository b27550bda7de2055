//! The client side of a case: something that makes round trips.

use mcp_transport_core::transport::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::BenchError;

/// Makes round trips against one server over one connection.
pub trait Driver: Send {
    /// Sends one request and waits for its response.
    fn round_trip(&mut self) -> BoxFuture<'_, Result<(), BenchError>>;
    /// Sends `k` requests together and waits for all `k` responses.
    fn burst(&mut self, k: usize) -> BoxFuture<'_, Result<(), BenchError>>;
}

/// Runs `k` calls concurrently on the current task (a burst of requests in flight together);
/// the first failure, if any, is the result.
pub(crate) async fn concurrently<F, Fut>(k: usize, call: F) -> Result<(), BenchError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), BenchError>>,
{
    futures_util::future::join_all((0..k).map(|_| call())).await.into_iter().collect()
}

/// A raw newline-delimited client over any byte stream: writes the captured request line and
/// reads one line back, with no JSON work at all.
pub struct LinesDriver<R, W> {
    reader: BufReader<R>,
    writer: W,
    request: Vec<u8>,
    batch: Vec<u8>,
    line: Vec<u8>,
    response_len: usize,
}

impl<R: AsyncRead + Unpin + Send, W: AsyncWrite + Unpin + Send> LinesDriver<R, W> {
    /// A driver sending `request` (one JSON message, no newline) and expecting answers of
    /// `response_len` bytes plus the newline.
    pub fn new(reader: R, writer: W, request: &[u8], response_len: usize) -> Self {
        let mut line = request.to_vec();
        line.push(b'\n');
        LinesDriver {
            reader: BufReader::with_capacity(64 * 1024, reader),
            writer,
            request: line,
            batch: Vec::new(),
            line: Vec::with_capacity(response_len + 1),
            response_len,
        }
    }
}

async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
    expected: usize,
) -> Result<(), BenchError> {
    line.clear();
    let n = reader.read_until(b'\n', line).await.map_err(BenchError::trip)?;
    if n != expected + 1 {
        return Err(BenchError::RoundTrip(format!("read {n} bytes where a {}-byte line was expected", expected + 1)));
    }
    Ok(())
}

impl<R: AsyncRead + Unpin + Send, W: AsyncWrite + Unpin + Send> Driver for LinesDriver<R, W> {
    fn round_trip(&mut self) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(async move {
            self.writer.write_all(&self.request).await.map_err(BenchError::trip)?;
            self.writer.flush().await.map_err(BenchError::trip)?;
            read_line(&mut self.reader, &mut self.line, self.response_len).await
        })
    }

    fn burst(&mut self, k: usize) -> BoxFuture<'_, Result<(), BenchError>> {
        Box::pin(async move {
            if self.batch.len() != k * self.request.len() {
                self.batch = self.request.repeat(k);
            }
            let LinesDriver { reader, writer, batch, line, response_len, .. } = self;
            let write = async {
                writer.write_all(batch).await.map_err(BenchError::trip)?;
                writer.flush().await.map_err(BenchError::trip)
            };
            let read = async {
                for _ in 0..k {
                    read_line(reader, line, *response_len).await?;
                }
                Ok(())
            };
            tokio::try_join!(write, read).map(drop)
        })
    }
}

/// A raw newline-delimited echo server: answers every request line with `response` (which
/// ends with a newline). Responses to requests that arrived together leave in one write.
pub async fn serve_lines<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(reader: R, mut writer: W, response: &[u8]) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::new();
    let mut out = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        out.extend_from_slice(response);
        if !reader.buffer().contains(&b'\n') {
            if writer.write_all(&out).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_driver_against_the_lines_echo() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (sr, sw) = tokio::io::split(server);
        tokio::spawn(async move { serve_lines(sr, sw, b"{\"ok\":1}\n").await });
        let (cr, cw) = tokio::io::split(client);
        let mut d = LinesDriver::new(cr, cw, b"{\"q\":1}", 8);
        d.round_trip().await.unwrap();
        d.burst(16).await.unwrap();
        d.round_trip().await.unwrap();
        let mut wrong = LinesDriver::new(tokio::io::empty(), tokio::io::sink(), b"{}", 8);
        assert!(wrong.round_trip().await.is_err(), "a closed server is an error, not a hang");
    }
}
