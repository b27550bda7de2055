//! Lifecycle: the 2025 handshake and the 2026-07-28 discovery and version rules.

use mcp_session::protocol::{LEGACY_VERSIONS, MODERN_VERSION};
use serde_json::{Value, json};

use super::{expect_code, short};
use crate::check::{Applies, Check, Outcome, Severity};
use crate::context::{Context, RawSession, known_legacy_version};

pub(super) const CHECKS: [Check; 7] = [
    Check {
        id: "lifecycle.initialize",
        title: "initialize answers with a supported version, serverInfo and capabilities",
        section: "basic/lifecycle#initialization",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/lifecycle#initialization",
        severity: Severity::Must,
        applies: Applies::Legacy,
        run: |ctx| Box::pin(initialize(ctx)),
    },
    Check {
        id: "lifecycle.version-negotiation",
        title: "an unknown requested version is answered with a version the server supports",
        section: "basic/lifecycle#version-negotiation",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/lifecycle#version-negotiation",
        severity: Severity::Must,
        applies: Applies::Legacy,
        run: |ctx| Box::pin(negotiation(ctx)),
    },
    Check {
        id: "lifecycle.initialize-first",
        title: "a request before initialize is refused with an error",
        section: "basic/lifecycle#initialization",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/lifecycle#initialization",
        severity: Severity::Should,
        applies: Applies::Legacy,
        run: |ctx| Box::pin(initialize_first(ctx)),
    },
    Check {
        id: "lifecycle.capabilities",
        title: "every advertised capability is an object",
        section: "basic/lifecycle#capability-negotiation",
        link: "https://modelcontextprotocol.io/specification/2025-11-25/basic/lifecycle#capability-negotiation",
        severity: Severity::Must,
        applies: Applies::Always,
        run: |ctx| Box::pin(async move { capabilities(ctx) }),
    },
    Check {
        id: "modern.discover",
        title: "server/discover lists 2026-07-28 with capabilities, caching fields and resultType",
        section: "server/discover",
        link: "https://modelcontextprotocol.io/specification/2026-07-28/server/discover",
        severity: Severity::Must,
        applies: Applies::Modern,
        run: |ctx| Box::pin(discover(ctx)),
    },
    Check {
        id: "modern.meta-required",
        title: "a request without _meta protocol version and capabilities gets -32602",
        section: "basic/index#_meta",
        link: "https://modelcontextprotocol.io/specification/2026-07-28/basic/index",
        severity: Severity::Must,
        applies: Applies::Modern,
        run: |ctx| Box::pin(meta_required(ctx)),
    },
    Check {
        id: "modern.unsupported-version",
        title: "an unsupported _meta protocol version gets -32022 with the supported versions",
        section: "basic/versioning",
        link: "https://modelcontextprotocol.io/specification/2026-07-28/basic/versioning",
        severity: Severity::Must,
        applies: Applies::Modern,
        run: |ctx| Box::pin(unsupported_version(ctx)),
    },
];

async fn initialize(ctx: &Context) -> Outcome {
    let server = ctx.client.server();
    if !known_legacy_version(&server.protocol_version) {
        return Outcome::fail(format!("negotiated an unknown version {:?}", server.protocol_version));
    }
    if !server.capabilities.is_object() {
        return Outcome::fail(format!("capabilities is not an object: {}", server.capabilities));
    }
    match &server.server_info {
        Some(info) if !info.name.is_empty() => {
            Outcome::pass_with(format!("{} {} speaks {}", info.name, info.version, server.protocol_version))
        }
        _ => Outcome::fail("serverInfo.name is missing or empty"),
    }
}

async fn raw_initialize(ctx: &Context, version: &str) -> Result<Value, String> {
    let wire = match ctx.raw().await {
        Some(w) => w?,
        None => {
            // No raw bytes on this transport: use a fresh session's transport directly.
            let t = ctx.connect().await?;
            let peer = mcp_session::Peer::client(t, mcp_session::PeerConfig::default());
            let params = json!({"protocolVersion": version, "capabilities": {},
                "clientInfo": {"name": "mcpt-conform", "version": env!("CARGO_PKG_VERSION")}});
            let r: Result<Value, _> = peer.request("initialize", &params).await;
            peer.shutdown();
            return r.map(|result| json!({ "result": result })).or_else(|e| match e.rpc_error() {
                Some(err) => Ok(json!({ "error": { "code": err.code, "message": err.message } })),
                None => Err(e.to_string()),
            });
        }
    };
    let mut s = RawSessionless { wire };
    s.initialize(version).await
}

struct RawSessionless {
    wire: Box<dyn crate::RawWire>,
}

impl RawSessionless {
    async fn initialize(&mut self, version: &str) -> Result<Value, String> {
        let req = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion": version,
            "capabilities": {}, "clientInfo": {"name": "mcpt-conform", "version": env!("CARGO_PKG_VERSION")}}});
        self.wire.send(req.to_string().as_bytes()).await.map_err(|e| e.to_string())?;
        loop {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(10), self.wire.recv())
                .await
                .map_err(|_| "no answer to initialize within 10 s".to_string())?
                .map_err(|e| e.to_string())?
                .ok_or("the connection ended before initialize was answered")?;
            let v: Value = serde_json::from_slice(&frame).map_err(|e| format!("not JSON: {e}"))?;
            if v.get("id") == Some(&json!(1)) {
                return Ok(v);
            }
        }
    }
}

