//! For fuzzing only: the listener's handling of one request as far as it is a function of the
//! request alone (its method, target, headers and body), with no session open.
//!
//! It runs the same checks [`route`](super::route) and the POST, GET and DELETE handlers run,
//! in the same order, up to the point where a session or an exchange would take over, and
//! checks on the way that the answers are well formed and that the headers this crate's
//! client sends for a 2026-07-28 request are accepted.

use std::net::{Ipv4Addr, SocketAddr};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use mcp_transport_core::{Incoming, Limits, Message, Request};
use serde_json::Value;

use super::body::{self, HttpResponse, ResponseBody};
use super::{legacy, modern};
use crate::headers::{self, HostPolicy};
use crate::{Generations, HttpServerConfig, ParamHeader, ParamHeaderLookup};

/// The port the fuzzed listener pretends to be bound to (on 127.0.0.1).
const PORT: u16 = 8080;
/// The body limit of the fuzzed listener, small so that the `413` paths are reached.
const LIMIT: usize = 4096;
/// The host allowed by the configurations with a host list.
const LISTED_HOST: &str = "mcp.example.com";

/// The configuration `choice` picks: its low two bits the generations (1: 2025 only, 2:
/// 2026-07-28 only, else both), then a host list (0x04), an origin list (0x08) and an
/// `Mcp-Param-*` lookup (0x10).
fn config(choice: u8) -> HttpServerConfig {
    let mut config = HttpServerConfig {
        generations: match choice & 0x03 {
            1 => Generations::Legacy,
            2 => Generations::Modern,
            _ => Generations::Both,
        },
        limits: Limits { max_message_size: LIMIT, ..Limits::default() },
        ..HttpServerConfig::default()
    };
    if choice & 0x04 != 0 {
        config.allowed_hosts = Some(vec![LISTED_HOST.to_owned(), "10.0.0.1:8080".to_owned()]);
    }
    if choice & 0x08 != 0 {
        config.allowed_origins = Some(vec!["https://app.example.com".to_owned()]);
    }
    if choice & 0x10 != 0 {
        config.param_headers = Some(ParamHeaderLookup::new(|tool| match tool {
            "deploy" => vec![
                ParamHeader { header: "Region".into(), path: vec!["region".into()] },
                ParamHeader { header: "Replicas".into(), path: vec!["spec".into(), "replicas".into()] },
            ],
            _ => Vec::new(),
        }));
    }
    config
}

/// The parameters the `deploy` tool mirrors into headers (as in [`config`]).
const DEPLOY_PARAMS: [(&str, &[&str]); 2] = [("region", &["region"]), ("replicas", &["spec", "replicas"])];

/// What the listener decided.
enum Outcome {
    /// Refused (or answered) without reaching a session.
    Answer(HttpResponse),
    /// Handed to a session (`initialize`) or to a 2026-07-28 exchange.
    PassedOn,
}

/// Serves one request against a listener with the configuration `choice` picks; `None` when
/// the method, target or a header is one hyper itself refuses, else the answer's status and
/// body (status 0: the request went on to a session or an exchange).
pub(crate) fn request(
    choice: u8,
    method: &[u8],
    target: &[u8],
    header_list: &[(&[u8], &[u8])],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let method = Method::from_bytes(method).ok()?;
    let uri = Uri::try_from(target).ok()?;
    let mut h = HeaderMap::new();
    for (name, value) in header_list {
        h.append(HeaderName::from_bytes(name).ok()?, HeaderValue::from_bytes(value).ok()?);
    }
    let config = config(choice);
    let hosts = HostPolicy::new(config.allowed_hosts.as_deref(), SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)));
    check_header_helpers(&h);
    let outcome = serve(&config, &hosts, &method, &uri, &h, body);
    let answer = match outcome {
        Outcome::PassedOn => (0, Vec::new()),
        Outcome::Answer(resp) => check_answer(resp),
    };
    if method == Method::POST && body.len() <= LIMIT && config.generations != Generations::Legacy {
        check_client_headers_accepted(&config, &hosts, body);
    }
    Some(answer)
}

