//! `wss://` with client certificates: [`ClientAuth::Required`] and [`ClientAuth::Optional`],
//! and the certificate on the accepted transport's `PeerInfo`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mcp_transport_core::{Id, Incoming, Message, Request, Transport};
use mcp_transport_ws::{ClientAuth, ClientTls, Error, WsClientConfig, WsConfig, WsListener, connect, rustls};
use rustls::pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

/// Hang guard for every step (never a timing assertion).
async fn guard<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no progress within 20 s"),
    }
}

/// A CA and a client certificate it issued (common name `alice`).
struct Pki {
    ca_pem: String,
    client_der: Vec<u8>,
    client_pem: String,
    client_key_pem: String,
}

fn new_pki() -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test client CA");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca = ca_params.self_signed(&ca_key).expect("self-sign");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut params = rcgen::CertificateParams::new(vec!["alice.example".to_owned()]).expect("params");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    Pki {
        ca_pem: ca.pem(),
        client_der: cert.der().to_vec(),
        client_pem: cert.pem(),
        client_key_pem: key.serialize_pem(),
    }
}

/// A client trusting `server_cert` and, with `identity`, presenting that certificate and key.
fn client(server_cert: &str, identity: Option<(&str, &str)>) -> WsClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(server_cert.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => {
            let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("PEM");
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
            builder.with_client_auth_cert(chain, key).expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    WsClientConfig { tls: ClientTls::Config(Arc::new(config)), ..WsClientConfig::default() }
}

async fn listener(server_cert: &str, server_key: &str, client_auth: ClientAuth) -> WsListener {
    let config =
        WsConfig { tls: Some(common::server_tls(server_cert, server_key)), client_auth, ..WsConfig::default() };
    WsListener::bind("wss://127.0.0.1:0/mcp", config).await.expect("bind")
}

async fn pair(listener: &WsListener, config: &WsClientConfig) -> (Transport, Transport) {
    let (client, server) =
        guard("connect", async { tokio::join!(connect(listener.url(), config), listener.accept()) }).await;
    (client.expect("connect"), server.expect("accept"))
}

/// One message each way through a fresh pair.
async fn exchange(client: &mut Transport, server: &mut Transport) {
    let ping = |id| Message::Request(Request { id: Id::Number(id), method: "ping".into(), params: None });
    client.sender.send(ping(1)).await.expect("send");
    assert!(matches!(guard("recv", server.receiver.recv()).await, Some(Ok(Incoming::Message(_)))));
    server.sender.send(ping(2)).await.expect("send");
    assert!(matches!(guard("recv", client.receiver.recv()).await, Some(Ok(Incoming::Message(_)))));
}

#[tokio::test]
async fn required_client_auth_names_the_certificate_and_refuses_clients_without_one() {
    let (cert, key) = common::self_signed();
    let pki = new_pki();
    let listener = listener(&cert, &key, ClientAuth::Required(pki.ca_pem.clone().into_bytes())).await;

    // No certificate: the TLS handshake fails (with TLS 1.3 the client may only learn it when
    // it reads the upgrade response) and accept never sees the connection.
    let refused = guard("connect", connect(listener.url(), &client(&cert, None))).await;
    match refused {
        Err(Error::Tls { reason, .. }) => assert!(reason.to_lowercase().contains("certificate"), "{reason}"),
        Err(other) => assert!(other.to_string().to_lowercase().contains("certificate"), "{other}"),
        Ok(_) => panic!("a client without a certificate was accepted"),
    }
    // A certificate from a CA the server does not trust: refused too.
    let stranger = new_pki();
    let untrusted = client(&cert, Some((&stranger.client_pem, &stranger.client_key_pem)));
    assert!(guard("connect", connect(listener.url(), &untrusted)).await.is_err());

    let trusted = client(&cert, Some((&pki.client_pem, &pki.client_key_pem)));
    let (mut client_side, mut server_side) = pair(&listener, &trusted).await;
    let presented = server_side.peer.client_certificate.clone().expect("the client certificate");
    let expected: [u8; 32] = Sha256::digest(&pki.client_der).into();
    assert_eq!(presented.sha256, expected);
    assert_eq!(presented.fingerprint_hex(), expected.iter().map(|b| format!("{b:02x}")).collect::<String>());
    assert_eq!(presented.subject.as_deref(), Some("alice"));
    assert_eq!(client_side.peer.client_certificate, None);
    exchange(&mut client_side, &mut server_side).await;
}

#[tokio::test]
async fn optional_client_auth_accepts_clients_without_a_certificate() {
    let (cert, key) = common::self_signed();
    let pki = new_pki();
    let listener = listener(&cert, &key, ClientAuth::Optional(pki.ca_pem.clone().into_bytes())).await;

    let (mut client_side, mut server_side) = pair(&listener, &client(&cert, None)).await;
    assert_eq!(server_side.peer.client_certificate, None);
    exchange(&mut client_side, &mut server_side).await;

    let trusted = client(&cert, Some((&pki.client_pem, &pki.client_key_pem)));
    let (mut client_side, mut server_side) = pair(&listener, &trusted).await;
    let expected: [u8; 32] = Sha256::digest(&pki.client_der).into();
    assert_eq!(server_side.peer.client_certificate.as_ref().map(|c| c.sha256), Some(expected));
    exchange(&mut client_side, &mut server_side).await;

    // Optional still verifies a certificate that is presented.
    let stranger = new_pki();
    let untrusted = client(&cert, Some((&stranger.client_pem, &stranger.client_key_pem)));
    assert!(guard("connect", connect(listener.url(), &untrusted)).await.is_err());
}

#[tokio::test]
async fn without_client_auth_no_certificate_is_asked_for() {
    let (cert, key) = common::self_signed();
    let pki = new_pki();
    let listener = listener(&cert, &key, ClientAuth::None).await;
    let with_cert = client(&cert, Some((&pki.client_pem, &pki.client_key_pem)));
    let (mut client_side, mut server_side) = pair(&listener, &with_cert).await;
    assert_eq!(server_side.peer.client_certificate, None);
    exchange(&mut client_side, &mut server_side).await;
}

#[tokio::test]
async fn client_auth_settings_are_checked_at_bind() {
    let pki = new_pki();
    let plain = WsConfig { client_auth: ClientAuth::Required(pki.ca_pem.into_bytes()), ..WsConfig::default() };
    match WsListener::bind("127.0.0.1:0".parse::<std::net::SocketAddr>().expect("addr"), plain).await {
        Err(Error::Config(reason)) => assert!(reason.contains("client_auth"), "{reason}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
    let (cert, key) = common::self_signed();
    let config = WsConfig {
        tls: Some(common::server_tls(&cert, &key)),
        client_auth: ClientAuth::Optional(b"not PEM".to_vec()),
        ..WsConfig::default()
    };
    match WsListener::bind("wss://127.0.0.1:0/mcp", config).await {
        Err(e @ Error::Pem { .. }) => assert!(e.to_string().contains("client CA certificates"), "{e}"),
        other => panic!("expected a PEM error, got {other:?}"),
    }
    match ClientAuth::required_from_pem_file("/nonexistent/ca.pem") {
        Err(e) => assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}"),
        Ok(_) => panic!("read a missing file"),
    }
}
