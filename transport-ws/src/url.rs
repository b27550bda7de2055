//! `ws://` and `wss://` URLs.

use crate::Error;

/// A parsed WebSocket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WsUrl {
    /// `wss://`.
    pub(crate) tls: bool,
    /// The host without IPv6 brackets (for DNS, SNI and certificate checks).
    pub(crate) host: String,
    /// The port (80 / 443 when absent).
    pub(crate) port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub(crate) authority: String,
    /// Path and query; `/` when absent.
    pub(crate) target: String,
}

impl WsUrl {
    /// Parses `ws://host[:port][/path][?query]` or `wss://…`.
    pub(crate) fn parse(input: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidUrl { input: input.to_owned(), reason: reason.to_owned() };
        let uri: http::Uri = input.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            Some(_) => return Err(bad("the scheme must be ws:// or wss://")),
            None => return Err(bad("missing scheme (ws:// or wss://)")),
        };
        let authority = uri.authority().ok_or_else(|| bad("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported; use a bearer token"));
        }
        let host = authority.host();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let target = if target.is_empty() { "/".to_owned() } else { target.to_owned() };
        Ok(Self { tls, host: host.to_owned(), port, authority: authority.as_str().to_owned(), target })
    }

    /// The path without the query.
    pub(crate) fn path(&self) -> &str {
        path_of(&self.target)
    }
}

/// The path part of a request target (before `?`).
pub(crate) fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

impl std::fmt::Display for WsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", if self.tls { "wss" } else { "ws" }, self.authority, self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let u = WsUrl::parse("ws://127.0.0.1:4000/mcp?x=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.target.as_str(), u.path()),
            (false, "127.0.0.1", 4000, "/mcp?x=1", "/mcp")
        );
        let u = WsUrl::parse("wss://example.com").unwrap();
        assert_eq!((u.tls, u.port, u.target.as_str(), u.authority.as_str()), (true, 443, "/", "example.com"));
        let u = WsUrl::parse("ws://[::1]:9/").unwrap();
        assert_eq!((u.host.as_str(), u.authority.as_str()), ("::1", "[::1]:9"));
        assert_eq!(u.to_string(), "ws://[::1]:9/");
    }

    #[test]
    fn refuses_other_schemes_and_garbage() {
        for bad in ["http://x/", "x:1", "ws://", "ws://user:pw@host/", "not a url", ""] {
            assert!(matches!(WsUrl::parse(bad), Err(Error::InvalidUrl { .. })), "{bad}");
        }
    }
}
