//! The well-formedness rules quick-xml does not apply itself, checked on the tokens the
//! reader gets from it: XML 1.0 names (§2.3) that are also qualified names (Namespaces in
//! XML §4: XMPP streams are namespace-well-formed), whitespace between attributes (§3.1),
//! attribute values and character references that stay within XML's characters (§2.2, §4.1),
//! no `]]>` in character data (§2.4), and RFC 6120 §11's restrictions (UTF-8 only, no
//! entity but the five predefined).

use std::borrow::Cow;

use quick_xml::errors::Error as XmlError;
use quick_xml::escape::EscapeError;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::BytesStart;

use super::error::{StreamCondition as C, StreamError};

pub(crate) fn nwf(e: impl std::fmt::Display) -> StreamError {
    StreamError::new(C::NotWellFormed, e.to_string())
}

/// An unknown entity is restricted XML; any other broken reference is not well-formed.
pub(crate) fn escape_error(e: XmlError) -> StreamError {
    match e {
        XmlError::Escape(EscapeError::UnrecognizedEntity(_, name)) => StreamError::new(
            C::RestrictedXml,
            format!("entity &{name}; is not one of the five predefined entities"),
        ),
        other => nwf(other),
    }
}

/// An attribute's value, unescaped: no `<` in it, no unknown entity, and no character
/// reference to a character XML does not allow (what we write with such a value would not
/// be XML).
pub(crate) fn attr_value<'a>(attr: &'a Attribute<'a>) -> Result<Cow<'a, str>, StreamError> {
    if attr.value.contains(&b'<') {
        return Err(StreamError::new(
            C::NotWellFormed,
            "'<' in an attribute value",
        ));
    }
    let value = attr.unescape_value().map_err(escape_error)?;
    if attr.value.contains(&b'&') && !value.chars().all(is_xml_char) {
        return Err(StreamError::new(
            C::NotWellFormed,
            "character reference to a character XML does not allow",
        ));
    }
    Ok(value)
}

/// Checks the attributes of a nested element: names, no duplicates, values as
/// [`attr_value`] wants them. Answers [`check_names`]'s answer.
pub(crate) fn check_attrs(e: &BytesStart<'_>) -> Result<Prefixes, StreamError> {
    let prefixes = check_names(e)?;
    for attr in e.attributes().with_checks(true) {
        let attr = attr.map_err(nwf)?;
        attr_value(&attr)?;
    }
    Ok(prefixes)
}

/// The namespace the prefix `xml` is bound to by definition.
pub(crate) const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of the `xmlns` attributes themselves, never declared.
pub(crate) const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Whether a default declaration's raw value may name the xml or the xmlns namespace:
/// either one, or escaped. The usual value is neither, and needs no unescaping.
pub(crate) fn may_be_reserved(raw: &[u8]) -> bool {
    raw.contains(&b'&') || raw == XML_NS.as_bytes() || raw == XMLNS_NS.as_bytes()
}

/// Whether an element's names need the namespace scope's look (`namespaces`): a prefix
/// used or declared, or a default declaration that may name a reserved namespace. Most
/// elements need none, and are spared a second pass over their attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefixes {
    None,
    Some,
}

/// Most attributes one element may carry. quick-xml finds a repeated attribute by
/// comparing each with every one before it, so a start tag of 45,000 short attributes
/// (440 KB, under the stanza limit) cost 2 s of a core; no XMPP element comes near this.
pub(crate) const MAX_ATTRIBUTES: usize = 128;

/// Element and attribute names must be qualified XML names; attributes must be separated
/// by whitespace (quick-xml takes `a='1'b='2'`); at most [`MAX_ATTRIBUTES`] of them, counted
/// before anything compares them with each other (`policy-violation`).
pub(crate) fn check_names(e: &BytesStart<'_>) -> Result<Prefixes, StreamError> {
    let bad = |name: &[u8]| {
        StreamError::new(
            C::NotWellFormed,
            format!("{:?} is not an XML name", String::from_utf8_lossy(name)),
        )
    };
    // Namespaces in XML §3: the prefix `xmlns` only declares; no element is named with it,
    // and it is never declared itself.
    let reserved = |what: &[u8]| {
        StreamError::new(
            C::NotWellFormed,
            format!(
                "{:?} uses the reserved prefix 'xmlns' (Namespaces in XML §3)",
                String::from_utf8_lossy(what)
            ),
        )
    };
    let name = e.name();
    if !is_qname(name.as_ref()) {
        return Err(bad(name.as_ref()));
    }
    if name.as_ref().starts_with(b"xmlns:") {
        return Err(reserved(name.as_ref()));
    }
    let mut prefixes = if name.as_ref().contains(&b':') {
        Prefixes::Some
    } else {
        Prefixes::None
    };
    let tag: &[u8] = e;
    for (n, attr) in e.attributes().with_checks(false).flatten().enumerate() {
        if n == MAX_ATTRIBUTES {
            return Err(StreamError::new(
                C::PolicyViolation,
                format!("more than {MAX_ATTRIBUTES} attributes on one element"),
            ));
        }
        let key = attr.key.as_ref();
        if !is_qname(key) {
            return Err(bad(key));
        }
        if key == b"xmlns:xmlns" {
            return Err(reserved(key));
        }
        if key.contains(&b':') || (key == b"xmlns" && may_be_reserved(&attr.value)) {
            prefixes = Prefixes::Some;
        }
        let at = (key.as_ptr() as usize).wrapping_sub(tag.as_ptr() as usize);
        if at > 0 && at <= tag.len() && !matches!(tag[at - 1], b' ' | b'\t' | b'\r' | b'\n') {
            return Err(StreamError::new(
                C::NotWellFormed,
                "attributes must be separated by whitespace",
            ));
        }
    }
    Ok(prefixes)
}

