//! JWT principals: a bearer token that is a JWT (three base64url parts) is verified with
//! `jsonwebtoken` and mapped to a configured principal.
//!
//! ```toml
//! [jwt]
//! issuer = "https://idp.example.com/"
//! audience = "mcp-gateway"                 # or a list; the token must name one of them
//! algorithms = ["RS256", "ES256", "HS256"] # only these; "none" is never accepted
//! jwks_file = "/etc/mcp/jwks.json"         # RS256/ES256 public keys, picked by `kid`
//! hs256_secret_env = "GATEWAY_JWT_SECRET"  # or hs256_secret_file = "/run/secrets/jwt" (>= 32 bytes)
//! leeway = "30s"                           # clock skew allowed on exp and nbf (default 30 s)
//! principal_claim = "sub"                  # the claim that names the caller (default sub)
//! unknown_subjects = "refuse"              # or "by_name": the claim value is a principal's name
//! subjects = { "user-1234" = "assistant" } # claim value -> [[principal]] name
//! ```
//!
//! A token is accepted only when: its `alg` is one of `algorithms` (HS256 is checked only
//! with the configured secret, RS256 and ES256 only with a key of that type from the key set,
//! so keys of one family are never used for another); its signature verifies; it has `exp`,
//! `iss` and `aud`; `exp` is not past and `nbf` (if any) not ahead, give or take `leeway`;
//! `iss` equals `issuer`; `aud` names one of `audience`; and the principal claim maps to a
//! configured principal. Every refusal says which of these failed.
//!
//! Secrets and key sets are read when the configuration is loaded (so a reload re-reads
//! them); relative paths are relative to the working directory. One trailing newline of a
//! secret file is ignored.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use crate::Error;
use crate::config::Source;

/// Longest JWT accepted, in bytes (longer bearer tokens are refused before any decoding).
pub const MAX_JWT_LEN: usize = 16 * 1024;

/// Most keys read from a JWKS file.
const MAX_JWKS_KEYS: usize = 256;

/// A signature algorithm the gateway accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256, with the configured shared secret.
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, with an RSA key from the key set.
    RS256,
    /// ECDSA on P-256 with SHA-256, with an EC key from the key set.
    ES256,
}

impl JwtAlgorithm {
    /// The JOSE name (`HS256`, `RS256`, `ES256`).
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 => "HS256",
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
        }
    }

    fn parse(name: &str) -> Option<JwtAlgorithm> {
        match name {
            "HS256" => Some(JwtAlgorithm::HS256),
            "RS256" => Some(JwtAlgorithm::RS256),
            "ES256" => Some(JwtAlgorithm::ES256),
            _ => None,
        }
    }

    fn jsonwebtoken(self) -> Algorithm {
        match self {
            JwtAlgorithm::HS256 => Algorithm::HS256,
            JwtAlgorithm::RS256 => Algorithm::RS256,
            JwtAlgorithm::ES256 => Algorithm::ES256,
        }
    }
}

/// What happens to a token whose principal claim is not in `subjects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownSubjects {
    /// It is refused (default).
    #[default]
    Refuse,
    /// The claim value is taken as a principal name; refused when no principal has it.
    ByName,
}

/// The HS256 shared secret (its `Debug` shows only its length).
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// The secret's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtSecret({} bytes, redacted)", self.0.len())
    }
}

/// A public key from the JWKS file.
#[derive(Clone)]
pub struct JwtKey {
    /// Its `kid`, if the key set gives one.
    pub kid: Option<String>,
    /// The algorithm it verifies (RS256 for RSA keys, ES256 for P-256 keys).
    pub algorithm: JwtAlgorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish()
    }
}

/// The `[jwt]` table: how JWT bearer tokens are verified and mapped to principals.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The required `iss`.
    pub issuer: String,
    /// The accepted audiences: the token's `aud` must name one of them.
    pub audience: Vec<String>,
    /// The accepted algorithms.
    pub algorithms: Vec<JwtAlgorithm>,
    /// The HS256 secret (from `hs256_secret_env` or `hs256_secret_file`).
    pub hs256_secret: Option<JwtSecret>,
    /// The JWKS file the keys came from.
    pub jwks_file: Option<PathBuf>,
    /// The RS256 and ES256 keys read from it (keys of other types are skipped).
    pub keys: Vec<JwtKey>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// The claim naming the caller (default `sub`).
    pub principal_claim: String,
    /// Claim value → principal name.
    pub subjects: BTreeMap<String, String>,
    /// What happens to claim values not in `subjects`.
    pub unknown_subjects: UnknownSubjects,
}

