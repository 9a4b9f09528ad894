//! Bad input on the component port, over raw sockets: each gets the exact RFC 6120 stream
//! error after our stream header, then the close — and the node keeps serving everyone else.

mod common;

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use common::*;

/// Limits small enough to hit quickly.
const LIMITS: &str = "max_stanza_bytes = 20000\nmax_depth = 8\nhandshake_timeout_secs = 1";

/// Sends `input` on a fresh connection and returns everything until the node closes it.
async fn answer_to(input: &[u8]) -> String {
    let dir = two_tenants(LIMITS);
    let node = start(dir.path()).await;
    let mut c = Raw::connect(node.component_addr()).await;
    c.send(input).await;
    let all = c.read_to_close().await;
    node.shutdown().await;
    all
}

/// Asserts the stream error `condition`, after a stream header, then the close.
fn assert_stream_error(all: &str, condition: &str) {
    assert!(
        all.contains("<stream:stream"),
        "no stream header before the error: {all}"
    );
    assert_eq!(
        stream_error_condition(all).as_deref(),
        Some(condition),
        "answer: {all}"
    );
    assert!(
        all.ends_with("</stream:stream>"),
        "stream not closed: {all}"
    );
}

/// After a completed handshake as acme, sends `input`; returns everything to the close.
async fn answer_after_handshake(input: &[u8]) -> String {
    let dir = two_tenants(LIMITS);
    let node = start(dir.path()).await;
    let mut c = component(node.component_addr(), "acme.example", "acme-secret").await;
    c.send(input).await;
    let all = c.read_to_close().await;
    node.shutdown().await;
    format!("<stream:stream (after handshake)>{all}")
}

fn header(domain: &str) -> String {
    component_header(domain)
}

#[actix_rt::test]
async fn garbage_is_not_well_formed() {
    assert_stream_error(&answer_to(b"<<>>hello").await, "not-well-formed");
}

#[actix_rt::test]
async fn dtd_is_restricted_xml() {
    let input = "<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'>]><stream:stream>";
    assert_stream_error(&answer_to(input.as_bytes()).await, "restricted-xml");
}

#[actix_rt::test]
async fn comment_is_restricted_xml() {
    let input = format!("{}<!-- hello -->", header("acme.example"));
    assert_stream_error(&answer_to(input.as_bytes()).await, "restricted-xml");
}

#[actix_rt::test]
async fn processing_instruction_is_restricted_xml() {
    let input = format!("{}<?evil data?>", header("acme.example"));
    assert_stream_error(&answer_to(input.as_bytes()).await, "restricted-xml");
}

#[actix_rt::test]
async fn latin1_is_unsupported_encoding() {
    let mut input = header("acme.example").into_bytes();
    input.extend_from_slice(b"<handshake>caf\xe9</handshake>");
    assert_stream_error(&answer_to(&input).await, "unsupported-encoding");
}

#[actix_rt::test]
async fn declared_other_encoding_is_unsupported_encoding() {
    let input = format!(
        "<?xml version='1.0' encoding='ISO-8859-1'?>{}",
        header("acme.example")
    );
    assert_stream_error(&answer_to(input.as_bytes()).await, "unsupported-encoding");
}

#[actix_rt::test]
async fn client_namespace_is_invalid_namespace() {
    let input = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='acme.example'>";
    assert_stream_error(&answer_to(input.as_bytes()).await, "invalid-namespace");
}

#[actix_rt::test]
async fn wrong_stream_namespace_is_invalid_namespace() {
    let input = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='urn:wrong' to='acme.example'>";
    assert_stream_error(&answer_to(input.as_bytes()).await, "invalid-namespace");
}

#[actix_rt::test]
async fn unknown_domain_is_host_unknown() {
    let input = header("nobody.example");
    assert_stream_error(&answer_to(input.as_bytes()).await, "host-unknown");
    let no_to = "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>";
    assert_stream_error(&answer_to(no_to.as_bytes()).await, "host-unknown");
}

#[actix_rt::test]
async fn wrong_handshake_is_not_authorized() {
    let input = format!("{}<handshake>0000</handshake>", header("acme.example"));
    assert_stream_error(&answer_to(input.as_bytes()).await, "not-authorized");
}

