//! `mcpt conform` against our own reference server (`mcpt serve`) over every transport that
//! `mcpt conform` reaches: every check that applies passes, with no warnings.

mod common;

use std::process::Command;

use common::MCPT;

fn conform(target: &[&str]) -> String {
    let out = Command::new(MCPT)
        .args(["conform", "--latency-samples", "50"])
        .args(["--call-tool", r#"echo={"text":"conformance"}"#, "--call-tool", "test_simple_text"])
        .args(["--call-tool", "test_tool_with_progress"])
        .args(target)
        .output()
        .expect("run mcpt conform");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{report}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(report.contains(" 0 failed, 0 warnings"), "{report}");
    report
}

#[test]
fn reference_server_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}", dir.path().join("ref.sock").display());
    let server = common::ServeProcess::start(&url, "unix:");
    for spec in ["auto", "2025-11-25", "2025-06-18", "2025-03-26", "2026-07-28"] {
        conform(&["--spec", spec, &server.url]);
    }
}

#[test]
fn reference_server_as_a_stdio_child() {
    for spec in ["auto", "2025-11-25"] {
        conform(&["--spec", spec, "--", MCPT, "serve", "--listen", "stdio:"]);
    }
}

#[test]
fn reference_server_over_websocket() {
    let server = common::ServeProcess::start("ws://127.0.0.1:0/mcp", "ws://");
    for spec in ["auto", "2025-11-25"] {
        conform(&["--spec", spec, &server.url]);
    }
}

#[test]
fn reference_server_over_streamable_http() {
    let server = common::ServeProcess::http();
    for spec in ["auto", "2025-11-25", "2026-07-28"] {
        conform(&["--spec", spec, &server.url]);
    }
}

#[test]
fn reference_server_over_quic_in_both_modes() {
    // The logged URL carries the self-signed certificate's fingerprint, which the client pins.
    let server = common::ServeProcess::start("quic://127.0.0.1:0", "quic://");
    conform(&["--spec", "auto", &server.url]);
    conform(&["--spec", "2025-11-25", "--quic-requests", &server.url]);
}