/// A string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The `[jwt]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    issuer: Spanned<String>,
    audience: Spanned<OneOrMany>,
    algorithms: Spanned<Vec<Spanned<String>>>,
    hs256_secret_env: Option<Spanned<String>>,
    hs256_secret_file: Option<Spanned<String>>,
    jwks_file: Option<Spanned<String>>,
    leeway: Option<Spanned<String>>,
    principal_claim: Option<Spanned<String>>,
    #[serde(default)]
    subjects: BTreeMap<String, Spanned<String>>,
    unknown_subjects: Option<Spanned<String>>,
}

impl RawJwt {
    /// Validates the table (`principals`: the configured principal names) and reads the
    /// secret and the key set.
    pub(crate) fn validate(&self, src: &Source<'_>, principals: &HashSet<String>) -> Result<JwtConfig, Error> {
        if self.issuer.get_ref().is_empty() {
            return Err(src.error(self.issuer.span(), "jwt.issuer must not be empty"));
        }
        let audience = match self.audience.get_ref() {
            OneOrMany::One(a) => vec![a.clone()],
            OneOrMany::Many(list) => list.clone(),
        };
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(src.error(self.audience.span(), "jwt.audience must name at least one non-empty audience"));
        }
        let mut algorithms = Vec::new();
        for a in self.algorithms.get_ref() {
            let name = a.get_ref();
            let alg = match JwtAlgorithm::parse(name) {
                Some(alg) => alg,
                None if name.eq_ignore_ascii_case("none") => {
                    return Err(src.error(a.span(), "jwt.algorithms: unsigned tokens (\"none\") are never accepted"));
                }
                None => {
                    return Err(src.error(
                        a.span(),
                        format!("jwt.algorithms: {name:?} is not supported (supported: HS256, RS256, ES256)"),
                    ));
                }
            };
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        if algorithms.is_empty() {
            return Err(src.error(self.algorithms.span(), "jwt.algorithms must name at least one algorithm"));
        }
        let hs256 = algorithms.contains(&JwtAlgorithm::HS256);
        let hs256_secret = match (&self.hs256_secret_env, &self.hs256_secret_file) {
            (Some(_), Some(file)) => {
                return Err(
                    src.error(file.span(), "give either jwt.hs256_secret_env or jwt.hs256_secret_file, not both")
                );
            }
            (None, None) if hs256 => {
                return Err(src.error(
                    self.algorithms.span(),
                    "jwt.algorithms has HS256 but neither jwt.hs256_secret_env nor jwt.hs256_secret_file is set",
                ));
            }
            (None, None) => None,
            (Some(s), None) | (None, Some(s)) if !hs256 => {
                return Err(src.error(s.span(), "an HS256 secret is set but jwt.algorithms does not include HS256"));
            }
            (Some(var), None) => {
                let value = std::env::var(var.get_ref()).map_err(|_| {
                    src.error(
                        var.span(),
                        format!("jwt.hs256_secret_env: environment variable {} is not set", var.get_ref()),
                    )
                })?;
                Some((value.into_bytes(), var))
            }
            (None, Some(file)) => {
                let mut bytes = std::fs::read(file.get_ref())
                    .map_err(|e| src.error(file.span(), format!("jwt.hs256_secret_file {}: {e}", file.get_ref())))?;
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                Some((bytes, file))
            }
        };
        let hs256_secret = match hs256_secret {
            None => None,
            Some((bytes, at)) if bytes.len() < 32 => {
                return Err(src.error(
                    at.span(),
                    format!("the HS256 secret has {} bytes; at least 32 (256 bits) are required", bytes.len()),
                ));
            }
            Some((bytes, _)) => Some(JwtSecret(bytes)),
        };
        let asymmetric: Vec<JwtAlgorithm> = algorithms.iter().copied().filter(|a| *a != JwtAlgorithm::HS256).collect();
        let (jwks_file, keys) = match &self.jwks_file {
            None if !asymmetric.is_empty() => {
                return Err(src.error(
                    self.algorithms.span(),
                    format!("jwt.algorithms has {} but jwt.jwks_file is not set", asymmetric[0].name()),
                ));
            }
            None => (None, Vec::new()),
            Some(f) if asymmetric.is_empty() => {
                return Err(src.error(f.span(), "jwt.jwks_file is set but jwt.algorithms has neither RS256 nor ES256"));
            }
            Some(f) => {
                let path = f.get_ref();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| src.error(f.span(), format!("jwt.jwks_file {path}: {e}")))?;
                let keys = parse_jwks(&text).map_err(|e| src.error(f.span(), format!("jwt.jwks_file {path}: {e}")))?;
                for alg in &asymmetric {
                    if !keys.iter().any(|k| k.algorithm == *alg) {
                        return Err(src.error(
                            f.span(),
                            format!(
                                "jwt.jwks_file {path}: no {} key, but jwt.algorithms accepts {}",
                                alg.name(),
                                alg.name()
                            ),
                        ));
                    }
                }
                (Some(PathBuf::from(path)), keys)
            }
        };
        let leeway = src.duration(&self.leeway, "jwt.leeway", Duration::from_secs(30))?;
        if leeway > Duration::from_secs(600) {
            let span = self.leeway.as_ref().map_or(0..0, Spanned::span);
            return Err(src.error(span, "jwt.leeway must be at most 10m"));
        }
        let principal_claim = match &self.principal_claim {
            None => "sub".to_owned(),
            Some(c) if c.get_ref().is_empty() => {
                return Err(src.error(c.span(), "jwt.principal_claim must not be empty"));
            }
            Some(c) => c.get_ref().clone(),
        };
        let mut subjects = BTreeMap::new();
        for (subject, principal) in &self.subjects {
            if !principals.contains(principal.get_ref()) {
                return Err(src.error(
                    principal.span(),
                    format!("jwt.subjects: {subject:?} maps to {:?}, which is no [[principal]]", principal.get_ref()),
                ));
            }
            subjects.insert(subject.clone(), principal.get_ref().clone());
        }
        let unknown_subjects = match &self.unknown_subjects {
            None => UnknownSubjects::Refuse,
            Some(u) => match u.get_ref().as_str() {
                "refuse" => UnknownSubjects::Refuse,
                "by_name" => UnknownSubjects::ByName,
                other => {
                    return Err(src.error(
                        u.span(),
                        format!("jwt.unknown_subjects: {other:?} is neither \"refuse\" nor \"by_name\""),
                    ));
                }
            },
        };
        Ok(JwtConfig {
            issuer: self.issuer.get_ref().clone(),
            audience,
            algorithms,
            hs256_secret,
            jwks_file,
            keys,
            leeway,
            principal_claim,
            subjects,
            unknown_subjects,
        })
    }
}

