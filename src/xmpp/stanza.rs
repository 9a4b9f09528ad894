//! A first-level element of a stream, held as the bytes received plus the attributes routing
//! needs; and the few elements we write ourselves (headers, stream errors, error replies).

use bytes::Bytes;
use quick_xml::escape::{escape, unescape};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::error::{AppCondition, StanzaCondition, StreamCondition, StreamError};
use super::ns;
use super::wellformed::attr_value;

/// The three stanza kinds of RFC 6120 §8, or another first-level element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    Presence,
    Iq,
    /// Any other element (`handshake`, `db:result`, `stream:error`, ...).
    Other,
}

/// A first-level element as received: its exact bytes and its routing attributes, unescaped.
#[derive(Debug, Clone)]
pub struct Stanza {
    /// The whole element, start tag to end tag, as the peer sent it.
    pub bytes: Bytes,
    /// The qualified name as written (`message`, `db:result`, `stream:error`).
    pub name: String,
    pub kind: Kind,
    pub to: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub type_: Option<String>,
    /// A default namespace declared on the element itself, if any.
    pub xmlns: Option<String>,
    /// How many times it went out again because a stream died before the peer acknowledged
    /// it (XEP-0198): bounded, so a stanza that kills its streams is returned, not looped.
    pub resends: u8,
    /// Its share of the credit of the connection it was read from, held until it leaves
    /// xfed (written, returned or dropped): that connection stops reading while too much
    /// of what it read is still here ([`super::credit`]).
    pub credit: Option<super::credit::Held>,
    /// Set on a stanza another node of the cluster handed over: fires when the stanza
    /// leaves this node, so that node may forget it ([`super::receipt`]).
    pub receipt: Option<std::sync::Arc<super::receipt::Receipt>>,
    /// When its reader had it whole (none for what xfed makes itself): the start of its
    /// transit through the node ([`super::transit`]).
    pub read_at: Option<std::time::Instant>,
}

