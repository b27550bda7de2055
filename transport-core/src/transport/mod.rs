//! The transport contract: a cloneable [`Sender`] and a cancel-safe [`Receiver`].
//!
//! - `send` waits while the outbound queue is full (bounded in messages and in bytes) and never
//!   reorders; `try_send` reports [`Error::Full`] instead of waiting.
//! - Messages queued while a write is in progress leave together in one write and one flush;
//!   when nothing is in progress, `send` writes at once from the calling task, adding no delay.
//! - `recv` yields messages in arrival order and `None` at a clean end; dropping its future
//!   loses nothing.
//! - `close` flushes what is queued, then half-closes, within a deadline.

mod memory;
mod related;
mod sink;
mod stream;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use memory::memory_pair;
pub use related::{related_request, with_related_request};
pub use sink::SenderSink;
pub use stream::from_io;

use crate::Error;
use crate::message::{Incoming, Message};

/// A boxed future, as returned by the object-safe transport traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Queue and size limits of a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message accepted or sent, in encoded bytes (default 16 MiB).
    pub max_message_size: usize,
    /// Most messages waiting in the outbound queue (default 1024).
    pub max_queued_messages: usize,
    /// Most encoded bytes waiting in the outbound queue (default 8 MiB). A single message larger
    /// than this is still accepted when the queue is empty.
    pub max_queued_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: crate::codec::DEFAULT_MAX_MESSAGE_SIZE,
            max_queued_messages: 1024,
            max_queued_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Credentials of the process at the other end of a local socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Process id, when the platform reports it.
    pub pid: Option<i32>,
}

/// A bearer token the peer presented (`Authorization: Bearer <token>`), on transports that
/// carry HTTP headers.
///
/// `Debug` never prints the token, and `==` compares in time that depends only on the
/// lengths, so a token can be logged with its owner and checked against another without
/// leaking it.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    /// The token from an `Authorization` header value: scheme `Bearer` (any case), one or more
    /// spaces, then the token, surrounding whitespace trimmed. `None` for another scheme, an
    /// empty token or a token with inner whitespace.
    pub fn from_header(value: &str) -> Option<Self> {
        let value = value.trim();
        let (scheme, rest) = value.split_once([' ', '\t'])?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let token = rest.trim();
        if token.is_empty() || token.contains(|c: char| c.is_whitespace()) {
            return None;
        }
        Some(Self(token.to_owned()))
    }

    /// The token from the raw bytes of an `Authorization` header; `None` unless they are
    /// UTF-8 and [`BearerToken::from_header`] accepts them.
    pub fn from_header_bytes(value: &[u8]) -> Option<Self> {
        std::str::from_utf8(value).ok().and_then(Self::from_header)
    }

    /// The token, without the scheme.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(…)")
    }
}

impl PartialEq for BearerToken {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for BearerToken {}

impl std::hash::Hash for BearerToken {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// A server's access check on the bearer token a client presents (`None`: no token or not
/// `Bearer`), called before a connection or session is accepted; `false` refuses it (HTTP
/// 401). It runs on the I/O task that handles the request, so it must not block.
pub type Authorize = Arc<dyn Fn(Option<&BearerToken>) -> bool + Send + Sync>;

/// What is known about the other end of a transport.
///
/// New fields may be added; build one with [`PeerInfo::new`] and the `with_` methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// A printable address (`unix:/path`, `127.0.0.1:4000`, `memory`).
    pub address: String,
    /// Operating-system credentials, on local sockets.
    pub credentials: Option<PeerCredentials>,
    /// The bearer token the peer presented in `Authorization`, on HTTP-based server transports
    /// (WebSocket upgrade, Streamable HTTP session or request).
    pub bearer_token: Option<BearerToken>,
    /// The certificate the peer presented in the TLS handshake, on TLS server transports that
    /// ask for one (QUIC with a client CA, `wss://` with client authentication). It has been
    /// verified against the server's client CAs before the transport is handed out.
    pub client_certificate: Option<ClientCertificate>,
}

impl PeerInfo {
    /// A peer known only by its printable `address`.
    pub fn new(address: impl Into<String>) -> Self {
        Self { address: address.into(), credentials: None, bearer_token: None, client_certificate: None }
    }

    /// Sets the operating-system credentials.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Option<PeerCredentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the bearer token.
    #[must_use]
    pub fn with_bearer_token(mut self, bearer_token: Option<BearerToken>) -> Self {
        self.bearer_token = bearer_token;
        self
    }

