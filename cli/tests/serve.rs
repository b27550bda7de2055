//! `mcpt serve` end to end: the binary serves the reference server on a Unix socket and on
//! stdio, and the CLI refuses what it cannot do with a one-line reason.

use std::process::Stdio;
use std::time::Duration;

use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_transport_uds::{UdsAddr, UdsConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const MCPT: &str = env!("CARGO_BIN_EXE_mcpt");

async fn connect_when_ready(addr: &UdsAddr) -> mcp_transport_core::Transport {
    for _ in 0..200 {
        if let Ok(t) = mcp_transport_uds::connect(addr, &UdsConfig::default()).await {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("mcpt serve did not start listening on {addr}");
}

#[tokio::test]
async fn serves_both_generations_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("unix://{}", dir.path().join("ref.sock").display());
    let mut child = Command::new(MCPT).args(["serve", "--listen", &url]).kill_on_drop(true).spawn().unwrap();
    let addr = UdsAddr::parse(&url).unwrap();

    let legacy = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    let client = Client::connect(connect_when_ready(&addr).await, legacy).await.unwrap();
    assert_eq!(client.server().protocol_version, "2025-11-25");
    client.ping().await.unwrap();
    let tools = client.list_tools(None).await.unwrap();
    assert!(tools["tools"].as_array().unwrap().iter().any(|t| t["name"] == "test_simple_text"));
    let result = client.call_tool("test_simple_text", &json!({})).await.unwrap();
    assert_eq!(result["content"], json!([{ "type": "text", "text": "This is a simple text response for testing." }]));

    let modern = ClientOptions { generation: Generation::Auto, ..ClientOptions::default() };
    let client = Client::connect(connect_when_ready(&addr).await, modern).await.unwrap();
    assert!(client.is_modern());
    let result = client.call_tool("test_simple_text", &json!({})).await.unwrap();
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["content"][0]["text"], "This is a simple text response for testing.");

    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

#[tokio::test]
async fn serves_on_stdio_and_answers_malformed_lines() {
    let mut child = Command::new(MCPT)
        .args(["serve", "--listen", "stdio:"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
    stdin.write_all(format!("{init}\nnot json\n").as_bytes()).await.unwrap();
    let first: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(first["id"], 1);
    assert_eq!(first["result"]["protocolVersion"], "2025-06-18");
    let second: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(second["id"], Value::Null);
    assert_eq!(second["error"]["code"], -32700);
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"nope\"}\n")
        .await
        .unwrap();
    let third: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(third["id"], "x");
    assert_eq!(third["error"]["code"], -32601);
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "serve on stdio should exit cleanly at end of input: {status}");
}

#[test]
fn help_lists_every_command_and_a_missing_config_fails_with_one_line() {
    let out = std::process::Command::new(MCPT).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "conform", "bench", "gateway", "bridge"] {
        assert!(help.contains(cmd), "--help does not mention {cmd}:\n{help}");
    }
    let out = std::process::Command::new(MCPT).args(["gateway", "--config", "x.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("x.toml"), "{err}");
}

#[test]
fn bad_endpoints_fail_with_one_line() {
    let out = std::process::Command::new(MCPT).args(["serve", "--listen", "/no/scheme.sock"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an endpoint"));
    let out = std::process::Command::new(MCPT).args(["serve", "--listen", "wss://127.0.0.1:0/mcp"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
}
