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

/// Pages through `tools/list`.
async fn tool_names(client: &Client) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client.list_tools(cursor.as_deref()).await.unwrap();
        names.extend(page["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str().map(str::to_owned)));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return names,
        }
    }
}

#[tokio::test]
async fn bearer_tokens_over_websocket_and_a_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let sock = |name: &str| format!("unix://{}", dir.path().join(name).display());
    let _alpha = ServeProcess::start(&sock("alpha.sock"), "unix:");
    let _beta = ServeProcess::start(&sock("beta.sock"), "unix:");
    let config = dir.path().join("gateway.toml");
    let write = |upstreams: &[&str]| {
        let mut text = format!(
            "listen = [\"ws://127.0.0.1:0/mcp\"]\nallow_anonymous = false\n\n[[principal]]\nname = \"app\"\n\
             token_sha256 = [\"{}\"]\n",
            sha256_hex("s3cret")
        );
        for name in upstreams {
            text.push_str(&format!("\n[[upstream]]\nname = \"{name}\"\nurl = \"{}\"\n", sock(&format!("{name}.sock"))));
        }
        std::fs::write(&config, text).unwrap();
    };
    write(&["alpha"]);
    let path = config.display().to_string();
    let gateway = ServeProcess::start_command(&["gateway", "--config", &path], "ws://");

    let with_token = mcp_transport_ws::WsClientConfig { bearer_token: Some("s3cret".into()), ..Default::default() };
    let opts = || ClientOptions { generation: Generation::Legacy, ..ClientOptions::default() };
    let t = mcp_transport_ws::connect(&gateway.url, &with_token).await.unwrap();
    let client = Client::connect(t, opts()).await.expect("the token maps to a principal");
    assert!(tool_names(&client).await.iter().any(|n| n == "alpha__echo"));

    let anonymous = match mcp_transport_ws::connect(&gateway.url, &Default::default()).await {
        Ok(t) => Client::connect(t, opts()).await.map(drop).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(anonymous.is_err(), "no token, no session: {anonymous:?}");

    write(&["alpha", "beta"]);
    let status = std::process::Command::new("kill").args(["-HUP", &gateway.pid().to_string()]).status().unwrap();
    assert!(status.success());
    let mut found = false;
    for _ in 0..100 {
        if tool_names(&client).await.iter().any(|n| n == "beta__echo") {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(found, "after SIGHUP the new upstream's tools appear in the session opened before");
    let result = client.call_tool("beta__echo", &json!({ "text": "reloaded" })).await.unwrap();
    assert_eq!(result["content"][0]["text"], "reloaded");
}

fn sha256_hex(text: &str) -> String {
    mcp_gateway::auth::token_digest_hex(text)
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
