//! JWT bearer tokens: verified with the keys of `tests/fixtures/jwt` (test-only keys) and
//! mapped to principals, with a precise reason for every refusal.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use mcp_gateway::{Credentials, Error, Gateway, GatewayConfig};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "mcp-gateway";
const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt").join(name)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A configuration accepting `algorithms`, with principals `assistant` (mapped from
/// subject `user-1`) and `ops`.
fn config_text(algorithms: &str, extra: &str, secret_file: &Path) -> String {
    format!(
        r#"
[[principal]]
name = "assistant"
tools = []
[[principal]]
name = "ops"
uids = [1000]

[jwt]
issuer = "{ISSUER}"
audience = ["{AUDIENCE}", "other-audience"]
algorithms = {algorithms}
jwks_file = "{jwks}"
hs256_secret_file = "{secret}"
leeway = "30s"
subjects = {{ "user-1" = "assistant" }}
{extra}
"#,
        jwks = fixture("jwks.json").display(),
        secret = secret_file.display(),
    )
}

struct Setup {
    gateway: Gateway,
    _dir: tempfile::TempDir,
}

async fn setup(algorithms: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut text = config_text(algorithms, extra, &secret);
    if !algorithms.contains("HS256") {
        text = text.replace(&format!("hs256_secret_file = \"{}\"\n", secret.display()), "");
    }
    if !algorithms.contains("RS256") && !algorithms.contains("ES256") {
        text = text.replace(&format!("jwks_file = \"{}\"\n", fixture("jwks.json").display()), "");
    }
    let config = GatewayConfig::parse(&text, "jwt.toml").unwrap();
    Setup { gateway: Gateway::start(config).await.unwrap(), _dir: dir }
}

fn claims() -> Value {
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "exp": now() + 300, "iat": now() })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key_file: &str) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 => EncodingKey::from_secret(key_file.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&std::fs::read(fixture(key_file)).unwrap()).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&std::fs::read(fixture(key_file)).unwrap()).unwrap(),
        other => panic!("{other:?}"),
    };
    encode(&header, claims, &key).unwrap()
}

fn rs(claims: &Value) -> String {
    sign(Algorithm::RS256, Some("rsa-1"), claims, "rsa-1.key.pem")
}

/// The principal the token maps to, or the reason it is refused.
fn resolve(gateway: &Gateway, token: &str) -> Result<String, String> {
    match gateway.principal_for(&Credentials::BearerToken(token.to_owned()), None) {
        Ok(p) => Ok(p.name),
        Err(Error::Unauthorized { reason, .. }) => Err(reason),
        Err(other) => panic!("expected Unauthorized, got {other}"),
    }
}

