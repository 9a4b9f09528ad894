//! A hostile or broken remote server on the s2s port, over raw sockets (and raw TLS): each
//! input gets its precise answer — the stream error, or the dialback error that leaves the
//! stream's other pairs up — and the node keeps serving. Also what the node answers when DNS
//! does not, and XEP-0368 direct TLS from a remote server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::fed::*;
use common::peer::*;
use common::*;

const NO_TLS: &str = "security_mode = \"no-tls\"\nrequire_client_certs = false";

/// A stand-in authoritative server for globex.example answering `verdict`; its port.
async fn authority(verdict: &'static str) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, _) = tokio::sync::mpsc::unbounded_channel();
    actix_rt::spawn(authoritative(listener, seen, verdict));
    port
}

fn assert_closed_with(all: &str, condition: &str) {
    assert_eq!(
        stream_error_condition(all).as_deref(),
        Some(condition),
        "{all}"
    );
    assert!(all.ends_with("</stream:stream>"), "{all}");
}

/// The class of `<'/>`: a tag that can never be well-formed is answered at once, whether it
/// comes first on the connection, after the stream header, or on an authenticated stream —
/// never by a wait until the handshake timeout (10 s here, longer than any read below).
#[actix_rt::test]
async fn a_malformed_tag_is_not_well_formed_at_once_in_every_state() {
    let dir = tempfile::tempdir().unwrap();
    let port = authority("valid").await;
    let a = start_at(&node_a(dir.path(), port, NO_TLS, "", "")).await;
    for bad in ["<'/>", "<db:result '", "<message to='a'from='b'/>"] {
        let mut c = Raw::connect(a.s2s_addr()).await;
        c.send(bad).await;
        assert_closed_with(&c.read_to_close().await, "not-well-formed");

        let mut c = raw_s2s(a.s2s_addr(), "acme.example").await;
        c.send(bad).await;
        assert_closed_with(&c.read_to_close().await, "not-well-formed");

        let mut c = dialback_from_globex(a.s2s_addr(), "acme.example").await;
        assert!(c.received.contains("type='valid'"), "{}", c.received);
        c.send(format!(
            "{bad}<message from='g@globex.example' to='a@acme.example'/>"
        ))
        .await;
        assert_closed_with(&c.read_to_close().await, "not-well-formed");
    }
    a.shutdown().await;
}

/// RFC 6120 §11: XMPP is XML 1.0.
#[actix_rt::test]
async fn an_xml_1_1_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_at(&node_a(dir.path(), free_port(), NO_TLS, "", "")).await;
    let mut c = Raw::connect(a.s2s_addr()).await;
    c.send(
        "<?xml version='1.1'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' to='acme.example' version='1.0'>",
    )
    .await;
    assert_closed_with(&c.read_to_close().await, "unsupported-version");
    a.shutdown().await;
}

/// XEP-0220 §2.4: we offer dialback errors, so a request for a domain we do not host fails
/// alone (`item-not-found`) and the stream keeps carrying its authenticated pair.
#[actix_rt::test]
async fn dialback_for_a_domain_not_hosted_fails_alone_and_the_stream_stays() {
    let dir = tempfile::tempdir().unwrap();
    let port = authority("valid").await;
    let a = start_at(&node_a(dir.path(), port, NO_TLS, "", "")).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    let mut c = dialback_from_globex(a.s2s_addr(), "acme.example").await;
    assert!(c.received.contains("type='valid'"), "{}", c.received);
    assert!(c.received.contains("<errors/>"), "dialback errors offered");
    c.clear();
    c.send("<db:result from='globex.example' to='not-hosted.example'>0123</db:result>")
        .await;
    c.expect("</db:result>").await;
    assert!(
        c.received
            .contains("from='not-hosted.example' to='globex.example' type='error'")
            && c.received.contains("<item-not-found "),
        "{}",
        c.received
    );
    assert!(!c.received.contains("<stream:error>"), "{}", c.received);
    c.send(
        "<message from='g@globex.example' to='a@acme.example' id='still'><body>up</body></message>",
    )
    .await;
    acme.expect("id='still'").await;
    a.shutdown().await;
}

/// XEP-0220 §2.1.3: an invalid key on a stream that carries no other pair ends the stream.
#[actix_rt::test]
async fn an_invalid_key_on_the_only_pair_closes_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let port = authority("invalid").await;
    let a = start_at(&node_a(dir.path(), port, NO_TLS, "", "")).await;
    let mut c = dialback_from_globex(a.s2s_addr(), "acme.example").await;
    assert!(c.received.contains("type='invalid'"), "{}", c.received);
    let all = c.read_to_close().await;
    assert!(all.ends_with("</stream:stream>"), "{all}");
    a.shutdown().await;
}

