//! Incremental reader of an XMPP stream: frames the byte stream into the stream header, each
//! first-level element (a stanza, or a protocol element such as `<handshake/>`), and the
//! stream's close, enforcing RFC 6120 §11's restricted XML and our size and depth limits.
//!
//! The reader never builds a tree. Each first-level element is cut out of the read buffer as
//! one [`Bytes`] (zero-copy) with its routing attributes parsed, so it can be forwarded as
//! received. quick-xml tokenizes; this module keeps the state across reads: how much of the
//! current element has been checked, and the names of its open elements. Only input up to the
//! last `>` is tokenized, so a token is never cut in half; bytes already checked are never
//! scanned again, so reading is linear in the input whatever way a peer splits it.
//!
//! The rules it applies live beside it: the prolog and header in `header`, restricted XML in
//! `restricted`, XML 1.0's token rules in `wellformed` and, for a token still arriving,
//! `markup`. What stays here (a little over 400 lines) is the framing state machine itself,
//! which reads best as one piece: the step, one handler per phase, and the decoder.

use bytes::BytesMut;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use tokio_util::codec::Decoder;

use super::error::{AppCondition, StreamCondition as C, StreamError};
use super::header::{check_declaration, StreamHeader};
use super::markup::{Partial, Place};
use super::namespaces::Scope;
use super::restricted::{forbidden, unfinished};
use super::stanza::Stanza;
use super::wellformed::{check_attrs, check_chars, check_names, check_ref, check_text, nwf};

/// U+FEFF in UTF-8: a byte order mark at the start of a document, else a character.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bounds on what one peer may make us hold in memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest first-level element (stanza) in bytes, stream header included in its own count.
    pub max_stanza_bytes: usize,
    /// Deepest nesting inside one stanza (the stanza element itself is depth 1).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 512 * 1024,
            max_depth: 64,
        }
    }
}

/// One unit read from the stream.
#[derive(Debug)]
pub enum Frame {
    /// The opening `<stream:stream ...>` tag.
    Open(StreamHeader),
    /// A complete first-level child of the stream.
    Stanza(Stanza),
    /// The closing `</stream:stream>` tag.
    Close,
}

/// Why reading stopped: the peer broke the protocol, or the socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the stream header: only an XML declaration and whitespace may come.
    Prolog,
    /// Inside the stream: first-level elements and whitespace.
    Open,
    /// After `</stream:stream>`: everything further is ignored.
    Closed,
}

/// A [`Decoder`] for one direction of an XMPP stream.
#[derive(Debug)]
pub struct StreamReader {
    limits: Limits,
    phase: Phase,
    /// The qualified name of the stream element, to recognize its end tag.
    stream_qname: Vec<u8>,
    /// Bytes at the start of the buffer already tokenized and checked; the buffer always
    /// starts at the current element (or at unread input between elements).
    scan: usize,
    /// Name ranges (in the buffer) of the open elements of the current stanza.
    open: Vec<(usize, usize)>,
    /// The current stanza's top element, parsed when its start tag was read.
    top: Option<Stanza>,
    /// The check of the token that began in the buffer but has not ended, so that one that
    /// can no longer be well-formed is refused at once instead of waited on.
    partial: Option<Partial>,
    /// Some of the stream was consumed: a byte order mark may only be its very first bytes.
    started: bool,
    /// The namespace prefixes in scope.
    scope: Scope,
}

enum Step {
    NeedMore,
    Header(StreamHeader, usize),
    Stanza(usize),
    Close,
}