#[actix_rt::test]
async fn another_tenants_secret_is_not_authorized() {
    let dir = two_tenants(LIMITS);
    let node = start(dir.path()).await;
    let mut c = Raw::connect(node.component_addr()).await;
    c.send(header("acme.example")).await;
    c.read_until(|r| r.contains(" id='") && r.ends_with('>'))
        .await;
    let id = stream_id(&c.received);
    let digest = xfed::component::digest(&id, "globex-secret");
    c.send(format!("<handshake>{digest}</handshake>")).await;
    assert_stream_error(&c.read_to_close().await, "not-authorized");
    node.shutdown().await;
}

#[actix_rt::test]
async fn stanza_before_handshake_is_not_authorized() {
    let input = format!(
        "{}<message from='a@acme.example' to='b@globex.example'/>",
        header("acme.example")
    );
    assert_stream_error(&answer_to(input.as_bytes()).await, "not-authorized");
}

#[actix_rt::test]
async fn silent_connection_times_out() {
    assert_stream_error(&answer_to(b"").await, "connection-timeout");
    let header_only = header("acme.example");
    assert_stream_error(
        &answer_to(header_only.as_bytes()).await,
        "connection-timeout",
    );
}

#[actix_rt::test]
async fn foreign_from_is_invalid_from() {
    let all =
        answer_after_handshake(b"<message from='x@globex.example' to='y@globex.example'/>").await;
    assert_stream_error(&all, "invalid-from");
}

#[actix_rt::test]
async fn missing_addresses_are_improper_addressing() {
    let all = answer_after_handshake(b"<message to='y@globex.example'/>").await;
    assert_stream_error(&all, "improper-addressing");
    let all = answer_after_handshake(b"<message from='a@acme.example'/>").await;
    assert_stream_error(&all, "improper-addressing");
}

#[actix_rt::test]
async fn unknown_element_is_unsupported_stanza_type() {
    let all = answer_after_handshake(b"<foo/>").await;
    assert_stream_error(&all, "unsupported-stanza-type");
}

#[actix_rt::test]
async fn client_namespace_stanza_is_invalid_namespace() {
    let all = answer_after_handshake(
        b"<message xmlns='jabber:client' from='a@acme.example' to='b@globex.example'/>",
    )
    .await;
    assert_stream_error(&all, "invalid-namespace");
}

#[actix_rt::test]
async fn entity_reference_is_restricted_xml() {
    let all = answer_after_handshake(
        b"<message from='a@acme.example' to='b@globex.example'><body>&xxe;</body></message>",
    )
    .await;
    assert_stream_error(&all, "restricted-xml");
}

#[actix_rt::test]
async fn deep_nesting_is_policy_violation() {
    let mut input = String::from("<message from='a@acme.example' to='b@globex.example'>");
    input.push_str(&"<x>".repeat(20));
    let all = answer_after_handshake(input.as_bytes()).await;
    assert_stream_error(&all, "policy-violation");
}

#[actix_rt::test]
async fn oversized_stanza_in_one_write_is_policy_violation() {
    let body = "x".repeat(30_000);
    let input = format!(
        "<message from='a@acme.example' to='b@globex.example'><body>{body}</body></message>"
    );
    let all = answer_after_handshake(input.as_bytes()).await;
    assert_stream_error(&all, "policy-violation");
}

/// A stanza that never ends, sent in 1 KiB writes up to three times the 20,000-byte limit:
/// the node does not wait for its end (there is none) nor keep it — it answers
/// policy-violation and closes.
#[actix_rt::test]
async fn endless_stanza_is_cut_off_at_the_limit() {
    let dir = two_tenants(LIMITS);
    let node = start(dir.path()).await;
    let mut c = component(node.component_addr(), "acme.example", "acme-secret").await;
    c.send("<message from='a@acme.example' to='b@globex.example'><body>")
        .await;
    let chunk = vec![b'x'; 1024];
    for _ in 0..60 {
        if tokio::time::timeout(Duration::from_secs(1), c.stream.write_all(&chunk))
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
    }
    let all = c.read_to_close().await;
    assert_eq!(
        stream_error_condition(&all).as_deref(),
        Some("policy-violation"),
        "{all}"
    );
    assert!(all.contains("exceeds the limit of 20000 bytes"), "{all}");
    node.shutdown().await;
}