/// Reads the RS256 and ES256 keys of a JWKS document. Keys for encryption (`use: enc`),
/// of other types (`oct`, `OKP`), other curves, or declaring another `alg` are skipped;
/// a supported key that is malformed, or two keys of one algorithm with the same `kid`, are
/// errors.
fn parse_jwks(text: &str) -> Result<Vec<JwtKey>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = doc.get("keys").and_then(Value::as_array).ok_or("not a JWKS document: no \"keys\" array")?;
    if list.len() > MAX_JWKS_KEYS {
        return Err(format!("{} keys; at most {MAX_JWKS_KEYS} are read", list.len()));
    }
    let mut keys: Vec<JwtKey> = Vec::new();
    for (i, k) in list.iter().enumerate() {
        let field = |name: &str| k.get(name).and_then(Value::as_str);
        let kid = field("kid").map(str::to_owned);
        let at = || match &kid {
            Some(kid) => format!("key {kid:?}"),
            None => format!("key #{i}"),
        };
        if field("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let (algorithm, key) = match (field("kty"), field("crv")) {
            (Some("RSA"), _) => {
                let (Some(n), Some(e)) = (field("n"), field("e")) else {
                    return Err(format!("{}: an RSA key needs n and e", at()));
                };
                let key = DecodingKey::from_rsa_components(n, e).map_err(|e| format!("{}: {e}", at()))?;
                (JwtAlgorithm::RS256, key)
            }
            (Some("EC"), Some("P-256")) => {
                let (Some(x), Some(y)) = (field("x"), field("y")) else {
                    return Err(format!("{}: an EC key needs x and y", at()));
                };
                for (name, v) in [("x", x), ("y", y)] {
                    match URL_SAFE_NO_PAD.decode(v) {
                        Ok(b) if b.len() == 32 => {}
                        _ => return Err(format!("{}: {name} is not 32 bytes of base64url", at())),
                    }
                }
                let key = DecodingKey::from_ec_components(x, y).map_err(|e| format!("{}: {e}", at()))?;
                (JwtAlgorithm::ES256, key)
            }
            _ => continue,
        };
        if field("alg").is_some_and(|a| a != algorithm.name()) {
            continue;
        }
        if kid.is_some() && keys.iter().any(|k| k.kid == kid && k.algorithm == algorithm) {
            return Err(format!("{}: two {} keys have this kid", at(), algorithm.name()));
        }
        keys.push(JwtKey { kid, algorithm, key });
    }
    Ok(keys)
}