async fn negotiation(ctx: &Context) -> Outcome {
    match raw_initialize(ctx, "1999-01-01").await {
        Err(e) => Outcome::fail(e),
        Ok(resp) => match resp.pointer("/result/protocolVersion").and_then(Value::as_str) {
            Some(v) if known_legacy_version(v) => Outcome::pass_with(format!("answered with {v}")),
            Some(v) => Outcome::fail(format!("answered with {v:?}, which is no MCP version")),
            None => Outcome::fail(format!("expected a result naming a supported version, got {}", short(&resp))),
        },
    }
}

async fn initialize_first(ctx: &Context) -> Outcome {
    let mut wire = match ctx.raw().await {
        None => return Outcome::skip("the transport carries no raw bytes"),
        Some(Err(e)) => return Outcome::fail(e),
        Some(Ok(w)) => w,
    };
    let req = json!({"jsonrpc":"2.0","id":"early","method":"tools/list","params":{}});
    if let Err(e) = wire.send(req.to_string().as_bytes()).await {
        return Outcome::fail(e.to_string());
    }
    match tokio::time::timeout(ctx.options.check_timeout / 2, wire.recv()).await {
        Err(_) => Outcome::fail("no answer to a request sent before initialize"),
        Ok(Ok(None)) | Ok(Err(_)) => Outcome::pass_with("the server closed the connection"),
        Ok(Ok(Some(frame))) => match serde_json::from_slice::<Value>(&frame) {
            Ok(v) if v.get("error").is_some() => Outcome::pass_with(format!("refused: {}", short(&v["error"]))),
            Ok(v) => Outcome::fail(format!("served before initialize: {}", short(&v))),
            Err(e) => Outcome::fail(format!("answered with something that is not JSON: {e}")),
        },
    }
}

fn capabilities(ctx: &Context) -> Outcome {
    let caps = &ctx.client.server().capabilities;
    let Some(map) = caps.as_object() else {
        return Outcome::fail(format!("capabilities is not an object: {caps}"));
    };
    let bad: Vec<&String> = map.iter().filter(|(_, v)| !v.is_object()).map(|(k, _)| k).collect();
    Outcome::require(bad.is_empty(), || format!("capabilities that are not objects: {bad:?}"))
}

async fn discover(ctx: &Context) -> Outcome {
    let server = ctx.client.server();
    if !server.supported_versions.iter().any(|v| v == MODERN_VERSION) {
        return Outcome::fail(format!("supportedVersions {:?} lacks {MODERN_VERSION}", server.supported_versions));
    }
    let mut s = match ctx.raw_session().await {
        None => return Outcome::pass_with(format!("supports {:?}", server.supported_versions)),
        Some(Err(e)) => return Outcome::fail(e),
        Some(Ok(s)) => s,
    };
    let req = s.harmless_request(json!("discover"));
    if let Err(e) = s.send_json(&req).await {
        return Outcome::fail(e);
    }
    let resp = match s.response_to(&json!("discover")).await {
        Ok(r) => r,
        Err(e) => return Outcome::fail(e),
    };
    let r = &resp["result"];
    let mut missing = Vec::new();
    for key in ["supportedVersions", "capabilities", "ttlMs", "cacheScope", "resultType"] {
        if r.get(key).is_none() {
            missing.push(key);
        }
    }
    if r.get("resultType").is_some_and(|t| t != "complete") {
        return Outcome::fail(format!("resultType is {}, expected \"complete\"", r["resultType"]));
    }
    Outcome::require(missing.is_empty(), || format!("server/discover result lacks {missing:?}: {}", short(r)))
}

async fn raw_modern(ctx: &Context, request: Value) -> Result<Value, String> {
    let mut s = match ctx.raw_session().await {
        None => {
            return Err("the transport carries no raw bytes".into());
        }
        Some(r) => r?,
    };
    s.send_json(&request).await?;
    s.response_to(&request["id"]).await
}

async fn meta_required(ctx: &Context) -> Outcome {
    let req = json!({"jsonrpc":"2.0","id":"no-meta","method":"tools/list","params":{}});
    match raw_modern(ctx, req).await {
        Err(e) if e.contains("no raw bytes") => Outcome::skip(e),
        Err(e) => Outcome::fail(e),
        Ok(resp) => expect_code(&resp, -32602).into(),
    }
}

async fn unsupported_version(ctx: &Context) -> Outcome {
    let mut meta = RawSession::meta();
    meta["io.modelcontextprotocol/protocolVersion"] = json!("1900-01-01");
    let req = json!({"jsonrpc":"2.0","id":"old","method":"server/discover","params":{"_meta": meta}});
    let resp = match raw_modern(ctx, req).await {
        Err(e) if e.contains("no raw bytes") => return Outcome::skip(e),
        Err(e) => return Outcome::fail(e),
        Ok(r) => r,
    };
    if let Err(e) = expect_code(&resp, -32022) {
        return Outcome::fail(e);
    }
    let data = &resp["error"]["data"];
    let supported = data.get("supported").and_then(Value::as_array);
    match supported {
        Some(list) if list.iter().any(|v| v == MODERN_VERSION || LEGACY_VERSIONS.iter().any(|l| v == l)) => {
            Outcome::require(data.get("requested") == Some(&json!("1900-01-01")), || {
                format!("error.data.requested should echo \"1900-01-01\": {}", short(data))
            })
        }
        _ => Outcome::fail(format!("error.data.supported must list the supported versions: {}", short(data))),
    }
}
