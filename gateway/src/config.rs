//! The gateway configuration: a TOML file, validated at load with precise errors.
//!
//! ```toml
//! separator = "__"                       # between upstream and tool/prompt names
//! listen = ["unix:///run/mcp-gateway.sock", "ws://127.0.0.1:8765/mcp"]
//! admin = "127.0.0.1:9464"               # /metrics, /healthz, /readyz
//! health_interval = "15s"
//!
//! [[upstream]]
//! name = "crm"
//! url = "unix:///run/crm.sock"           # unix:, ws(s)://, quic://…?fingerprint=sha256:HEX, http(s)://
//! request_timeout = "60s"
//! idle_timeout = "30s"                   # pooled http(s) connections
//!
//! [[upstream]]
//! name = "files"
//! command = ["files-mcp", "--root", "/srv"]
//! env = { LOG = "info" }
//!
//! [[principal]]
//! name = "alice"
//! token_sha256 = ["<64 hex digits: sha256 of the bearer token>"]
//! uids = [1000]
//! upstreams = ["crm"]
//! tools = ["crm__search"]
//! token_budget = { tokens = 1000000, per = "1d" }   # result tokens (bytes / 4) per window
//!
//! [jwt]                                  # JWT bearer tokens (see `crate::jwt`)
//! issuer = "https://idp.example.com/"
//! audience = "mcp-gateway"
//! algorithms = ["RS256"]
//! jwks_file = "/etc/mcp/jwks.json"
//! subjects = { "user-1234" = "alice" }
//! ```
//!
//! Every error names the file, line and column of the offending value and what is wrong.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::Error;
use crate::jwt::{JwtConfig, RawJwt, UnknownSubjects};

/// The whole gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Between the upstream name and the item name (default `__`): `crm__search`.
    pub separator: String,
    /// Downstream endpoints to listen on (opened by the caller, e.g. `mcpt gateway`).
    pub listen: Vec<String>,
    /// Address of the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`), if any.
    pub admin: Option<String>,
    /// Interval of the health pings sent to every ready upstream (`None`: no pings).
    pub health_interval: Option<Duration>,
    /// Whether connections that match no principal are served as principal `anonymous`
    /// (default: true when no principal is configured, else false).
    pub allow_anonymous: bool,
    /// The upstream servers, in configuration order.
    pub upstreams: Vec<UpstreamConfig>,
    /// The principals.
    pub principals: Vec<PrincipalConfig>,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Circuit breaker thresholds, the same for every upstream.
    pub circuit_breaker: BreakerConfig,
    /// Reconnection backoff of upstreams.
    pub backoff: BackoffConfig,
    /// Response caching (`None`: no cache).
    pub cache: Option<CacheConfig>,
    /// JWT bearer tokens (`None`: bearer tokens are only compared with `token_sha256`).
    pub jwt: Option<JwtConfig>,
}

/// Response caching: upstream list pages and the results of tools declared idempotent, kept
/// for `ttl`, bounded in bytes, and dropped when the upstream announces a list change or
/// reconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long an entry lives (default 60 s).
    pub ttl: Duration,
    /// Bound on the cached bytes (default 64 MiB).
    pub max_bytes: u64,
    /// Whether list pages are cached (default true).
    pub lists: bool,
    /// Namespaced tools whose results are cached by arguments, exact or ending in `*`.
    pub tools: Vec<String>,
}

/// How to reach one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// A URL: `unix:`, `ws://`, `wss://`, `quic://`, `http://` or `https://`.
    Url(String),
    /// A child process speaking stdio.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Extra environment variables.
        env: BTreeMap<String, String>,
        /// Working directory.
        cwd: Option<PathBuf>,
    },
}

/// Which MCP generation to speak to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamGeneration {
    /// The stateful 2025 generation (default): server→client requests, subscriptions and
    /// list-change notifications all work through the gateway.
    #[default]
    Legacy,
    /// `server/discover` first, falling back to `initialize`.
    Auto,
    /// The stateless 2026-07-28 generation.
    Modern,
}

