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