    /// Sets the client certificate.
    #[must_use]
    pub fn with_client_certificate(mut self, client_certificate: Option<ClientCertificate>) -> Self {
        self.client_certificate = client_certificate;
        self
    }
}

/// The end-entity certificate a TLS client presented, as a server sees it.
///
/// `Debug` prints the fingerprint (`sha256:` and 64 lowercase hexadecimal digits) and the
/// subject. Compare [`ClientCertificate::sha256`] (or [`ClientCertificate::fingerprint_hex`])
/// to identify a client: the subject is informational and any CA the server trusts may issue
/// another certificate with the same one.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ClientCertificate {
    /// The SHA-256 hash of the DER-encoded certificate.
    pub sha256: [u8; 32],
    /// The subject's common name, else the certificate's first subject alternative name
    /// (DNS name, e-mail address, URI or IP address); `None` when it has neither or they are
    /// not printable text of at most [`ClientCertificate::MAX_SUBJECT_LEN`] bytes.
    pub subject: Option<String>,
}

impl ClientCertificate {
    /// The longest subject kept, in bytes.
    pub const MAX_SUBJECT_LEN: usize = 256;

    /// A certificate known by the SHA-256 hash of its DER encoding and its subject.
    pub fn new(sha256: [u8; 32], subject: Option<String>) -> Self {
        Self { sha256, subject }
    }

    /// The fingerprint as 64 lowercase hexadecimal digits.
    pub fn fingerprint_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for b in self.sha256 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }

    /// Reads the subject of a DER-encoded X.509 certificate: the common name of its subject,
    /// else its first subject alternative name (DNS name, e-mail address, URI or IP address).
    /// `None` when the certificate has neither, when the value is not printable text of at most
    /// [`ClientCertificate::MAX_SUBJECT_LEN`] bytes, or when the DER is malformed. Reads only
    /// within `der` and allocates only the returned string, whatever the bytes.
    pub fn subject_from_der(der: &[u8]) -> Option<String> {
        der::subject(der)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("sha256", &format_args!("sha256:{}", self.fingerprint_hex()))
            .field("subject", &self.subject)
            .finish()
    }
}

/// The few DER paths of an X.509 certificate that [`ClientCertificate::subject_from_der`] reads.
mod der {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;
    const BOOLEAN: u8 = 0x01;
    const OCTET_STRING: u8 = 0x04;
    const VERSION: u8 = 0xa0;
    const EXTENSIONS: u8 = 0xa3;
    /// id-at-commonName, 2.5.4.3.
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// id-ce-subjectAltName, 2.5.29.17.
    const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