/// One upstream server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The name, used as the namespace prefix; must not contain the separator.
    pub name: String,
    /// Where it is.
    pub target: UpstreamTarget,
    /// Time allowed for connecting and the handshake (default 10 s).
    pub connect_timeout: Duration,
    /// Default timeout of requests forwarded to it (default 60 s).
    pub request_timeout: Duration,
    /// How long a pooled connection to an http(s) upstream may stay idle before it is closed
    /// (default 30 s): bursts open one connection per concurrent call, and this bounds how
    /// long they outlive the burst.
    pub idle_timeout: Duration,
    /// Whether `/readyz` needs this upstream ready (default false).
    pub required: bool,
    /// The generation to speak.
    pub generation: UpstreamGeneration,
    /// Name of an environment variable holding a bearer token sent to it (ws/http).
    pub bearer_token_env: Option<String>,
    /// A PEM file of CA certificates to trust (wss, https, quic without a fingerprint).
    pub ca_file: Option<PathBuf>,
    /// This upstream's own rate limit (overrides `rate_limits.per_upstream`).
    pub rate_limit: Option<Rate>,
}

/// A principal: who a downstream connection is, and what it may use.
#[derive(Debug, Clone)]
pub struct PrincipalConfig {
    /// The name (in logs and metrics).
    pub name: String,
    /// SHA-256 digests of the bearer tokens that identify it.
    pub token_sha256: Vec<[u8; 32]>,
    /// Unix user ids that identify it on Unix-socket connections.
    pub uids: Vec<u32>,
    /// SHA-256 fingerprints of the TLS client certificates that identify it (QUIC with a client
    /// CA, `wss://` with client authentication).
    pub cert_sha256: Vec<[u8; 32]>,
    /// The upstreams it may use (`None`: all).
    pub upstreams: Option<Vec<String>>,
    /// The namespaced tools it may use, exact or ending in `*` (`None`: all).
    pub tools: Option<Vec<String>>,
    /// Its budget of result tokens (`None`: unlimited).
    pub token_budget: Option<TokenBudget>,
}

/// A principal's budget of result tokens (estimated as result bytes / 4), per fixed window:
/// the window starts at the principal's first request and lasts `per`; once `tokens` are spent
/// in it, the principal's requests are refused until it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBudget {
    /// Tokens allowed per window (at least 1).
    pub tokens: u64,
    /// The window's length (positive).
    pub per: Duration,
}

/// A rate: `burst` requests per `per`, refilled evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed in one period (also the burst size).
    pub count: NonZeroU32,
    /// The period.
    pub per: Duration,
}

/// Rate limits; each is `None` when not set.
#[derive(Debug, Clone, Default)]
pub struct RateLimits {
    /// All calls through the gateway together.
    pub global: Option<Rate>,
    /// Each upstream (unless the upstream sets its own).
    pub per_upstream: Option<Rate>,
    /// Each principal.
    pub per_principal: Option<Rate>,
    /// Individual namespaced tools.
    pub tools: BTreeMap<String, Rate>,
}

/// Circuit breaker thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit (default 5).
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe (default 30 s).
    pub open_for: Duration,
    /// Calls allowed at once while half-open (default 1).
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, open_for: Duration::from_secs(30), half_open_probes: 1 }
    }
}

/// Reconnection backoff: exponential from `initial` up to `max`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// First delay (default 200 ms).
    pub initial: Duration,
    /// Largest delay (default 30 s).
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self { initial: Duration::from_millis(200), max: Duration::from_secs(30) }
    }
}

