//! Unix socket addresses and their URL form.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::Error;

/// The most bytes a socket address can name: `sun_path` holds 108 bytes, one of which is the
/// terminating NUL of a path or the leading NUL of an abstract name.
pub const MAX_ADDR_LEN: usize = 107;

/// Where a Unix-domain socket lives: a filesystem path or a Linux abstract name.
///
/// The URL forms, as accepted by [`UdsAddr::parse`] and produced by `Display`:
///
/// | form | meaning |
/// |---|---|
/// | `unix:///run/mcp.sock` | absolute path `/run/mcp.sock` |
/// | `unix:/run/mcp.sock` | the same (accepted on input) |
/// | `unix:mcp.sock` | path relative to the working directory |
/// | `unix:@mcp-demo` | Linux abstract name `mcp-demo` (no file) |
/// | `/run/mcp.sock`, `./mcp.sock` | a bare path, taken verbatim |
///
/// In the `unix:` forms, `%XX` escapes are decoded (so any byte, even a non-UTF-8 one, can be
/// written); `Display` escapes every byte outside the URL-safe set, so the output always parses
/// back to the same address. A bare path is never decoded and never taken for an abstract name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UdsAddr {
    /// A socket file in the filesystem, absolute or relative to the working directory.
    Path(PathBuf),
    /// A name in the Linux abstract socket namespace, without the leading NUL byte.
    Abstract(Vec<u8>),
}

impl UdsAddr {
    /// Parses `unix:///abs/path.sock`, `unix:relative.sock`, `unix:@abstract-name` or a bare path.
    ///
    /// Fails on an empty address, a `unix://host/…` URL, another URL scheme, a bad `%` escape,
    /// a NUL byte in a path, or an address longer than [`MAX_ADDR_LEN`] bytes.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidAddress { input: input.to_owned(), reason };
        let addr = match input.get(..5) {
            Some(scheme) if scheme.eq_ignore_ascii_case("unix:") => {
                let rest = &input[5..];
                if let Some(after) = rest.strip_prefix("//") {
                    if !after.starts_with('/') {
                        return Err(invalid(
                            "a `unix://` URL takes no host: write `unix:///abs/path` or `unix:relative`",
                        ));
                    }
                    UdsAddr::Path(path_from(percent_decode(after).map_err(invalid)?))
                } else if let Some(name) = rest.strip_prefix('@') {
                    UdsAddr::Abstract(percent_decode(name).map_err(invalid)?)
                } else {
                    UdsAddr::Path(path_from(percent_decode(rest).map_err(invalid)?))
                }
            }
            _ if has_other_scheme(input) => return Err(invalid("not a `unix:` URL")),
            _ => UdsAddr::Path(PathBuf::from(input)),
        };
        addr.validate().map_err(invalid)?;
        Ok(addr)
    }

    /// The socket file's path, for a filesystem address.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            UdsAddr::Path(p) => Some(p),
            UdsAddr::Abstract(_) => None,
        }
    }

    fn validate(&self) -> Result<(), &'static str> {
        match self {
            UdsAddr::Path(p) => {
                let bytes = p.as_os_str().as_bytes();
                if bytes.is_empty() {
                    return Err("empty path");
                }
                if bytes.contains(&0) {
                    return Err("a path cannot contain a NUL byte");
                }
                if bytes.len() > MAX_ADDR_LEN {
                    return Err("path longer than the 107 bytes a Unix socket address holds");
                }
            }
            UdsAddr::Abstract(name) => {
                if name.is_empty() {
                    return Err("empty abstract name");
                }
                if name.len() > MAX_ADDR_LEN {
                    return Err("abstract name longer than the 107 bytes a Unix socket address holds");
                }
            }
        }
        Ok(())
    }

    /// The path handed to tokio: the file path, or NUL + name for an abstract address (tokio
    /// maps a leading NUL to the abstract namespace on Linux).
    pub(crate) fn socket_path(&self) -> Result<PathBuf, Error> {
        match self {
            UdsAddr::Path(p) => Ok(p.clone()),
            UdsAddr::Abstract(name) => {
                if cfg!(any(target_os = "linux", target_os = "android")) {
                    let mut bytes = Vec::with_capacity(name.len() + 1);
                    bytes.push(0);
                    bytes.extend_from_slice(name);
                    Ok(path_from(bytes))
                } else {
                    Err(Error::Unsupported("abstract socket names exist only on Linux"))
                }
            }
        }
    }
}

impl FromStr for UdsAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl From<PathBuf> for UdsAddr {
    fn from(p: PathBuf) -> Self {
        UdsAddr::Path(p)
    }
}