/// The checks of `route`, then of the POST, GET or DELETE handler, with no session open.
fn serve(
    config: &HttpServerConfig,
    hosts: &HostPolicy,
    method: &Method,
    uri: &Uri,
    h: &HeaderMap,
    body: &[u8],
) -> Outcome {
    if let Err(refused) = super::check_target(hosts, config, uri, h) {
        return Outcome::Answer(*refused);
    }
    match *method {
        Method::POST => {}
        Method::GET | Method::DELETE => {
            return Outcome::Answer(match super::session_of_get_or_delete(config, h) {
                // No session is open: every id is unknown.
                Ok(id) => legacy::session_not_found(id),
                Err(refused) => *refused,
            });
        }
        _ => return Outcome::Answer(body::method_not_allowed(super::allow(config))),
    }
    if let Err(refused) = super::check_post_head(config, h) {
        return Outcome::Answer(*refused);
    }
    if body.len() > config.limits.max_message_size {
        // What `Limited` reports for a body over the limit.
        let limit = config.limits.max_message_size;
        return Outcome::Answer(super::too_large(format!("more than {limit}"), limit));
    }
    let incoming = match super::parse_body(body) {
        Ok(incoming) => incoming,
        Err(refused) => return Outcome::Answer(*refused),
    };
    match super::generation(config, h, &incoming) {
        Err(refused) => Outcome::Answer(*refused),
        Ok(Some(version)) => match modern::check(config, h, &incoming, version) {
            Ok(()) => Outcome::PassedOn,
            Err(refused) => Outcome::Answer(*refused),
        },
        Ok(None) => match legacy::session_header(h) {
            Err(refused) => Outcome::Answer(*refused),
            Ok(Some(id)) => Outcome::Answer(legacy::session_not_found(id)),
            Ok(None) => match legacy::check_new_session(&incoming) {
                Ok(()) => Outcome::PassedOn,
                Err(refused) => Outcome::Answer(*refused),
            },
        },
    }
}

/// An answer is a client error, with no body (`405`) or a JSON-RPC error response.
fn check_answer(resp: HttpResponse) -> (u16, Vec<u8>) {
    let status = resp.status();
    assert!(status.is_client_error(), "the listener answered {status} without a session");
    let bytes = match resp.into_body() {
        ResponseBody::Empty => Vec::new(),
        ResponseBody::Full(b) => b.map(|b| b.to_vec()).unwrap_or_default(),
        ResponseBody::Session(_) | ResponseBody::Exchange(_) => panic!("a stream answered with no session ({status})"),
    };
    if status == StatusCode::METHOD_NOT_ALLOWED {
        assert!(bytes.is_empty(), "405 with a body");
    } else {
        match Message::from_slice(&bytes) {
            Ok(Message::Response(r)) => assert!(r.outcome.is_err(), "{status} with a successful response"),
            _ => panic!("{status} whose body is not a JSON-RPC error response: {:?}", String::from_utf8_lossy(&bytes)),
        }
    }
    (status.as_u16(), bytes)
}

/// Properties of the header helpers on the fuzzed headers.
fn check_header_helpers(h: &HeaderMap) {
    assert_eq!(
        headers::accepts_json_and_sse(h),
        headers::accepts(h, headers::JSON) && headers::accepts(h, headers::EVENT_STREAM),
        "the Accept fast path disagrees with parsing"
    );
    for name in [&headers::PROTOCOL_VERSION, &headers::SESSION_ID, &headers::METHOD, &headers::NAME] {
        if let Ok(Some(v)) = headers::text(h, name) {
            assert!(!v.starts_with([' ', '\t']) && !v.ends_with([' ', '\t']), "{name} value {v:?} is not trimmed");
            if let Ok(decoded) = headers::decode_value(v) {
                assert_eq!(headers::decode_value(&headers::encode_value(&decoded)).ok().as_deref(), Some(&*decoded));
            }
        }
    }
    if let Some(host) = h.get(http::header::HOST).and_then(|v| v.to_str().ok()) {
        assert!(headers::fuzz_loopback_paths_agree(host, PORT), "the loopback fast path admits {host:?}");
    }
    if let Ok(Some(id)) = headers::text(h, &headers::LAST_EVENT_ID)
        && let Some((s, n)) = legacy::parse_event_id(id)
    {
        assert_eq!(legacy::parse_event_id(&format!("{s}-{n}")), Some((s, n)));
    }
}

