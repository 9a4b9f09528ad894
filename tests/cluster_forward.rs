//! Stanzas across the nodes of a cluster, as tenants and an operator see them: a tenant
//! linked to one node is reached through every other node, each sender's order kept; a
//! party that is not a node cannot open an inter-node link or slip a stanza through one; a
//! drained node hands its traffic to the others; privacy is applied where a stanza enters.
//! (A node killed under load: `cluster_confirm.rs`.) Real etcd, three `xfed run`
//! processes; every wait is bounded.
#![cfg(feature = "cluster")]

mod common;

#[path = "cluster/harness.rs"]
mod harness;
#[path = "cluster/traffic.rs"]
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use harness::*;
use traffic::*;

/// acme is linked to edge-2 only; globex components on edge-1 and edge-3 send to it. Every
/// message arrives, none comes back, each sender's order is kept, and the metrics say
/// which node forwarded to which.
#[test]
fn a_tenant_linked_to_one_node_is_reached_through_every_node() {
    let (c, _cfg, _v) = three_relaying();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = Arc::new(AtomicBool::new(true));
    let acme = rt.block_on(receiver(c.component_addr(2), "acme.example", run.clone()));
    until_forwarding(&rt, &c, 1, &acme);
    until_forwarding(&rt, &c, 3, &acme);
    let before = delivered_ids(&acme.text()).len();

    let go = Arc::new(AtomicBool::new(true));
    let (s1, s3) = rt.block_on(async {
        (
            sender(
                c.component_addr(1),
                "a1",
                0,
                7,
                Duration::from_millis(2),
                go.clone(),
            ),
            sender(
                c.component_addr(3),
                "a3",
                0,
                7,
                Duration::from_millis(2),
                go.clone(),
            ),
        )
    });
    std::thread::sleep(Duration::from_secs(3));
    go.store(false, Ordering::Relaxed);
    let sent = s1.sent.load(Ordering::Relaxed) + s3.sent.load(Ordering::Relaxed);
    wait("every message delivered", Duration::from_secs(20), || {
        delivered_ids(&acme.text()).len() - before >= sent
    });
    let got = delivered_ids(&acme.text());
    let got = &got[before..];
    assert_eq!(got.len(), sent, "each delivered once");
    for s in [&s1, &s3] {
        assert_eq!(returned_ids(&s.back.lock().unwrap()), Vec::<String>::new());
    }
    // Each sender (u0..u6 on each node) in order: its ids rise.
    let text = acme.text();
    let mut last: BTreeMap<(String, String), u64> = BTreeMap::new();
    for m in text.split("<message").skip(1) {
        let attr = |name: &str| m.split(&format!("{name}='")).nth(1)?.split('\'').next();
        let (Some(from), Some(id)) = (attr("from"), attr("id")) else {
            continue;
        };
        let Some((tag, n)) = id.split_once('-').filter(|(t, _)| t.starts_with('a')) else {
            continue;
        };
        let n: u64 = n.parse().unwrap();
        if let Some(prev) = last.insert((tag.to_owned(), from.to_owned()), n) {
            assert!(prev < n, "{from} via {tag}: {n} arrived after {prev}");
        }
    }
    assert_eq!(last.len(), 14, "7 senders on each of two nodes: {last:?}");
    let forwarded_1 = metric(&c, 1, &[FORWARDED, "\"out\"", "\"edge-2\""]);
    let forwarded_3 = metric(&c, 3, &[FORWARDED, "\"out\"", "\"edge-2\""]);
    let taken = metric(&c, 2, &[FORWARDED, "\"in\""]);
    assert!(
        forwarded_1 >= s1.sent.load(Ordering::Relaxed) as u64,
        "{forwarded_1}"
    );
    assert!(
        forwarded_3 >= s3.sent.load(Ordering::Relaxed) as u64,
        "{forwarded_3}"
    );
    assert_eq!(
        taken,
        forwarded_1 + forwarded_3,
        "edge-2 took what the others handed it"
    );
    println!("forwarded: {sent} messages, edge-1 {forwarded_1}, edge-3 {forwarded_3}");
    // Where things are: acme's one link is listed under edge-2, globex's under 1 and 3.
    let conns = c.xfed(1, &["connections", "--cluster", "--json"]);
    let conns: serde_json::Value = serde_json::from_slice(&conns.stdout).unwrap();
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in conns["nodes"].as_array().unwrap() {
        for l in n["answer"]["links"].as_array().unwrap() {
            held.entry(l["tenant"].as_str().unwrap().to_owned())
                .or_default()
                .push(n["node"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        held.get("acme").map(Vec::as_slice),
        Some(&["edge-2".to_owned()][..]),
        "{conns}"
    );
    let mut globex = held.get("globex").cloned().unwrap_or_default();
    globex.sort();
    globex.dedup();
    assert_eq!(globex, ["edge-1", "edge-3"], "{conns}");
    run.store(false, Ordering::Relaxed);
}

/// A TLS client that accepts any certificate, as a stranger to the cluster would dial.
fn stranger_tls() -> tokio_rustls::TlsConnector {
    #[derive(Debug)]
    struct Any;
    impl rustls::client::danger::ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(Any))
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Reads until the other side closes; panics if it stays open 10 s.
async fn until_closed(rd: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
            Err(_) => panic!("still open after 10 s; sent us {got:?}"),
            Ok(Ok(0) | Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A party that is not a node: plain XML to the inter-node port, TLS then a stream, TLS
/// then a forged proof of the cluster key, TLS then nothing at all. Each is closed without
/// a word, nothing it sent reaches acme (linked to that node), and the node says whom it
/// refused in its event log and metrics.
#[test]
fn a_party_that_is_not_a_node_cannot_open_a_link_or_slip_a_stanza_through() {
    let (c, _cfg, _v) = three_relaying();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = Arc::new(AtomicBool::new(true));
    let acme = rt.block_on(receiver(c.component_addr(2), "acme.example", run.clone()));
    let relay: SocketAddr = format!("{}.2:7500", c.etcd.net).parse().unwrap();
    let stanza = "<message from='x@globex.example' to='someone@acme.example' id='forged'><body>hi</body></message>";
    let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>";
    rt.block_on(async {
        // 1. No TLS: XML straight away.
        let mut tcp = tokio::net::TcpStream::connect(relay).await.unwrap();
        let _ = tcp.write_all(format!("{header}{stanza}").as_bytes()).await;
        let got = until_closed(&mut tcp).await;
        assert!(!String::from_utf8_lossy(&got).contains("stream"), "{got:?}");

        // 2. TLS, then an XMPP stream instead of the link's opening.
        let tcp = tokio::net::TcpStream::connect(relay).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("edge-2").unwrap();
        let mut tls = stranger_tls().connect(name.clone(), tcp).await.unwrap();
        let _ = tls.write_all(format!("{header}{stanza}").as_bytes()).await;
        let _ = tls.flush().await;
        assert_eq!(until_closed(&mut tls).await, Vec::<u8>::new());

        // 3. TLS, the link's opening with a forged proof, then a stream and a stanza.
        let tcp = tokio::net::TcpStream::connect(relay).await.unwrap();
        let mut tls = stranger_tls().connect(name.clone(), tcp).await.unwrap();
        let mut hello = b"XFEDRLY1".to_vec();
        hello.push(6);
        hello.extend_from_slice(b"edge-1");
        hello.extend_from_slice(&[0x5a; 32]);
        let _ = tls.write_all(&hello).await;
        let _ = tls.write_all(format!("{header}{stanza}").as_bytes()).await;
        let _ = tls.flush().await;
        assert_eq!(until_closed(&mut tls).await, Vec::<u8>::new());

        // 4. TLS, then silence: closed after the opening's deadline.
        let tcp = tokio::net::TcpStream::connect(relay).await.unwrap();
        let mut tls = stranger_tls().connect(name, tcp).await.unwrap();
        let started = Instant::now();
        assert_eq!(until_closed(&mut tls).await, Vec::<u8>::new());
        assert!(
            started.elapsed() >= Duration::from_secs(4),
            "closed for silence only"
        );
    });
    // Meanwhile the real nodes' links work: a probe through edge-1 arrives.
    until_forwarding(&rt, &c, 1, &acme);
    assert!(!acme.text().contains("forged"), "{}", acme.text());
    let refused = metric(&c, 2, &["xfed_cluster_links_refused_total"]);
    assert!(refused >= 3, "refused {refused}");
    let events = c.xfed(2, &["events", "--json"]);
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(events.contains("cluster_link_refused"), "{events}");
    run.store(false, Ordering::Relaxed);
}

/// `xfed drain --node edge-2`, asked on edge-1 while a globex component there sends to acme
/// (linked to edge-2 and edge-3) from 16 addresses. edge-2 says it is idle; acme's link
/// there is closed with the stream's closing tag, not an error; edge-2 takes no new
/// component or s2s connection; the cluster's status shows it drained; and every message
/// is delivered — none returned, none lost.
#[test]
fn a_drained_node_hands_its_traffic_to_the_others_and_takes_no_new_connection() {
    let (c, _cfg, _v) = three_relaying();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = Arc::new(AtomicBool::new(true));
    let on2 = rt.block_on(receiver(c.component_addr(2), "acme.example", run.clone()));
    let on3 = rt.block_on(receiver(c.component_addr(3), "acme.example", run.clone()));
    until_forwarding(&rt, &c, 1, &on2);
    until_forwarding(&rt, &c, 1, &on3);
    let go = Arc::new(AtomicBool::new(true));
    let s = rt.block_on(async {
        sender(
            c.component_addr(1),
            "a1",
            0,
            16,
            Duration::from_millis(2),
            go.clone(),
        )
    });
    std::thread::sleep(Duration::from_secs(1));
    let drained = c.xfed(1, &["drain", "--node", "edge-2", "--json"]);
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&drained.stdout).unwrap();
    assert_eq!(outcome["node"], "edge-2", "{outcome}");
    assert_eq!(outcome["idle"], true, "{outcome}");
    assert_eq!(outcome["links_closed"], 1, "{outcome}");
    std::thread::sleep(Duration::from_secs(1));
    go.store(false, Ordering::Relaxed);
    let sent = s.sent.load(Ordering::Relaxed);
    let settled = || {
        let mut ids: BTreeSet<String> = delivered_ids(&on2.text()).into_iter().collect();
        ids.extend(delivered_ids(&on3.text()));
        ids.extend(returned_ids(&s.back.lock().unwrap()));
        ids.iter().filter(|i| i.starts_with("a1-")).count()
    };
    wait("every message settled", Duration::from_secs(30), || {
        settled() >= sent
    });
    assert_eq!(returned_ids(&s.back.lock().unwrap()), Vec::<String>::new());
    let on2_text = on2.text();
    assert!(
        on2_text.ends_with("</stream:stream>"),
        "closed gracefully: {}",
        &on2_text[on2_text.len().saturating_sub(300)..]
    );
    assert!(!on2_text.contains("stream:error"), "no stream error");
    let after: Vec<usize> = delivered_ids(&on2_text)
        .iter()
        .filter_map(|i| i.strip_prefix("a1-")?.parse().ok())
        .collect();
    assert!(!after.is_empty(), "edge-2 carried some before the drain");
    for port in [7400, 5269] {
        let addr: SocketAddr = format!("{}.2:{port}", c.etcd.net).parse().unwrap();
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
            "edge-2 still takes connections on {port}"
        );
    }
    let status = c.xfed(1, &["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("edge-2: alive, drained"), "{status}");
    println!(
        "drain: {sent} sent, {} delivered on edge-2, {} on edge-3, 0 returned; took {} ms",
        after.len(),
        delivered_ids(&on3.text()).len(),
        outcome["took_ms"]
    );
    run.store(false, Ordering::Relaxed);
}

/// Privacy is applied once, where a stanza enters, and forwarding does not get around it:
/// with globex taken off acme's allow list, globex's message to acme (linked to edge-2 only)
/// entering edge-1 comes back with `policy-violation` from edge-1, and nothing is handed to
/// edge-2; a message from an address acme allows still goes through.
#[test]
fn privacy_is_applied_where_a_stanza_enters_and_forwarding_does_not_bypass_it() {
    let (c, _cfg, _v) = start_three_custom(
        |dir| {
            let acme = dir.join("tenants/acme.toml");
            let text = std::fs::read_to_string(&acme).unwrap();
            let text = text.replace(
                "allow = [\"globex.example\", \"partner.example\"]",
                "allow = [\"partner.example\", \"rooms.globex.example\"]",
            );
            assert!(text.contains("rooms.globex.example"));
            std::fs::write(acme, text).unwrap();
        },
        |c| {
            for n in 1..=3 {
                let file = c.node_file(n);
                let mut text = std::fs::read_to_string(&file).unwrap();
                text.push_str(&format!("listen = \"{}.{n}:7500\"\n", c.etcd.net));
                std::fs::write(file, text).unwrap();
            }
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = Arc::new(AtomicBool::new(true));
    let acme = rt.block_on(receiver(c.component_addr(2), "acme.example", run.clone()));
    let back = rt.block_on(async {
        let mut g = common::component(c.component_addr(1), "globex.example", &secret("globex")).await;
        // An allowed sender first, until the table lets edge-1 reach acme on edge-2.
        let mut reached = false;
        for i in 0..100 {
            g.send(format!(
                "<message from='room@rooms.globex.example' to='someone@acme.example' id='ok{i}'/>"
            ))
            .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if acme.text().contains(&format!("id='ok{i}'")) {
                reached = true;
                break;
            }
        }
        assert!(reached, "an allowed message never reached acme: {}", acme.text());
        g.clear();
        g.send("<message from='u@globex.example' to='someone@acme.example' id='denied'><body>x</body></message>")
            .await;
        g.expect("policy-violation").await;
        g.received.clone()
    });
    assert!(
        back.contains("id='denied'") && back.contains("type='error'"),
        "{back}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!acme.text().contains("denied"), "{}", acme.text());
    let out = metric(&c, 1, &[FORWARDED, "\"out\"", "\"edge-2\""]);
    let taken = metric(&c, 2, &[FORWARDED, "\"in\""]);
    assert_eq!(out, taken, "edge-2 took only what edge-1 handed it");
    let allowed = delivered_ids(&acme.text()).len() as u64;
    assert_eq!(out, allowed, "edge-1 handed over the allowed messages only");
    run.store(false, Ordering::Relaxed);
}
