//! The prolog and the stream header: an XML declaration that may open the stream (XML 1.0
//! in UTF-8 only, RFC 6120 §11.5–11.6) and the `<stream:stream>` tag's attributes and
//! namespaces (§4.7–4.8).

use quick_xml::events::{BytesDecl, BytesStart};

use super::error::{StreamCondition as C, StreamError};
use super::ns;
use super::wellformed::{attr_value, check_names, nwf};

/// The attributes of the peer's stream header, RFC 6120 §4.7.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// The default (content) namespace declared on the header, e.g. `jabber:component:accept`.
    pub default_ns: Option<String>,
    /// Prefixed namespace declarations other than the stream prefix (e.g. `db`).
    pub prefixes: Vec<(String, String)>,
}

impl StreamHeader {
    /// The namespace bound to `prefix` on the header, if any.
    pub fn prefix_ns(&self, prefix: &str) -> Option<&str> {
        self.prefixes
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, ns)| ns.as_str())
    }

    /// Reads the header from its start tag: the root must be `stream` in the streams
    /// namespace, bound to the prefix it is written with (or the default one).
    pub(super) fn parse(e: &BytesStart<'_>) -> Result<StreamHeader, StreamError> {
        check_names(e)?;
        let name = e.name();
        let prefix = name.prefix().map(|p| p.as_ref().to_vec());
        if name.local_name().as_ref() != b"stream" {
            return Err(StreamError::new(
                C::InvalidNamespace,
                "the root element must be <stream:stream>",
            ));
        }
        let mut h = StreamHeader::default();
        let mut stream_ns = None;
        for attr in e.attributes().with_checks(true) {
            let attr = attr.map_err(nwf)?;
            let value = attr_value(&attr)?.into_owned();
            let key = attr.key.as_ref();
            match key {
                b"to" => h.to = Some(value),
                b"from" => h.from = Some(value),
                b"id" => h.id = Some(value),
                b"version" => h.version = Some(value),
                b"xmlns" if prefix.is_none() => stream_ns = Some(value),
                b"xmlns" => h.default_ns = Some(value),
                _ => {
                    if let Some(p) = key.strip_prefix(b"xmlns:") {
                        if Some(p) == prefix.as_deref() {
                            stream_ns = Some(value);
                        } else {
                            h.prefixes
                                .push((String::from_utf8_lossy(p).into_owned(), value));
                        }
                    }
                }
            }
        }
        match stream_ns {
            None => Err(StreamError::new(
                C::BadNamespacePrefix,
                "the stream prefix is not declared",
            )),
            Some(n) if n != ns::STREAMS => Err(StreamError::new(
                C::InvalidNamespace,
                format!("stream namespace must be {}, not {n}", ns::STREAMS),
            )),
            Some(_) => Ok(h),
        }
    }
}

/// The XML declaration before the header, found at `start` in the stream: only at its very
/// start, XML 1.0, UTF-8 if an encoding is named.
pub(super) fn check_declaration(decl: &BytesDecl<'_>, start: usize) -> Result<(), StreamError> {
    if start != 0 {
        return Err(StreamError::new(
            C::NotWellFormed,
            "XML declaration not at the start",
        ));
    }
    if !declaration_syntax(decl) {
        return Err(StreamError::new(
            C::NotWellFormed,
            "an XML declaration holds version, then maybe encoding and standalone, and              nothing else (XML 1.0 §2.8)",
        ));
    }
    // RFC 6120 §11: an XMPP stream is XML 1.0.
    let version = decl.version().map_err(nwf)?;
    if version.as_ref() != b"1.0" {
        return Err(StreamError::new(
            C::UnsupportedVersion,
            format!(
                "XML version {} is not supported: XMPP streams are XML 1.0",
                String::from_utf8_lossy(&version)
            ),
        ));
    }
    if let Some(enc) = decl.encoding() {
        let enc = enc.map_err(nwf)?;
        if !enc.eq_ignore_ascii_case(b"utf-8") {
            return Err(StreamError::new(
                C::UnsupportedEncoding,
                format!("encoding {} is not UTF-8", String::from_utf8_lossy(&enc)),
            ));
        }
    }
    Ok(())
}

/// XML 1.0 §2.8's `XMLDecl` between `<?` and `?>`: `xml`, then `version`, `encoding` and
/// `standalone` in that order (only the first required), each after whitespace, as
/// `name Eq quoted-value`, then optional whitespace. quick-xml reads a declaration up to
/// the first `?>` and takes whatever pseudo-attributes it finds.
fn declaration_syntax(content: &[u8]) -> bool {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let trim = |s: &[u8]| -> usize { s.iter().take_while(|b| space(b)).count() };
    let Some(mut rest) = content.strip_prefix(b"xml") else {
        return false;
    };
    let mut names: &[&[u8]] = &[b"version", b"encoding", b"standalone"];
    let mut seen = 0;
    loop {
        let spaces = trim(rest);
        rest = &rest[spaces..];
        if rest.is_empty() {
            return seen > 0;
        }
        if spaces == 0 {
            return false;
        }
        let len = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        let Some(at) = names.iter().position(|n| *n == &rest[..len]) else {
            return false;
        };
        if seen == 0 && at != 0 {
            return false;
        }
        names = &names[at + 1..];
        seen += 1;
        rest = &rest[len..];
        rest = &rest[trim(rest)..];
        let Some(after) = rest.strip_prefix(b"=") else {
            return false;
        };
        rest = &after[trim(after)..];
        let Some((&quote, value)) = rest
            .split_first()
            .filter(|(q, _)| matches!(q, b'\'' | b'"'))
        else {
            return false;
        };
        let Some(end) = value.iter().position(|b| *b == quote) else {
            return false;
        };
        let (value, after) = (&value[..end], &value[end + 1..]);
        let fine = match len {
            // VersionNum: '1.' [0-9]+ (which version is supported is checked apart).
            7 => {
                value.starts_with(b"1.")
                    && value.len() > 2
                    && value[2..].iter().all(u8::is_ascii_digit)
            }
            // EncName: [A-Za-z] ([A-Za-z0-9._] | '-')*
            8 => {
                value.first().is_some_and(u8::is_ascii_alphabetic)
                    && value
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            }
            _ => value == b"yes" || value == b"no",
        };
        if !fine {
            return false;
        }
        rest = after;
    }
}
