//! Principals: who a downstream connection is, and what it may use.
//!
//! A connection is identified by a bearer token (its SHA-256 digest is compared, in constant
//! time, with every configured digest), by the Unix peer uid of a Unix-socket connection, or
//! by a principal name that the caller of [`crate::Gateway::serve`] already authenticated.
//! A bearer token that matches no digest and has the shape of a JWT is verified against the
//! `[jwt]` configuration ([`crate::jwt`]) and mapped to a principal.

use std::collections::HashSet;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{GatewayConfig, PrincipalConfig};
use crate::jwt::{JwtConfig, looks_like_jwt, unix_now};

/// The name of the principal of connections that no credential identifies, when
/// `allow_anonymous` is on.
pub const ANONYMOUS: &str = "anonymous";

/// What a downstream connection presented.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing beyond what the transport reports (the Unix peer uid, if any).
    #[default]
    None,
    /// A bearer token (from an `Authorization: Bearer` header).
    BearerToken(String),
    /// A principal the caller authenticated by other means; must be a configured name.
    Principal(String),
    /// The SHA-256 fingerprint of a TLS client certificate the transport verified.
    ClientCertificate([u8; 32]),
}

/// A resolved principal and its allow-lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name.
    pub name: String,
    upstreams: Option<HashSet<String>>,
    tools: Option<Vec<String>>,
}

impl Principal {
    /// A principal with no restrictions.
    pub fn unrestricted(name: impl Into<String>) -> Self {
        Self { name: name.into(), upstreams: None, tools: None }
    }

    fn from_config(p: &PrincipalConfig) -> Self {
        Self {
            name: p.name.clone(),
            upstreams: p.upstreams.as_ref().map(|u| u.iter().cloned().collect()),
            tools: p.tools.clone(),
        }
    }

    /// Whether it may use `upstream` at all.
    pub fn may_use_upstream(&self, upstream: &str) -> bool {
        self.upstreams.as_ref().is_none_or(|set| set.contains(upstream))
    }

    /// Whether it may see and call the namespaced tool `name` of `upstream`.
    pub fn may_use_tool(&self, upstream: &str, name: &str) -> bool {
        self.may_use_upstream(upstream)
            && self.tools.as_ref().is_none_or(|patterns| {
                patterns.iter().any(|p| match p.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => p == name,
                })
            })
    }
}

/// Resolves credentials to principals.
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    principals: Vec<(PrincipalConfig, Principal)>,
    allow_anonymous: bool,
    jwt: Option<JwtConfig>,
}

/// Who a connection is: its principal, and when its credential expires (a JWT's `exp`).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) principal: Principal,
    /// Seconds since the Unix epoch; `None` for credentials that do not expire.
    pub(crate) expires_at: Option<u64>,
}

impl Identity {
    fn lasting(principal: Principal) -> Self {
        Self { principal, expires_at: None }
    }
}

