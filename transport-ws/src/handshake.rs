//! The opening handshake (RFC 6455 §4): the HTTP/1.1 upgrade, both sides.
//!
//! The server reads at most [`MAX_HEAD`] bytes of request head, checks it (method, upgrade
//! headers, version, key, path, Origin, bearer token, subprotocol) and answers either
//! `101 Switching Protocols` or an HTTP error with a one-line plain-text reason, then closes.
//! Bytes that follow the head (frames a client pipelined) are handed to the frame decoder.

use std::io;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use sha1::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use mcp_transport_core::{Authorize, BearerToken};

use crate::url::{WsUrl, path_of};
use crate::{Error, OriginPolicy, SUBPROTOCOL, SUBPROTOCOL_MSGPACK, WireFormat};

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Most bytes of HTTP head read during the handshake, either side.
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted in a head.
const MAX_HEADERS: usize = 64;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1::Sha1::new();
    sha.update(key);
    sha.update(GUID);
    BASE64.encode(sha.finalize())
}

/// What the server checks at the upgrade.
#[derive(Clone)]
pub(crate) struct ServerPolicy {
    /// The only path served, or any path.
    pub(crate) path: Option<String>,
    pub(crate) origins: OriginPolicy,
    /// SHA-256 of the bearer token clients must present.
    pub(crate) token_digest: Option<[u8; 32]>,
    pub(crate) require_subprotocol: bool,
    pub(crate) msgpack: bool,
    /// The application's check of the presented bearer token, after the shared-token check.
    pub(crate) authorize: Option<Authorize>,
}

impl std::fmt::Debug for ServerPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerPolicy")
            .field("path", &self.path)
            .field("origins", &self.origins)
            .field("token_digest", &self.token_digest.map(|_| "<redacted>"))
            .field("require_subprotocol", &self.require_subprotocol)
            .field("msgpack", &self.msgpack)
            .field("authorize", &self.authorize.is_some())
            .finish()
    }
}

/// What a successful upgrade yields: the wire format, the bytes that followed the request head,
/// and the bearer token the client presented.
pub(crate) struct Upgraded {
    pub(crate) format: WireFormat,
    pub(crate) leftover: BytesMut,
    pub(crate) bearer_token: Option<BearerToken>,
}

/// An HTTP answer other than 101.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) detail: String,
    headers: Vec<(&'static str, String)>,
}

impl Refusal {
    fn new(status: u16, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into(), headers: Vec::new() }
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn response(&self) -> Vec<u8> {
        let body = format!("{}\n", self.detail);
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            status_text(self.status),
            body.len()
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        out.into_bytes()
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Why a server-side handshake did not produce a connection.
#[derive(Debug)]
pub(crate) enum ServerFailure {
    /// The client closed before sending a complete request head.
    Closed { buffered: usize },
    /// Reading or writing failed.
    Io(io::Error),
    /// The request was answered with an HTTP error.
    Refused(Refusal),
}

impl std::fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerFailure::Closed { buffered: 0 } => f.write_str("client closed before sending a request"),
            ServerFailure::Closed { buffered } => {
                write!(f, "client closed after {buffered} bytes of an incomplete request head")
            }
            ServerFailure::Io(e) => write!(f, "I/O error during the handshake: {e}"),
            ServerFailure::Refused(r) => write!(f, "refused with HTTP {}: {}", r.status, r.detail),
        }
    }
}

enum HeadError {
    Eof { buffered: usize },
    TooLarge,
    Malformed(httparse::Error),
    Io(io::Error),
}