    /// The elements of a DER sequence body, in order; stops at the first malformed one.
    struct Elements<'a>(&'a [u8]);

    impl<'a> Iterator for Elements<'a> {
        type Item = (u8, &'a [u8]);

        fn next(&mut self) -> Option<Self::Item> {
            let parsed = element(self.0);
            match parsed {
                Some((tag, body, rest)) => {
                    self.0 = rest;
                    Some((tag, body))
                }
                None => {
                    self.0 = &[];
                    None
                }
            }
        }
    }

    /// One element: its tag, its contents and what follows it. Only low tag numbers and
    /// definite lengths of up to four bytes (all DER in a certificate) are read.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for _ in 0..n {
                let (&b, r) = rest.split_first()?;
                len = (len << 8) | usize::from(b);
                rest = r;
            }
            len
        };
        if len > rest.len() {
            return None;
        }
        let (body, after) = rest.split_at(len);
        Some((tag, body, after))
    }

    fn expect(input: &[u8], tag: u8) -> Option<&[u8]> {
        match element(input)? {
            (t, body, _) if t == tag => Some(body),
            _ => None,
        }
    }

    fn printable(bytes: &[u8]) -> Option<String> {
        if bytes.is_empty() || bytes.len() > super::ClientCertificate::MAX_SUBJECT_LEN {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        if text.chars().any(char::is_control) {
            return None;
        }
        Some(text.to_owned())
    }

    /// UTF8String, PrintableString, IA5String or TeletexString (read as UTF-8).
    fn directory_string(tag: u8, body: &[u8]) -> Option<String> {
        match tag {
            0x0c | 0x13 | 0x16 | 0x14 => printable(body),
            _ => None,
        }
    }

    fn common_name(subject: &[u8]) -> Option<String> {
        Elements(subject).filter(|(tag, _)| *tag == SET).find_map(|(_, rdn)| {
            Elements(rdn).filter(|(tag, _)| *tag == SEQUENCE).find_map(|(_, attribute)| {
                let mut parts = Elements(attribute);
                match (parts.next()?, parts.next()?) {
                    ((OID, oid), (tag, value)) if oid == COMMON_NAME => directory_string(tag, value),
                    _ => None,
                }
            })
        })
    }

    fn first_alt_name(extensions: &[u8]) -> Option<String> {
        let list = expect(extensions, SEQUENCE)?;
        let (_, extension) = Elements(list).find(|(tag, body)| {
            *tag == SEQUENCE && matches!(element(body), Some((OID, oid, _)) if oid == SUBJECT_ALT_NAME)
        })?;
        let mut parts = Elements(extension).skip(1);
        let mut value = parts.next()?;
        if value.0 == BOOLEAN {
            value = parts.next()?;
        }
        if value.0 != OCTET_STRING {
            return None;
        }
        let names = expect(value.1, SEQUENCE)?;
        Elements(names).find_map(|(tag, name)| match tag {
            // rfc822Name, dNSName, uniformResourceIdentifier
            0x81 | 0x82 | 0x86 => printable(name),
            // iPAddress
            0x87 => match name.len() {
                4 => <[u8; 4]>::try_from(name).ok().map(|a| std::net::Ipv4Addr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(name).ok().map(|a| std::net::Ipv6Addr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
    }

    pub(super) fn subject(der: &[u8]) -> Option<String> {
        let certificate = expect(der, SEQUENCE)?;
        let tbs = expect(certificate, SEQUENCE)?;
        let mut fields = Elements(tbs).peekable();
        fields.next_if(|(tag, _)| *tag == VERSION);
        // serialNumber, signature, issuer, validity
        let mut fields = fields.skip(4);
        let (tag, subject) = fields.next()?;
        if tag != SEQUENCE {
            return None;
        }
        common_name(subject).or_else(|| {
            // subjectPublicKeyInfo, then the optional unique ids and extensions
            fields.skip(1).find(|(tag, _)| *tag == EXTENSIONS).and_then(|(_, extensions)| first_alt_name(extensions))
        })
    }
}

/// One outbound unit: a message or a batch array.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A single message.
    Message(Message),
    /// A JSON-RPC batch array.
    Batch(Vec<Message>),
}

/// The sending side of a transport implementation.
pub trait Outbound: Send + Sync + 'static {
    /// Queues `item`, waiting while the queue is full. With `inline`, the calling task writes
    /// at once when no write is in progress; without, the writer task does (see
    /// [`Sender::feed`]).
    fn send(&self, item: Outgoing, inline: bool) -> BoxFuture<'_, Result<(), Error>>;
    /// Queues `item` or fails at once with [`Error::Full`].
    fn try_send(&self, item: Outgoing) -> Result<(), Error>;
    /// Flushes the queue and half-closes, within `deadline`.
    fn close(&self, deadline: Duration) -> BoxFuture<'_, Result<(), Error>>;
    /// Whether sends can no longer succeed.
    fn is_closed(&self) -> bool;
    /// Called when the last [`Sender`] is dropped: flush in the background, then half-close.
    fn release(&self) {}
}

/// The receiving side of a transport implementation.
pub trait Inbound: Send + Unpin + 'static {
    /// Polls for the next frame; `None` at a clean end of stream.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>>;
}

struct SenderInner {
    out: Arc<dyn Outbound>,
}

impl Drop for SenderInner {
    fn drop(&mut self) {
        self.out.release();
    }
}

/// The sending half of a transport. Clone it to send from many tasks.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<SenderInner>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("closed", &self.is_closed()).finish()
    }
}

impl Sender {
    /// Wraps a transport implementation's sending side.
    pub fn new(out: Arc<dyn Outbound>) -> Self {
        Self { inner: Arc::new(SenderInner { out }) }
    }

