//! Servers in their own process, as deployed: `mcpt serve` for our transports, and the hidden
//! `mcpt bench --serve-role …` roles for the raw floors and the peers.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::BenchError;

/// How to start server processes: a program that understands
/// `serve --listen ENDPOINT… --log-format json` (the reference server on our transports) and
/// `bench --serve-role ROLE --listen ADDR --size SIZE --log-format json` (floors and peers),
/// and logs each endpoint it serves as a JSON line whose `fields.endpoint` is the URL.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program, usually `mcpt` itself (`std::env::current_exe()`).
    pub program: PathBuf,
}

/// A server child process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// The endpoints it logged, in order.
    pub endpoints: Vec<String>,
}

impl ServerProcess {
    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// How long a server child may take to log its endpoints.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

impl Launcher {
    /// A command running the program with `args` under `prefix` (e.g. `ip netns exec NS`).
    pub(crate) fn command<I, S>(&self, prefix: &[String], args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        cmd.args(args).env("RUST_LOG", "info").kill_on_drop(true);
        cmd
    }

    /// Starts the program with `args` and waits until it has logged `count` endpoints.
    pub(crate) async fn start(
        &self,
        prefix: &[String],
        args: &[String],
        count: usize,
    ) -> Result<ServerProcess, BenchError> {
        let what = format!("{} {}", self.program.display(), args.join(" "));
        let fail = |reason: String| BenchError::Setup { case: what.clone(), reason };
        let mut child = self
            .command(prefix, args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let stderr = child.stderr.take().ok_or_else(|| fail("no stderr".into()))?;
        let mut lines = BufReader::new(stderr).lines();
        let mut endpoints = Vec::new();
        let mut seen = Vec::new();
        let wait = async {
            while endpoints.len() < count {
                match lines.next_line().await {
                    Ok(Some(line)) => match endpoint_of(&line) {
                        Some(e) => endpoints.push(e),
                        None => seen.push(line),
                    },
                    _ => return Err(format!("exited before serving; it said: {}", seen.join(" | "))),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(READY_TIMEOUT, wait).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(fail(reason)),
            Err(_) => return Err(fail(format!("not ready after {READY_TIMEOUT:?}"))),
        }
        // Keep draining its log so that it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ServerProcess { child, endpoints })
    }
}

/// The `fields.endpoint` of a JSON log line.
fn endpoint_of(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.pointer("/fields/endpoint")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_come_from_json_log_lines() {
        let line = r#"{"level":"INFO","fields":{"message":"serving","endpoint":"ws://127.0.0.1:5/mcp"}}"#;
        assert_eq!(endpoint_of(line).as_deref(), Some("ws://127.0.0.1:5/mcp"));
        assert_eq!(endpoint_of(r#"{"fields":{"message":"x"}}"#), None);
        assert_eq!(endpoint_of("not json"), None);
    }

    #[tokio::test]
    async fn a_program_that_never_serves_is_a_setup_error() {
        let launcher = Launcher { program: "/bin/true".into() };
        let err = launcher.start(&[], &[], 1).await.unwrap_err();
        assert!(err.to_string().contains("exited before serving"), "{err}");
    }
}
