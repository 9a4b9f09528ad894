//! The differential target: on a whole stream that an independent XML parser (roxmltree,
//! with xmlparser for the raw start tags) accepts as well-formed, the stream reader yields
//! the same frames with the same routing attributes.

use xfed::xmpp::Limits;

use super::reader::{feed_split, split_lengths, End, Seen};

const STREAMS: &str = "http://etherx.jabber.org/streams";

/// Attribute-value normalization (XML 1.0 §3.3.3): a literal tab, CR or LF in an attribute
/// value is read as a space; the stream reader keeps them as they are. Both sides are
/// compared after it (see docs/FUZZING.md, "known divergences").
fn normalize(value: &str) -> String {
    value.replace("\r\n", " ").replace(['\t', '\r', '\n'], " ")
}

/// The attributes written on the start tag at the beginning of `element`, raw.
fn start_tag_attributes(element: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for token in xmlparser::Tokenizer::from_fragment(element, 0..element.len()) {
        match token {
            Ok(xmlparser::Token::Attribute {
                prefix,
                local,
                value,
                ..
            }) => out.push((
                prefix.as_str().to_owned(),
                local.as_str().to_owned(),
                value.as_str().to_owned(),
            )),
            Ok(xmlparser::Token::ElementStart { .. }) => {}
            _ => break,
        }
    }
    out
}

/// The qualified name as written at the start of `element` (`<db:result ...`).
fn qname(element: &str) -> &str {
    let rest = &element[1..];
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// What the reader must yield for `text`, or `None` when this target does not judge it;
/// `Err(condition)` when the reader must refuse it.
fn expected(text: &str) -> Option<Result<Vec<Seen>, Vec<&'static str>>> {
    if !plain_enough(text) {
        return None;
    }
    let doc = roxmltree::Document::parse(text).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "stream" || root.tag_name().namespace() != Some(STREAMS) {
        return None;
    }
    let root_end = root.range().end;
    let root_src = &text[root.range()];
    if root_src.ends_with("/>") && !root_src.contains("</") {
        // <stream:stream/> opens and closes nothing the reader can frame.
        return None;
    }
    // Comments and processing instructions before the stream's end are restricted XML;
    // character data between stanzas is a bad format. Either may come first.
    let mut refusals = Vec::new();
    if doc
        .descendants()
        .any(|n| (n.is_comment() || n.is_pi()) && n.range().start < root_end)
    {
        refusals.push("restricted-xml");
    }
    if root
        .children()
        .any(|n| n.is_text() && !n.text().unwrap_or("").trim_matches(is_space).is_empty())
    {
        refusals.push("bad-format");
    }
    if !namespace_well_formed(text)? || !references_allowed(text) {
        refusals.push("not-well-formed");
    }
    // A stanza is forwarded on its own: one with an unprefixed name must parse alone,
    // without the header's declarations.
    if root.children().any(|n| {
        n.is_element()
            && !qname(&text[n.range()]).contains(':')
            && matches!(
                roxmltree::Document::parse(&text[n.range()]),
                Err(roxmltree::Error::UnknownNamespace(..))
            )
    }) {
        refusals.push("bad-namespace-prefix");
    }
    if !refusals.is_empty() {
        return Some(Err(refusals));
    }

    let root_attrs = start_tag_attributes(root_src);
    let prefix = qname(root_src).split_once(':').map(|(p, _)| p.to_owned());
    let value = |name: &str| root.attribute(name).map(normalize);
    // Only an unprefixed `xmlns` declares the default namespace (Namespaces in XML 1.0 §3);
    // roxmltree also takes `xml:xmlns='…'` for one, which is an ordinary attribute.
    let declares_default = root_attrs
        .iter()
        .any(|(p, l, _)| p.is_empty() && l == "xmlns");
    let default_ns = prefix
        .as_ref()
        .filter(|_| declares_default)
        .and_then(|_| root.lookup_namespace_uri(None).map(normalize));
    let mut prefixes: Vec<(String, String)> = root_attrs
        .iter()
        .filter(|(p, l, _)| p == "xmlns" && Some(l) != prefix.as_ref())
        .map(|(_, l, _)| {
            let uri = root.lookup_namespace_uri(Some(l)).unwrap_or("");
            (l.clone(), normalize(uri))
        })
        .collect();
    prefixes.sort();
    let mut frames = vec![Seen::Open {
        to: value("to"),
        from: value("from"),
        id: value("id"),
        version: value("version"),
        default_ns,
        prefixes,
    }];
    for child in root.children().filter(|n| n.is_element()) {
        let src = &text[child.range()];
        let xmlns = start_tag_attributes(src)
            .iter()
            .any(|(p, l, _)| p.is_empty() && l == "xmlns")
            .then(|| child.lookup_namespace_uri(None).unwrap_or("").to_owned());
        let attr = |name: &str| child.attribute(name).map(normalize);
        frames.push(Seen::Stanza {
            bytes: src.as_bytes().to_vec(),
            name: qname(src).to_owned(),
            to: attr("to"),
            from: attr("from"),
            id: attr("id"),
            type_: attr("type"),
            xmlns: xmlns.map(|x| normalize(&x)),
        });
    }
    frames.push(Seen::Close);
    Some(Ok(frames))
}

