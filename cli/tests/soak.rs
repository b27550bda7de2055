//! `mcpt soak` end to end: a short run with few clients over every transport, its JSON report,
//! and argument errors.

mod common;

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_soak_answers_every_call_and_releases_every_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("soak.json");
    let out = Command::new(common::MCPT)
        .args(["soak", "--clients", "24", "--duration", "3s", "--sample-every", "250ms", "--json"])
        .arg(&json)
        .output()
        .expect("run mcpt soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap_or_else(|e| {
        panic!("no JSON report ({e}); stdout: {stdout}; stderr: {stderr}");
    }))
    .unwrap();
    assert!(out.status.success(), "exit {}; missed {}; stdout: {stdout}", out.status, report["missed"]);
    for zero in ["lost", "duplicated", "mismatched", "late", "unexpected", "client_failure_count"] {
        assert_eq!(report[zero], 0, "{zero}: {stdout}");
    }
    assert_eq!(report["clients_connected"], 24);
    assert!(report["ok"].as_u64().unwrap() > 24, "{stdout}");
    assert_eq!(report["ok"], report["answered"]);
    let names: Vec<&str> =
        report["processes"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for name in [
        "gateway",
        "upstream unix",
        "upstream ws",
        "upstream quic",
        "upstream http",
        "upstream stdio (child of the gateway)",
    ] {
        assert!(names.contains(&name), "{name} watched: {names:?}");
    }
    for p in report["processes"].as_array().unwrap() {
        assert!(p["fds_after"].as_u64() <= p["fds_before"].as_u64(), "{p}");
        assert!(p["rss_peak"].as_u64().unwrap() > 0, "{p}");
    }
    let gateway = &report["processes"][0];
    assert!(
        gateway["fds_peak"].as_u64().unwrap() >= gateway["fds_before"].as_u64().unwrap() + 16,
        "clients were connected at once: {gateway}"
    );
    assert!(!report["samples"].as_array().unwrap().is_empty());
    assert!(stdout.contains("PASSED") && stdout.contains("| gateway |"), "{stdout}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [&["--clients", "0"][..], &["--duration", "5h"], &["--upstreams", "carrier-pigeon"], &["--via", "quic"]]
    {
        let out = Command::new(common::MCPT).arg("soak").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}
