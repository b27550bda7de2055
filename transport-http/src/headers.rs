//! MCP header names and the checks both sides make on headers: media types, the 2026-07-28
//! request metadata headers (with their Base64 form), `Origin` and `Host`.

use std::borrow::Cow;

use base64::Engine;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName};
use mcp_transport_core::RawValue;
use serde::Deserialize;

pub(crate) const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub(crate) const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub(crate) const METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub(crate) const NAME: HeaderName = HeaderName::from_static("mcp-name");
pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The stateful protocol versions, newest first.
pub(crate) const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// The stateless protocol version.
pub(crate) const MODERN_VERSION: &str = "2026-07-28";
/// The only version whose POST bodies may be batch arrays.
pub(crate) const BATCH_VERSION: &str = "2025-03-26";
/// The `_meta` key carrying a 2026-07-28 request's protocol version.
pub(crate) const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

pub(crate) const JSON: &str = "application/json";
pub(crate) const EVENT_STREAM: &str = "text/event-stream";

pub(crate) fn is_legacy(version: &str) -> bool {
    LEGACY_VERSIONS.contains(&version)
}

/// A header that appears more than once, or whose value is not visible ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadHeader;

/// A header's single value, with surrounding whitespace removed.
pub(crate) fn text<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<Option<&'h str>, BadHeader> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(BadHeader);
    }
    let s = first.to_str().map_err(|_| BadHeader)?;
    if s.bytes().any(|b| b != b'\t' && !(0x20..=0x7e).contains(&b)) {
        return Err(BadHeader);
    }
    Ok(Some(s.trim_matches([' ', '\t'])))
}

/// Whether `Accept` admits both `application/json` and `text/event-stream` (the common
/// exact value is recognised without parsing).
pub(crate) fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(ACCEPT).iter();
    if let (Some(v), None) = (values.next(), values.next()) {
        let v = v.as_bytes();
        if v == b"application/json, text/event-stream" || v == b"text/event-stream, application/json" {
            return true;
        }
    }
    accepts(headers, JSON) && accepts(headers, EVENT_STREAM)
}

/// Whether `Accept` admits `media` (`type/subtype`), directly or through a wildcard, with a
/// non-zero quality.
pub(crate) fn accepts(headers: &HeaderMap, media: &str) -> bool {
    let family = media.split('/').next().unwrap_or(media);
    headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let mut parts = item.split(';');
        let range = parts.next().unwrap_or("").trim();
        let zero = parts.any(|p| {
            let p = p.trim();
            p.len() >= 2 && p[..2].eq_ignore_ascii_case("q=") && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        });
        if zero {
            return false;
        }
        range.eq_ignore_ascii_case(media)
            || range == "*/*"
            || range.strip_suffix("/*").is_some_and(|f| f.eq_ignore_ascii_case(family))
    })
}

/// Whether `Content-Type` is `media`, ignoring parameters such as `charset`.
pub(crate) fn content_type_is(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media))
}

const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// Decodes a header value that may use the `=?base64?…?=` form. `Err` for an invalid Base64
/// payload (bad alphabet or padding) or one that is not UTF-8.
pub(crate) fn decode_value(value: &str) -> Result<Cow<'_, str>, BadHeader> {
    let Some(inner) = value.strip_prefix(SENTINEL_START).and_then(|v| v.strip_suffix(SENTINEL_END)) else {
        return Ok(Cow::Borrowed(value));
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(inner).map_err(|_| BadHeader)?;
    String::from_utf8(bytes).map(Cow::Owned).map_err(|_| BadHeader)
}

/// Encodes a header value: as is when it is plain visible ASCII (inner spaces allowed), else
/// in the `=?base64?…?=` form (also used for plain values shaped like that form).
pub(crate) fn encode_value(value: &str) -> Cow<'_, str> {
    let unsafe_byte = value.bytes().any(|b| !(0x20..=0x7e).contains(&b));
    let sentinel_shaped = value.starts_with(SENTINEL_START) && value.ends_with(SENTINEL_END);
    let needs_encoding =
        value.is_empty() || unsafe_byte || value.starts_with(' ') || value.ends_with(' ') || sentinel_shaped;
    if !needs_encoding {
        Cow::Borrowed(value)
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        Cow::Owned(format!("{SENTINEL_START}{b64}{SENTINEL_END}"))
    }
}

/// What the 2026-07-28 header checks need from a request's params.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BodyFacts {
    /// `_meta["io.modelcontextprotocol/protocolVersion"]`: `None` when absent, `Some(None)`
    /// when present but not a string.
    pub(crate) version: Option<Option<String>>,
    /// `params.name`, when it is a string.
    pub(crate) name: Option<String>,
    /// `params.uri`, when it is a string.
    pub(crate) uri: Option<String>,
}