/// A configuration accepting HS256 with `hs256_secret` and RS256/ES256 with the keys of the
/// JWKS document `jwks` (read as the configuration loader reads a `jwks_file`), issuer
/// `issuer`, audiences `audience`, a 30 s leeway, principal claim `sub`, no subject mapping
/// and unknown subjects refused; its public fields may be changed afterwards. For fuzzing only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_config(issuer: &str, audience: &[&str], hs256_secret: &[u8], jwks: &str) -> Result<JwtConfig, String> {
    let keys = parse_jwks(jwks)?;
    let mut algorithms = vec![JwtAlgorithm::HS256];
    for alg in [JwtAlgorithm::RS256, JwtAlgorithm::ES256] {
        if keys.iter().any(|k| k.algorithm == alg) {
            algorithms.push(alg);
        }
    }
    Ok(JwtConfig {
        issuer: issuer.to_owned(),
        audience: audience.iter().map(|a| (*a).to_owned()).collect(),
        algorithms,
        hs256_secret: Some(JwtSecret(hs256_secret.to_vec())),
        jwks_file: None,
        keys,
        leeway: Duration::from_secs(30),
        principal_claim: "sub".to_owned(),
        subjects: BTreeMap::new(),
        unknown_subjects: UnknownSubjects::Refuse,
    })
}

/// Verifies `token` with `config` (`principals`: which principal names are configured) and
/// returns the principal it maps to and its `exp`, or why it is refused. For fuzzing only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_verify(
    config: &JwtConfig,
    token: &str,
    principals: &dyn Fn(&str) -> bool,
) -> Result<(String, u64), String> {
    config.verify(token, principals).map(|v| (v.principal, v.expires_at))
}