/// Reads until `buf` holds a complete request (or response) head; returns its length.
async fn read_head<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut, request: bool) -> Result<usize, HeadError> {
    let mut chunk = [0u8; 4096];
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let status = if request {
                httparse::Request::new(&mut headers).parse(buf)
            } else {
                httparse::Response::new(&mut headers).parse(buf)
            };
            match status {
                Ok(httparse::Status::Complete(n)) => return Ok(n),
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
                Err(e) => return Err(HeadError::Malformed(e)),
            }
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let room = chunk.len().min(MAX_HEAD - buf.len());
        match io.read(&mut chunk[..room]).await {
            Ok(0) => return Err(HeadError::Eof { buffered: buf.len() }),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

fn values<'h>(headers: &'h [httparse::Header<'h>], name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
}

fn first<'h>(headers: &'h [httparse::Header<'h>], name: &'h str) -> Option<&'h str> {
    values(headers, name).next().map(|v| std::str::from_utf8(v).unwrap_or("").trim())
}

/// The comma-separated tokens of every `name` header, trimmed, in order.
fn tokens<'h>(headers: &'h [httparse::Header<'h>], name: &'h str) -> Vec<&'h str> {
    values(headers, name)
        .flat_map(|v| std::str::from_utf8(v).unwrap_or("").split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    tokens(headers, name).iter().any(|t| t.eq_ignore_ascii_case(token))
}

/// SHA-256 of a bearer token, so comparisons take the same time whatever the input.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an `Origin` value names a loopback host (`localhost`, `*.localhost`, 127/8, `::1`).
fn is_loopback_origin(origin: &str) -> bool {
    let Some((_, rest)) = origin.split_once("://") else { return false };
    let host = match rest.strip_prefix('[') {
        Some(r) => match r.split_once(']') {
            Some((h, _)) => h,
            None => return false,
        },
        None => rest.split([':', '/']).next().unwrap_or(""),
    };
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn origin_allowed(policy: &OriginPolicy, origin: &str) -> bool {
    match policy {
        OriginPolicy::Any => true,
        OriginPolicy::Loopback => is_loopback_origin(origin),
        OriginPolicy::AllowList(list) => {
            let origin = origin.trim_end_matches('/');
            list.iter().any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        }
    }
}

/// What an accepted request head yields: the format, the 101 response and the presented token.
type Accepted = (WireFormat, Vec<u8>, Option<BearerToken>);

/// The outcome of checking a request head: the format, the 101 response and the presented
/// bearer token, or a refusal.
fn check_request(req: &httparse::Request<'_, '_>, policy: &ServerPolicy) -> Result<Accepted, Refusal> {
    let headers: &[httparse::Header<'_>] = req.headers;
    if req.method != Some("GET") {
        return Err(Refusal::new(405, "a WebSocket upgrade must use GET").with_header("Allow", "GET"));
    }
    if req.version != Some(1) {
        return Err(Refusal::new(400, "a WebSocket upgrade needs HTTP/1.1"));
    }
    let target = req.path.unwrap_or("/");
    if let Some(path) = &policy.path
        && path_of(target) != path
    {
        return Err(Refusal::new(
            404,
            format!("no WebSocket endpoint at {}; this server serves {path}", path_of(target)),
        ));
    }
    if !has_token(headers, "upgrade", "websocket") || !has_token(headers, "connection", "upgrade") {
        return Err(Refusal::new(
            426,
            "this endpoint speaks WebSocket only (send Upgrade: websocket and Connection: Upgrade)",
        )
        .with_header("Upgrade", "websocket")
        .with_header("Connection", "Upgrade"));
    }
    if first(headers, "sec-websocket-version") != Some("13") {
        return Err(Refusal::new(426, "unsupported WebSocket version (only 13 is spoken)")
            .with_header("Sec-WebSocket-Version", "13"));
    }
    let key = first(headers, "sec-websocket-key").unwrap_or("");
    if BASE64.decode(key).map(|k| k.len()) != Ok(16) {
        return Err(Refusal::new(400, "missing or malformed Sec-WebSocket-Key (must be 16 bytes in base64)"));
    }
    if let Some(origin) = first(headers, "origin")
        && !origin_allowed(&policy.origins, origin)
    {
        return Err(Refusal::new(403, format!("origin {origin:?} is not allowed")));
    }
    if let Some(expected) = &policy.token_digest {
        let presented = first(headers, "authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        match presented {
            None => {
                return Err(Refusal::new(401, "missing bearer token (send Authorization: Bearer <token>)")
                    .with_header("WWW-Authenticate", "Bearer realm=\"mcp\""));
            }
            Some(token) if !same_digest(&token_digest(token), expected) => {
                return Err(Refusal::new(401, "invalid bearer token")
                    .with_header("WWW-Authenticate", "Bearer realm=\"mcp\", error=\"invalid_token\""));
            }
            Some(_) => {}
        }
    }
    let bearer_token = values(headers, "authorization").next().and_then(BearerToken::from_header_bytes);
    if let Some(authorize) = &policy.authorize
        && !authorize(bearer_token.as_ref())
    {
        let (detail, challenge) = match bearer_token {
            None => ("this endpoint needs a bearer token (send Authorization: Bearer <token>)", "Bearer realm=\"mcp\""),
            Some(_) => ("the bearer token is not authorized here", "Bearer realm=\"mcp\", error=\"invalid_token\""),
        };
        return Err(Refusal::new(401, detail).with_header("WWW-Authenticate", challenge));
    }
    let offered = tokens(headers, "sec-websocket-protocol");
    let chosen = offered.iter().find_map(|p| match *p {
        SUBPROTOCOL => Some(WireFormat::Json),
        SUBPROTOCOL_MSGPACK if policy.msgpack => Some(WireFormat::MessagePack),
        _ => None,
    });
    let format = match chosen {
        Some(f) => Some(f),
        None if offered.is_empty() && !policy.require_subprotocol => {
            tracing::debug!("client offered no subprotocol; speaking `mcp` (JSON text frames) without naming it");
            None
        }
        None if offered.is_empty() => {
            return Err(Refusal::new(
                400,
                "this endpoint requires the WebSocket subprotocol `mcp` (Sec-WebSocket-Protocol: mcp)",
            ));
        }
        None => {
            let supported = if policy.msgpack { "`mcp` and `mcp.msgpack`" } else { "`mcp`" };
            return Err(Refusal::new(
                400,
                format!(
                    "none of the offered subprotocols ({}) is spoken here; supported: {supported}",
                    offered.join(", ")
                ),
            ));
        }
    };
    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(key.as_bytes())
    );
    if let Some(f) = format {
        response.push_str(&format!("Sec-WebSocket-Protocol: {}\r\n", f.subprotocol()));
    }
    response.push_str("\r\n");
    Ok((format.unwrap_or(WireFormat::Json), response.into_bytes(), bearer_token))
}

/// Runs the server side of the handshake on a connected stream; returns the negotiated format,
/// any bytes that followed the request head and the client's bearer token.
pub(crate) async fn server_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    policy: &ServerPolicy,
) -> Result<Upgraded, ServerFailure> {
    let mut buf = BytesMut::with_capacity(1024);
    let outcome = match read_head(io, &mut buf, true).await {
        Ok(n) => {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[..n]) {
                Ok(_) => check_request(&req, policy).map(|ok| (ok, n)),
                Err(e) => Err(Refusal::new(400, format!("malformed HTTP request: {e}"))),
            }
        }
        Err(HeadError::Eof { buffered }) => return Err(ServerFailure::Closed { buffered }),
        Err(HeadError::Io(e)) => return Err(ServerFailure::Io(e)),
        Err(HeadError::TooLarge) => {
            Err(Refusal::new(431, format!("request head larger than {MAX_HEAD} bytes or {MAX_HEADERS} headers")))
        }
        Err(HeadError::Malformed(e)) => Err(Refusal::new(400, format!("malformed HTTP request: {e}"))),
    };
    match outcome {
        Ok(((format, response, bearer_token), n)) => {
            io.write_all(&response).await.map_err(ServerFailure::Io)?;
            io.flush().await.map_err(ServerFailure::Io)?;
            let _ = buf.split_to(n);
            Ok(Upgraded { format, leftover: buf, bearer_token })
        }
        Err(refusal) => {
            // Best effort: the client may already be gone.
            let _ = io.write_all(&refusal.response()).await;
            let _ = io.shutdown().await;
            Err(ServerFailure::Refused(refusal))
        }
    }
}