fn refused(gateway: &Gateway, token: &str, want: &str) {
    match resolve(gateway, token) {
        Ok(p) => panic!("accepted as {p}, expected a refusal containing {want:?}"),
        Err(reason) => assert!(reason.contains(want), "{reason:?} does not contain {want:?}"),
    }
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_map_to_principals() {
    let s = setup(r#"["RS256", "ES256", "HS256"]"#, "").await;
    let c = claims();
    assert_eq!(resolve(&s.gateway, &rs(&c)).unwrap(), "assistant");
    assert_eq!(resolve(&s.gateway, &sign(Algorithm::ES256, Some("ec-1"), &c, "ec-1.key.pem")).unwrap(), "assistant");
    assert_eq!(resolve(&s.gateway, &sign(Algorithm::HS256, None, &c, SECRET)).unwrap(), "assistant");
    // An audience list in the token: one match is enough.
    let mut multi = claims();
    multi["aud"] = json!(["someone-else", "other-audience"]);
    assert_eq!(resolve(&s.gateway, &rs(&multi)).unwrap(), "assistant");
    // Within the leeway: expired 10 s ago, leeway 30 s.
    let mut late = claims();
    late["exp"] = json!(now() - 10);
    assert_eq!(resolve(&s.gateway, &rs(&late)).unwrap(), "assistant");
    // A session can be opened with it.
    let (server_side, _client_side) = mcp_transport_core::transport::memory_pair(Default::default());
    s.gateway.serve(server_side, Credentials::BearerToken(rs(&claims()))).unwrap();
}

#[tokio::test]
async fn time_issuer_and_audience_are_checked() {
    let s = setup(r#"["RS256"]"#, "").await;
    let mut expired = claims();
    expired["exp"] = json!(now() - 120);
    refused(&s.gateway, &rs(&expired), "the JWT has expired");
    let mut early = claims();
    early["nbf"] = json!(now() + 600);
    refused(&s.gateway, &rs(&early), "the JWT is not valid yet");
    let mut iss = claims();
    iss["iss"] = json!("https://evil.test/");
    refused(&s.gateway, &rs(&iss), "issuer \"https://evil.test/\" is not the required");
    let mut aud = claims();
    aud["aud"] = json!("someone-else");
    refused(&s.gateway, &rs(&aud), "audience \"someone-else\" names none of");
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    refused(&s.gateway, &rs(&no_exp), "the JWT has no exp claim");
    let mut no_aud = claims();
    no_aud.as_object_mut().unwrap().remove("aud");
    refused(&s.gateway, &rs(&no_aud), "no aud claim");
}

#[tokio::test]
async fn keys_and_algorithms_are_checked() {
    let s = setup(r#"["RS256", "ES256"]"#, "").await;
    let c = claims();
    refused(&s.gateway, &sign(Algorithm::RS256, Some("nope"), &c, "rsa-1.key.pem"), "unknown kid \"nope\"");
    refused(
        &s.gateway,
        &sign(Algorithm::RS256, Some("rsa-1"), &c, "rsa-other.key.pem"),
        "the JWT's RS256 signature does not verify",
    );
    refused(&s.gateway, &sign(Algorithm::RS256, Some("ec-1"), &c, "rsa-1.key.pem"), "key \"ec-1\" is an ES256 key");
    // No kid, and the key set has exactly one key of the algorithm: that key is used.
    assert_eq!(resolve(&s.gateway, &sign(Algorithm::ES256, None, &c, "ec-1.key.pem")).unwrap(), "assistant");
    // HS/RS confusion: HS256 signed with the RSA public key as the secret is refused.
    let public = std::fs::read_to_string(fixture("rsa-1.pub.pem")).unwrap();
    refused(&s.gateway, &sign(Algorithm::HS256, Some("rsa-1"), &c, &public), "JWT algorithm \"HS256\" is not allowed");
    // Algorithms that exist but are not configured.
    refused(&s.gateway, &sign(Algorithm::HS384, None, &c, &public), "JWT algorithm \"HS384\" is not allowed");
    // Unsigned tokens.
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!("{}.{}.", part(&json!({ "alg": "none", "typ": "JWT" })), part(&c));
    refused(&s.gateway, &unsigned, "unsigned JWTs (alg \"none\") are refused");
    let unsigned = format!("{}.{}.", part(&json!({ "alg": "NONE" })), part(&c));
    refused(&s.gateway, &unsigned, "unsigned JWTs");
    // Garbage in JWT shape, and oversized tokens.
    refused(&s.gateway, "eyJ.eyJ.abc", "the JWT header is not");
    refused(&s.gateway, &format!("{}.{}.x", part(&json!({"alg": "RS256"})), "A".repeat(20_000)), "at most 16384");
    refused(&s.gateway, "not-a-jwt", "matches no principal");
}

#[tokio::test]
async fn subjects_map_to_principals_or_are_refused() {
    let s = setup(r#"["RS256"]"#, "").await;
    let mut other = claims();
    other["sub"] = json!("user-2");
    refused(&s.gateway, &rs(&other), "the JWT's sub \"user-2\" is not mapped to a principal");
    let mut ops = claims();
    ops["sub"] = json!("ops");
    refused(&s.gateway, &rs(&ops), "not mapped");
    let mut numeric = claims();
    numeric["sub"] = json!(7);
    refused(&s.gateway, &rs(&numeric), "the JWT's sub claim is not a string");

    let by_name = setup(r#"["RS256"]"#, "unknown_subjects = \"by_name\"\nprincipal_claim = \"email\"").await;
    let mut c = claims();
    c["email"] = json!("ops");
    assert_eq!(resolve(&by_name.gateway, &rs(&c)).unwrap(), "ops");
    c["email"] = json!("user-1");
    assert_eq!(resolve(&by_name.gateway, &rs(&c)).unwrap(), "assistant", "the mapping comes first");
    c["email"] = json!("nobody");
    refused(&by_name.gateway, &rs(&c), "the JWT's email \"nobody\" names no principal");
    c.as_object_mut().unwrap().remove("email");
    refused(&by_name.gateway, &rs(&c), "the JWT has no email claim");
}

#[tokio::test]
async fn without_a_jwt_table_jwt_shaped_tokens_say_so() {
    let config = GatewayConfig::parse("[[principal]]\nname = \"p\"\nuids = [1]\n", "t.toml").unwrap();
    let gateway = Gateway::start(config).await.unwrap();
    refused(&gateway, &rs(&claims()), "looks like a JWT, but no [jwt] is configured");
}

fn config_error(text: &str) -> (usize, usize, String) {
    match GatewayConfig::parse(text, "gw.toml") {
        Err(Error::Config { line, column, message, .. }) => (line, column, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn jwt_configuration_errors_name_line_column_and_problem() {
    let jwks = fixture("jwks.json").display().to_string();
    let head = "[[principal]]\nname = \"p\"\nuids = [1]\n[jwt]\nissuer = \"i\"\naudience = \"a\"\n";
    let (line, col, msg) = config_error(&format!("{head}algorithms = [\"RS256\", \"none\"]\njwks_file = \"{jwks}\"\n"));
    assert_eq!((line, col), (7, 24));
    assert!(msg.contains("unsigned tokens (\"none\") are never accepted"), "{msg}");
    let (line, _, msg) = config_error(&format!("{head}algorithms = [\"PS256\"]\n"));
    assert_eq!(line, 7);
    assert!(msg.contains("\"PS256\" is not supported"), "{msg}");
    let (line, _, msg) = config_error(&format!("{head}algorithms = [\"HS256\"]\n"));
    assert_eq!(line, 7);
    assert!(msg.contains("neither jwt.hs256_secret_env nor jwt.hs256_secret_file"), "{msg}");
    let (line, _, msg) = config_error(&format!(
        "{head}algorithms = [\"HS256\"]\nhs256_secret_env = \"MCP_GATEWAY_TEST_SURELY_UNSET\"\n"
    ));
    assert_eq!(line, 8);
    assert!(msg.contains("environment variable MCP_GATEWAY_TEST_SURELY_UNSET is not set"), "{msg}");
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "too short\n").unwrap();
    let (line, _, msg) =
        config_error(&format!("{head}algorithms = [\"HS256\"]\nhs256_secret_file = \"{}\"\n", short.display()));
    assert_eq!(line, 8);
    assert!(msg.contains("the HS256 secret has 9 bytes; at least 32"), "{msg}");
    let (line, _, msg) = config_error(&format!("{head}algorithms = [\"ES256\"]\n"));
    assert_eq!(line, 7);
    assert!(msg.contains("jwt.jwks_file is not set"), "{msg}");
    let (line, _, msg) =
        config_error(&format!("{head}algorithms = [\"RS256\"]\njwks_file = \"/nonexistent/jwks.json\"\n"));
    assert_eq!(line, 8);
    assert!(msg.contains("jwt.jwks_file /nonexistent/jwks.json"), "{msg}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k", "x": "AA", "y": "AA"}]}"#).unwrap();
    let (_, _, msg) = config_error(&format!("{head}algorithms = [\"ES256\"]\njwks_file = \"{}\"\n", bad.display()));
    assert!(msg.contains("key \"k\": x is not 32 bytes of base64url"), "{msg}");
    let oct = dir.path().join("oct.json");
    std::fs::write(&oct, r#"{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}"#).unwrap();
    let (_, _, msg) = config_error(&format!("{head}algorithms = [\"RS256\"]\njwks_file = \"{}\"\n", oct.display()));
    assert!(msg.contains("no RS256 key"), "symmetric keys in a JWKS are never used: {msg}");
    let (line, col, msg) = config_error(&format!(
        "{head}algorithms = [\"RS256\"]\njwks_file = \"{jwks}\"\nsubjects = {{ \"u\" = \"ghost\" }}\n"
    ));
    assert_eq!((line, col), (9, 20));
    assert!(msg.contains("\"u\" maps to \"ghost\", which is no [[principal]]"), "{msg}");
    let (line, _, msg) = config_error(&format!(
        "{head}algorithms = [\"RS256\"]\njwks_file = \"{jwks}\"\nunknown_subjects = \"allow\"\n"
    ));
    assert_eq!(line, 9);
    assert!(msg.contains("neither \"refuse\" nor \"by_name\""), "{msg}");
    let (line, _, msg) =
        config_error(&format!("{head}algorithms = [\"RS256\"]\njwks_file = \"{jwks}\"\nleeway = \"1h\"\n"));
    assert_eq!(line, 9);
    assert!(msg.contains("at most 10m"), "{msg}");
    // A principal with no credentials of its own is fine when a JWT maps to it, not otherwise.
    let ok = format!(
        "[[principal]]\nname = \"jwt-only\"\n[jwt]\nissuer = \"i\"\naudience = \"a\"\nalgorithms = [\"RS256\"]\njwks_file = \"{jwks}\"\nsubjects = {{ \"u\" = \"jwt-only\" }}\n"
    );
    let c = GatewayConfig::parse(&ok, "gw.toml").unwrap();
    let jwt = c.jwt.unwrap();
    assert_eq!(jwt.keys.len(), 2);
    assert_eq!(jwt.principal_claim, "sub");
    let (line, _, msg) = config_error("[[principal]]\nname = \"lonely\"\n");
    assert_eq!(line, 2);
    assert!(msg.contains("no jwt.subjects maps to it"), "{msg}");
}

#[test]
fn secrets_do_not_show_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let text = format!(
        "[[principal]]\nname = \"p\"\nuids = [1]\n[jwt]\nissuer = \"i\"\naudience = \"a\"\nalgorithms = [\"HS256\"]\nhs256_secret_file = \"{}\"\n",
        secret.display()
    );
    let c = GatewayConfig::parse(&text, "gw.toml").unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains(SECRET) && shown.contains("redacted"), "{shown}");
    assert_eq!(c.jwt.unwrap().hs256_secret.unwrap().bytes(), SECRET.as_bytes());
}
