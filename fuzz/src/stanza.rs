//! The stanza target: routing attributes of first-level elements and the domain routing
//! takes from them, the namespace fix-up (`drop_default_ns`), error replies and our own
//! stream header.

use xfed::xmpp::stanza::stream_header;
use xfed::xmpp::{Frame, Kind, Limits, Stanza, StanzaCondition};

use super::reader::{Feeder, Seen, COMPONENT_HEADER, S2S_HEADER};

const CONDITIONS: [StanzaCondition; 9] = [
    StanzaCondition::BadRequest,
    StanzaCondition::InternalServerError,
    StanzaCondition::JidMalformed,
    StanzaCondition::NotAllowed,
    StanzaCondition::PolicyViolation,
    StanzaCondition::RemoteServerNotFound,
    StanzaCondition::RemoteServerTimeout,
    StanzaCondition::ResourceConstraint,
    StanzaCondition::ServiceUnavailable,
];

/// `data[0]` chooses the framing and the error condition; the rest, up to a 0xFF byte, is
/// read after the stream header; what follows 0xFF is an error text.
///
/// Checks, for every stanza the reader yields: `attr()` agrees with the routing
/// attributes; `address_domain` of its 'to' and 'from' agrees with the `jid` crate; after `drop_default_ns` the stanza reads back as one stanza with the same
/// name, routing attributes and other attributes, and no default namespace of its own;
/// `error_reply` of a message, presence or iq that is not an error reads back as one stanza
/// with 'to' and 'from' swapped, the same id, type 'error', the condition and the text, and
/// is itself never answered; our stream header with the stanza's attributes reads back
/// with those attributes.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let header = if mode & 1 == 0 {
        S2S_HEADER
    } else {
        COMPONENT_HEADER
    };
    let condition = CONDITIONS[usize::from(mode >> 1) % CONDITIONS.len()];
    let (body, text) = match rest.iter().position(|b| *b == 0xFF) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    // An error text is ours, never a peer's: keep to characters XML allows.
    let text: String = String::from_utf8_lossy(text)
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n'))
        .filter(|c| !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        .collect();
    if super::known("bom") && body.windows(3).any(|w| w == "\u{feff}".as_bytes()) {
        return;
    }
    let mut input = header.as_bytes().to_vec();
    input.extend_from_slice(body);
    for stanza in stanzas(&input) {
        check_one(header, &stanza, condition, &text);
    }
}