#[derive(Deserialize)]
struct ParamsProbe<'a> {
    #[serde(rename = "_meta", borrow, default)]
    meta: Option<MetaProbe<'a>>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct MetaProbe<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", borrow, default)]
    version: Option<&'a RawValue>,
}

fn as_string(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// Reads the fields the 2026-07-28 headers mirror. Params that are not an object have none.
pub(crate) fn body_facts(params: Option<&RawValue>) -> BodyFacts {
    let Some(params) = params else { return BodyFacts::default() };
    match serde_json::from_str::<ParamsProbe<'_>>(params.get()) {
        Ok(p) => BodyFacts {
            version: p.meta.and_then(|m| m.version).map(|v| as_string(Some(v))),
            name: as_string(p.name),
            uri: as_string(p.uri),
        },
        Err(_) => BodyFacts::default(),
    }
}

/// A cheap test before [`body_facts`]: whether params may carry the 2026 `_meta` version
/// (the key's bytes appear, or an escape could spell it).
pub(crate) fn may_be_modern(params: Option<&RawValue>) -> bool {
    params.is_some_and(|p| {
        let b = p.get().as_bytes();
        memchr::memmem::find(b, META_PROTOCOL_VERSION.as_bytes()).is_some() || memchr::memchr(b'\\', b).is_some()
    })
}

/// The body field `Mcp-Name` mirrors for `method`, if any.
pub(crate) fn name_source(method: &str) -> Option<NameSource> {
    match method {
        "tools/call" | "prompts/get" => Some(NameSource::Name),
        "resources/read" => Some(NameSource::Uri),
        _ => None,
    }
}

/// Which params member `Mcp-Name` mirrors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameSource {
    /// `params.name`.
    Name,
    /// `params.uri`.
    Uri,
}

impl NameSource {
    pub(crate) fn field(self) -> &'static str {
        match self {
            NameSource::Name => "params.name",
            NameSource::Uri => "params.uri",
        }
    }

    pub(crate) fn pick(self, facts: &BodyFacts) -> Option<&str> {
        match self {
            NameSource::Name => facts.name.as_deref(),
            NameSource::Uri => facts.uri.as_deref(),
        }
    }
}

const LOOPBACK_NAMES: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

/// Splits `host[:port]` (with `[v6]` brackets kept), lowercased host.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let a: http::uri::Authority = authority.parse().ok()?;
    if a.as_str().contains('@') {
        return None;
    }
    let host = a.host().to_ascii_lowercase();
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
    Some((host, a.port_u16()))
}

/// Whether an `Origin` value is allowed.
pub(crate) fn origin_allowed(origin: &str, allowed: Option<&[String]>) -> bool {
    let origin = origin.trim_end_matches('/');
    match allowed {
        Some(list) => list.iter().any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin)),
        None => {
            let Some((scheme, rest)) = origin.split_once("://") else { return false };
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return false;
            }
            split_authority(rest).is_some_and(|(host, _)| LOOPBACK_NAMES.contains(&host.as_str()))
        }
    }
}

/// `127.0.0.1:PORT` or `localhost:PORT` exactly, the common case, without parsing.
fn fast_loopback(host: &str, port: u16) -> bool {
    let Some((name, p)) = host.rsplit_once(':') else { return false };
    (name == "127.0.0.1" || name == "localhost") && p.parse::<u16>() == Ok(port) && !p.starts_with('+')
}

/// Which `Host` values a listener accepts.
#[derive(Debug, Clone)]
pub(crate) enum HostPolicy {
    /// Any host (a listener bound to a non-loopback address, or `*` in the list).
    Any,
    /// Loopback names, with this port or none.
    Loopback(u16),
    /// These `host` or `host:port` entries.
    List(Vec<(String, Option<u16>)>),
}

impl HostPolicy {
    pub(crate) fn new(allowed: Option<&[String]>, bound: std::net::SocketAddr) -> Self {
        match allowed {
            Some(list) if list.iter().any(|h| h == "*") => HostPolicy::Any,
            Some(list) => HostPolicy::List(list.iter().filter_map(|h| split_authority(h)).collect()),
            None if bound.ip().is_loopback() => HostPolicy::Loopback(bound.port()),
            None => HostPolicy::Any,
        }
    }

    pub(crate) fn allows(&self, host: &str) -> bool {
        match self {
            HostPolicy::Any => true,
            HostPolicy::Loopback(port) if fast_loopback(host, *port) => true,
            HostPolicy::Loopback(port) => split_authority(host)
                .is_some_and(|(h, p)| LOOPBACK_NAMES.contains(&h.as_str()) && p.is_none_or(|p| p == *port)),
            HostPolicy::List(list) => split_authority(host)
                .is_some_and(|(h, p)| list.iter().any(|(lh, lp)| *lh == h && (lp.is_none() || *lp == p))),
        }
    }
}