impl From<&Path> for UdsAddr {
    fn from(p: &Path) -> Self {
        UdsAddr::Path(p.to_owned())
    }
}

impl fmt::Display for UdsAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdsAddr::Path(p) if p.is_absolute() => {
                f.write_str("unix://")?;
                percent_encode(f, p.as_os_str().as_bytes(), false)
            }
            UdsAddr::Path(p) => {
                f.write_str("unix:")?;
                // A leading `@` would read back as an abstract name.
                percent_encode(f, p.as_os_str().as_bytes(), true)
            }
            UdsAddr::Abstract(name) => {
                f.write_str("unix:@")?;
                percent_encode(f, name, false)
            }
        }
    }
}

fn path_from(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes))
}

/// `scheme://…` with an RFC 3986 scheme name.
fn has_other_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once("://") else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn percent_decode(s: &str) -> Result<Vec<u8>, &'static str> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err("`%` must be followed by two hex digits"),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Writes `bytes`, escaping all but RFC 3986 unreserved and sub-delimiter characters, `:`,
/// `@` and `/` (and a leading `@` when `escape_leading_at`).
fn percent_encode(f: &mut fmt::Formatter<'_>, bytes: &[u8], escape_leading_at: bool) -> fmt::Result {
    for (i, &b) in bytes.iter().enumerate() {
        let safe = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        if safe && !(escape_leading_at && i == 0 && b == b'@') {
            fmt::Write::write_char(f, b as char)?;
        } else {
            write!(f, "%{b:02X}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> UdsAddr {
        UdsAddr::Path(PathBuf::from(s))
    }

    #[test]
    fn accepted_forms() {
        assert_eq!(UdsAddr::parse("unix:///run/mcp.sock").unwrap(), path("/run/mcp.sock"));
        assert_eq!(UdsAddr::parse("unix:/run/mcp.sock").unwrap(), path("/run/mcp.sock"));
        assert_eq!(UdsAddr::parse("UNIX:///run/mcp.sock").unwrap(), path("/run/mcp.sock"));
        assert_eq!(UdsAddr::parse("unix:mcp.sock").unwrap(), path("mcp.sock"));
        assert_eq!(UdsAddr::parse("unix:dir/mcp.sock").unwrap(), path("dir/mcp.sock"));
        assert_eq!(UdsAddr::parse("unix:@mcp-demo").unwrap(), UdsAddr::Abstract(b"mcp-demo".to_vec()));
        assert_eq!(UdsAddr::parse("/run/mcp.sock").unwrap(), path("/run/mcp.sock"));
        assert_eq!(UdsAddr::parse("./mcp.sock").unwrap(), path("./mcp.sock"));
        assert_eq!(UdsAddr::parse("@literal").unwrap(), path("@literal"));
        assert_eq!(UdsAddr::parse("/tmp/a%20b").unwrap(), path("/tmp/a%20b"));
        assert_eq!(UdsAddr::parse("unix:///tmp/a%20b").unwrap(), path("/tmp/a b"));
        assert_eq!(UdsAddr::parse("unix:@a%00b").unwrap(), UdsAddr::Abstract(b"a\0b".to_vec()));
    }

    #[test]
    fn refused_forms() {
        for bad in [
            "",
            "unix:",
            "unix://",
            "unix:@",
            "unix://host/run/mcp.sock",
            "ws://host:1/x",
            "unix:///a%2",
            "unix:///a%zz",
            "unix:///a%00b",
        ] {
            assert!(matches!(UdsAddr::parse(bad), Err(Error::InvalidAddress { .. })), "{bad:?} was accepted");
        }
        let long = format!("/{}", "x".repeat(MAX_ADDR_LEN));
        assert!(UdsAddr::parse(&long).is_err());
        assert!(UdsAddr::parse(&long[..MAX_ADDR_LEN]).is_ok());
    }

    #[test]
    fn display_is_the_url_and_round_trips() {
        let cases = [
            (path("/run/mcp.sock"), "unix:///run/mcp.sock"),
            (path("mcp.sock"), "unix:mcp.sock"),
            (path("@odd"), "unix:%40odd"),
            (path("/tmp/a b%?#"), "unix:///tmp/a%20b%25%3F%23"),
            (UdsAddr::Abstract(b"mcp-demo".to_vec()), "unix:@mcp-demo"),
            (UdsAddr::Abstract(vec![0xff, b'@']), "unix:@%FF@"),
            (path_from(b"/tmp/\xffx".to_vec()).into(), "unix:///tmp/%FFx"),
        ];
        for (addr, url) in cases {
            assert_eq!(addr.to_string(), url);
            assert_eq!(UdsAddr::parse(url).unwrap(), addr, "{url}");
        }
    }
}