#[actix_rt::test]
async fn malformed_to_is_returned_with_jid_malformed_and_the_link_stays() {
    let dir = two_tenants(LIMITS);
    let node = start(dir.path()).await;
    let mut c = component(node.component_addr(), "acme.example", "acme-secret").await;
    c.send("<message from='a@acme.example' to='a@b@c' id='bad'/>")
        .await;
    c.expect("</message>").await;
    assert!(
        c.received.contains("id='bad' type='error'"),
        "{}",
        c.received
    );
    assert!(c.received.contains("<jid-malformed "), "{}", c.received);
    // Still up: a normal stanza to a tenant without links gets its own answer.
    c.clear();
    c.send("<message from='a@acme.example' to='b@globex.example' id='next'/>")
        .await;
    c.expect("</message>").await;
    assert!(
        c.received.contains("id='next' type='error'"),
        "{}",
        c.received
    );
    node.shutdown().await;
}

/// One tenant's link is killed for bad input; another tenant's link keeps working, and the
/// attacked tenant can connect again.
#[actix_rt::test]
async fn bad_input_on_one_link_leaves_the_others_serving() {
    let dir = two_tenants(LIMITS);
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let mut good = component(addr, "acme.example", "acme-secret").await;
    let mut globex = component(addr, "globex.example", "globex-secret").await;
    let mut bad = component(addr, "acme.example", "acme-secret").await;
    wait_links(&node, "acme", 2).await;
    bad.send("<message><!-- no --></message>").await;
    let all = bad.read_to_close().await;
    assert_eq!(
        stream_error_condition(&all).as_deref(),
        Some("restricted-xml")
    );
    wait_links(&node, "acme", 1).await;

    globex.send("<message from='g@globex.example' to='a@acme.example' id='1'><body>still here</body></message>").await;
    good.expect("<body>still here</body>").await;
    let mut again = component(addr, "acme.example", "acme-secret").await;
    wait_links(&node, "acme", 2).await;
    again.send("<message from='a@acme.example' to='g@globex.example' id='2'><body>back</body></message>").await;
    globex.expect("<body>back</body>").await;
    node.shutdown().await;
}

/// A start tag that can never be well-formed is refused as soon as it arrives — before the
/// handshake timeout, and without taking the stanza that follows as part of it. Before,
/// `<'/>` made the node wait for a closing quote and swallow the next message silently.
#[actix_rt::test]
async fn a_malformed_tag_is_refused_at_once_and_takes_nothing_after_it() {
    let next = "<message from='a@acme.example' to='g@globex.example' id='after'><body>after</body></message>";
    for bad in [
        "<'/>",
        "<message '/>",
        "<message to='x'from='y'/>",
        "< message/>",
    ] {
        // First bytes on the connection, and after a stream header: answered at once (the
        // handshake timeout of these nodes is 1 s; `connection-timeout` would mean a wait).
        assert_stream_error(&answer_to(bad.as_bytes()).await, "not-well-formed");
        let input = format!("{}{bad}", header("acme.example"));
        assert_stream_error(&answer_to(input.as_bytes()).await, "not-well-formed");
    }
    // On an authenticated link with a listening receiver: the stream ends with
    // not-well-formed, and the stanza after the broken tag is not delivered as if nothing
    // had happened.
    let dir = two_tenants(LIMITS);
    let node = start(dir.path()).await;
    let mut globex = component(node.component_addr(), "globex.example", "globex-secret").await;
    let mut acme = component(node.component_addr(), "acme.example", "acme-secret").await;
    acme.send(format!(
        "<message from='a@acme.example' to='g@globex.example' id='x' a='/>{next}"
    ))
    .await;
    let all = acme.read_to_close().await;
    assert_eq!(
        stream_error_condition(&all).as_deref(),
        Some("not-well-formed"),
        "{all}"
    );
    // globex still serves, and got nothing of the broken stream.
    let mut acme2 = component(node.component_addr(), "acme.example", "acme-secret").await;
    acme2
        .send("<message from='a@acme.example' to='g@globex.example' id='ok'><body>ok</body></message>")
        .await;
    globex.expect("id='ok'").await;
    assert!(
        !globex.received.contains("id='after'"),
        "{}",
        globex.received
    );
    node.shutdown().await;
}

/// RFC 6120 §11: XMPP is XML 1.0.
#[actix_rt::test]
async fn xml_1_1_is_refused() {
    let input = format!("<?xml version='1.1'?>{}", header("acme.example"));
    assert_stream_error(&answer_to(input.as_bytes()).await, "unsupported-version");
}

/// RFC 6120 §4.9.3.14's own example: the size limit names `stanza-too-big`.
#[actix_rt::test]
async fn oversized_stanza_says_stanza_too_big() {
    let body = "x".repeat(30_000);
    let input = format!(
        "<message from='a@acme.example' to='b@globex.example'><body>{body}</body></message>"
    );
    let all = answer_after_handshake(input.as_bytes()).await;
    assert!(
        all.contains("<stanza-too-big xmlns='urn:xmpp:errors'/>"),
        "{all}"
    );
}