impl StreamReader {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            phase: Phase::Prolog,
            stream_qname: Vec::new(),
            scan: 0,
            open: Vec::new(),
            top: None,
            partial: None,
            started: false,
            scope: Scope::default(),
        }
    }

    /// RFC 6120 §4.9.3.14's own example: `policy-violation` qualified by `stanza-too-big`.
    fn too_big(&self) -> StreamError {
        StreamError::new(
            C::PolicyViolation,
            format!(
                "stanza exceeds the limit of {} bytes",
                self.limits.max_stanza_bytes
            ),
        )
        .with_app(AppCondition::StanzaTooBig)
    }

    /// Tokenizes `data[self.scan..]` (which ends at a `>`), consuming whole tokens, until an
    /// element or the header completes or the data runs out.
    fn step(&mut self, data: &[u8]) -> Result<Step, StreamError> {
        // quick-xml takes U+FEFF at the start of its input for a byte order mark and skips
        // it, which would put our offsets three bytes off: it never sees one there.
        while data[self.scan..].starts_with(BOM) {
            match self.phase {
                Phase::Prolog => return Err(nwf("text before the stream header")),
                Phase::Open if self.open.is_empty() => {
                    return Err(StreamError::new(
                        C::BadFormat,
                        "character data between stanzas",
                    ))
                }
                // U+FEFF in a stanza's text is a character like any other.
                _ => self.scan += BOM.len(),
            }
        }
        let base = self.scan;
        let mut rd = Reader::from_reader(&data[base..]);
        // We match end tags against our own stack: a read resumes mid-stanza, where quick-xml
        // has not seen the start tags.
        rd.config_mut().check_end_names = false;
        rd.config_mut().allow_unmatched_ends = true;
        loop {
            let start = base + rd.buffer_position() as usize;
            let event = match rd.read_event() {
                Ok(event) => event,
                Err(e) => {
                    return unfinished(e, &data[start..], self.phase == Phase::Prolog)
                        .map(|()| Step::NeedMore)
                }
            };
            let end = base + rd.buffer_position() as usize;
            match &event {
                Event::Eof => return Ok(Step::NeedMore),
                // Text running to the end of what we have may continue in the next read.
                Event::Text(_) if end == data.len() => return Ok(Step::NeedMore),
                _ => {}
            }
            check_chars(&data[start..end])?;
            let step = match self.phase {
                Phase::Prolog => self.prolog(event, data, start)?,
                Phase::Open if self.open.is_empty() => self.between(event, data, end)?,
                Phase::Open => self.inside(event, data, end)?,
                Phase::Closed => return Ok(Step::NeedMore),
            };
            self.scan = end;
            match step {
                Some(Step::Header(h, _)) => return Ok(Step::Header(h, end)),
                Some(Step::Stanza(_)) => {
                    if end > self.limits.max_stanza_bytes {
                        return Err(self.too_big());
                    }
                    return Ok(Step::Stanza(end));
                }
                Some(other) => return Ok(other),
                None => {}
            }
        }
    }

    fn prolog(
        &mut self,
        event: Event<'_>,
        data: &[u8],
        start: usize,
    ) -> Result<Option<Step>, StreamError> {
        match event {
            Event::Decl(decl) => {
                check_declaration(&decl, start)?;
                Ok(None)
            }
            Event::Start(e) => {
                let header = StreamHeader::parse(&e)?;
                self.scope.header(&e)?;
                let name = e.name();
                let offset = name.as_ref().as_ptr() as usize - data.as_ptr() as usize;
                self.stream_qname = data[offset..offset + name.as_ref().len()].to_vec();
                self.phase = Phase::Open;
                Ok(Some(Step::Header(header, 0)))
            }
            Event::Text(t) if is_space(&t) => Ok(None),
            Event::Comment(_) | Event::DocType(_) | Event::PI(_) => Err(forbidden(&event)),
            _ => Err(StreamError::new(
                C::NotWellFormed,
                "expected a stream header (<stream:stream>)",
            )),
        }
    }

    /// An event between first-level elements.
    fn between(
        &mut self,
        event: Event<'_>,
        data: &[u8],
        end: usize,
    ) -> Result<Option<Step>, StreamError> {
        match event {
            Event::Start(e) => {
                let prefixes = check_names(&e)?;
                self.scope.enter(&e, prefixes, 0, true)?;
                self.top = Some(Stanza::from_start(&e)?);
                self.open.push(name_range(&e, data));
                Ok(None)
            }
            Event::Empty(e) => {
                let prefixes = check_names(&e)?;
                self.scope.enter(&e, prefixes, 0, false)?;
                self.top = Some(Stanza::from_start(&e)?);
                Ok(Some(Step::Stanza(end)))
            }
            Event::End(e) if e.name().as_ref() == self.stream_qname.as_slice() => {
                self.phase = Phase::Closed;
                Ok(Some(Step::Close))
            }
            Event::End(_) => Err(StreamError::new(
                C::NotWellFormed,
                "end tag with no matching start tag",
            )),
            Event::Text(t) if is_space(&t) => Ok(None),
            Event::Comment(_) | Event::DocType(_) | Event::PI(_) | Event::Decl(_) => {
                Err(forbidden(&event))
            }
            _ => Err(StreamError::new(
                C::BadFormat,
                "character data between stanzas",
            )),
        }
    }

    /// An event inside a first-level element.
    fn inside(
        &mut self,
        event: Event<'_>,
        data: &[u8],
        end: usize,
    ) -> Result<Option<Step>, StreamError> {
        match event {
            Event::Start(e) => {
                let prefixes = check_attrs(&e)?;
                self.scope.enter(&e, prefixes, self.open.len(), true)?;
                self.open.push(name_range(&e, data));
                if self.open.len() > self.limits.max_depth {
                    return Err(StreamError::new(
                        C::PolicyViolation,
                        format!(
                            "elements nested deeper than {} levels",
                            self.limits.max_depth
                        ),
                    ));
                }
                Ok(None)
            }
            Event::Empty(e) => {
                let prefixes = check_attrs(&e)?;
                self.scope.enter(&e, prefixes, self.open.len(), false)?;
                Ok(None)
            }
            Event::End(e) => {
                // Invariant: `inside` is only called while an element is open.
                let (at, len) = self.open.pop().expect("an open element");
                self.scope.leave(self.open.len());
                if e.name().as_ref() != &data[at..at + len] {
                    return Err(StreamError::new(
                        C::NotWellFormed,
                        format!(
                            "end tag </{}> does not match <{}>",
                            String::from_utf8_lossy(e.name().as_ref()),
                            String::from_utf8_lossy(&data[at..at + len])
                        ),
                    ));
                }
                Ok(self.open.is_empty().then_some(Step::Stanza(end)))
            }
            Event::GeneralRef(r) => {
                check_ref(&r)?;
                Ok(None)
            }
            Event::Text(t) => {
                check_text(&t)?;
                Ok(None)
            }
            Event::CData(_) => Ok(None),
            Event::Comment(_) | Event::DocType(_) | Event::PI(_) | Event::Decl(_) => {
                Err(forbidden(&event))
            }
            Event::Eof => Ok(None),
        }
    }
}