    /// Sends a message, waiting while the outbound queue is full.
    ///
    /// Cancel-safe: if the future is dropped before it completes, the message was not queued.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.inner.out.send(Outgoing::Message(msg.into()), true).await
    }

    /// Queues a message for the connection's writer task instead of writing it from the
    /// calling task. Messages fed in a row leave together in a few large writes, for the
    /// highest throughput; a lone message pays one task hand-off of latency. Waits while the
    /// queue is full; never reorders relative to `send`.
    pub async fn feed(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.inner.out.send(Outgoing::Message(msg.into()), false).await
    }

    /// Sends a JSON-RPC batch array as one frame.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<(), Error> {
        self.inner.out.send(Outgoing::Batch(msgs), true).await
    }

    /// Queues a message without waiting; [`Error::Full`] when the queue is full.
    pub fn try_send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.inner.out.try_send(Outgoing::Message(msg.into()))
    }

    /// Flushes queued messages and half-closes the sending direction within `deadline`.
    /// Later sends fail with [`Error::Closed`]; the receiving half keeps working.
    pub async fn close(&self, deadline: Duration) -> Result<(), Error> {
        self.inner.out.close(deadline).await
    }

    /// Whether the transport can no longer send.
    pub fn is_closed(&self) -> bool {
        self.inner.out.is_closed()
    }

    /// A `futures::Sink` over a clone of this sender.
    pub fn sink(&self) -> SenderSink {
        SenderSink::new(self.clone())
    }
}

/// The receiving half of a transport.
pub struct Receiver {
    inner: Box<dyn Inbound>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl Receiver {
    /// Wraps a transport implementation's receiving side.
    pub fn new(inner: Box<dyn Inbound>) -> Self {
        Self { inner }
    }

    /// The next frame, in arrival order; `None` once the peer has cleanly finished.
    ///
    /// Cancel-safe: dropping the future loses no data.
    pub async fn recv(&mut self) -> Option<Result<Incoming, Error>> {
        std::future::poll_fn(|cx| self.inner.poll_recv(cx)).await
    }

    /// Polls for the next frame.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, Error>>> {
        self.inner.poll_recv(cx)
    }
}

impl futures_core::Stream for Receiver {
    type Item = Result<Incoming, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_recv(cx)
    }
}

/// A connected transport: both halves and what is known about the peer.
#[derive(Debug)]
pub struct Transport {
    /// The sending half.
    pub sender: Sender,
    /// The receiving half.
    pub receiver: Receiver,
    /// The other end.
    pub peer: PeerInfo,
}