/// What roxmltree takes and Namespaces in XML 1.0 does not: a prefix undeclared
/// (`xmlns:p=''`, allowed only in 1.1) or the prefix `xmlns` declared (§3). `Some(false)`:
/// the reader must refuse the stream. `None` where roxmltree reads something else than
/// what was written: `p:xmlns='…'` taken for a default declaration, whatever `p` is.
fn namespace_well_formed(text: &str) -> Option<bool> {
    let mut well_formed = true;
    for token in xmlparser::Tokenizer::from(text) {
        if let Ok(xmlparser::Token::Attribute {
            prefix,
            local,
            value,
            ..
        }) = token
        {
            match (prefix.as_str(), local.as_str()) {
                ("xmlns", "xmlns") => well_formed = false,
                ("xmlns", _) if value.as_str().is_empty() => well_formed = false,
                ("" | "xmlns" | "xml", _) => {}
                (_, "xmlns") => return None,
                _ => {}
            }
        }
    }
    Some(well_formed)
}

/// Whether every character reference in text and attribute values names a character XML
/// allows (XML 1.0 §4.1, "Legal Character"): roxmltree takes one past U+10FFFF.
fn references_allowed(text: &str) -> bool {
    let allowed = |c: u32| matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
    let check = |raw: &str| {
        raw.split("&#").skip(1).all(|rest| {
            let Some((digits, _)) = rest.split_once(';') else {
                return true;
            };
            let value = match digits.strip_prefix('x') {
                Some(hex) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()
                }
                None if digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse::<u32>().ok(),
                _ => None,
            };
            value.is_some_and(allowed)
        })
    };
    xmlparser::Tokenizer::from(text).all(|token| match token {
        Ok(xmlparser::Token::Text { text }) => check(text.as_str()),
        Ok(xmlparser::Token::Attribute { value, .. }) => check(value.as_str()),
        _ => true,
    })
}

