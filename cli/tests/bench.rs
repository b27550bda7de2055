//! `mcpt bench` end to end: a short run of a few cases in both placements, with JSON, chart
//! and budget outputs.

mod common;

use std::process::Command;

use serde_json::Value;

fn bench(dir: &std::path::Path, budgets: &str) -> (std::process::ExitStatus, Value, String) {
    let budgets_path = dir.join("budgets.toml");
    std::fs::write(&budgets_path, budgets).unwrap();
    let (json, svg) = (dir.join("bench.json"), dir.join("bench.svg"));
    let out = Command::new(common::MCPT)
        .args([
            "bench",
            "--transports",
            "uds,stdio,rmcp-stdio,uds-pipelined",
            "--placement",
            "in-process,cross-process",
        ])
        .args(["--rounds", "200", "--rounds-cross", "100", "--throughput-ms", "20"])
        .arg("--json")
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .arg("--check")
        .arg(&budgets_path)
        .output()
        .expect("run mcpt bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap_or_else(|e| {
        panic!("no JSON report ({e}); stdout: {stdout}; stderr: {stderr}");
    }))
    .unwrap();
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg"), "an SVG chart");
    (out.status, report, stdout)
}

const GENEROUS: &str = r#"
[[budget]]
name = "uds within 1000x of raw-uds"
case = "uds"
placement = "in-process"
metric = "p50"
against = "raw-uds"
max_ratio = 1000.0
"#;

#[test]
fn a_short_run_measures_every_selected_case_against_its_floor() {
    let dir = tempfile::tempdir().unwrap();
    let (status, report, table) = bench(dir.path(), GENEROUS);
    assert!(status.success(), "{status}\n{table}");
    let rows = report["rows"].as_array().unwrap();
    let find = |id: &str, placement: &str| {
        rows.iter()
            .find(|r| r["id"] == id && r["placement"] == placement)
            .unwrap_or_else(|| panic!("no row {id} {placement}: {rows:#?}"))
    };
    for (id, placement) in [
        ("raw-uds", "in-process"),
        ("uds", "in-process"),
        ("raw-uds", "cross-process"),
        ("uds", "cross-process"),
        ("raw-pipe", "cross-process"),
        ("stdio", "cross-process"),
        ("rmcp-stdio", "cross-process"),
    ] {
        let row = find(id, placement);
        assert!(row["error"].is_null(), "{row:#}");
        assert_eq!(row["latency"]["count"], if placement == "in-process" { 200 } else { 100 }, "{row:#}");
        assert!(row["messages_per_sec"].as_f64().unwrap() > 0.0);
        assert!(row["cpu_us_per_message"].as_f64().is_some());
    }
    assert!(find("uds", "in-process")["ratio_to_floor"].as_f64().unwrap() > 0.0);
    assert!(find("stdio", "cross-process")["peak_rss_mib"].as_f64().unwrap() > 0.0, "the server child's memory");
    assert!(find("uds-pipelined", "in-process")["messages_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(report["budgets"][0]["met"], true);
    assert_eq!(report["recommendations"].as_array().unwrap().len(), 3);
    assert!(table.contains("| stdio | 1KB |"), "{table}");
    assert!(table.contains("lossy link"), "the table says the lossy link was not run: {table}");
}

#[test]
fn a_missed_budget_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let impossible = GENEROUS.replace("1000.0", "0.0001");
    let (status, report, _) = bench(dir.path(), &impossible);
    assert_eq!(status.code(), Some(1));
    assert_eq!(report["budgets"][0]["met"], false);
}

#[test]
fn bad_arguments_are_refused_with_one_line() {
    let out = Command::new(common::MCPT).args(["bench", "--transports", "carrier-pigeon"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("carrier-pigeon") && stderr.contains("unknown case"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.toml");
    std::fs::write(&path, "[[budget]]\nname = 3\n").unwrap();
    let out = Command::new(common::MCPT).arg("bench").arg("--check").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
}