/// A qualified name: one XML name without a colon, or two joined by one (Namespaces in XML
/// §4: `prefix:local`).
fn is_qname(name: &[u8]) -> bool {
    let mut parts = name.splitn(3, |b| *b == b':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(one), None, None) => is_ncname(one),
        (Some(prefix), Some(local), None) => is_ncname(prefix) && is_ncname(local),
        _ => false,
    }
}

/// An XML name without colons (XML 1.0 §2.3, Namespaces in XML's NCName). ASCII is checked
/// byte by byte; a name with other characters by the production's ranges.
fn is_ncname(name: &[u8]) -> bool {
    if name.is_ascii() {
        return match name.split_first() {
            Some((first, tail)) => {
                (first.is_ascii_alphabetic() || *first == b'_')
                    && tail
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            }
            None => false,
        };
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

/// XML 1.0 §2.3 NameStartChar, colon excluded.
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 §2.3 NameChar, colon excluded.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// XML 1.0 §2.4: `]]>` may not appear in character data.
pub(crate) fn check_text(text: &[u8]) -> Result<(), StreamError> {
    if memchr::memmem::find(text, b"]]>").is_some() {
        return Err(StreamError::new(
            C::NotWellFormed,
            "']]>' in character data (XML 1.0 §2.4)",
        ));
    }
    Ok(())
}

/// Checks a `&name;` reference in text: one of the five predefined entities, or a character
/// reference to a character XML allows.
pub(crate) fn check_ref(name: &[u8]) -> Result<(), StreamError> {
    if let Some(num) = name.strip_prefix(b"#") {
        // XML 1.0 §4.1: `&#` digits `;` or `&#x` hex digits `;`, nothing else (Rust's
        // number parsing would also take a sign: `&#+206;`).
        let parsed = match num.strip_prefix(b"x") {
            Some(hex) if !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit) => {
                std::str::from_utf8(hex)
                    .ok()
                    .and_then(|s| u32::from_str_radix(s, 16).ok())
            }
            None if !num.is_empty() && num.iter().all(u8::is_ascii_digit) => {
                std::str::from_utf8(num).ok().and_then(|s| s.parse().ok())
            }
            _ => None,
        };
        return match parsed.and_then(char::from_u32) {
            Some(c) if is_xml_char(c) => Ok(()),
            _ => Err(StreamError::new(
                C::NotWellFormed,
                "character reference to a character XML does not allow",
            )),
        };
    }
    match name {
        b"amp" | b"lt" | b"gt" | b"quot" | b"apos" => Ok(()),
        _ => Err(StreamError::new(
            C::RestrictedXml,
            format!(
                "entity &{}; is not one of the five predefined entities",
                String::from_utf8_lossy(name)
            ),
        )),
    }
}

/// XML 1.0 §2.2 Char.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Every byte a peer sends is UTF-8 (RFC 6120 §11.6) and a character XML 1.0 allows.
pub(crate) fn check_chars(bytes: &[u8]) -> Result<(), StreamError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| StreamError::new(C::UnsupportedEncoding, "stream is not valid UTF-8"))?;
    if bytes
        .iter()
        .any(|b| *b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
        || text.contains(['\u{FFFE}', '\u{FFFF}'])
    {
        return Err(StreamError::new(
            C::NotWellFormed,
            "control character in the stream",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_xml_1_0_section_2_3_and_namespaces_section_4() {
        for good in [
            "message",
            "db:result",
            "_x",
            "a-b.c",
            "x1",
            "\u{e9}l\u{e9}ment",
            "a:\u{e9}",
        ] {
            assert!(is_qname(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            ":a",
            "a:",
            "a:b:c",
            "r127.0.0.1:0",
            "a b",
            "\u{EEFF}",
            "a\u{EEFF}",
            "\u{B7}a",
        ] {
            assert!(!is_qname(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn cdata_end_in_text_is_not_well_formed() {
        assert!(check_text(b"a ]] > b ] ]>").is_ok());
        assert!(check_text(b"x]]>y").is_err());
    }
}