/// At most N connections per source address that have not authenticated; the excess is
/// refused at once with policy-violation. A stream whose pair authenticated does not count
/// and keeps working.
#[actix_rt::test]
async fn unauthenticated_streams_are_capped_per_address_and_authenticated_ones_do_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let port = authority("valid").await;
    let router = node_a(
        dir.path(),
        port,
        NO_TLS,
        "",
        "unauthenticated_per_address = 2",
    );
    let a = start_at(&router).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    let mut authed = dialback_from_globex(a.s2s_addr(), "acme.example").await;
    assert!(
        authed.received.contains("type='valid'"),
        "{}",
        authed.received
    );
    let _idle1 = raw_s2s(a.s2s_addr(), "acme.example").await;
    let _idle2 = Raw::connect(a.s2s_addr()).await;
    let mut over = Raw::connect(a.s2s_addr()).await;
    let all = over.read_to_close().await;
    assert_closed_with(&all, "policy-violation");
    assert!(all.contains("<stream:stream"), "our header first: {all}");
    authed
        .send("<message from='g@globex.example' to='a@acme.example' id='ok'/>")
        .await;
    acme.expect("id='ok'").await;
    a.shutdown().await;
}

/// RFC 6120 §8.3.3.17: a nameserver that never answers is `remote-server-timeout`, not
/// "not found".
#[actix_rt::test]
async fn a_silent_nameserver_returns_remote_server_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Takes queries over UDP and TCP and never answers.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns_port = udp.local_addr().unwrap().port();
    let tcp = tokio::net::TcpListener::bind(("127.0.0.1", dns_port))
        .await
        .unwrap();
    actix_rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = tcp.accept().await {
            held.push(s);
        }
    });
    let router = node_a(dir.path(), free_port(), NO_TLS, "", "");
    let text = std::fs::read_to_string(&router).unwrap()
        + &format!("[dns]\nnameservers = [\"127.0.0.1:{dns_port}\"]\n");
    std::fs::write(&router, text).unwrap();
    let tenant = dir.path().join("tenants").join("acme.toml");
    let text = std::fs::read_to_string(&tenant).unwrap().replace(
        "allow = [\"globex.example\"]",
        "allow = [\"quiet.example\"]",
    );
    std::fs::write(&tenant, text).unwrap();
    let a = start_at(&router).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    acme.send("<message from='a@acme.example' to='u@quiet.example' id='q'/>")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while !acme.received.contains("</message>") {
        assert!(tokio::time::Instant::now() < deadline, "no answer");
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(1), acme.stream.read(&mut buf)).await
        {
            assert!(n > 0, "link closed: {}", acme.received);
            acme.received.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(
        acme.received.contains("<remote-server-timeout "),
        "{}",
        acme.received
    );
    assert!(acme.received.contains("timed out"), "{}", acme.received);
    drop(udp);
    a.shutdown().await;
}

/// XEP-0368: a remote server may open with TLS instead of XML. The node answers with ALPN
/// `xmpp-server` and the certificate for the SNI name, offers no STARTTLS inside, and the
/// stream authenticates and carries stanzas as any other.
#[actix_rt::test]
async fn direct_tls_from_a_remote_server_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key, _) = pki.leaf("acme", &["acme.example"]);
    // Under tls-required the remote's certificate must name it, on direct TLS as on STARTTLS.
    let (globex_cert, globex_key, _) = pki.leaf("globex", &["globex.example"]);
    let tls = format!(
        "cert = \"{}\"\nkey = \"{}\"\nca = [\"{}\"]",
        cert.display(),
        key.display(),
        pki.ca_path().display()
    );
    let fed = "security_mode = \"tls-required\"\nrequire_client_certs = false";
    let a = start_at(&node_a(&dir.path().join("a"), free_port(), fed, &tls, "")).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;

    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_file_iter(pki.ca_path()).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        rustls::pki_types::CertificateDer::pem_file_iter(&globex_cert)
            .unwrap()
            .map(Result::unwrap)
            .collect(),
        rustls::pki_types::PrivateKeyDer::from_pem_file(&globex_key).unwrap(),
    )
    .unwrap();
    config.alpn_protocols = vec![b"xmpp-server".to_vec()];
    let tcp = tokio::net::TcpStream::connect(a.s2s_addr()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("acme.example").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the node's certificate for acme.example");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"xmpp-server"[..]));

    let mut got = String::new();
    async fn read_until(
        s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        got: &mut String,
        needle: &str,
    ) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 16 * 1024];
        while !got.contains(needle) {
            let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("waited for {needle}: {got}"))
                .unwrap();
            assert!(n > 0, "closed while waiting for {needle}: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let header = b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
          xmlns:stream='http://etherx.jabber.org/streams' from='globex.example' \
          to='acme.example' version='1.0'>";
    s.write_all(header).await.unwrap();
    read_until(&mut s, &mut got, "</stream:features>").await;
    assert!(!got.contains("<starttls"), "TLS already: {got}");
    // The certificate proves globex.example: SASL EXTERNAL (XEP-0178), as after STARTTLS.
    assert!(got.contains("<mechanism>EXTERNAL</mechanism>"), "{got}");
    s.write_all(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
        .await
        .unwrap();
    read_until(&mut s, &mut got, "<success").await;
    got.clear();
    s.write_all(header).await.unwrap();
    read_until(&mut s, &mut got, "</stream:features>").await;
    s.write_all(b"<message from='g@globex.example' to='a@acme.example' id='tls'/>")
        .await
        .unwrap();
    acme.expect("id='tls'").await;
    a.shutdown().await;
}
