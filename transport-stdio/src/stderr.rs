//! The child's stderr, read line by line and emitted as `tracing` events.

use tokio::io::AsyncReadExt;
use tokio::process::ChildStderr;

use crate::process::ChildId;

/// Reads `stderr` until end of file, emitting one event per line at INFO level with target
/// `mcp_transport_stdio::child`. A line longer than `max_line` bytes is emitted in pieces of
/// `max_line` bytes (each but the last marked `partial = true`), so memory stays bounded
/// whatever the child writes, and the child never blocks on a full stderr pipe for long.
pub(crate) async fn log_lines(mut stderr: ChildStderr, max_line: usize, id: ChildId) {
    let mut buf = vec![0u8; max_line.max(1)];
    let mut len = 0;
    loop {
        let n = match stderr.read(&mut buf[len..]).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(error = %e, "reading the child's stderr failed");
                break;
            }
        };
        let end = len + n;
        let mut start = 0;
        let mut scan = len;
        while let Some(i) = memchr::memchr(b'\n', &buf[scan..end]) {
            emit(&buf[start..scan + i], false, &id);
            start = scan + i + 1;
            scan = start;
        }
        if start == 0 && end == buf.len() {
            emit(&buf[..end], true, &id);
            len = 0;
        } else {
            buf.copy_within(start..end, 0);
            len = end - start;
        }
    }
    if len > 0 {
        emit(&buf[..len], false, &id);
    }
}

fn emit(line: &[u8], partial: bool, id: &ChildId) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(line);
    if partial {
        tracing::info!(target: "mcp_transport_stdio::child", pid = id.pid, program = %id.program, partial = true, "{text}");
    } else {
        tracing::info!(target: "mcp_transport_stdio::child", pid = id.pid, program = %id.program, "{text}");
    }
}