impl Decoder for StreamReader {
    type Item = Frame;
    type Error = ReadError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ReadError> {
        if self.phase == Phase::Closed {
            buf.clear();
            return Ok(None);
        }
        if self.open.is_empty() {
            self.scan = 0;
        }
        // Before anything else, so that what follows the mark is read the same whether it
        // came with it or in a later read.
        if !self.started && self.scan == 0 {
            if buf.len() < BOM.len() && BOM.starts_with(buf) {
                // Perhaps a byte order mark, split by the network: wait for the rest.
                return Ok(None);
            }
            if buf.starts_with(BOM) {
                // A byte order mark may open a UTF-8 document (XML 1.0 §4.3.3), as its very
                // first bytes only: anywhere later U+FEFF is a character, text before the
                // header.
                let _ = buf.split_to(BOM.len());
                self.partial = None;
                self.started = true;
            }
        }
        if self.open.is_empty() {
            // Whitespace between stanzas (keepalives) is consumed, never kept.
            let ws = buf.iter().take_while(|b| is_space_byte(**b)).count();
            if ws > 0 {
                let _ = buf.split_to(ws);
                self.partial = None;
                self.started = true;
            }
        }
        if buf.len() <= self.scan {
            return Ok(None);
        }
        if self.phase == Phase::Prolog && buf.len() >= 2 && (buf[0] == 0 || buf[1] == 0) {
            return Err(StreamError::new(C::UnsupportedEncoding, "stream is not UTF-8").into());
        }
        let Some(last_gt) = memchr::memrchr(b'>', &buf[self.scan..]) else {
            return self.need_more(buf);
        };
        let end = self.scan + last_gt + 1;
        match self.step(&buf[..end])? {
            Step::NeedMore => self.need_more(buf),
            Step::Header(header, len) => {
                let _ = buf.split_to(len);
                self.started = true;
                self.scan = 0;
                self.partial = None;
                Ok(Some(Frame::Open(header)))
            }
            Step::Stanza(len) => {
                let bytes = buf.split_to(len).freeze();
                self.scan = 0;
                self.partial = None;
                // Invariant: `step` only reports a stanza after parsing its top element.
                let mut stanza = self.top.take().expect("top element parsed");
                stanza.bytes = bytes;
                stanza.read_at = Some(std::time::Instant::now());
                Ok(Some(Frame::Stanza(stanza)))
            }
            Step::Close => {
                buf.clear();
                Ok(Some(Frame::Close))
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ReadError> {
        // A peer that hangs up mid-stanza loses that stanza: there is nothing to answer.
        let frame = self.decode(buf)?;
        if frame.is_none() {
            buf.clear();
        }
        Ok(frame)
    }
}

impl StreamReader {
    fn need_more(&mut self, buf: &BytesMut) -> Result<Option<Frame>, ReadError> {
        if buf.len() > self.limits.max_stanza_bytes {
            return Err(self.too_big().into());
        }
        let rest = &buf[self.scan..];
        let rest = &rest[rest.iter().take_while(|b| is_space_byte(**b)).count()..];
        if self.open.is_empty() && rest.first().is_some_and(|b| *b != b'<') {
            let (condition, what) = match self.phase {
                Phase::Prolog => (C::NotWellFormed, "text before the stream header"),
                _ => (C::BadFormat, "character data between stanzas"),
            };
            return Err(StreamError::new(condition, what).into());
        }
        // Whatever is waited on is a token that has begun: it must still be able to become
        // well-formed. What is unread is text (no '<') followed by at most that one token.
        let place = match self.phase {
            Phase::Prolog => Place::Prolog,
            _ if self.open.is_empty() => Place::Between,
            _ => Place::Inside,
        };
        let partial = match self.partial.take() {
            Some(p) if p.start() >= self.scan => p,
            _ => match memchr::memchr(b'<', &buf[self.scan..]) {
                Some(at) => Partial::new(self.scan + at),
                None => return Ok(None),
            },
        };
        let partial = self.partial.insert(partial);
        partial.advance(buf, place)?;
        Ok(None)
    }
}

fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_space(text: &[u8]) -> bool {
    text.iter().all(|b| is_space_byte(*b))
}

/// Where an element's qualified name lies in `data`.
fn name_range(e: &BytesStart<'_>, data: &[u8]) -> (usize, usize) {
    let name = e.name();
    let name = name.as_ref();
    (name.as_ptr() as usize - data.as_ptr() as usize, name.len())
}

#[cfg(test)]
#[path = "reader_cases.rs"]
mod cases;
#[cfg(test)]
#[path = "reader_ns_cases.rs"]
mod ns_cases;
#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
