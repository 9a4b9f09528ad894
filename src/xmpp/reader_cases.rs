//! The stream reader on byte sequences, fed the way a socket would: whole, one byte at a
//! time, and split at every position. A table of cases, one per rule, so it runs past 400
//! lines: splitting it by rule would scatter the one list a reviewer checks the reader by.

use bytes::BytesMut;

use super::*;
use crate::xmpp::error::StreamCondition;
use crate::xmpp::Kind;

/// What a frame looks like for comparison: header 'to', stanza bytes, or close.
fn show(frame: &Frame) -> String {
    match frame {
        Frame::Open(h) => format!("open to={:?} ns={:?}", h.to, h.default_ns),
        Frame::Stanza(s) => format!("stanza {}", String::from_utf8_lossy(&s.bytes)),
        Frame::Close => "close".into(),
    }
}

/// Feeds `chunks` in order; returns the frames, or the first error's condition.
pub(super) fn feed(chunks: &[&[u8]], limits: Limits) -> Result<Vec<String>, StreamCondition> {
    let mut r = StreamReader::new(limits);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match r.decode(&mut buf) {
                Ok(Some(f)) => frames.push(show(&f)),
                Ok(None) => break,
                Err(ReadError::Stream(e)) => return Err(e.condition),
                Err(ReadError::Io(e)) => panic!("{e}"),
            }
        }
    }
    Ok(frames)
}

pub(super) fn whole(input: &str) -> Result<Vec<String>, StreamCondition> {
    feed(&[input.as_bytes()], Limits::default())
}

pub(super) const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='acme.example'>";

/// A stream with the awkward parts: CDATA, entities, '>' in attribute values and text,
/// nested elements, whitespace keepalives, an empty-element stanza.
fn awkward_stream() -> String {
    format!(
        "{HEADER} \n<message from='a@acme.example' to='o&apos;hara@b.example' id='1'>\
         <body>1 &gt; 0 &amp;&amp; &#x41;&#66; &lt;ok&gt; x > y</body>\
         <x a='p>q' b=\"&quot;\"><![CDATA[<not-a-tag/> ]] >]]></x></message>  \
         <presence from='a@acme.example' to='b@b.example'/>\n\
         <iq type='get' id='2' from='a@acme.example' to='b.example'><q xmlns='urn:x'><y/></q></iq>\
         </stream:stream>"
    )
}

#[test]
fn frames_a_stream_and_keeps_stanza_bytes_exactly() {
    let input = awkward_stream();
    let frames = whole(&input).unwrap();
    assert_eq!(frames.len(), 5, "{frames:#?}");
    assert_eq!(
        frames[0],
        "open to=Some(\"acme.example\") ns=Some(\"jabber:component:accept\")"
    );
    let first_stanza =
        &input[input.find("<message").unwrap()..input.find("</message>").unwrap() + 10];
    assert_eq!(frames[1], format!("stanza {first_stanza}"));
    assert_eq!(
        frames[2],
        "stanza <presence from='a@acme.example' to='b@b.example'/>"
    );
    assert!(frames[3].starts_with("stanza <iq ") && frames[3].ends_with("</iq>"));
    assert_eq!(frames[4], "close");
}