/// The SHA-256 digest of a bearer token, as hex (what `token_sha256` holds).
pub fn token_digest_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl Authenticator {
    pub(crate) fn new(config: &GatewayConfig) -> Self {
        Self {
            principals: config.principals.iter().map(|p| (p.clone(), Principal::from_config(p))).collect(),
            allow_anonymous: config.allow_anonymous,
            jwt: config.jwt.clone(),
        }
    }

    /// Whether an identity's credential has expired (beyond the JWT leeway), and if so why.
    pub(crate) fn expired(&self, identity: &Identity) -> Option<String> {
        let exp = identity.expires_at?;
        let leeway = self.jwt.as_ref().map_or(0, |j| j.leeway.as_secs());
        let now = unix_now();
        (now > exp.saturating_add(leeway))
            .then(|| format!("the session's JWT expired (exp {exp}, now {now}); reconnect with a fresh token"))
    }

    /// The principal for a connection, or why there is none.
    pub(crate) fn resolve(&self, credentials: &Credentials, uid: Option<u32>) -> Result<Identity, String> {
        match credentials {
            Credentials::BearerToken(token) => {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                // Compare against every digest without stopping early.
                let mut found = None;
                for (config, principal) in &self.principals {
                    for d in &config.token_sha256 {
                        if bool::from(d.ct_eq(&digest)) && found.is_none() {
                            found = Some(principal);
                        }
                    }
                }
                if let Some(p) = found {
                    return Ok(Identity::lasting(p.clone()));
                }
                match (&self.jwt, looks_like_jwt(token)) {
                    (Some(jwt), true) => {
                        let known = |name: &str| self.principals.iter().any(|(c, _)| c.name == name);
                        let verified = jwt.verify(token, &known)?;
                        let principal = self.by_name(&verified.principal)?;
                        Ok(Identity { principal, expires_at: Some(verified.expires_at) })
                    }
                    (None, true) => {
                        Err("the bearer token matches no principal (it looks like a JWT, but no [jwt] is configured)"
                            .to_owned())
                    }
                    (_, false) => Err("the bearer token matches no principal".to_owned()),
                }
            }
            Credentials::Principal(name) => self.by_name(name).map(Identity::lasting),
            Credentials::ClientCertificate(fingerprint) => self
                .principals
                .iter()
                .find(|(c, _)| c.cert_sha256.contains(fingerprint))
                .map(|(_, p)| Identity::lasting(p.clone()))
                .ok_or_else(|| {
                    let hex: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
                    format!("the client certificate sha256:{hex} matches no principal")
                }),
            Credentials::None => {
                if let Some(uid) = uid
                    && let Some((_, p)) = self.principals.iter().find(|(c, _)| c.uids.contains(&uid))
                {
                    return Ok(Identity::lasting(p.clone()));
                }
                if self.allow_anonymous {
                    Ok(Identity::lasting(Principal::unrestricted(ANONYMOUS)))
                } else {
                    Err(match uid {
                        Some(uid) => format!("uid {uid} matches no principal and anonymous access is off"),
                        None => "no credentials, and anonymous access is off".to_owned(),
                    })
                }
            }
        }
    }

    fn by_name(&self, name: &str) -> Result<Principal, String> {
        self.principals
            .iter()
            .find(|(c, _)| c.name == name)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| format!("no principal is named {name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        let text = format!(
            r#"
[[upstream]]
name = "crm"
url = "unix:///crm.sock"
[[upstream]]
name = "files"
url = "unix:///files.sock"
[[principal]]
name = "alice"
token_sha256 = ["{}"]
upstreams = ["crm"]
[[principal]]
name = "bob"
uids = [1234]
tools = ["files__read*", "crm__search"]
[[principal]]
name = "carol"
cert_sha256 = ["sha256:{}"]
"#,
            token_digest_hex("s3cret"),
            CAROL_CERT.chunks(1).map(|b| format!("{:02X}", b[0])).collect::<Vec<_>>().join(":")
        );
        Authenticator::new(&GatewayConfig::parse(&text, "t.toml").unwrap())
    }

    const CAROL_CERT: [u8; 32] = [0xc4; 32];

    #[test]
    fn client_certificates_resolve_by_fingerprint() {
        let a = auth();
        let carol = a.resolve(&Credentials::ClientCertificate(CAROL_CERT), None).unwrap();
        assert_eq!(carol.principal.name, "carol");
        let e = a.resolve(&Credentials::ClientCertificate([1; 32]), None).unwrap_err();
        assert!(e.contains("sha256:0101") && e.contains("matches no principal"), "{e}");
    }

    #[test]
    fn tokens_uids_and_names_resolve() {
        let a = auth();
        assert_eq!(a.resolve(&Credentials::BearerToken("s3cret".into()), None).unwrap().principal.name, "alice");
        assert!(a.resolve(&Credentials::BearerToken("s3cret ".into()), None).is_err());
        assert_eq!(a.resolve(&Credentials::None, Some(1234)).unwrap().principal.name, "bob");
        let e = a.resolve(&Credentials::None, Some(99)).unwrap_err();
        assert!(e.contains("uid 99"), "{e}");
        assert_eq!(a.resolve(&Credentials::Principal("bob".into()), None).unwrap().principal.name, "bob");
        assert!(a.resolve(&Credentials::Principal("eve".into()), None).is_err());
    }

    #[test]
    fn allow_lists() {
        let a = auth();
        let alice = a.resolve(&Credentials::BearerToken("s3cret".into()), None).unwrap().principal;
        assert!(alice.may_use_tool("crm", "crm__anything"));
        assert!(!alice.may_use_upstream("files"));
        assert!(!alice.may_use_tool("files", "files__read"));
        let bob = a.resolve(&Credentials::None, Some(1234)).unwrap().principal;
        assert!(bob.may_use_tool("files", "files__read_file"));
        assert!(!bob.may_use_tool("files", "files__write"));
        assert!(bob.may_use_tool("crm", "crm__search"));
        assert!(!bob.may_use_tool("crm", "crm__search2"));
        assert!(bob.may_use_upstream("crm"), "bob may use crm for the listed tools");
    }

    #[test]
    fn identities_expire_with_their_jwt_after_the_leeway() {
        let a = auth();
        let now = unix_now();
        let p = Principal::unrestricted("p");
        assert!(a.expired(&Identity::lasting(p.clone())).is_none(), "tokens and uids do not expire");
        let live = Identity { principal: p.clone(), expires_at: Some(now + 60) };
        assert!(a.expired(&live).is_none());
        let past = Identity { principal: p, expires_at: Some(now - 5) };
        let reason = a.expired(&past).expect("no [jwt]: no leeway");
        assert!(reason.contains("expired") && reason.contains("fresh token"), "{reason}");
    }

    #[test]
    fn digest_hex_is_sha256() {
        assert_eq!(token_digest_hex("hello"), "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    }
}