/// Whether the loopback policy's fast path and its parsing path agree on `host` (the fuzz
/// target's check: the fast path must never admit a host the full check refuses).
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_loopback_paths_agree(host: &str, port: u16) -> bool {
    let slow =
        split_authority(host).is_some_and(|(h, p)| LOOPBACK_NAMES.contains(&h.as_str()) && p.is_none_or(|p| p == port));
    !fast_loopback(host, port) || slow
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_lists_and_wildcards() {
        let h = map(&[("accept", "text/event-stream, application/json;q=0.9")]);
        assert!(accepts(&h, JSON) && accepts(&h, EVENT_STREAM));
        assert!(accepts(&map(&[("accept", "*/*")]), EVENT_STREAM));
        assert!(accepts(&map(&[("accept", "application/*")]), JSON));
        assert!(!accepts(&map(&[("accept", "application/json")]), EVENT_STREAM));
        assert!(!accepts(&map(&[("accept", "text/event-stream;q=0")]), EVENT_STREAM));
        assert!(!accepts(&HeaderMap::new(), JSON));
    }

    #[test]
    fn content_type_ignores_parameters() {
        assert!(content_type_is(&map(&[("content-type", "Application/JSON; charset=utf-8")]), JSON));
        assert!(!content_type_is(&map(&[("content-type", "text/plain")]), JSON));
        assert!(!content_type_is(&HeaderMap::new(), JSON));
    }

    #[test]
    fn header_text_is_trimmed_single_visible_ascii() {
        assert_eq!(text(&map(&[("mcp-name", "  x y  ")]), &NAME), Ok(Some("x y")));
        assert_eq!(text(&map(&[("mcp-name", "a"), ("mcp-name", "b")]), &NAME), Err(BadHeader));
        let mut h = HeaderMap::new();
        h.insert(NAME, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert_eq!(text(&h, &NAME), Err(BadHeader));
    }

    #[test]
    fn base64_sentinel_round_trip_and_strictness() {
        for v in ["us-west1", "Hello, 世界", " padded ", "line1\nline2", "=?base64?literal?=", "\tx"] {
            let enc = encode_value(v);
            assert!(enc.bytes().all(|b| (0x21..=0x7e).contains(&b) || b == b' '), "{enc}");
            assert_eq!(decode_value(&enc).unwrap(), v);
        }
        assert_eq!(encode_value("us west 1"), "us west 1");
        assert_eq!(decode_value("=?base64?SGVsbG8?=").unwrap_err(), BadHeader);
        assert_eq!(decode_value("=?base64?SGVs!!!bG8=?=").unwrap_err(), BadHeader);
        assert_eq!(decode_value("SGVsbG8=").unwrap(), "SGVsbG8=");
        assert_eq!(decode_value("=?base64?SGVsbG8=").unwrap(), "=?base64?SGVsbG8=");
    }

    #[test]
    fn body_facts_reads_only_strings() {
        let p = RawValue::from_string(
            r#"{"name":"t","uri":7,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}"#.into(),
        )
        .unwrap();
        let f = body_facts(Some(&p));
        assert_eq!(f.version, Some(Some(MODERN_VERSION.into())));
        assert_eq!((f.name.as_deref(), f.uri.as_deref()), (Some("t"), None));
        let arr = RawValue::from_string("[1]".into()).unwrap();
        assert_eq!(body_facts(Some(&arr)), BodyFacts::default());
    }

    #[test]
    fn origins() {
        assert!(origin_allowed("http://localhost:3000", None));
        assert!(origin_allowed("https://127.0.0.1", None));
        assert!(origin_allowed("http://[::1]:8080", None));
        assert!(!origin_allowed("http://evil.example.com", None));
        assert!(!origin_allowed("http://localhost.evil.com", None));
        assert!(!origin_allowed("null", None));
        assert!(!origin_allowed("file://localhost", None));
        let list = vec!["https://app.example.com".to_owned()];
        assert!(origin_allowed("https://APP.example.com/", Some(&list)));
        assert!(!origin_allowed("http://localhost", Some(&list)));
    }

    #[test]
    fn hosts() {
        let bound: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let p = HostPolicy::new(None, bound);
        assert!(p.allows("localhost:8080") && p.allows("127.0.0.1") && p.allows("[::1]:8080"));
        assert!(!p.allows("localhost:9090") && !p.allows("evil.example.com:8080") && !p.allows("u@localhost"));
        assert!(HostPolicy::new(None, "0.0.0.0:80".parse().unwrap()).allows("anything"));
        let list = vec!["mcp.example.com".to_owned(), "10.0.0.1:8080".to_owned()];
        let p = HostPolicy::new(Some(&list), bound);
        assert!(p.allows("MCP.example.com:443") && p.allows("10.0.0.1:8080") && !p.allows("10.0.0.1:80"));
    }
}