/// When `body` is one 2026-07-28 request, the headers this crate's client sends with it (and
/// the `Mcp-Param-*` headers of the `deploy` tool, encoded the same way) get it past the
/// listener's checks, unless the body holds something the headers cannot carry exactly.
fn check_client_headers_accepted(config: &HttpServerConfig, hosts: &HostPolicy, body: &[u8]) {
    let Ok(Message::Request(req)) = Message::from_slice(body) else { return };
    if !matches!(Incoming::parse(body), Incoming::Message(Message::Request(_))) {
        return;
    }
    let Some(mut h) = crate::client::fuzz_modern_post_headers(&req) else { return };
    let Some(version) = headers::body_facts(req.params.as_deref()).version.flatten() else { return };
    // A version that is not visible ASCII or has surrounding blanks is not sent as is (the
    // client drops the header, or the peer trims it); a 2025 one goes to the session machinery.
    let plain = |v: &str| v.bytes().all(|b| (0x20..=0x7e).contains(&b)) && v.trim_matches(' ') == v;
    if !plain(&version) || headers::is_legacy(&version) {
        return;
    }
    if config.param_headers.is_some() && !add_param_headers(&req, &mut h) {
        return;
    }
    let host = if config.allowed_hosts.is_some() { LISTED_HOST.to_owned() } else { format!("127.0.0.1:{PORT}") };
    h.insert(http::header::HOST, HeaderValue::from_str(&host).expect("a valid host"));
    let uri = Uri::from_static("/mcp");
    match serve(config, hosts, &Method::POST, &uri, &h, body) {
        Outcome::PassedOn => {}
        Outcome::Answer(resp) => {
            let (status, bytes) = check_answer(resp);
            panic!(
                "the client's headers {h:?} for {:?} were refused: {status} {:?}",
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}

/// Adds the `Mcp-Param-*` headers of a `deploy` call; `false` when an argument is an object or
/// an array (which no header value matches).
fn add_param_headers(req: &Request, h: &mut HeaderMap) -> bool {
    #[derive(serde::Deserialize)]
    struct Call {
        name: Option<String>,
        #[serde(default)]
        arguments: Value,
    }
    if req.method != "tools/call" {
        return true;
    }
    let Some(Ok(call)) = req.params.as_deref().map(|p| serde_json::from_str::<Call>(p.get())) else { return true };
    if call.name.as_deref() != Some("deploy") {
        return true;
    }
    for (header, path) in DEPLOY_PARAMS {
        let mut value = Some(&call.arguments);
        for key in path {
            value = value.and_then(|v| v.get(key));
        }
        let text = match value {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => headers::encode_value(s).into_owned(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => return false,
        };
        let name = HeaderName::from_bytes(format!("mcp-param-{header}").as_bytes()).expect("a valid header name");
        h.insert(name, HeaderValue::from_str(&text).expect("encoded values are visible ASCII"));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::request;

    const POST_HEADERS: [(&[u8], &[u8]); 3] = [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
    ];

    fn post(config: u8, extra: &[(&[u8], &[u8])], body: &str) -> u16 {
        let headers: Vec<(&[u8], &[u8])> = POST_HEADERS.iter().chain(extra).copied().collect();
        request(config, b"POST", b"/mcp", &headers, body.as_bytes()).expect("a valid request").0
    }

    #[test]
    fn answers_follow_the_wire_contract() {
        let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        assert_eq!(post(0, &[], init), 0, "initialize starts a session");
        assert_eq!(post(0, &[(b"origin", b"https://evil.example.com")], init), 403);
        assert_eq!(post(0, &[(b"mcp-session-id", b"abc")], init), 404, "no session is open");
        assert_eq!(post(0, &[], r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#), 400);
        assert_eq!(post(0, &[], "{"), 400);
        let text_plain = [(&b"host"[..], &b"127.0.0.1:8080"[..]), (b"content-type", b"text/plain")];
        assert_eq!(request(0, b"POST", b"/mcp", &text_plain, init.as_bytes()).map(|a| a.0), Some(415));
        let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"deploy",
            "arguments":{"region":"us-west1","spec":{"replicas":3}},
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let modern: [(&[u8], &[u8]); 3] =
            [(b"mcp-protocol-version", b"2026-07-28"), (b"mcp-method", b"tools/call"), (b"mcp-name", b"deploy")];
        assert_eq!(post(0, &modern, call), 0);
        assert_eq!(post(1, &modern, call), 400, "a 2025-only listener");
        assert_eq!(post(0x10, &modern, call), 400, "Mcp-Param-* headers missing");
        let params: [(&[u8], &[u8]); 2] =
            [(b"mcp-param-region", b"=?base64?dXMtd2VzdDE=?="), (b"mcp-param-replicas", b"3.0")];
        let all: Vec<(&[u8], &[u8])> = modern.iter().chain(&params).copied().collect();
        assert_eq!(post(0x10, &all, call), 0);
        let get = [(&b"host"[..], &b"localhost:8080"[..]), (b"mcp-session-id", b"abc")];
        assert_eq!(request(0, b"GET", b"/mcp", &get, b"").map(|a| a.0), Some(404));
        assert_eq!(request(2, b"GET", b"/mcp", &get, b"").map(|a| a.0), Some(405));
        assert_eq!(request(0, b"PUT", b"/mcp", &get, b"").map(|a| a.0), Some(405));
        assert_eq!(request(0, b"GET", b"/other", &get, b"").map(|a| a.0), Some(404));
        assert_eq!(request(0, b"GET", b"/mcp", &[(b"host", b"\n")], b""), None, "hyper refuses that header");
    }
}
