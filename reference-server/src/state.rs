//! Integrity-protected `requestState` for multi round-trip requests (2026-07-28).
//!
//! The client echoes `requestState` verbatim, but it is attacker-controlled, so the server
//! seals it: `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`, where the key is
//! random per process and the payload names the tool or prompt it belongs to, when it was
//! issued, a unique nonce, and the flow's own data. A state that fails the check, belongs to
//! another target, or is older than [`MAX_AGE`] is refused with -32602.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::error::ServerError;

/// How long a sealed state stays valid.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(3600);

type HmacSha256 = Hmac<Sha256>;

#[derive(Serialize, Deserialize)]
struct Payload {
    /// The tool or prompt.
    t: String,
    /// Issued at, Unix seconds.
    iat: u64,
    /// Unique per sealed state.
    n: u64,
    /// The flow's data.
    d: Value,
}

/// Seals and opens `requestState` values with a per-process key.
pub(crate) struct StateSigner {
    key: [u8; 32],
    nonce: AtomicU64,
}

impl std::fmt::Debug for StateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSigner").finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl StateSigner {
    /// A signer with a fresh random key.
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut key) {
            // Without OS randomness the state would be forgeable by anyone who knows the
            // fallback; there is no safe fallback, so refuse to run.
            panic!("no OS randomness for the requestState key: {e}");
        }
        Self::with_key(key)
    }

    /// A signer with this key.
    pub(crate) fn with_key(key: [u8; 32]) -> Self {
        Self { key, nonce: AtomicU64::new(1) }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// Seals `data` for `target`.
    pub(crate) fn seal(&self, target: &str, data: Value) -> Result<String, ServerError> {
        self.seal_at(target, data, now_secs())
    }

    fn seal_at(&self, target: &str, data: Value, iat: u64) -> Result<String, ServerError> {
        let payload = Payload { t: target.to_owned(), iat, n: self.nonce.fetch_add(1, Ordering::Relaxed), d: data };
        let bytes = serde_json::to_vec(&payload).map_err(ServerError::encode("requestState"))?;
        let mut mac = self.mac();
        mac.update(&bytes);
        let tag = mac.finalize().into_bytes();
        Ok(format!("{}.{}", URL_SAFE_NO_PAD.encode(&bytes), URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Checks a state sealed for `target` and returns its data.
    pub(crate) fn open(&self, target: &str, token: &str) -> Result<Value, ServerError> {
        let reject = |reason| ServerError::InvalidRequestState { target: target.to_owned(), reason };
        let (payload, tag) = token.split_once('.').ok_or_else(|| reject("it is not a state this server issued"))?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| reject("it is not a state this server issued"))?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| reject("its integrity check failed"))?;
        let mut mac = self.mac();
        mac.update(&bytes);
        mac.verify_slice(&tag).map_err(|_| reject("its integrity check failed"))?;
        let payload: Payload =
            serde_json::from_slice(&bytes).map_err(|_| reject("it is not a state this server issued"))?;
        if payload.t != target {
            return Err(reject("it was issued for another tool or prompt"));
        }
        if now_secs().saturating_sub(payload.iat) > MAX_AGE.as_secs() {
            return Err(reject("it has expired; start the request again without it"));
        }
        Ok(payload.d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reason(err: ServerError) -> &'static str {
        match err {
            ServerError::InvalidRequestState { reason, .. } => reason,
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn a_sealed_state_opens_for_its_target() {
        let s = StateSigner::random();
        let token = s.seal("tool_a", json!({ "round": 2 })).unwrap();
        assert_eq!(s.open("tool_a", &token).unwrap(), json!({ "round": 2 }));
    }

    #[test]
    fn each_state_is_unique() {
        let s = StateSigner::random();
        assert_ne!(s.seal("t", json!(1)).unwrap(), s.seal("t", json!(1)).unwrap());
    }

    #[test]
    fn tampered_states_are_refused() {
        let s = StateSigner::random();
        let token = s.seal("t", json!({ "ok": false })).unwrap();
        assert!(reason(s.open("t", &format!("{token}-TAMPERED")).unwrap_err()).contains("integrity"));
        // A payload rewritten by the client, keeping the old tag.
        let (_, tag) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"t":"t","iat":0,"n":1,"d":{"ok":true}}"#);
        assert!(reason(s.open("t", &format!("{forged}.{tag}")).unwrap_err()).contains("integrity"));
        assert!(reason(s.open("t", "garbage").unwrap_err()).contains("not a state"));
        assert!(reason(s.open("t", "!!.!!").unwrap_err()).contains("not a state"));
    }

    #[test]
    fn states_from_another_key_or_target_are_refused() {
        let a = StateSigner::with_key([1; 32]);
        let b = StateSigner::with_key([2; 32]);
        let token = a.seal("t", json!(null)).unwrap();
        assert!(reason(b.open("t", &token).unwrap_err()).contains("integrity"));
        assert!(reason(a.open("other", &token).unwrap_err()).contains("another"));
    }

    #[test]
    fn old_states_expire() {
        let s = StateSigner::random();
        let old = s.seal_at("t", json!(1), now_secs() - MAX_AGE.as_secs() - 10).unwrap();
        assert!(reason(s.open("t", &old).unwrap_err()).contains("expired"));
    }
}
