//! Helpers shared by the integration tests: running this test binary as a child process in a
//! "child mode" (one `#[ignore]`d entry-point function), and skipping what libtest prints on
//! the child's stdout before that function starts.

#![allow(dead_code)]

use std::time::Duration;

use mcp_transport_core::{Incoming, Message, Notification, Transport};
use mcp_transport_stdio::ChildConfig;

/// The notification a child mode writes first, once it is ready.
pub(crate) const READY_METHOD: &str = "test/ready";

/// The same notification as bytes, for child modes that write raw bytes.
pub(crate) const READY_LINE: &[u8] = b"{\"jsonrpc\":\"2.0\",\"method\":\"test/ready\"}\n";

/// Hang guard for any single step.
pub(crate) const STEP: Duration = Duration::from_secs(20);

/// Runs this test binary with only the ignored test `entry` (an entry point that does nothing
/// unless its environment variable is set, and ends the process itself).
pub(crate) fn child_mode(entry: &str) -> ChildConfig {
    let exe = std::env::current_exe().expect("path of the test binary");
    ChildConfig::new(exe).args([entry, "--exact", "--ignored", "--quiet", "--test-threads=1", "--nocapture"])
}

/// Reads the child's transport up to its ready notification, and returns it. libtest prints a
/// "running 1 test" line on stdout before the entry point runs; it arrives as an invalid frame.
pub(crate) async fn await_ready(t: &mut Transport) -> Notification {
    loop {
        match tokio::time::timeout(STEP, t.receiver.recv()).await.expect("child mode did not start in time") {
            Some(Ok(Incoming::Message(Message::Notification(n)))) if n.method == READY_METHOD => return n,
            Some(Ok(Incoming::Invalid(_))) => {}
            other => panic!("child mode did not start: {other:?}"),
        }
    }
}