/// Whether a bearer token has the shape of a JWT: three base64url parts (the signature may
/// be empty, as in unsigned tokens, which are then refused with that reason).
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.splitn(4, '.').collect();
    let base64url = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    parts.len() == 3 && !parts[0].is_empty() && !parts[1].is_empty() && parts.iter().all(|p| base64url(p))
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The principal name it maps to.
    pub(crate) principal: String,
    /// Its `exp`, in seconds since the Unix epoch.
    pub(crate) expires_at: u64,
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Decodes one base64url part as a JSON object (for the header, and for error messages).
fn json_part(part: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| format!("the {what} is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| format!("the {what} is not a JSON object"))
}

impl JwtConfig {
    /// Verifies a JWT and maps it to a principal name (checked against `principals`), or
    /// says precisely why it is refused.
    pub(crate) fn verify(&self, token: &str, principals: &dyn Fn(&str) -> bool) -> Result<Verified, String> {
        if token.len() > MAX_JWT_LEN {
            return Err(format!("the JWT has {} bytes; at most {MAX_JWT_LEN} are accepted", token.len()));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
            return Err("the JWT does not have three parts".into());
        };
        let header = json_part(header, "JWT header")?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) => a.as_str(),
            _ => return Err("the JWT header has no alg".into()),
        };
        let allowed = || self.algorithms.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        if alg.eq_ignore_ascii_case("none") {
            return Err("unsigned JWTs (alg \"none\") are refused".into());
        }
        let algorithm = JwtAlgorithm::parse(alg)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| format!("JWT algorithm {alg:?} is not allowed (allowed: {})", allowed()))?;
        let key = match algorithm {
            JwtAlgorithm::HS256 => {
                let secret = self.hs256_secret.as_ref().ok_or("no HS256 secret is configured")?;
                DecodingKey::from_secret(secret.bytes())
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => self.key_for(algorithm, header.get("kid"))?,
        };
        let mut validation = Validation::new(algorithm.jsonwebtoken());
        validation.leeway = self.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                let unverified = json_part(payload, "JWT payload").unwrap_or_default();
                let claim = |name: &str| unverified.get(name).map_or_else(|| "none".to_owned(), Value::to_string);
                let leeway = self.leeway.as_secs();
                return Err(match e.kind() {
                    ErrorKind::InvalidSignature => format!("the JWT's {alg} signature does not verify"),
                    ErrorKind::ExpiredSignature => {
                        format!("the JWT has expired (exp {}, now {}, leeway {leeway}s)", claim("exp"), unix_now())
                    }
                    ErrorKind::ImmatureSignature => {
                        format!("the JWT is not valid yet (nbf {}, now {}, leeway {leeway}s)", claim("nbf"), unix_now())
                    }
                    ErrorKind::InvalidIssuer => {
                        format!("the JWT's issuer {} is not the required {:?}", claim("iss"), self.issuer)
                    }
                    ErrorKind::InvalidAudience => {
                        format!("the JWT's audience {} names none of {:?}", claim("aud"), self.audience)
                    }
                    ErrorKind::MissingRequiredClaim(c) => format!("the JWT has no {c} claim"),
                    ErrorKind::InvalidAlgorithm => format!("JWT algorithm {alg:?} does not match the key"),
                    _ => format!("invalid JWT: {e}"),
                });
            }
        };
        let expires_at = claims.get("exp").and_then(Value::as_u64).ok_or("the JWT's exp is not a number")?;
        let subject = match claims.get(&self.principal_claim) {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(format!("the JWT's {} claim is not a string", self.principal_claim)),
            None => return Err(format!("the JWT has no {} claim", self.principal_claim)),
        };
        let principal = match (self.subjects.get(subject), self.unknown_subjects) {
            (Some(p), _) => p.clone(),
            (None, UnknownSubjects::ByName) if principals(subject) => subject.to_owned(),
            (None, UnknownSubjects::ByName) => {
                return Err(format!("the JWT's {} {subject:?} names no principal", self.principal_claim));
            }
            (None, UnknownSubjects::Refuse) => {
                return Err(format!(
                    "the JWT's {} {subject:?} is not mapped to a principal (unknown subjects are refused)",
                    self.principal_claim
                ));
            }
        };
        if !principals(&principal) {
            return Err(format!("the JWT maps to principal {principal:?}, which is not configured"));
        }
        Ok(Verified { principal, expires_at })
    }

    /// The key of the key set that verifies `algorithm` for the token's `kid`.
    fn key_for(&self, algorithm: JwtAlgorithm, kid: Option<&Value>) -> Result<DecodingKey, String> {
        match kid {
            Some(Value::String(kid)) => {
                let same_kid = || self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid.as_str()));
                if let Some(k) = same_kid().find(|k| k.algorithm == algorithm) {
                    return Ok(k.key.clone());
                }
                match same_kid().next() {
                    Some(other) => Err(format!(
                        "key {kid:?} is an {} key; the JWT says {}",
                        other.algorithm.name(),
                        algorithm.name()
                    )),
                    None => Err(format!("unknown kid {kid:?}: no such key in the key set")),
                }
            }
            Some(_) => Err("the JWT's kid is not a string".into()),
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.algorithm == algorithm);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Ok(only.key.clone()),
                    _ => Err(format!(
                        "the JWT has no kid and the key set does not have exactly one {} key",
                        algorithm.name()
                    )),
                }
            }
        }
    }
}

#[cfg(all(test, feature = "fuzzing"))]
mod fuzz_entry {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn fuzz_config_verifies_like_a_loaded_one() {
        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1",
            "x":"K8RpnOas1g07uZkNrKSLHyPt9I0s3_V1KEZ_OAAuuFc","y":"pXikaV0eV9AMj0wMNE_wJwTKSNtQY0HzgLgpIQ3HtPI"}]}"#;
        let config = super::fuzz_config("https://idp/", &["mcp"], SECRET, jwks).unwrap();
        assert_eq!(config.algorithms, [super::JwtAlgorithm::HS256, super::JwtAlgorithm::ES256]);
        let exp = super::unix_now() + 600;
        let claims = json!({"iss": "https://idp/", "aud": "mcp", "exp": exp, "sub": "alice"});
        let sign =
            |key: &[u8]| jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(key)).unwrap();
        let mut config = config;
        config.unknown_subjects = super::UnknownSubjects::ByName;
        let alice = |p: &str| p == "alice";
        assert_eq!(super::fuzz_verify(&config, &sign(SECRET), &alice), Ok(("alice".to_owned(), exp)));
        let forged = super::fuzz_verify(&config, &sign(b"another secret of 32 bytes or so"), &alice);
        assert!(forged.is_err_and(|e| e.contains("signature does not verify")));
    }
}
