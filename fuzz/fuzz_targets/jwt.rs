//! The gateway's JWT verification (`mcp-gateway`, feature `fuzzing`) against a fixed
//! configuration: HS256 with a fixed secret, and ES256 with a fixed one-key JWKS.
//!
//! The first input byte picks the mode. Even: the rest is a token as is; it must never be
//! accepted unless it is HS256 and its signature is the HMAC of its first two parts under the
//! secret (checked independently of `jsonwebtoken`, with strict base64url), which the fuzzer
//! cannot forge; the seeds hold such tokens for it to mutate. Odd: the rest chooses claims
//! (`iss`, `aud`, `exp`, `nbf`, the subject, an extra claim, a `kid`), the `alg` and the key;
//! the target signs the token itself and it must be accepted exactly when it is HS256 signed
//! with the secret and its claims are valid, mapping to the expected principal and `exp`.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use mcp_gateway::jwt::{self, JwtConfig, UnknownSubjects};
use serde_json::{Map, Value, json};
use sha2::Sha256;

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef-0123456789";
const WRONG_SECRET: &[u8] = b"fuzz-secret-0123456789abcdef-0123456788";
const ISSUER: &str = "https://idp.example.com/";
const AUDIENCE: &str = "mcp-gateway";
/// The configuration's leeway, in seconds (the default).
const LEEWAY: u64 = 30;
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"ec-1","use":"sig","alg":"ES256",
    "x":"K8RpnOas1g07uZkNrKSLHyPt9I0s3_V1KEZ_OAAuuFc","y":"pXikaV0eV9AMj0wMNE_wJwTKSNtQY0HzgLgpIQ3HtPI"}]}"#;
/// The configured principals.
const PRINCIPALS: [&str; 2] = ["alice", "bob"];

fn config() -> &'static JwtConfig {
    static CONFIG: OnceLock<JwtConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut c = jwt::fuzz_config(ISSUER, &[AUDIENCE, "other-audience"], SECRET, JWKS)
            .expect("the fixed configuration is valid");
        assert_eq!(c.keys.len(), 1, "the JWKS has one ES256 key");
        assert_eq!(c.leeway.as_secs(), LEEWAY);
        c.subjects = BTreeMap::from([("user-1".to_owned(), "alice".to_owned())]);
        c.unknown_subjects = UnknownSubjects::ByName;
        c
    })
}

fn verify(token: &str) -> Result<(String, u64), String> {
    jwt::fuzz_verify(config(), token, &|p| PRINCIPALS.contains(&p))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Whether `token` is `header.payload.signature` with an HS256 header and the secret's HMAC
/// as its (canonical base64url) signature.
fn signed_with_secret(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else { return false };
    let alg_hs256 = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .is_some_and(|h| h.get("alg") == Some(&json!("HS256")));
    let mac = hmac(SECRET, format!("{header}.{payload}").as_bytes());
    alg_hs256 && URL_SAFE_NO_PAD.decode(signature).is_ok_and(|s| s == mac)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Takes bytes off the front of the input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }

    /// A short string: a length byte, then that many bytes (lossily UTF-8).
    fn string(&mut self) -> String {
        let len = usize::from(self.byte() % 32).min(self.0.len());
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(s).into_owned()
    }
}