impl Stanza {
    /// Parses the start tag of a first-level element. The bytes are filled in once the
    /// element is complete.
    pub(crate) fn from_start(e: &BytesStart<'_>) -> Result<Self, StreamError> {
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let kind = match name.as_str() {
            "message" => Kind::Message,
            "presence" => Kind::Presence,
            "iq" => Kind::Iq,
            _ => Kind::Other,
        };
        let mut s = Stanza {
            bytes: Bytes::new(),
            name,
            kind,
            to: None,
            from: None,
            id: None,
            type_: None,
            xmlns: None,
            resends: 0,
            credit: None,
            receipt: None,
            read_at: None,
        };
        for attr in e.attributes().with_checks(true) {
            let attr =
                attr.map_err(|e| StreamError::new(StreamCondition::NotWellFormed, e.to_string()))?;
            let value = attr_value(&attr)?;
            let slot = match attr.key.as_ref() {
                b"to" => &mut s.to,
                b"from" => &mut s.from,
                b"id" => &mut s.id,
                b"type" => &mut s.type_,
                b"xmlns" => &mut s.xmlns,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        Ok(s)
    }

    /// Namespace fix-up for forwarding: a stanza that declares its stream's content
    /// namespace itself (`<message xmlns='jabber:component:accept'>`) has the declaration
    /// removed, so on the next stream it inherits that stream's namespace (`jabber:server`
    /// on s2s) instead of carrying the wrong one. Stanzas without it — nearly all — are
    /// left untouched, bytes and all.
    pub fn drop_default_ns(&mut self) {
        if self.xmlns.is_none() {
            return;
        }
        if let Some((from, to)) = default_ns_span(&self.bytes) {
            let mut out = Vec::with_capacity(self.bytes.len());
            out.extend_from_slice(&self.bytes[..from]);
            out.extend_from_slice(&self.bytes[to..]);
            self.bytes = Bytes::from(out);
            self.xmlns = None;
        }
    }

    /// Is this an error stanza? Errors are never answered with errors (RFC 6120 §8.3.1).
    pub fn is_error(&self) -> bool {
        self.type_.as_deref() == Some("error")
    }

    /// The character data directly inside the element (e.g. a handshake digest or a
    /// dialback key), entities resolved. Not for the hot path.
    pub fn text(&self) -> String {
        let mut rd = Reader::from_reader(&self.bytes[..]);
        let mut depth = 0usize;
        let mut out = String::new();
        loop {
            match rd.read_event() {
                Ok(Event::Start(_)) => depth += 1,
                Ok(Event::End(_)) => depth = depth.saturating_sub(1),
                Ok(Event::Text(t)) if depth == 1 => {
                    out.push_str(&String::from_utf8_lossy(&t));
                }
                Ok(Event::CData(t)) if depth == 1 => {
                    out.push_str(&String::from_utf8_lossy(&t));
                }
                Ok(Event::GeneralRef(r)) if depth == 1 => {
                    let entity = format!("&{};", String::from_utf8_lossy(&r));
                    if let Ok(resolved) = unescape(&entity) {
                        out.push_str(&resolved);
                    }
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out
    }

    /// The value of attribute `name` on the element itself, unescaped. Not for the hot path.
    pub fn attr(&self, name: &str) -> Option<String> {
        let mut rd = Reader::from_reader(&self.bytes[..]);
        match rd.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => e
                .attributes()
                .flatten()
                .find(|a| a.key.as_ref() == name.as_bytes())
                .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned())),
            _ => None,
        }
    }

    /// The reply that returns this stanza to its sender with `condition` (RFC 6120 §8.3):
    /// The empty result of an iq get (RFC 6120 §8.2.3): 'to' and 'from' swapped, same id.
    pub fn iq_result(&self) -> Stanza {
        let mut out = String::from("<iq type='result'");
        push_attr(&mut out, "from", self.to.as_deref());
        push_attr(&mut out, "to", self.from.as_deref());
        push_attr(&mut out, "id", self.id.as_deref());
        out.push_str("/>");
        Stanza {
            bytes: Bytes::from(out),
            name: "iq".into(),
            kind: Kind::Iq,
            to: self.from.clone(),
            from: self.to.clone(),
            id: self.id.clone(),
            type_: Some("result".to_owned()),
            xmlns: None,
            resends: 0,
            credit: None,
            receipt: None,
            read_at: None,
        }
    }

    /// 'to' and 'from' swapped, same id, type 'error'. `None` for an error stanza, which is
    /// never answered with an error.
    pub fn error_reply(&self, condition: StanzaCondition, text: &str) -> Option<Stanza> {
        if self.is_error() || self.kind == Kind::Other {
            return None;
        }
        let mut out = String::with_capacity(256 + text.len());
        out.push('<');
        out.push_str(&self.name);
        push_attr(&mut out, "from", self.to.as_deref());
        push_attr(&mut out, "to", self.from.as_deref());
        push_attr(&mut out, "id", self.id.as_deref());
        out.push_str(" type='error'><error type='");
        out.push_str(condition.error_type().as_str());
        out.push_str("'><");
        out.push_str(condition.as_str());
        out.push_str(" xmlns='");
        out.push_str(ns::XMPP_STANZAS);
        out.push_str("'/>");
        if !text.is_empty() {
            out.push_str("<text xmlns='");
            out.push_str(ns::XMPP_STANZAS);
            out.push_str("'>");
            out.push_str(&escape(text));
            out.push_str("</text>");
        }
        out.push_str("</error></");
        out.push_str(&self.name);
        out.push('>');
        Some(Stanza {
            bytes: Bytes::from(out),
            name: self.name.clone(),
            kind: self.kind,
            to: self.from.clone(),
            from: self.to.clone(),
            id: self.id.clone(),
            type_: Some("error".to_owned()),
            xmlns: None,
            resends: 0,
            credit: None,
            receipt: None,
            read_at: None,
        })
    }
}

fn push_attr(out: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.push(' ');
        out.push_str(name);
        out.push_str("='");
        out.push_str(&escape(v));
        out.push('\'');
    }
}

/// Our stream header (RFC 6120 §4.7), with the given content namespace and attributes.
pub fn stream_header(content_ns: &str, from: Option<&str>, to: Option<&str>, id: &str) -> String {
    let mut out = String::with_capacity(200);
    out.push_str("<?xml version='1.0'?><stream:stream xmlns:stream='");
    out.push_str(ns::STREAMS);
    out.push_str("' xmlns='");
    out.push_str(content_ns);
    out.push('\'');
    push_attr(&mut out, "from", from);
    push_attr(&mut out, "to", to);
    push_attr(&mut out, "id", Some(id));
    out.push('>');
    out
}

/// A stream error followed by the stream's close (RFC 6120 §4.9.1).
pub fn stream_error(err: &StreamError) -> String {
    let app = err.app.map(AppCondition::element).unwrap_or_default();
    format!(
        "<stream:error><{cond} xmlns='{ns}'/><text xmlns='{ns}'>{text}</text>{app}</stream:error></stream:stream>",
        cond = err.condition.as_str(),
        ns = ns::XMPP_STREAMS,
        text = escape(&err.text),
    )
}

/// The stream's close.
pub const STREAM_CLOSE: &str = "</stream:stream>";

/// The byte range of ` xmlns='…'` (whitespace before it included) in the start tag of
/// `bytes`, if the start tag declares a default namespace.
fn default_ns_span(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    let mut quote = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'>' => return None,
            None if b.is_ascii_whitespace() => {
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                let rest = &bytes[i..];
                let name_end = rest
                    .iter()
                    .position(|c| *c == b'=' || c.is_ascii_whitespace())
                    .unwrap_or(rest.len());
                if &rest[..name_end] == b"xmlns" {
                    let mut j = i + name_end;
                    while j < bytes.len() && (bytes[j].is_ascii_whitespace() || bytes[j] == b'=') {
                        j += 1;
                    }
                    let q = *bytes.get(j)?;
                    let close = bytes[j + 1..].iter().position(|c| *c == q)? + j + 1;
                    return Some((start, close + 1));
                }
                continue;
            }
            None => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod fixup_tests {
    use super::default_ns_span;

    fn fixed(s: &str) -> String {
        let b = s.as_bytes();
        match default_ns_span(b) {
            Some((f, t)) => format!("{}{}", &s[..f], &s[t..]),
            None => s.to_owned(),
        }
    }

    #[test]
    fn only_the_stanzas_own_default_namespace_goes() {
        assert_eq!(
            fixed("<message xmlns='jabber:component:accept' to='a@b'><body/></message>"),
            "<message to='a@b'><body/></message>"
        );
        assert_eq!(
            fixed("<iq to='a' xmlns = \"jabber:component:accept\" id='1'/>"),
            "<iq to='a' id='1'/>"
        );
        // Prefixed declarations, look-alike values and children stay.
        let keep =
            "<message xmlns:x='urn:x' to='xmlns=&apos;y&apos;'><body xmlns='urn:b'/></message>";
        assert_eq!(fixed(keep), keep);
        assert_eq!(fixed("<presence/>"), "<presence/>");
    }
}