// ---- the file format ------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    separator: Option<Spanned<String>>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    admin: Option<Spanned<String>>,
    health_interval: Option<Spanned<String>>,
    allow_anonymous: Option<bool>,
    #[serde(default, rename = "upstream")]
    upstreams: Vec<RawUpstream>,
    #[serde(default, rename = "principal")]
    principals: Vec<RawPrincipal>,
    #[serde(default)]
    rate_limits: RawRateLimits,
    #[serde(default)]
    circuit_breaker: RawBreaker,
    #[serde(default)]
    backoff: RawBackoff,
    cache: Option<RawCache>,
    jwt: Option<RawJwt>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    ttl: Option<Spanned<String>>,
    max_bytes: Option<Spanned<u64>>,
    lists: Option<bool>,
    #[serde(default)]
    tools: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: Spanned<String>,
    url: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    connect_timeout: Option<Spanned<String>>,
    request_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    generation: UpstreamGeneration,
    bearer_token_env: Option<String>,
    ca_file: Option<PathBuf>,
    rate_limit: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    name: Spanned<String>,
    #[serde(default)]
    token_sha256: Vec<Spanned<String>>,
    #[serde(default)]
    uids: Vec<u32>,
    #[serde(default)]
    cert_sha256: Vec<Spanned<String>>,
    upstreams: Option<Vec<Spanned<String>>>,
    tools: Option<Vec<Spanned<String>>>,
    token_budget: Option<Spanned<RawTokenBudget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenBudget {
    tokens: Spanned<i64>,
    per: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRateLimits {
    global: Option<Spanned<String>>,
    per_upstream: Option<Spanned<String>>,
    per_principal: Option<Spanned<String>>,
    #[serde(default)]
    tools: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    failure_threshold: Option<Spanned<u32>>,
    open_for: Option<Spanned<String>>,
    half_open_probes: Option<Spanned<u32>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackoff {
    initial: Option<Spanned<String>>,
    max: Option<Spanned<String>>,
}

/// Turns byte spans into `file:line:column` errors.
pub(crate) struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    /// 1-based line and column of a byte offset.
    fn position(&self, at: usize) -> (usize, usize) {
        let mut at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    pub(crate) fn error(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        let (line, column) = self.position(span.start);
        Error::Config { file: self.file.to_owned(), line, column, message: message.into() }
    }

    pub(crate) fn duration(
        &self,
        v: &Option<Spanned<String>>,
        what: &str,
        default: Duration,
    ) -> Result<Duration, Error> {
        match v {
            None => Ok(default),
            Some(s) => parse_duration(s.get_ref()).map_err(|e| self.error(s.span(), format!("{what}: {e}"))),
        }
    }

    fn rate(&self, v: &Option<Spanned<String>>, what: &str) -> Result<Option<Rate>, Error> {
        match v {
            None => Ok(None),
            Some(s) => parse_rate(s.get_ref()).map(Some).map_err(|e| self.error(s.span(), format!("{what}: {e}"))),
        }
    }
}

/// Parses `250ms`, `10s`, `5m`, `1h` or `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration like 250ms, 10s, 5m, 1h or 1d"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        "d" => Ok(Duration::from_secs(n.saturating_mul(86_400))),
        _ => Err(format!("{s:?} is not a duration like 250ms, 10s, 5m, 1h or 1d (units: ms, s, m, h, d)")),
    }
}

/// Parses a rate: `100/s`, `20/m` or `1000/h`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let bad = || format!("{s:?} is not a rate like 100/s, 20/m or 1000/h");
    let (count, unit) = s.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let count = NonZeroU32::new(count).ok_or_else(|| format!("{s:?}: the count must be at least 1"))?;
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(bad()),
    };
    Ok(Rate { count, per })
}

fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(format!("a SHA-256 digest is 64 hex digits; this has {} characters", s.chars().count()));
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let hex = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        };
        match (hex(pair[0]), hex(pair[1])) {
            (Some(h), Some(l)) => out[i] = h << 4 | l,
            _ => return Err(format!("not a hex digit at position {}", i * 2 + 1)),
        }
    }
    Ok(out)
}

const URL_SCHEMES: &str = "unix:, ws://, wss://, quic://, http:// or https://";

fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
    match scheme {
        "unix" => mcp_transport_uds::UdsAddr::parse(url).map(drop).map_err(|e| e.to_string()),
        "quic" => mcp_transport_quic::QuicUrl::parse(url).map(drop).map_err(|e| e.to_string()),
        "ws" | "wss" | "http" | "https" => {
            let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
            if rest.is_empty() || rest.starts_with('/') { Err(format!("{url:?} has no host")) } else { Ok(()) }
        }
        _ => Err(format!("{url:?} is not an upstream URL: expected {URL_SCHEMES}, or `command = [..]`")),
    }
}

fn check_listen(url: &str) -> Result<(), String> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
    match scheme {
        "unix" | "ws" | "wss" | "quic" | "http" | "https" => Ok(()),
        "stdio" if url == "stdio:" => Ok(()),
        _ => Err(format!("{url:?} is not an endpoint: expected stdio: or {URL_SCHEMES}")),
    }
}

/// Valid characters of an upstream name.
fn check_name(name: &str, separator: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("upstream name {name:?} must have 1 to 64 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        return Err(format!("upstream name {name:?} may only contain ASCII letters, digits, '_', '-' and '.'"));
    }
    if name.contains(separator) {
        return Err(format!("upstream name {name:?} contains the separator {separator:?}"));
    }
    Ok(())
}

