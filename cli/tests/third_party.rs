//! `mcpt conform` against a third-party server: `@modelcontextprotocol/server-everything`
//! (pinned in `conformance/official/package.json`), with its known bugs in
//! `conformance/baselines/server-everything-{stdio,http}.toml`.

mod common;

use std::process::Command;

use common::{MCPT, node, server_everything};

fn baseline(transport: &str) -> String {
    format!("{}/../conformance/baselines/server-everything-{transport}.toml", env!("CARGO_MANIFEST_DIR"))
}

fn assert_clean(out: std::process::Output) {
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{report}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(report.contains(" 0 failed, 0 warnings"), "{report}");
}

#[test]
fn server_everything_over_stdio_passes_or_is_baselined() {
    let out = Command::new(MCPT)
        .args(["conform", "--baseline", &baseline("stdio"), "--timeout", "10", "--latency-samples", "50"])
        .args(["--call-tool", r#"echo={"message":"conformance"}"#])
        .arg("--")
        .arg(node())
        .arg(server_everything())
        .arg("stdio")
        .output()
        .expect("run mcpt conform");
    assert_clean(out);
}

/// Kills the child on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn server_everything_over_streamable_http_passes_or_is_baselined() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(node())
        .arg(server_everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start server-everything");
    let _child = Killed(child);
    let url = format!("http://127.0.0.1:{port}/mcp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "server-everything did not listen on {port}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = Command::new(MCPT)
        .args(["conform", "--baseline", &baseline("http"), "--timeout", "10", "--latency-samples", "50"])
        .args(["--call-tool", r#"echo={"message":"conformance"}"#])
        .arg(&url)
        .output()
        .expect("run mcpt conform");
    assert_clean(out);
}
