//! `quic://host:port[?fingerprint=sha256:HEX]` endpoint URLs.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::{Error, Fingerprint};

/// A QUIC endpoint: `quic://host:port`, optionally with the SHA-256 fingerprint of the
/// server's certificate to pin, `?fingerprint=sha256:HEX`.
///
/// The host is a DNS name, an IPv4 address or a bracketed IPv6 address (`quic://[::1]:4433`).
/// The port is required. No path, user information, fragment or other query parameter is
/// accepted. The `:` after `sha256` may be percent-encoded (`%3A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicUrl {
    /// The host name or IP address (IPv6 without brackets).
    pub host: String,
    /// The UDP port.
    pub port: u16,
    /// The pinned certificate fingerprint, if the URL carries one.
    pub fingerprint: Option<Fingerprint>,
}

impl QuicUrl {
    /// Parses a `quic://` URL.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("quic") => rest,
            Some(_) => return Err(bad("the scheme must be quic://")),
            None => return Err(bad("expected quic://host:port")),
        };
        if rest.contains('#') {
            return Err(bad("a fragment (#...) is not allowed"));
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('/') {
            return Err(bad("a path is not allowed: QUIC endpoints are host:port"));
        }
        if authority.contains('@') {
            return Err(bad("user information (user@) is not allowed"));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or_else(|| bad("an IPv6 address needs a closing ]"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("the bracketed host is not an IPv6 address"));
            }
            let port = after.strip_prefix(':').ok_or_else(|| bad("a port is required: quic://[addr]:port"))?;
            (host, port)
        } else {
            let (host, port) = authority.rsplit_once(':').ok_or_else(|| bad("a port is required: quic://host:port"))?;
            if host.contains(':') {
                return Err(bad("an IPv6 address must be in brackets: quic://[addr]:port"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        let mut fingerprint = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("fingerprint", value)) => {
                    if fingerprint.is_some() {
                        return Err(bad("fingerprint is given twice"));
                    }
                    let value = value.replace("%3A", ":").replace("%3a", ":");
                    fingerprint = Some(value.parse::<Fingerprint>()?);
                }
                _ => return Err(bad("the only query parameter allowed is fingerprint=sha256:HEX")),
            }
        }
        Ok(Self { host: host.to_owned(), port, fingerprint })
    }

    /// The URL of a socket address, with an optional fingerprint.
    pub fn from_addr(addr: SocketAddr, fingerprint: Option<Fingerprint>) -> Self {
        Self { host: addr.ip().to_string(), port: addr.port(), fingerprint }
    }

    /// Resolves the host (DNS names through the system resolver) to the first address found.
    pub async fn resolve(&self) -> Result<SocketAddr, Error> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let err = |reason: String| Error::Resolve { host: self.host.clone(), reason };
        let mut addrs =
            tokio::net::lookup_host((self.host.as_str(), self.port)).await.map_err(|e| err(e.to_string()))?;
        addrs.next().ok_or_else(|| err("no address found".into()))
    }

    /// The TLS server name: the host.
    pub(crate) fn server_name(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for QuicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "quic://[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "quic://{}:{}", self.host, self.port)?;
        }
        if let Some(fp) = &self.fingerprint {
            write!(f, "?fingerprint={fp}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_pins() {
        let u = QuicUrl::parse("quic://127.0.0.1:4433").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.fingerprint), ("127.0.0.1", 4433, None));
        let u = QuicUrl::parse("QUIC://[::1]:9/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.to_string(), "quic://[::1]:9");
        let fp = Fingerprint::of_certificate(b"x");
        let text = format!("quic://example.com:1?fingerprint={fp}");
        let u = QuicUrl::parse(&text).unwrap();
        assert_eq!(u.fingerprint, Some(fp));
        assert_eq!(u.to_string(), text);
        let encoded = text.replace("sha256:", "sha256%3A");
        assert_eq!(QuicUrl::parse(&encoded).unwrap().fingerprint, Some(fp));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        for (url, why) in [
            ("http://a:1", "scheme"),
            ("a:1", "expected quic://"),
            ("quic://a", "port is required"),
            ("quic://a:x", "port is not a number"),
            ("quic://a:70000", "port is not a number"),
            ("quic://::1:4", "brackets"),
            ("quic://[::1:4", "closing ]"),
            ("quic://[nope]:4", "not an IPv6"),
            ("quic://a:1/mcp", "path"),
            ("quic://u@a:1", "user information"),
            ("quic://a:1?x=1", "only query parameter"),
            ("quic://:1", "host is empty"),
            ("quic://a:1#f", "fragment"),
        ] {
            match QuicUrl::parse(url) {
                Err(Error::InvalidUrl { reason, .. }) => assert!(reason.contains(why), "{url}: {reason}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        assert!(matches!(QuicUrl::parse("quic://a:1?fingerprint=sha256:00"), Err(Error::InvalidFingerprint { .. })));
    }
}
