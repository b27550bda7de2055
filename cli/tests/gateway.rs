//! `mcpt gateway` end to end: two `mcpt serve` upstreams behind one gateway, a client over a
//! Unix socket, the admin endpoints, and a graceful stop on SIGTERM.

mod common;

use common::ServeProcess;
use mcp_session::client::{Client, ClientOptions, Generation};
use mcp_transport_uds::{UdsAddr, UdsConfig};
use serde_json::json;

#[tokio::test]
async fn two_upstreams_behind_one_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let sock = |name: &str| format!("unix://{}", dir.path().join(name).display());
    let _alpha = ServeProcess::start(&sock("alpha.sock"), "unix:");
    let _beta = ServeProcess::start(&sock("beta.sock"), "unix:");
    let config = dir.path().join("gateway.toml");
    let text = format!(
        "listen = [\"{}\"]\nadmin = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"alpha\"\nurl = \"{}\"\n\n\
         [[upstream]]\nname = \"beta\"\nurl = \"{}\"\n",
        sock("gateway.sock"),
        sock("alpha.sock"),
        sock("beta.sock")
    );
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();
    let mut gateway = ServeProcess::start_command(&["gateway", "--config", &config], "unix:");

    let addr = UdsAddr::parse(&gateway.url).unwrap();
    let transport = mcp_transport_uds::connect(&addr, &UdsConfig::default()).await.unwrap();
    let opts = ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    let client = Client::connect(transport, opts).await.unwrap();
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client.list_tools(cursor.as_deref()).await.unwrap();
        names.extend(page["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str().map(str::to_owned)));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert!(names.iter().any(|n| n == "alpha__echo") && names.iter().any(|n| n == "beta__echo"), "{names:?}");
    let result = client.call_tool("beta__echo", &json!({ "text": "through the gateway" })).await.unwrap();
    assert_eq!(result["content"][0]["text"], "through the gateway");
    let unknown = client.call_tool("gamma__echo", &json!({})).await;
    assert!(unknown.is_err(), "an unknown prefix is an error: {unknown:?}");
    drop(client);

    let status = gateway.terminate();
    assert!(status.success(), "a graceful stop on SIGTERM: {status}");
}

#[test]
fn a_bad_config_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, "listen = [\"unix:///tmp/x.sock\"]\n\n[[upstream]]\nname = \"a\"\nurl = 5\n").unwrap();
    let out = std::process::Command::new(common::MCPT).arg("gateway").arg("--config").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gateway.toml") && stderr.contains("gateway.toml:5:"), "{stderr}");
}