impl GatewayConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: impl AsRef<Path>) -> Result<GatewayConfig, Error> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead { file: file.clone(), source })?;
        Self::parse(&text, &file)
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<GatewayConfig, Error> {
        let src = Source { file, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            match e.span() {
                Some(span) => src.error(span, message),
                None => Error::Config { file: file.to_owned(), line: 1, column: 1, message },
            }
        })?;
        let separator = match &raw.separator {
            None => "__".to_owned(),
            Some(s) => {
                let sep = s.get_ref();
                if sep.is_empty() || sep.len() > 8 || sep.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(src.error(s.span(), "separator must have 1 to 8 visible characters"));
                }
                sep.clone()
            }
        };
        for l in &raw.listen {
            check_listen(l.get_ref()).map_err(|e| src.error(l.span(), e))?;
        }
        if let Some(a) = &raw.admin
            && a.get_ref().parse::<std::net::SocketAddr>().is_err()
        {
            return Err(src.error(a.span(), format!("admin: {:?} is not an address like 127.0.0.1:9464", a.get_ref())));
        }
        let health_interval = match &raw.health_interval {
            None => Some(Duration::from_secs(15)),
            Some(s) if s.get_ref() == "off" => None,
            Some(_) => {
                let d = src.duration(&raw.health_interval, "health_interval", Duration::ZERO)?;
                if d.is_zero() {
                    return Err(src.error(
                        raw.health_interval.as_ref().map_or(0..0, Spanned::span),
                        "health_interval must be positive (or \"off\")",
                    ));
                }
                Some(d)
            }
        };

        let mut upstreams = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        for u in &raw.upstreams {
            let name = u.name.get_ref();
            check_name(name, &separator).map_err(|e| src.error(u.name.span(), e))?;
            if let Some(first) = names.insert(name.clone(), u.name.span()) {
                let (line, _) = src.position(first.start);
                return Err(
                    src.error(u.name.span(), format!("duplicate upstream name {name:?} (first at line {line})"))
                );
            }
            let target = match (&u.url, &u.command) {
                (Some(url), None) => {
                    check_url(url.get_ref()).map_err(|e| src.error(url.span(), e))?;
                    UpstreamTarget::Url(url.get_ref().clone())
                }
                (None, Some(cmd)) => {
                    if cmd.get_ref().is_empty() || cmd.get_ref()[0].is_empty() {
                        return Err(src.error(cmd.span(), "command must name a program"));
                    }
                    UpstreamTarget::Command { argv: cmd.get_ref().clone(), env: u.env.clone(), cwd: u.cwd.clone() }
                }
                (Some(_), Some(cmd)) => {
                    return Err(
                        src.error(cmd.span(), format!("upstream {name:?}: give either url or command, not both"))
                    );
                }
                (None, None) => {
                    return Err(
                        src.error(u.name.span(), format!("upstream {name:?} needs url = \"…\" or command = [..]"))
                    );
                }
            };
            if !u.env.is_empty() && matches!(target, UpstreamTarget::Url(_)) {
                return Err(
                    src.error(u.name.span(), format!("upstream {name:?}: env applies only to command upstreams"))
                );
            }
            let connect_timeout = src.duration(&u.connect_timeout, "connect_timeout", Duration::from_secs(10))?;
            let request_timeout = src.duration(&u.request_timeout, "request_timeout", Duration::from_secs(60))?;
            let idle_timeout = src.duration(&u.idle_timeout, "idle_timeout", Duration::from_secs(30))?;
            for (d, v) in [
                (connect_timeout, &u.connect_timeout),
                (request_timeout, &u.request_timeout),
                (idle_timeout, &u.idle_timeout),
            ] {
                if d.is_zero() {
                    return Err(src.error(v.as_ref().map_or(0..0, Spanned::span), "a timeout must be positive"));
                }
            }
            upstreams.push(UpstreamConfig {
                name: name.clone(),
                target,
                connect_timeout,
                request_timeout,
                idle_timeout,
                required: u.required,
                generation: u.generation,
                bearer_token_env: u.bearer_token_env.clone(),
                ca_file: u.ca_file.clone(),
                rate_limit: src.rate(&u.rate_limit, "rate_limit")?,
            });
        }

        let mut principals = Vec::new();
        let mut no_credentials = Vec::new();
        let mut pnames = HashSet::new();
        let mut tokens = HashSet::new();
        let mut uids = HashSet::new();
        let mut certs = HashSet::new();
        for p in &raw.principals {
            let name = p.name.get_ref();
            if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
                return Err(src.error(p.name.span(), "principal name must have 1 to 64 printable characters"));
            }
            if !pnames.insert(name.clone()) {
                return Err(src.error(p.name.span(), format!("duplicate principal name {name:?}")));
            }
            let mut token_sha256 = Vec::new();
            for t in &p.token_sha256 {
                let digest =
                    parse_sha256(t.get_ref()).map_err(|e| src.error(t.span(), format!("token_sha256: {e}")))?;
                if !tokens.insert(digest) {
                    return Err(src.error(t.span(), "this token digest is given to more than one principal"));
                }
                token_sha256.push(digest);
            }
            for uid in &p.uids {
                if !uids.insert(*uid) {
                    return Err(src.error(p.name.span(), format!("uid {uid} is given to more than one principal")));
                }
            }
            let mut cert_sha256 = Vec::new();
            for c in &p.cert_sha256 {
                // Accept the forms certificate tools print: `sha256:` prefix, colons, any case.
                let text = c.get_ref().trim();
                let text = text.strip_prefix("sha256:").or_else(|| text.strip_prefix("SHA256:")).unwrap_or(text);
                let hex: String = text.chars().filter(|ch| *ch != ':').collect();
                let digest = parse_sha256(&hex).map_err(|e| src.error(c.span(), format!("cert_sha256: {e}")))?;
                if !certs.insert(digest) {
                    return Err(src.error(c.span(), "this certificate fingerprint is given to more than one principal"));
                }
                cert_sha256.push(digest);
            }
            if p.token_sha256.is_empty() && p.uids.is_empty() && p.cert_sha256.is_empty() {
                // Unless a JWT maps to it (checked once `[jwt]` is read).
                no_credentials.push((name.clone(), p.name.span()));
            }
            let upstreams_allowed = match &p.upstreams {
                None => None,
                Some(list) => {
                    for u in list {
                        if !names.contains_key(u.get_ref()) {
                            return Err(src.error(u.span(), format!("unknown upstream {:?} in upstreams", u.get_ref())));
                        }
                    }
                    Some(list.iter().map(|u| u.get_ref().clone()).collect())
                }
            };
            let tools = match &p.tools {
                None => None,
                Some(list) => {
                    for t in list {
                        let pattern = t.get_ref();
                        let Some((up, rest)) = pattern.split_once(separator.as_str()) else {
                            return Err(src.error(
                                t.span(),
                                format!(
                                    "tool {pattern:?} must be namespaced: <upstream>{separator}<tool> (or ending in *)"
                                ),
                            ));
                        };
                        if !names.contains_key(up) {
                            return Err(src.error(t.span(), format!("unknown upstream {up:?} in tool {pattern:?}")));
                        }
                        if rest.is_empty() || rest[..rest.len() - 1].contains('*') {
                            return Err(src.error(t.span(), format!("tool {pattern:?}: '*' may only end a pattern")));
                        }
                    }
                    Some(list.iter().map(|t| t.get_ref().clone()).collect())
                }
            };
            let token_budget = match &p.token_budget {
                None => None,
                Some(b) => {
                    let raw = b.get_ref();
                    let tokens = *raw.tokens.get_ref();
                    if tokens < 1 {
                        return Err(src.error(
                            raw.tokens.span(),
                            format!("principal {name:?}: token_budget.tokens must be at least 1, not {tokens}"),
                        ));
                    }
                    let per = parse_duration(raw.per.get_ref())
                        .map_err(|e| src.error(raw.per.span(), format!("principal {name:?}: token_budget.per: {e}")))?;
                    if per.is_zero() {
                        return Err(
                            src.error(raw.per.span(), format!("principal {name:?}: token_budget.per must be positive"))
                        );
                    }
                    Some(TokenBudget { tokens: tokens.unsigned_abs(), per })
                }
            };
            principals.push(PrincipalConfig {
                name: name.clone(),
                token_sha256,
                uids: p.uids.clone(),
                cert_sha256,
                upstreams: upstreams_allowed,
                tools,
                token_budget,
            });
        }

        let jwt = match &raw.jwt {
            None => None,
            Some(j) => Some(j.validate(&src, &pnames)?),
        };
        for (name, span) in no_credentials {
            let by_jwt = jwt.as_ref().is_some_and(|j| {
                j.unknown_subjects == UnknownSubjects::ByName || j.subjects.values().any(|p| *p == name)
            });
            if !by_jwt {
                return Err(src.error(
                    span,
                    format!(
                        "principal {name:?} has no token_sha256, uids or cert_sha256, and no jwt.subjects maps to it"
                    ),
                ));
            }
        }

        let rl = &raw.rate_limits;
        let mut tools = BTreeMap::new();
        for (tool, rate) in &rl.tools {
            match tool.split_once(separator.as_str()) {
                Some((up, t)) if names.contains_key(up) && !t.is_empty() => {}
                _ => {
                    return Err(src.error(
                        rate.span(),
                        format!("rate_limits.tools: {tool:?} is not <upstream>{separator}<tool> with a known upstream"),
                    ));
                }
            }
            let r =
                parse_rate(rate.get_ref()).map_err(|e| src.error(rate.span(), format!("rate_limits.tools: {e}")))?;
            tools.insert(tool.clone(), r);
        }
        let rate_limits = RateLimits {
            global: src.rate(&rl.global, "rate_limits.global")?,
            per_upstream: src.rate(&rl.per_upstream, "rate_limits.per_upstream")?,
            per_principal: src.rate(&rl.per_principal, "rate_limits.per_principal")?,
            tools,
        };

        let cb = &raw.circuit_breaker;
        let defaults = BreakerConfig::default();
        let positive = |v: &Option<Spanned<u32>>, what: &str, default: u32| match v {
            None => Ok(default),
            Some(s) if *s.get_ref() == 0 => {
                Err(src.error(s.span(), format!("circuit_breaker.{what} must be at least 1")))
            }
            Some(s) => Ok(*s.get_ref()),
        };
        let circuit_breaker = BreakerConfig {
            failure_threshold: positive(&cb.failure_threshold, "failure_threshold", defaults.failure_threshold)?,
            open_for: src.duration(&cb.open_for, "circuit_breaker.open_for", defaults.open_for)?,
            half_open_probes: positive(&cb.half_open_probes, "half_open_probes", defaults.half_open_probes)?,
        };
        let bd = BackoffConfig::default();
        let backoff = BackoffConfig {
            initial: src.duration(&raw.backoff.initial, "backoff.initial", bd.initial)?,
            max: src.duration(&raw.backoff.max, "backoff.max", bd.max)?,
        };
        if backoff.initial.is_zero() || backoff.max < backoff.initial {
            let span = raw.backoff.max.as_ref().or(raw.backoff.initial.as_ref()).map_or(0..0, Spanned::span);
            return Err(src.error(span, "backoff needs 0 < initial <= max"));
        }
        let cache = match &raw.cache {
            None => None,
            Some(c) => {
                let ttl = src.duration(&c.ttl, "cache.ttl", Duration::from_secs(60))?;
                if ttl.is_zero() {
                    return Err(src.error(c.ttl.as_ref().map_or(0..0, Spanned::span), "cache.ttl must be positive"));
                }
                let max_bytes = match &c.max_bytes {
                    None => 64 << 20,
                    Some(b) if *b.get_ref() == 0 => return Err(src.error(b.span(), "cache.max_bytes must be positive")),
                    Some(b) => *b.get_ref(),
                };
                for t in &c.tools {
                    let pattern = t.get_ref();
                    match pattern.split_once(separator.as_str()) {
                        Some((up, rest))
                            if names.contains_key(up) && !rest.is_empty() && !rest[..rest.len() - 1].contains('*') => {}
                        _ => {
                            return Err(src.error(
                                t.span(),
                                format!("cache.tools: {pattern:?} is not <upstream>{separator}<tool> (or ending in *) with a known upstream"),
                            ));
                        }
                    }
                }
                Some(CacheConfig {
                    ttl,
                    max_bytes,
                    lists: c.lists.unwrap_or(true),
                    tools: c.tools.iter().map(|t| t.get_ref().clone()).collect(),
                })
            }
        };
        Ok(GatewayConfig {
            cache,
            jwt,
            separator,
            listen: raw.listen.iter().map(|l| l.get_ref().clone()).collect(),
            admin: raw.admin.map(Spanned::into_inner),
            health_interval,
            allow_anonymous: raw.allow_anonymous.unwrap_or(principals.is_empty()),
            upstreams,
            principals,
            rate_limits,
            circuit_breaker,
            backoff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        match GatewayConfig::parse(text, "gw.toml") {
            Err(Error::Config { line, column, message, file }) => {
                assert_eq!(file, "gw.toml");
                (line, column, message)
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    const HASH: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn a_full_file_parses() {
        let text = format!(
            r#"
separator = "::"
listen = ["unix:///tmp/gw.sock", "ws://127.0.0.1:9000/mcp"]
admin = "127.0.0.1:9464"
health_interval = "5s"

[[upstream]]
name = "crm"
url = "unix:///tmp/crm.sock"
request_timeout = "2m"
idle_timeout = "5s"
required = true
rate_limit = "10/s"

[[upstream]]
name = "files"
command = ["files-mcp", "--root", "/srv"]
env = {{ LOG = "info" }}
cwd = "/srv"

[[principal]]
name = "alice"
token_sha256 = ["{HASH}"]
uids = [1000]
upstreams = ["crm"]
tools = ["crm::search", "files::*"]

[rate_limits]
global = "1000/s"
per_principal = "20/m"
tools = {{ "crm::search" = "5/s" }}

[circuit_breaker]
failure_threshold = 3
open_for = "10s"

[cache]
ttl = "30s"
tools = ["crm::get_*"]
"#
        );
        let c = GatewayConfig::parse(&text, "gw.toml").unwrap();
        assert_eq!(c.separator, "::");
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.health_interval, Some(Duration::from_secs(5)));
        assert_eq!(c.upstreams[0].request_timeout, Duration::from_secs(120));
        assert_eq!(c.upstreams[0].idle_timeout, Duration::from_secs(5));
        assert_eq!(c.upstreams[1].idle_timeout, Duration::from_secs(30), "the default");
        assert!(c.upstreams[0].required);
        assert_eq!(
            c.upstreams[0].rate_limit,
            Some(Rate { count: NonZeroU32::new(10).unwrap(), per: Duration::from_secs(1) })
        );
        assert!(
            matches!(&c.upstreams[1].target, UpstreamTarget::Command { argv, env, .. } if argv[0] == "files-mcp" && env["LOG"] == "info")
        );
        assert_eq!(c.principals[0].token_sha256[0][0], 0x2c);
        assert!(!c.allow_anonymous, "principals configured: anonymous off by default");
        assert_eq!(c.rate_limits.tools["crm::search"].count.get(), 5);
        assert_eq!(c.circuit_breaker.failure_threshold, 3);
        assert_eq!(c.circuit_breaker.half_open_probes, 1);
        let cache = c.cache.unwrap();
        assert_eq!((cache.ttl, cache.max_bytes, cache.lists), (Duration::from_secs(30), 64 << 20, true));
        assert_eq!(cache.tools, vec!["crm::get_*"]);
    }

    #[test]
    fn errors_name_line_column_and_problem() {
        let (line, col, msg) =
            err("[[upstream]]\nname = \"a\"\nurl = \"unix:///a\"\n[[upstream]]\nname = \"a\"\nurl = \"unix:///b\"\n");
        assert_eq!((line, col), (5, 8));
        assert!(msg.contains("duplicate upstream name \"a\" (first at line 2)"), "{msg}");

        let (line, _, msg) = err("[[upstream]]\nname = \"a__b\"\nurl = \"unix:///a\"\n");
        assert_eq!(line, 2);
        assert!(msg.contains("separator"), "{msg}");

        let (line, col, msg) = err("[[upstream]]\nname = \"a\"\nurl = \"ftp://x\"\n");
        assert_eq!((line, col), (3, 7));
        assert!(msg.contains("not an upstream URL"), "{msg}");

        let (line, _, msg) = err(
            "[[upstream]]\nname = \"a\"\nurl = \"unix:///a\"\n[[principal]]\nname = \"p\"\nuids = [1]\nupstreams = [\"b\"]\n",
        );
        assert_eq!(line, 7);
        assert!(msg.contains("unknown upstream \"b\""), "{msg}");

        let (line, _, msg) = err("[[principal]]\nname = \"p\"\ntoken_sha256 = [\"abc\"]\n");
        assert_eq!(line, 3);
        assert!(msg.contains("64 hex digits"), "{msg}");

        let (_, _, msg) = err(&format!("[[principal]]\nname = \"p\"\ntoken_sha256 = [\"{}\"]\n", "g".repeat(64)));
        assert!(msg.contains("not a hex digit at position 1"), "{msg}");

        let (line, _, msg) = err("[[upstream]]\nname = \"a\"\nurl = \"unix:///a\"\nrequest_timeout = \"soon\"\n");
        assert_eq!(line, 4);
        assert!(msg.contains("request_timeout"), "{msg}");

        let (line, _, msg) = err("[rate_limits]\nglobal = \"0/s\"\n");
        assert_eq!(line, 2);
        assert!(msg.contains("at least 1"), "{msg}");

        let (line, _, msg) = err("bogus = 1\n");
        assert_eq!(line, 1);
        assert!(msg.contains("unknown field"), "{msg}");

        let (line, _, msg) = err("[cache]\ntools = [\"x__y\"]\n");
        assert_eq!(line, 2);
        assert!(msg.contains("cache.tools"), "{msg}");

        let (_, _, msg) = err("[[upstream]]\nname = \"a\"\n");
        assert!(msg.contains("needs url"), "{msg}");

        let (_, _, msg) = err(
            "[[upstream]]\nname = \"a\"\nurl = \"unix:///a\"\n[[principal]]\nname = \"p\"\nuids = [1]\ntools = [\"search\"]\n",
        );
        assert!(msg.contains("must be namespaced"), "{msg}");
    }

    #[test]
    fn token_budgets_parse_and_errors_name_their_position() {
        let c = GatewayConfig::parse(
            "[[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = { tokens = 1000000, per = \"1d\" }\n\
             [[principal]]\nname = \"q\"\nuids = [2]\n",
            "gw.toml",
        )
        .unwrap();
        assert_eq!(
            c.principals[0].token_budget,
            Some(TokenBudget { tokens: 1_000_000, per: Duration::from_secs(86_400) })
        );
        assert_eq!(c.principals[1].token_budget, None, "no key: unlimited");

        let (line, col, msg) =
            err("[[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = { tokens = 0, per = \"1h\" }\n");
        assert_eq!((line, col), (4, 27));
        assert!(msg.contains("token_budget.tokens must be at least 1, not 0"), "{msg}");
        let (line, _, msg) =
            err("[[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = { tokens = -5, per = \"1h\" }\n");
        assert_eq!(line, 4);
        assert!(msg.contains("at least 1, not -5"), "{msg}");
        let (line, col, msg) =
            err("[[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = { tokens = 10, per = \"daily\" }\n");
        assert_eq!((line, col), (4, 37));
        assert!(msg.contains("principal \"p\": token_budget.per: \"daily\" is not a duration"), "{msg}");
        let (_, _, msg) =
            err("[[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = { tokens = 10, per = \"0s\" }\n");
        assert!(msg.contains("token_budget.per must be positive"), "{msg}");
        let (line, _, msg) = err("[[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = { tokens = 10 }\n");
        assert_eq!(line, 4);
        assert!(msg.contains("missing field `per`"), "{msg}");
        let (line, _, msg) =
            err("[[principal]]\nname = \"p\"\nuids = [1]\ntoken_budget = { tokens = 10, per = \"1h\", burst = 2 }\n");
        assert_eq!(line, 4);
        assert!(msg.contains("unknown field `burst`"), "{msg}");
    }

    #[test]
    fn durations_and_rates() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("-5s").is_err());
        assert_eq!(parse_rate("20/m").unwrap().per, Duration::from_secs(60));
        assert!(parse_rate("20").is_err());
        assert!(parse_rate("x/s").is_err());
    }

    #[test]
    fn defaults_without_principals_allow_anonymous() {
        let c = GatewayConfig::parse("", "empty.toml").unwrap();
        assert_eq!(c.separator, "__");
        assert!(c.allow_anonymous);
        assert!(c.upstreams.is_empty());
    }
}