impl Transport {
    /// Splits into the sending and receiving halves.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str) -> Option<String> {
        BearerToken::from_header(header).map(BearerToken::into_string)
    }

    #[test]
    fn bearer_token_parses_the_bearer_scheme_only() {
        assert_eq!(token("Bearer abc.def"), Some("abc.def".into()));
        assert_eq!(token("  bEARer \t abc  "), Some("abc".into()));
        assert_eq!(token("Basic Zm9vOmJhcg=="), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(token("Bearer    "), None);
        assert_eq!(token("Bearerabc"), None);
        assert_eq!(token("Bearer a b"), None);
        assert_eq!(token(""), None);
        assert_eq!(BearerToken::from_header_bytes(b"Bearer \xff").map(BearerToken::into_string), None);
        assert_eq!(BearerToken::from_header_bytes(b"Bearer t0k").map(BearerToken::into_string), Some("t0k".into()));
    }

    #[test]
    fn bearer_token_debug_is_redacted_and_eq_compares_contents() {
        let t = BearerToken::from_header("Bearer s3cret").unwrap();
        assert_eq!(format!("{t:?}"), "BearerToken(…)");
        assert_eq!(t.as_str(), "s3cret");
        assert_eq!(Some(&t), BearerToken::from_header("bearer s3cret").as_ref());
        assert_ne!(Some(&t), BearerToken::from_header("Bearer s3creT").as_ref());
        assert_ne!(Some(&t), BearerToken::from_header("Bearer s3cret2").as_ref());
        let peer = PeerInfo::new("x").with_bearer_token(Some(t));
        assert!(!format!("{peer:?}").contains("s3cret"));
        assert_eq!(peer.address, "x");
    }

    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match body.len() {
            n @ 0..0x80 => out.push(n as u8),
            n @ 0x80..0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(body);
        out
    }

    /// A certificate-shaped DER document with the given subject and extensions.
    fn certificate(subject: &[u8], extensions: Option<&[u8]>) -> Vec<u8> {
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[0x01, 0x02]));
        tbs.extend(tlv(0x30, &tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])));
        tbs.extend(tlv(0x30, &[]));
        tbs.extend(tlv(0x30, &[tlv(0x17, b"250101000000Z"), tlv(0x17, b"350101000000Z")].concat()));
        tbs.extend(tlv(0x30, subject));
        tbs.extend(tlv(0x30, &tlv(0x30, &[])));
        if let Some(ext) = extensions {
            tbs.extend(tlv(0xa3, &tlv(0x30, ext)));
        }
        tlv(0x30, &[tlv(0x30, &tbs), tlv(0x30, &[]), tlv(0x03, &[0])].concat())
    }

    fn rdn(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        tlv(0x31, &tlv(0x30, &[tlv(0x06, oid), tlv(tag, value)].concat()))
    }

    fn san(names: &[u8], critical: bool) -> Vec<u8> {
        let mut ext = tlv(0x06, &[0x55, 0x1d, 0x11]);
        if critical {
            ext.extend(tlv(0x01, &[0xff]));
        }
        ext.extend(tlv(0x04, &tlv(0x30, names)));
        tlv(0x30, &ext)
    }

    #[test]
    fn client_certificate_subject_is_the_common_name_else_the_first_alt_name() {
        let org = rdn(&[0x55, 0x04, 0x0a], 0x0c, b"Example Org");
        let cn = rdn(&[0x55, 0x04, 0x03], 0x13, b"alice");
        let other_ext = tlv(0x30, &[tlv(0x06, &[0x55, 0x1d, 0x13]), tlv(0x04, &tlv(0x30, &[]))].concat());
        let names = [tlv(0x80, b"other"), tlv(0x82, b"bob.example"), tlv(0x87, &[10, 0, 0, 1])].concat();
        let exts = [other_ext.clone(), san(&names, true)].concat();

        let subject = |der: &[u8]| ClientCertificate::subject_from_der(der);
        assert_eq!(subject(&certificate(&[org.clone(), cn].concat(), Some(&exts))), Some("alice".into()));
        assert_eq!(subject(&certificate(&org, Some(&exts))), Some("bob.example".into()));
        let ip_only = [other_ext, san(&tlv(0x87, &[192, 0, 2, 7]), false)].concat();
        assert_eq!(subject(&certificate(&org, Some(&ip_only))), Some("192.0.2.7".into()));
        assert_eq!(subject(&certificate(&org, None)), None);
        // Not printable text, or too long: no subject.
        assert_eq!(subject(&certificate(&rdn(&[0x55, 0x04, 0x03], 0x0c, b"a\nb"), None)), None);
        let long = vec![b'a'; ClientCertificate::MAX_SUBJECT_LEN + 1];
        assert_eq!(subject(&certificate(&rdn(&[0x55, 0x04, 0x03], 0x0c, &long), None)), None);
    }

    #[test]
    fn client_certificate_subject_survives_any_truncation_or_corruption() {
        let cn = rdn(&[0x55, 0x04, 0x03], 0x0c, b"alice");
        let der = certificate(&cn, Some(&san(&tlv(0x82, b"bob"), false)));
        assert_eq!(ClientCertificate::subject_from_der(&der), Some("alice".into()));
        for end in 0..der.len() {
            assert_eq!(ClientCertificate::subject_from_der(&der[..end]), None, "truncated at {end}");
        }
        for i in 0..der.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = der.clone();
                bad[i] ^= flip;
                let _ = ClientCertificate::subject_from_der(&bad);
            }
        }
        assert_eq!(ClientCertificate::subject_from_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(ClientCertificate::subject_from_der(&[0x30, 0x85, 1, 0, 0, 0, 0]), None);
    }

    #[test]
    fn client_certificate_fingerprint_and_debug() {
        let mut sha256 = [0u8; 32];
        sha256[0] = 0xab;
        sha256[31] = 0x0f;
        let cert = ClientCertificate::new(sha256, Some("alice".into()));
        let hex = cert.fingerprint_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("ab00") && hex.ends_with("000f"), "{hex}");
        assert_eq!(
            format!("{cert:?}"),
            format!("ClientCertificate {{ sha256: sha256:{hex}, subject: Some(\"alice\") }}")
        );
        let peer = PeerInfo::new("x").with_client_certificate(Some(cert.clone()));
        assert_eq!(peer.client_certificate, Some(cert));
        assert_eq!(PeerInfo::new("x").client_certificate, None);
    }
}