fn built_token(input: &[u8]) {
    let mut input = Input(input);
    let now = now();
    let mut claims = Map::new();
    let mut valid = true;
    match input.byte() % 5 {
        0 => drop(claims.insert("iss".into(), json!(ISSUER))),
        1 => {
            claims.insert("iss".into(), json!(ISSUER.trim_end_matches('/')));
            valid = false;
        }
        2 => valid = false,
        3 => {
            claims.insert("iss".into(), json!(7));
            valid = false;
        }
        _ => {
            let iss = input.string();
            valid &= iss == ISSUER;
            claims.insert("iss".into(), json!(iss));
        }
    }
    match input.byte() % 7 {
        0 => drop(claims.insert("aud".into(), json!(AUDIENCE))),
        1 => drop(claims.insert("aud".into(), json!(["someone-else", "other-audience"]))),
        2 => {
            claims.insert("aud".into(), json!([]));
            valid = false;
        }
        3 => valid = false,
        4 => {
            claims.insert("aud".into(), json!(AUDIENCE.to_uppercase()));
            valid = false;
        }
        5 => {
            claims.insert("aud".into(), json!({ "aud": AUDIENCE }));
            valid = false;
        }
        _ => {
            let aud = input.string();
            valid &= aud == AUDIENCE || aud == "other-audience";
            claims.insert("aud".into(), json!(aud));
        }
    }
    // Times stay well away from the leeway's edges, so the clock moving does not matter.
    let mut expires_at = None;
    match input.byte() % 6 {
        0 => expires_at = Some(now + 3600),
        1 => expires_at = Some(now - LEEWAY / 3),
        2 => expires_at = Some(u64::MAX),
        3 => {
            claims.insert("exp".into(), json!(now - LEEWAY - 300));
            valid = false;
        }
        4 => {
            claims.insert("exp".into(), json!((now + 3600).to_string()));
            valid = false;
        }
        _ => valid = false,
    }
    if let Some(exp) = expires_at {
        claims.insert("exp".into(), json!(exp));
    }
    match input.byte() % 4 {
        0 => {}
        1 => drop(claims.insert("nbf".into(), json!(now - 3600))),
        2 => drop(claims.insert("nbf".into(), json!(now + LEEWAY / 3))),
        _ => {
            claims.insert("nbf".into(), json!(now + LEEWAY + 300));
            valid = false;
        }
    }
    let principal = match input.byte() % 5 {
        0 => {
            claims.insert("sub".into(), json!("user-1"));
            Some("alice".to_owned())
        }
        1 => {
            claims.insert("sub".into(), json!("bob"));
            Some("bob".to_owned())
        }
        2 => {
            claims.insert("sub".into(), json!(12));
            None
        }
        3 => None,
        _ => {
            let sub = input.string();
            claims.insert("sub".into(), json!(sub));
            match sub.as_str() {
                "user-1" => Some("alice".to_owned()),
                s if PRINCIPALS.contains(&s) => Some(s.to_owned()),
                _ => None,
            }
        }
    };
    valid &= principal.is_some();
    let extra = input.string();
    if !extra.is_empty() && !["iss", "aud", "exp", "nbf", "sub"].contains(&extra.as_str()) {
        let value = input.string();
        claims.insert(extra, json!(value));
    }
    let mut header = Map::new();
    match input.byte() % 6 {
        0 | 1 | 2 => drop(header.insert("alg".into(), json!("HS256"))),
        3 => {
            header.insert("alg".into(), json!("hs256"));
            valid = false;
        }
        4 => {
            header.insert("alg".into(), json!("none"));
            valid = false;
        }
        _ => {
            header.insert("alg".into(), json!("ES256"));
            valid = false;
        }
    }
    header.insert("typ".into(), json!("JWT"));
    if input.byte() % 2 == 1 {
        let kid = input.string();
        header.insert("kid".into(), json!(kid));
    }
    let key = if input.byte() % 4 == 3 {
        valid = false;
        WRONG_SECRET
    } else {
        SECRET
    };
    let encode = |v: &Map<String, Value>| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON"));
    let signing_input = format!("{}.{}", encode(&header), encode(&claims));
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(hmac(key, signing_input.as_bytes())));
    match (verify(&token), valid) {
        (Ok((p, exp)), true) => {
            assert_eq!(Some(p), principal, "wrong principal for {token}");
            assert_eq!(Some(exp), expires_at, "wrong exp for {token}");
        }
        (Err(_), false) => {}
        (Ok(v), false) => panic!("accepted an invalid token {token} (header {header:?}, claims {claims:?}): {v:?}"),
        (Err(e), true) => panic!("refused a valid token {token} (header {header:?}, claims {claims:?}): {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 1 {
        return built_token(rest);
    }
    let token = String::from_utf8_lossy(rest);
    if let Ok(v) = verify(&token) {
        assert!(signed_with_secret(&token), "accepted a token not signed with the secret: {token:?} -> {v:?}");
    }
});