/// Leaves out what this target does not compare, and what roxmltree accepts although it is
/// not well-formed or not namespace-well-formed (the reader rightly refuses those): an XML
/// declaration other than UTF-8 XML 1.0 (the reader answers those itself), a name with an
/// empty prefix (`<:a>`, `:to='x'`), a repeated attribute (roxmltree lets `xmlns` repeat),
/// `<?xml` that is no declaration.
fn plain_enough(text: &str) -> bool {
    let mut names = std::collections::HashSet::new();
    for (i, token) in xmlparser::Tokenizer::from(text).enumerate() {
        match token {
            Ok(xmlparser::Token::Declaration {
                version, encoding, ..
            }) => {
                if i != 0
                    || version.as_str() != "1.0"
                    || encoding.is_some_and(|e| !e.as_str().eq_ignore_ascii_case("utf-8"))
                {
                    return false;
                }
            }
            // `<?xml` that is no declaration: roxmltree takes it for a processing instruction.
            Ok(xmlparser::Token::ProcessingInstruction { target, .. })
                if target.as_str().eq_ignore_ascii_case("xml") =>
            {
                return false
            }
            Ok(xmlparser::Token::ElementStart { span, .. }) => {
                if span.as_str().starts_with("<:") {
                    return false;
                }
                names.clear();
            }
            Ok(xmlparser::Token::ElementEnd { span, .. }) if span.as_str().starts_with("</:") => {
                return false
            }
            Ok(xmlparser::Token::Attribute {
                span,
                prefix,
                local,
                ..
            }) => {
                if span.as_str().starts_with(':')
                    || !names.insert((prefix.as_str(), local.as_str()))
                {
                    return false;
                }
            }
            Ok(_) => {}
            Err(_) => return !text.trim_start().starts_with("<?xml") || i > 0,
        }
    }
    true
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The reader's frames with attribute values normalized as [`normalize`] does, and the
/// header's prefixes sorted.
fn normalized(frames: Vec<Seen>) -> Vec<Seen> {
    let n = |v: Option<String>| v.map(|v| normalize(&v));
    frames
        .into_iter()
        .map(|f| match f {
            Seen::Open {
                to,
                from,
                id,
                version,
                default_ns,
                mut prefixes,
            } => {
                for p in &mut prefixes {
                    p.1 = normalize(&p.1);
                }
                prefixes.sort();
                Seen::Open {
                    to: n(to),
                    from: n(from),
                    id: n(id),
                    version: n(version),
                    default_ns: n(default_ns),
                    prefixes,
                }
            }
            Seen::Stanza {
                bytes,
                name,
                to,
                from,
                id,
                type_,
                xmlns,
            } => Seen::Stanza {
                bytes,
                name,
                to: n(to),
                from: n(from),
                id: n(id),
                type_: n(type_),
                xmlns: n(xmlns),
            },
            Seen::Close => Seen::Close,
        })
        .collect()
}

/// `data` is a whole stream. Checks, when roxmltree accepts it as a document whose root is
/// the stream element: the reader refuses it when it holds a comment or processing
/// instruction or character data between stanzas, and otherwise yields the header, each
/// first-level element with its exact bytes and routing attributes, and the close, as
/// roxmltree sees them; also when the same bytes are split at derived points.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(want) = expected(text) else {
        return;
    };
    // A byte order mark before the header: the reader may refuse it at once (no frame), or
    // read the stream as roxmltree does; it must not frame the bytes after the header wrong.
    let bom = text.starts_with('\u{feff}');
    if text.contains('\u{feff}') && super::known("bom") {
        return;
    }
    // Limits out of the way: this target compares parsing, not limits.
    let limits = Limits {
        max_stanza_bytes: usize::MAX / 2,
        max_depth: usize::MAX / 2,
    };
    let seed = data
        .iter()
        .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(*b));
    for (how, f) in [
        ("whole", feed_split(data, limits, std::iter::empty())),
        ("split", feed_split(data, limits, split_lengths(seed, 16))),
    ] {
        if bom && f.frames.is_empty() && matches!(f.end, End::Error(_)) {
            continue;
        }
        match &want {
            Ok(frames) => {
                assert_eq!(
                    f.end,
                    End::NeedMore { held: 0 },
                    "({how}) the reader refused a well-formed stream after {:?}",
                    f.frames
                );
                assert_eq!(
                    &normalized(f.frames),
                    frames,
                    "({how}) the reader's frames differ from roxmltree's"
                );
            }
            Err(conditions) => assert!(
                matches!(&f.end, End::Error(c) if conditions.contains(&c.as_str())),
                "({how}) the reader must refuse this stream with one of {conditions:?}, not {:?}; \
                 frames {:?}",
                f.end,
                f.frames
            ),
        }
    }
}