/// Every stanza the reader yields from `input` before it stops.
fn stanzas(input: &[u8]) -> Vec<Stanza> {
    use tokio_util::codec::Decoder;
    let mut r = xfed::xmpp::StreamReader::new(Limits::default());
    let mut buf = bytes::BytesMut::from(input);
    let mut out = Vec::new();
    for _ in 0..input.len() + 2 {
        match r.decode(&mut buf) {
            Ok(Some(Frame::Stanza(s))) => out.push(s),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// Reads `element` after `header`: the one stanza it must be, as data.
fn read_back(header: &str, element: &[u8], what: &str) -> Seen {
    let mut f = Feeder::new(Limits::default());
    f.feed(header.as_bytes());
    f.feed(element);
    let frames = &f.frames[1..];
    assert!(
        frames.len() == 1 && f.end == super::reader::End::NeedMore { held: 0 },
        "{what} does not read back as one element: {frames:?}, {:?}, from {:?}",
        f.end,
        String::from_utf8_lossy(element)
    );
    frames[0].clone()
}

/// The start tag's attributes other than `xmlns`, by an independent tokenizer.
fn other_attributes(element: &[u8]) -> Vec<(String, String)> {
    let Ok(text) = std::str::from_utf8(element) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for token in xmlparser::Tokenizer::from(text) {
        match token {
            Ok(xmlparser::Token::Attribute {
                prefix,
                local,
                value,
                ..
            }) => {
                if !(prefix.is_empty() && local.as_str() == "xmlns") {
                    out.push((
                        format!("{}:{}", prefix.as_str(), local.as_str()),
                        value.as_str().to_owned(),
                    ));
                }
            }
            Ok(xmlparser::Token::ElementStart { .. }) => {}
            _ => break,
        }
    }
    out
}

/// Does the start tag have two attributes with no whitespace between them
/// (`a='1'b='2'`)? Not well-formed (XML 1.0 §3.1), yet the reader accepts it.
fn attributes_run_together(element: &[u8]) -> bool {
    let mut quote = None;
    for (i, b) in element.iter().enumerate() {
        match quote {
            Some(q) if *b == q => {
                quote = None;
                let next = element.get(i + 1);
                if next.is_some_and(|n| !n.is_ascii_whitespace() && *n != b'/' && *n != b'>') {
                    return true;
                }
            }
            Some(_) => {}
            None if *b == b'\'' || *b == b'"' => quote = Some(*b),
            None if *b == b'>' => return false,
            None => {}
        }
    }
    false
}

fn check_one(header: &str, s: &Stanza, condition: StanzaCondition, text: &str) {
    // Routing's domain of an address: its plain path agrees with the jid crate's checks.
    for addr in [s.to.as_deref(), s.from.as_deref()].into_iter().flatten() {
        let reference = jid::Jid::new(addr)
            .ok()
            .map(|j| xfed::config::domain_key(j.domain().as_str()).into_owned());
        let ours = xfed::config::address_domain(addr)
            .ok()
            .map(|d| d.into_owned());
        assert_eq!(ours, reference, "address_domain({addr:?})");
    }
    if super::known("attr-space") && attributes_run_together(&s.bytes) {
        return;
    }
    let not_xml = |v: &Option<String>| {
        v.as_deref().is_some_and(|v| {
            v.chars().any(|c| {
                (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
                    || matches!(c, '\u{FFFE}' | '\u{FFFF}')
            })
        })
    };
    if super::known("charref") && [&s.to, &s.from, &s.id, &s.type_].into_iter().any(not_xml) {
        return;
    }
    check_well_formed(&s.bytes);
    // attr() is the slow path's view of the same attributes.
    assert_eq!(s.attr("to"), s.to, "attr(to)");
    assert_eq!(s.attr("from"), s.from, "attr(from)");
    assert_eq!(s.attr("id"), s.id, "attr(id)");
    assert_eq!(s.attr("type"), s.type_, "attr(type)");
    let _ = s.text();

    let mut fixed = s.clone();
    fixed.drop_default_ns();
    if s.xmlns.is_some() {
        assert!(
            fixed.xmlns.is_none(),
            "drop_default_ns kept the declaration of {:?}",
            String::from_utf8_lossy(&s.bytes)
        );
    }
    let back = read_back(header, &fixed.bytes, "the stanza after drop_default_ns");
    let Seen::Stanza {
        name,
        to,
        from,
        id,
        type_,
        xmlns,
        ..
    } = back
    else {
        unreachable!("read_back yields stanzas");
    };
    assert_eq!(
        (&name, &to, &from, &id, &type_),
        (&s.name, &s.to, &s.from, &s.id, &s.type_),
        "drop_default_ns changed the routing attributes"
    );
    assert_eq!(xmlns, None, "a default namespace is left after the fix-up");
    assert_eq!(
        other_attributes(&fixed.bytes),
        other_attributes(&s.bytes),
        "drop_default_ns changed other attributes"
    );

    let reply = s.error_reply(condition, text);
    let answerable = !s.is_error() && s.kind != Kind::Other;
    assert_eq!(reply.is_some(), answerable, "error_reply answered or not");
    if let Some(reply) = reply {
        let back = read_back(header, &reply.bytes, "the error reply");
        assert_eq!(
            back,
            Seen::Stanza {
                bytes: reply.bytes.to_vec(),
                name: s.name.clone(),
                to: s.from.clone(),
                from: s.to.clone(),
                id: s.id.clone(),
                type_: Some("error".into()),
                xmlns: None,
            },
            "the error reply's routing attributes"
        );
        assert_eq!(
            (&reply.to, &reply.from, &reply.id),
            (&s.from, &s.to, &s.id),
            "the reply's fields"
        );
        assert!(
            reply.error_reply(condition, text).is_none(),
            "an error was answered with an error"
        );
        check_reply_body(&reply.bytes, condition, text);
    }

    let ours = stream_header(
        "jabber:server",
        s.to.as_deref(),
        s.from.as_deref(),
        s.id.as_deref().unwrap_or(""),
    );
    let mut f = Feeder::new(Limits::default());
    f.feed(ours.as_bytes());
    match f.frames.first() {
        Some(Seen::Open { to, from, id, .. }) => assert_eq!(
            (to, from, id.as_deref()),
            (&s.from, &s.to, Some(s.id.as_deref().unwrap_or(""))),
            "our stream header's attributes"
        ),
        other => panic!(
            "our stream header {ours:?} reads as {other:?} ({:?})",
            f.end
        ),
    }
}

/// The reply's `<error>` carries the condition and the text, by an independent parser.
fn check_reply_body(bytes: &[u8], condition: StanzaCondition, text: &str) {
    let xml = std::str::from_utf8(bytes).expect("our reply is UTF-8");
    // The reply may use a prefix declared on the stream header: declare them for the parse.
    let wrapped = format!(
        "<w xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback'>{xml}</w>"
    );
    let doc = match roxmltree::Document::parse(&wrapped) {
        Ok(doc) => doc,
        // A stanza name with a prefix the header does not declare: not ours to judge here.
        Err(roxmltree::Error::UnknownNamespace(..)) => return,
        Err(e) => panic!("the error reply is not well-formed: {e}: {xml}"),
    };
    let error = doc
        .descendants()
        .find(|n| n.has_tag_name("error"))
        .expect("an <error> child");
    assert!(
        error
            .children()
            .any(|n| n.tag_name().name() == condition.as_str()),
        "the condition element is missing: {xml}"
    );
    let got = error
        .children()
        .find(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").to_owned());
    // XML turns CR LF and lone CR into LF.
    let want = text.replace("\r\n", "\n").replace('\r', "\n");
    if text.is_empty() {
        assert_eq!(got, None, "an empty text is left out");
    } else {
        assert_eq!(got.as_deref(), Some(want.as_str()), "the error text");
    }
}

/// A stanza the reader accepted is well-formed XML to an independent parser, with the
/// header's prefixes declared around it (undeclared prefixes are not the reader's to judge:
/// it does not resolve namespaces).
fn check_well_formed(bytes: &[u8]) {
    let Ok(xml) = std::str::from_utf8(bytes) else {
        panic!("the reader accepted a stanza that is not UTF-8");
    };
    let wrapped = format!(
        "<w xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback'>{xml}</w>"
    );
    match roxmltree::Document::parse(&wrapped) {
        Ok(_) | Err(roxmltree::Error::UnknownNamespace(..)) => {}
        // A name that is an XML name but no qualified name (`a:b:c`, `a:1`).
        Err(roxmltree::Error::InvalidName(..)) if super::known("qname") => {}
        // `]]>` in character data (XML 1.0 §2.4).
        Err(roxmltree::Error::InvalidCharacterData(..)) if super::known("cdata-end") => {}
        // A character reference to a character XML does not allow (`&#x4;`) in a value.
        Err(roxmltree::Error::MalformedEntityReference(..)) if super::known("charref") => {}
        // A character that is not a name character (e.g. private use) in a name: the
        // reader takes any non-ASCII character as one, by design.
        Err(roxmltree::Error::InvalidChar(..) | roxmltree::Error::InvalidChar2(..))
            if super::known("name-chars") && !xml.is_ascii() => {}
        Err(e) => panic!("the reader accepted a stanza that is not well-formed ({e}): {xml}"),
    }
}
