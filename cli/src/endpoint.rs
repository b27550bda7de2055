//! Endpoint URLs, the same in every command.

use std::fmt;

/// Where to listen or connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `unix:///abs/path.sock`, `unix:relative.sock` or `unix:@abstract`.
    Unix(String),
    /// `stdio:`: this process's own stdin and stdout.
    Stdio,
    /// `ws://host:port/path` or `wss://host:port/path`.
    Ws(String),
    /// `http://host:port/path` or `https://host:port/path` (Streamable HTTP).
    Http(String),
    /// `quic://host:port[?fingerprint=sha256:HEX]` (ALPN `mcp`).
    Quic(String),
}

impl Endpoint {
    /// Parses an endpoint URL.
    pub(crate) fn parse(s: &str) -> Result<Endpoint, String> {
        let scheme = s.split_once(':').map(|(scheme, _)| scheme).unwrap_or_default();
        match scheme {
            "unix" => Ok(Endpoint::Unix(s.to_owned())),
            "stdio" if s == "stdio:" => Ok(Endpoint::Stdio),
            "ws" | "wss" => Ok(Endpoint::Ws(s.to_owned())),
            "http" | "https" => Ok(Endpoint::Http(s.to_owned())),
            "quic" => Ok(Endpoint::Quic(s.to_owned())),
            _ => Err(format!(
                "{s:?} is not an endpoint: expected unix:///path.sock, unix:name.sock, unix:@name, stdio:, \
                 ws://host:port/path, wss://…, quic://host:port or http://host:port/mcp"
            )),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(s) | Endpoint::Ws(s) | Endpoint::Http(s) | Endpoint::Quic(s) => f.write_str(s),
            Endpoint::Stdio => f.write_str("stdio:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_forms() {
        assert_eq!(Endpoint::parse("unix:///tmp/a.sock"), Ok(Endpoint::Unix("unix:///tmp/a.sock".into())));
        assert_eq!(Endpoint::parse("unix:@name"), Ok(Endpoint::Unix("unix:@name".into())));
        assert_eq!(Endpoint::parse("stdio:"), Ok(Endpoint::Stdio));
        assert_eq!(Endpoint::parse("ws://127.0.0.1:1/mcp"), Ok(Endpoint::Ws("ws://127.0.0.1:1/mcp".into())));
        assert!(Endpoint::parse("/tmp/a.sock").is_err());
        assert!(Endpoint::parse("stdio:x").is_err());
    }
}