#[test]
fn routing_attributes_are_unescaped() {
    let mut r = StreamReader::new(Limits::default());
    let mut buf = BytesMut::from(awkward_stream().as_bytes());
    let _header = r.decode(&mut buf).unwrap();
    match r.decode(&mut buf).unwrap() {
        Some(Frame::Stanza(s)) => {
            assert_eq!(s.to.as_deref(), Some("o'hara@b.example"));
            assert_eq!(s.from.as_deref(), Some("a@acme.example"));
            assert_eq!(s.id.as_deref(), Some("1"));
            assert_eq!(s.kind, Kind::Message);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_namespaces_are_read() {
    let mut r = StreamReader::new(Limits::default());
    let mut buf = BytesMut::from(HEADER.as_bytes());
    match r.decode(&mut buf).unwrap() {
        Some(Frame::Open(h)) => {
            assert_eq!(h.to.as_deref(), Some("acme.example"));
            assert_eq!(h.prefix_ns("db"), Some("jabber:server:dialback"));
        }
        other => panic!("{other:?}"),
    }
}

/// The property that matters most: framing does not depend on how TCP splits the bytes.
#[test]
fn same_frames_whatever_the_split() {
    let input = awkward_stream();
    let bytes = input.as_bytes();
    let expected = whole(&input).unwrap();
    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(feed(&one_by_one, Limits::default()).unwrap(), expected);
    for at in 1..bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(
            feed(&[a, b], Limits::default()).unwrap(),
            expected,
            "split at {at}"
        );
    }
    for (a, b) in [(7, 13), (100, 101), (250, 300)] {
        let chunks = [&bytes[..a], &bytes[a..b], &bytes[b..]];
        assert_eq!(feed(&chunks, Limits::default()).unwrap(), expected);
    }
}

#[test]
fn hostile_input_conditions_rfc6120_4_9_3() {
    use StreamCondition::*;
    let after_header = |s: &str| format!("{HEADER}{s}");
    let cases: Vec<(String, StreamCondition)> = vec![
        (after_header("<a></b>"), NotWellFormed),
        (after_header("<message><a b='<'/></message>"), NotWellFormed),
        (after_header("<message a='1' a='2'/>"), NotWellFormed),
        (
            after_header("<message><b>&amp</b></message>"),
            NotWellFormed,
        ),
        (
            after_header("<message><b>\u{1}</b></message>"),
            NotWellFormed,
        ),
        (
            after_header("<message><b>&#0;</b></message>"),
            NotWellFormed,
        ),
        (after_header("<!-- c -->"), RestrictedXml),
        (after_header("<message><!-- c --></message>"), RestrictedXml),
        (after_header("<?pi x?>"), RestrictedXml),
        (
            after_header("<message><b>&lol;</b></message>"),
            RestrictedXml,
        ),
        (
            after_header("<message><b x='&lol;'/></message>"),
            RestrictedXml,
        ),
        ("<!DOCTYPE x><stream:stream>".into(), RestrictedXml),
        (after_header("hello"), BadFormat),
        (
            "<stream:stream xmlns:stream='urn:nope'>".into(),
            InvalidNamespace,
        ),
        (
            "<stream:stream xmlns='jabber:component:accept'>".into(),
            BadNamespacePrefix,
        ),
        (
            "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>".into(),
            UnsupportedEncoding,
        ),
    ];
    for (input, condition) in cases {
        assert_eq!(whole(&input), Err(condition), "{input}");
    }
}

#[test]
fn invalid_utf8_and_utf16_are_unsupported_encoding() {
    let mut latin1 = HEADER.as_bytes().to_vec();
    latin1.extend_from_slice(b"<message><body>caf\xe9</body></message>");
    assert_eq!(
        feed(&[&latin1], Limits::default()),
        Err(StreamCondition::UnsupportedEncoding)
    );
    let utf16: Vec<u8> = "<stream:stream>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(
        feed(&[&utf16], Limits::default()),
        Err(StreamCondition::UnsupportedEncoding)
    );
}

/// A comment is refused as soon as it starts, not when (or if) it ends.
#[test]
fn unfinished_comment_is_refused_at_once() {
    let input = format!("{HEADER}<!-- this never ends");
    assert_eq!(whole(&input), Err(StreamCondition::RestrictedXml));
}

#[test]
fn oversized_stanza_is_refused_whole_or_in_pieces_and_the_buffer_stays_bounded() {
    let limits = Limits {
        max_stanza_bytes: 10_000,
        max_depth: 8,
    };
    let big = format!(
        "{HEADER}<message><body>{}</body></message>",
        "x".repeat(20_000)
    );
    assert_eq!(
        feed(&[big.as_bytes()], limits),
        Err(StreamCondition::PolicyViolation)
    );

    let mut r = StreamReader::new(limits);
    let mut buf = BytesMut::from(HEADER.as_bytes());
    r.decode(&mut buf).unwrap();
    buf.extend_from_slice(b"<message><body>");
    let chunk = [b'x'; 512];
    let mut refused = false;
    for _ in 0..100 {
        buf.extend_from_slice(&chunk);
        match r.decode(&mut buf) {
            Ok(_) => assert!(buf.len() <= limits.max_stanza_bytes + chunk.len()),
            Err(ReadError::Stream(e)) => {
                assert_eq!(e.condition, StreamCondition::PolicyViolation);
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused, "never refused");
}

#[test]
fn nesting_deeper_than_the_limit_is_a_policy_violation() {
    let limits = Limits {
        max_stanza_bytes: 10_000,
        max_depth: 4,
    };
    let ok = format!("{HEADER}<message><a><b><c/></b></a></message>");
    assert!(feed(&[ok.as_bytes()], limits).is_ok());
    let deep = format!("{HEADER}<message><a><b><c><d>");
    assert_eq!(
        feed(&[deep.as_bytes()], limits),
        Err(StreamCondition::PolicyViolation)
    );
}

#[test]
fn keepalives_do_not_grow_the_buffer() {
    let mut r = StreamReader::new(Limits::default());
    let mut buf = BytesMut::from(HEADER.as_bytes());
    r.decode(&mut buf).unwrap();
    for _ in 0..100_000 {
        buf.extend_from_slice(b" ");
        assert!(r.decode(&mut buf).unwrap().is_none());
        assert!(buf.is_empty());
    }
}

#[test]
fn input_after_the_close_is_ignored() {
    let input = format!("{HEADER}</stream:stream><garbage");
    assert_eq!(
        whole(&input).unwrap().last().map(String::as_str),
        Some("close")
    );
}

/// A malformed tag is refused as soon as the byte that breaks it arrives: the reader never
/// waits on it, so a valid stanza that follows is never taken as part of it. Each case is
/// fed alone (the reader must answer without more input) and followed by a valid stanza.
#[test]
fn a_broken_tag_is_refused_at_once_and_swallows_nothing() {
    use StreamCondition::*;
    let next = "<message from='a@acme.example' to='b@b.example'><body>hi</body></message>";
    let broken = [
        ("<'/>", NotWellFormed),
        ("<\"/>", NotWellFormed),
        ("<message '/>", NotWellFormed),
        ("<message to='x/>", NotWellFormed),
        ("<message to=x/>", NotWellFormed),
        ("<message to='x'from='y'/>", NotWellFormed),
        ("<message><body a='1' '/>", NotWellFormed),
        ("<message><b x=\"y/></message>", NotWellFormed),
        ("<message></body", NotWellFormed),
        ("<message><!x", NotWellFormed),
        ("<![CDATA[", BadFormat),
        ("<message><?pi", RestrictedXml),
        ("< message>", NotWellFormed),
    ];
    // These may still become well-formed until the next tag shows they do not.
    let open_value = [
        "<message to='x/>",
        "<message></body",
        "<message><b x=\"y/></message>",
    ];
    for (input, condition) in broken {
        let alone = format!("{HEADER}{input}");
        if !open_value.contains(&input) {
            assert_eq!(whole(&alone), Err(condition), "{input} alone");
        }
        let followed = format!("{HEADER}{input}{next}</stream:stream>");
        assert_eq!(whole(&followed), Err(condition), "{input} then a stanza");
        let bytes = followed.as_bytes();
        let dribbled: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(
            feed(&dribbled, Limits::default()),
            Err(condition),
            "{input} dribbled"
        );
    }
    // Before the stream header, the same class.
    for input in [
        "<'/>",
        "<stream:stream to='a'from='b'>",
        "<?xml version='1.0'>",
    ] {
        assert_eq!(whole(input), Err(NotWellFormed), "{input}");
    }
}

/// What a reader holds while waiting is a stanza's content, not an unfinished tag: an
/// attribute value is cut at the first '<', so it can never run into the next stanza.
#[test]
fn an_open_attribute_value_holds_nothing_past_the_next_tag() {
    let mut r = StreamReader::new(Limits::default());
    let mut buf = BytesMut::from(HEADER.as_bytes());
    r.decode(&mut buf).unwrap();
    buf.extend_from_slice(b"<message to='");
    assert!(r.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&[b'x'; 1000]);
    assert!(
        r.decode(&mut buf).unwrap().is_none(),
        "a long value may wait"
    );
    buf.extend_from_slice(b"<presence/>");
    match r.decode(&mut buf) {
        Err(ReadError::Stream(e)) => assert_eq!(e.condition, StreamCondition::NotWellFormed),
        other => panic!("{other:?}"),
    }
}

/// RFC 6120 §11: XMPP is XML 1.0; a stream declared as another version is refused.
#[test]
fn xml_versions_other_than_1_0_are_refused() {
    let v11 =
        "<?xml version='1.1'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
    assert_eq!(whole(v11), Err(StreamCondition::UnsupportedVersion));
    assert!(whole(HEADER).is_ok());
}

/// RFC 6120 §4.9.3.14's example: the size limit is `policy-violation` with `stanza-too-big`.
#[test]
fn an_oversized_stanza_says_stanza_too_big() {
    let limits = Limits {
        max_stanza_bytes: 1_000,
        max_depth: 8,
    };
    let big = format!(
        "{HEADER}<message><body>{}</body></message>",
        "x".repeat(2_000)
    );
    let mut r = StreamReader::new(limits);
    let mut buf = BytesMut::from(big.as_bytes());
    r.decode(&mut buf).unwrap();
    match r.decode(&mut buf) {
        Err(ReadError::Stream(e)) => {
            assert_eq!(e.condition, StreamCondition::PolicyViolation);
            let wire = crate::xmpp::stanza::stream_error(&e);
            assert!(
                wire.contains("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
                    && wire.contains("<stanza-too-big xmlns='urn:xmpp:errors'/>"),
                "{wire}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Found by fuzzing (class `bom`): quick-xml skips U+FEFF at the start of its input as a
/// byte order mark, so a read that resumed right before one cut the stanza three bytes off.
/// A byte order mark opens a stream; U+FEFF in a stanza's text is a character, framed the
/// same whatever the split; between stanzas it is character data.
#[test]
fn u_feff_is_a_byte_order_mark_only_at_the_start() {
    let bom = "\u{FEFF}";
    let with_bom = format!("{bom}{HEADER}<message><body>a</body></message>");
    assert_eq!(whole(&with_bom).unwrap().len(), 2);
    let inside = format!("{HEADER}<message><body>{bom}x{bom}</body><b>{bom}</b></message>");
    let bytes = inside.as_bytes();
    let expected = whole(&inside).unwrap();
    assert!(
        expected[1].contains(&format!("<body>{bom}x{bom}</body>")),
        "{expected:?}"
    );
    for at in 1..bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(
            feed(&[a, b], Limits::default()).unwrap(),
            expected,
            "split at {at}"
        );
    }
    let dribbled: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(feed(&dribbled, Limits::default()).unwrap(), expected);
    let between = format!("{HEADER}{bom}<message/>");
    assert_eq!(whole(&between), Err(StreamCondition::BadFormat));
    let after_decl = format!(
        "<?xml version='1.0'?>{bom}<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
    );
    assert_eq!(whole(&after_decl), Err(StreamCondition::NotWellFormed));
}

/// Found by fuzzing (class `bom`, again): a byte order mark is the stream's very first bytes
/// or nothing. After one, or after whitespace, the bytes of another U+FEFF are text before
/// the header: refused as soon as they arrive, whole or one byte at a time (a second mark's
/// first byte was waited on when dribbled, refused when read whole).
#[test]
fn a_byte_order_mark_only_as_the_very_first_bytes_whatever_the_split() {
    let header = HEADER.as_bytes();
    let cases: [Vec<u8>; 4] = [
        b"\xEF\xBB\xBF\xEF".to_vec(),
        [b"\xEF\xBB\xBF\xEF\xBB\xBF".as_slice(), header].concat(),
        [b"   \xEF\xBB\xBF".as_slice(), header].concat(),
        [b"  \xEF\xBB\xBF  <?xml\t\t\t".as_slice()].concat(),
    ];
    for input in &cases {
        let read_whole = feed(&[input], Limits::default());
        let dribbled: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            read_whole,
            Err(StreamCondition::NotWellFormed),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(
            feed(&dribbled, Limits::default()),
            read_whole,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // The mark itself, split anywhere, still opens the stream.
    let good = [b"\xEF\xBB\xBF".as_slice(), header].concat();
    let dribbled: Vec<&[u8]> = good.chunks(1).collect();
    assert_eq!(feed(&dribbled, Limits::default()).map(|f| f.len()), Ok(1));
}

/// Found by fuzzing (reader/crash-b3e7465f…): whitespace after a byte order mark was held
/// when both came in one read and consumed when the mark came first; what follows the mark
/// is now read the same however the network splits it.
#[test]
fn whitespace_after_a_byte_order_mark_is_read_alike_whatever_the_split() {
    let held = |chunks: &[&[u8]]| {
        let mut r = StreamReader::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut frames = 0;
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(_frame) = r.decode(&mut buf).expect("no stream error") {
                frames += 1;
            }
        }
        (frames, buf.len())
    };
    let spaces = b"\xEF\xBB\xBF\t\t \r\n\t".as_slice();
    let split_points = 0..=spaces.len();
    for at in split_points {
        let (a, b) = spaces.split_at(at);
        assert_eq!(held(&[a, b]), (0, 0), "split at {at}");
        assert_eq!(held(&[spaces]), (0, 0), "whole");
        let opened = [spaces, HEADER.as_bytes()].concat();
        let (a, b) = opened.split_at(at);
        assert_eq!(held(&[a, b]), (1, 0), "with the header, split at {at}");
    }
}

/// Found by fuzzing: what quick-xml lets through that XML does not allow, and that xfed
/// would have forwarded or written back to a peer that then closes the stream.
#[test]
fn fuzz_found_not_well_formed_inputs() {
    let cases = [
        // `]]>` in character data (XML 1.0 §2.4).
        "<message><body>a]]>b</body></message>",
        // A name with two colons is not a qualified name (Namespaces in XML §4).
        "<r127.0.0.1:0 to='a'/>",
        "<message a:b:c='1'/>",
        // A character reference to a character XML does not allow, in an attribute value.
        "<message to='a&#x1;@acme.example'/>",
        "<message><x y='&#0;'/></message>",
        // A character reference is `&#` digits `;` or `&#x` hex digits `;`: no sign, no
        // space, not empty, in text or in an attribute value (XML 1.0 §4.1).
        "<db:result>&#+206;</db:result>",
        "<message><body>&#x+CE;</body></message>",
        "<message><body>&#-1;</body></message>",
        "<message><body>&# 65;</body></message>",
        "<message><body>&#;</body></message>",
        "<message><body>&#x;</body></message>",
        "<message><x y='&#+206;'/></message>",
        "<message to='a&#x+41;@acme.example'/>",
        // A private-use character is not a name character (XML 1.0 §2.3).
        "<message \u{EEFF}='1'/>",
        // The prefix `xmlns` names no element and is never declared (Namespaces in XML §3).
        "<xmlns:demTYPE\t\t/>",
        "<message><xmlns:b/></message>",
        "<message xmlns:xmlns='urn:x'/>",
        "<message><b xmlns:xmlns='http://www.w3.org/2000/xmlns/'/></message>",
    ];
    for input in cases {
        assert_eq!(
            whole(&format!("{HEADER}{input}")),
            Err(StreamCondition::NotWellFormed),
            "{input}"
        );
    }
}

/// XML 1.0 §2.8, as a class: a declaration holds `version`, then maybe `encoding` and
/// `standalone`, in that order, each after whitespace, and nothing else. quick-xml reads
/// one up to the first `?>` and took garbage after the version (found by the reader fuzz
/// target: refused when the declaration came in pieces, waited on when it came whole).
#[test]
fn an_xml_declaration_holds_only_what_xml_allows() {
    let stream = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
    for decl in [
        "<?xml version='1.0'?[admin] ='n1 o.0'?>",
        "<?xml version='1.0' foo='bar'?>",
        "<?xml encoding='UTF-8' version='1.0'?>",
        "<?xml version='1.0'encoding='UTF-8'?>",
        "<?xml version='1.0' version='1.0'?>",
        "<?xml version='1.0' standalone='yes' encoding='UTF-8'?>",
        "<?xml version='1.0' standalone='maybe'?>",
        "<?xml version='1.0' encoding='UTF 8'?>",
        "<?xml version='1.0\"?>",
        "<?xml version=1.0?>",
        "<?xml version='x'?>",
        "<?xml ?>",
    ] {
        let input = format!("{decl}{stream}");
        let dribbled: Vec<&[u8]> = input.as_bytes().chunks(1).collect();
        assert_eq!(whole(&input), Err(StreamCondition::NotWellFormed), "{decl}");
        assert_eq!(
            feed(&dribbled, Limits::default()),
            Err(StreamCondition::NotWellFormed),
            "{decl}, a byte at a time"
        );
    }
    for decl in [
        "<?xml version='1.0'?>",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>",
        "<?xml version = '1.0' encoding='UTF-8' standalone='yes' ?>",
        "<?xml\tversion='1.0'\n?>",
    ] {
        let frames = whole(&format!("{decl}{stream}"));
        assert_eq!(frames.map(|f| f.len()), Ok(1), "{decl}");
    }
}

/// A start tag with more attributes than any XMPP element carries is refused with
/// `policy-violation` before anything compares them with each other (quick-xml's search for
/// a repeated attribute compares each with every one before it: 45,000 attributes in one
/// 440 KB tag cost 2 s of a core). On a nested element, a stanza, the stream header, and
/// with the `xml` prefix (which needs no declaration); 128 are still read.
#[test]
fn an_element_with_too_many_attributes_is_a_policy_violation() {
    let many = |n: usize, prefix: &str| -> String {
        (0..n).map(|i| format!(" {prefix}a{i}=''")).collect()
    };
    let over = crate::xmpp::wellformed::MAX_ATTRIBUTES + 1;
    let stream = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'";
    for input in [
        format!("{HEADER}<message><x{}/></message>", many(45_000, "")),
        format!("{HEADER}<message><x{}/></message>", many(over, "")),
        format!("{HEADER}<message{}/>", many(over, "")),
        format!("{HEADER}<message><x{}/></message>", many(over, "xml:")),
        format!("{stream}{}>", many(over, "")),
    ] {
        assert_eq!(
            whole(&input),
            Err(StreamCondition::PolicyViolation),
            "{}",
            &input[..input.len().min(160)]
        );
    }
    let fits = format!(
        "{HEADER}<message{}><x{}/></message>",
        many(127, ""),
        many(128, "")
    );
    assert_eq!(whole(&fits).map(|f| f.len()), Ok(2));
}