/// What the client sends in its upgrade request.
pub(crate) struct ClientRequest<'a> {
    pub(crate) url: &'a WsUrl,
    pub(crate) format: WireFormat,
    pub(crate) origin: Option<&'a str>,
    pub(crate) bearer_token: Option<&'a str>,
}

/// Runs the client side of the handshake; returns the negotiated format and any bytes that
/// followed the response head.
pub(crate) async fn client_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    req: &ClientRequest<'_>,
) -> Result<(WireFormat, BytesMut), Error> {
    let url = req.url.to_string();
    let fail = |reason: String| Error::Handshake { url: url.clone(), reason };
    let io_err = |op: &'static str| {
        let url = url.clone();
        move |source| Error::Io { op, addr: url, source }
    };
    let key = BASE64.encode(rand::random::<[u8; 16]>());
    let protocols = match req.format {
        WireFormat::Json => SUBPROTOCOL.to_owned(),
        WireFormat::MessagePack => format!("{SUBPROTOCOL_MSGPACK}, {SUBPROTOCOL}"),
    };
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocols}\r\n",
        req.url.target, req.url.authority
    );
    if let Some(origin) = req.origin {
        head.push_str(&format!("Origin: {origin}\r\n"));
    }
    if let Some(token) = req.bearer_token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    io.write_all(head.as_bytes()).await.map_err(io_err("send the upgrade request to"))?;
    io.flush().await.map_err(io_err("send the upgrade request to"))?;

    let mut buf = BytesMut::with_capacity(1024);
    let n = match read_head(io, &mut buf, false).await {
        Ok(n) => n,
        Err(HeadError::Eof { buffered }) => {
            return Err(fail(format!("connection closed after {buffered} bytes of the response head")));
        }
        Err(HeadError::TooLarge) => return Err(fail(format!("response head larger than {MAX_HEAD} bytes"))),
        Err(HeadError::Malformed(e)) => return Err(fail(format!("malformed HTTP response: {e}"))),
        Err(HeadError::Io(e)) => return Err(io_err("read the upgrade response from")(e)),
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&buf[..n]).map_err(|e| fail(format!("malformed HTTP response: {e}")))?;
    let status = resp.code.unwrap_or(0);
    if status != 101 {
        let reason = resp.reason.unwrap_or("").to_owned();
        let length = first(resp.headers, "content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        let mut body = buf.split_off(n);
        read_body(io, &mut body, length.min(1024)).await;
        let text = String::from_utf8_lossy(&body[..body.len().min(length).min(1024)]).trim().to_owned();
        let reason = if text.is_empty() { reason } else { format!("{reason}: {text}") };
        return Err(Error::Rejected { url, status, reason });
    }
    let headers = resp.headers;
    if !has_token(headers, "upgrade", "websocket") || !has_token(headers, "connection", "upgrade") {
        return Err(fail("101 response without Upgrade: websocket / Connection: Upgrade".into()));
    }
    if first(headers, "sec-websocket-accept") != Some(accept_key(key.as_bytes()).as_str()) {
        return Err(fail("wrong or missing Sec-WebSocket-Accept".into()));
    }
    if first(headers, "sec-websocket-extensions").is_some_and(|v| !v.is_empty()) {
        return Err(fail("the server enabled an extension that was not offered".into()));
    }
    let format = match first(headers, "sec-websocket-protocol") {
        None => {
            tracing::debug!(%url, "server named no subprotocol; speaking `mcp` (JSON text frames)");
            WireFormat::Json
        }
        Some(SUBPROTOCOL) => WireFormat::Json,
        Some(SUBPROTOCOL_MSGPACK) if req.format == WireFormat::MessagePack => WireFormat::MessagePack,
        Some(other) => return Err(fail(format!("the server chose subprotocol {other:?}, which was not offered"))),
    };
    let _ = buf.split_to(n);
    Ok((format, buf))
}

/// Reads up to `len` bytes of an error body, briefly and best effort.
async fn read_body<S: AsyncRead + Unpin>(io: &mut S, body: &mut BytesMut, len: usize) {
    let read = async {
        let mut chunk = [0u8; 1024];
        while body.len() < len {
            match io.read(&mut chunk[..len - body.len()]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn loopback_origins() {
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8443",
            "http://[::1]:80",
            "http://app.localhost",
        ] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in [
            "null",
            "http://evil.com",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "file://",
            "http://[::2]",
        ] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
    }

    #[test]
    fn allow_list_is_exact() {
        let p = OriginPolicy::AllowList(vec!["https://app.example.com/".into()]);
        assert!(origin_allowed(&p, "https://app.example.com"));
        assert!(origin_allowed(&p, "HTTPS://APP.EXAMPLE.COM"));
        assert!(!origin_allowed(&p, "https://app.example.com:444"));
        assert!(!origin_allowed(&p, "http://app.example.com"));
    }
}