/// Connections that have not authenticated are capped per source address: the excess is
/// refused at once with policy-violation, counted, logged once with a count; links that
/// have authenticated do not count, and a closed connection gives its place back.
#[actix_rt::test]
async fn unauthenticated_connections_are_capped_per_address() {
    let dir = two_tenants(&format!("{LIMITS}\nunauthenticated_per_address = 3"));
    let dir_path = dir.path().to_owned();
    let text = std::fs::read_to_string(dir_path.join("router.toml"))
        .unwrap()
        .replace("handshake_timeout_secs = 1", "handshake_timeout_secs = 20");
    std::fs::write(dir_path.join("router.toml"), text).unwrap();
    let node = start(&dir_path).await;
    let addr = node.component_addr();
    // Two authenticated links: they do not count.
    let _a = component(addr, "acme.example", "acme-secret").await;
    let _g = component(addr, "globex.example", "globex-secret").await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut c = Raw::connect(addr).await;
        c.send(header("acme.example")).await;
        c.expect(" id='").await;
        idle.push(c);
    }
    for _ in 0..2 {
        let mut over = Raw::connect(addr).await;
        let all = over.read_to_close().await;
        assert_stream_error(&all, "policy-violation");
        assert!(
            all.contains("too many connections from your address"),
            "{all}"
        );
    }
    // One idle connection goes: its place comes back.
    drop(idle.pop());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut c = Raw::connect(addr).await;
        c.send(header("acme.example")).await;
        c.read_until(|r| r.contains(" id='") || r.contains("</stream:stream>"))
            .await;
        if !c.received.contains("<stream:error>") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Two refusals above, and maybe more while the closed connection's place came back.
    let metrics = node.observer().metrics.render();
    let refused: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                r#"xfed_connections_refused_total{listener="component",reason="per_address"} "#,
            )
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(refused >= 2, "{metrics}");
    let refused = node
        .observer()
        .events
        .query(&Default::default())
        .into_iter()
        .filter(|e| e["event"] == "connection_refused")
        .count();
    assert_eq!(refused, 1, "two refusals within 10 s are one folded event");
    node.shutdown().await;
}

/// Namespaces in XML, as a class, on the wire: a tenant's stanza that uses a prefix it never
/// declared, undeclares one, or makes two attributes collide once resolved ends its link
/// with `not-well-formed` and reaches no one; one that leans on a prefix declared only on
/// its stream header gets `bad-namespace-prefix` (xfed forwards stanzas on their own). The
/// other tenant is served throughout, and sees none of them.
#[actix_rt::test]
async fn namespace_ill_formed_stanzas_are_refused_and_reach_no_one() {
    let dir = two_tenants(LIMITS);
    let node = start(dir.path()).await;
    let addr = node.component_addr();
    let mut globex = component(addr, "globex.example", "globex-secret").await;
    let to = "from='a@acme.example' to='g@globex.example'";
    let cases = [
        (
            format!("<message {to}><body>1</body><p:x/></message>"),
            "not-well-formed",
        ),
        (
            format!("<message {to} xmlns:p=''><body>2</body></message>"),
            "not-well-formed",
        ),
        (
            format!("<message {to}><x xmlns:q='urn:a' xmlns:r='urn:a' q:a='1' r:a='2'/></message>"),
            "not-well-formed",
        ),
        (
            format!("<message {to}><h:x/></message>"),
            "bad-namespace-prefix",
        ),
    ];
    for (bad, condition) in &cases {
        // A header declaring one prefix more: `h`.
        let mut acme = handshake_with(
            addr,
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:h='urn:h' to='acme.example'>",
            "acme-secret",
        )
        .await;
        acme.send(bad).await;
        let all = acme.read_to_close().await;
        assert_eq!(
            stream_error_condition(&all).as_deref(),
            Some(*condition),
            "{bad}: {all}"
        );
    }
    let mut good = component(addr, "acme.example", "acme-secret").await;
    good.send(format!("<message {to}><body>fine</body></message>"))
        .await;
    globex.expect("<body>fine</body>").await;
    for n in ["<body>1</body>", "<body>2</body>", "q:a=", "h:x"] {
        assert!(
            !globex.received.contains(n),
            "{n} reached globex: {}",
            globex.received
        );
    }
    node.shutdown().await;
}