#[cfg(test)]
mod example {
    use super::*;

    #[test]
    fn the_example_file_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway.toml");
        let c = GatewayConfig::load(path).unwrap();
        assert_eq!(c.upstreams.len(), 5);
        assert_eq!(c.principals.len(), 2);
        assert_eq!(c.listen.len(), 2);
        assert!(!c.allow_anonymous);
        assert_eq!(
            c.principals[0].token_budget,
            Some(TokenBudget { tokens: 1_000_000, per: Duration::from_secs(86_400) })
        );
        assert_eq!(c.cache.unwrap().tools, vec!["crm__get_*"]);
        assert!(c.jwt.is_none(), "the [jwt] example is commented out");
    }

    #[test]
    fn the_commented_jwt_example_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("\n#[jwt]\n").expect("the example documents [jwt]");
        let jwks = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/jwks.json");
        let mut enabled = text[..start].to_owned();
        enabled.push('\n');
        for line in text[start..].lines().filter(|l| l.starts_with('#') && !l.starts_with("##")) {
            enabled.push_str(&line[1..].replace("/etc/mcp/jwks.json", jwks));
            enabled.push('\n');
        }
        let c = GatewayConfig::parse(&enabled, "gateway.toml").unwrap();
        let jwt = c.jwt.expect("[jwt] enabled");
        assert_eq!(jwt.issuer, "https://idp.example.com/");
        assert_eq!(jwt.audience, vec!["mcp-gateway"]);
        assert_eq!(jwt.algorithms, vec![crate::jwt::JwtAlgorithm::RS256, crate::jwt::JwtAlgorithm::ES256]);
        assert_eq!(jwt.keys.len(), 2);
        assert_eq!((jwt.leeway, jwt.principal_claim.as_str()), (Duration::from_secs(30), "sub"));
        assert_eq!(jwt.subjects["svc-ops"], "ops");
        assert_eq!(jwt.unknown_subjects, UnknownSubjects::Refuse);
    }
}
