//! The markup a reader is waiting on: a start tag, end tag, XML declaration or `<!` construct
//! that has begun in the buffer but not yet ended.
//!
//! The tokenizer (quick-xml) only says "unclosed" about such a token, so without this check a
//! peer could make the reader wait, and take everything that follows as part of the token: a
//! quote where no attribute value may start (`<'/>`) makes quick-xml look for the closing
//! quote up to the stanza limit, swallowing the next stanzas on the way. Here the partial
//! token is checked against XML 1.0's grammar (§2.3 names, §3.1 tags, §2.8 the declaration)
//! byte by byte, so a token that can no longer become well-formed is refused as soon as the
//! byte that breaks it arrives. The check resumes where it stopped, so dribbled input is
//! scanned once.

use super::error::{StreamCondition as C, StreamError};

/// Where the reader is in the stream, which decides what markup may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Before the stream header: the XML declaration, or the header's start tag.
    Prolog,
    /// Between first-level elements: a start tag, or the stream's end tag.
    Between,
    /// Inside a first-level element: tags, and CDATA sections.
    Inside,
}

/// The lexical state inside the partial token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Right after `<`.
    Open,
    /// In the element name of a start tag (`<na`), or the target of `<?xml`.
    Name,
    /// After a name or an attribute value: whitespace, `/`, `?` or `>` may follow.
    AfterItem,
    /// After whitespace in a tag: an attribute name, `/`, `?` or `>`.
    Space,
    /// In an attribute name.
    AttrName,
    /// After an attribute name and whitespace: only `=` (or more whitespace).
    BeforeEq,
    /// After `=`: whitespace or the opening quote.
    AfterEq,
    /// In an attribute value opened by this quote.
    Value(u8),
    /// After the `/` of an empty-element tag, or the `?` of the declaration: only `>`.
    Closing,
    /// In the name of an end tag (`</na`).
    EndName,
    /// After an end tag's name: whitespace or `>`.
    EndSpace,
    /// After `<!`, the bytes of it matched so far.
    Bang(usize),
    /// In a CDATA section: anything until `]]>`, which the tokenizer finds.
    CData,
    /// The token ended (`>`): the tokenizer takes it from here.
    Done,
}

/// A resumable check of the partial token that starts at `start` in the reader's buffer.
#[derive(Debug, Clone)]
pub(super) struct Partial {
    /// Offset in the buffer of the token's `<`.
    start: usize,
    /// Offset of the next byte to check.
    at: usize,
    state: State,
    /// Whether this is an XML declaration (`<?xml`), which ends with `?>` instead of `>`.
    decl: bool,
}

impl Partial {
    pub(super) fn new(start: usize) -> Self {
        Self {
            start,
            at: start + 1,
            state: State::Open,
            decl: false,
        }
    }

    pub(super) fn start(&self) -> usize {
        self.start
    }

    /// Checks `buf[self.at..]`, the bytes that arrived since the last call. `Err` once the
    /// token can no longer be well-formed; `Ok` while it can (or has ended).
    pub(super) fn advance(&mut self, buf: &[u8], place: Place) -> Result<(), StreamError> {
        while self.at < buf.len() && self.state != State::Done && self.state != State::CData {
            let b = buf[self.at];
            self.state = self.next(b, buf, place)?;
            self.at += 1;
        }
        Ok(())
    }

    fn next(&mut self, b: u8, buf: &[u8], place: Place) -> Result<State, StreamError> {
        use State::*;
        let broken = |what: &str| Err(nwf(what));
        Ok(match self.state {
            Open => match b {
                b'/' if place == Place::Prolog => return broken("an end tag before the stream"),
                b'/' => EndName,
                b'!' => Bang(0),
                b'?' if place == Place::Prolog && self.start == 0 => {
                    self.decl = true;
                    Name
                }
                b'?' => return Err(restricted("processing instructions are not allowed")),
                b if is_name_start(b) => Name,
                _ => return broken("'<' is not followed by a name"),
            },
            Name if is_name_char(b) => Name,
            Name | AfterItem => self.after_item(b, buf)?,
            Space => match b {
                b if is_space(b) => Space,
                b if is_name_start(b) => AttrName,
                _ => self.tag_end(b)?,
            },
            AttrName => match b {
                b if is_name_char(b) => AttrName,
                b if is_space(b) => BeforeEq,
                b'=' => AfterEq,
                _ => return broken("an attribute name must be followed by '='"),
            },
            BeforeEq => match b {
                b if is_space(b) => BeforeEq,
                b'=' => AfterEq,
                _ => return broken("an attribute name must be followed by '='"),
            },
            AfterEq => match b {
                b if is_space(b) => AfterEq,
                b'\'' | b'"' => Value(b),
                _ => return broken("an attribute value must be quoted"),
            },
            Value(q) if b == q => AfterItem,
            Value(_) if b == b'<' => return broken("'<' in an attribute value"),
            Value(q) => Value(q),
            Closing if b == b'>' => Done,
            Closing => return broken("'/' or '?' in a tag must be followed by '>'"),
            EndName if is_name_char(b) && (self.at > self.start + 2 || is_name_start(b)) => EndName,
            EndName | EndSpace if self.at > self.start + 2 && is_space(b) => EndSpace,
            EndName | EndSpace if self.at > self.start + 2 && b == b'>' => Done,
            EndName | EndSpace => return broken("malformed end tag"),
            Bang(n) => self.bang(n, b, place)?,
            CData | Done => self.state,
        })
    }

    /// After a name or a value: whitespace, or the end of the tag.
    fn after_item(&mut self, b: u8, buf: &[u8]) -> Result<State, StreamError> {
        if self.decl && self.state == State::Name && &buf[self.start + 2..self.at] != b"xml" {
            return Err(restricted("processing instructions are not allowed"));
        }
        if is_space(b) {
            return Ok(State::Space);
        }
        self.tag_end(b)
    }

    /// `/`, `?` or `>` ending a tag, or a byte that breaks it.
    fn tag_end(&self, b: u8) -> Result<State, StreamError> {
        match (b, self.decl) {
            (b'>', false) => Ok(State::Done),
            (b'/', false) | (b'?', true) => Ok(State::Closing),
            (b'>', true) => Err(nwf("the XML declaration must end with '?>'")),
            (b'\'' | b'"', _) => Err(nwf("a quote where no attribute value may start")),
            (b'<', _) => Err(nwf("'<' inside a tag")),
            _ => Err(nwf("unexpected character in a tag")),
        }
    }

    /// The bytes after `<!`: a CDATA section inside a stanza; comments and DTDs are
    /// restricted XML; anything else is not XML.
    fn bang(&self, matched: usize, b: u8, place: Place) -> Result<State, StreamError> {
        const CDATA: &[u8] = b"[CDATA[";
        if matched == 0 && (b == b'-' || b == b'D') {
            return Err(restricted("comments and DTDs are not allowed"));
        }
        if CDATA.get(matched) != Some(&b) {
            return Err(nwf("invalid markup after '<!'"));
        }
        match place {
            Place::Inside if matched + 1 == CDATA.len() => Ok(State::CData),
            Place::Inside => Ok(State::Bang(matched + 1)),
            Place::Between => Err(StreamError::new(
                C::BadFormat,
                "character data between stanzas",
            )),
            Place::Prolog => Err(nwf("character data before the stream header")),
        }
    }
}

fn nwf(what: &str) -> StreamError {
    StreamError::new(C::NotWellFormed, what)
}

fn restricted(what: &str) -> StreamError {
    StreamError::new(C::RestrictedXml, format!("{what} (RFC 6120 §11.1)"))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// XML 1.0 §2.3 NameStartChar, exact for ASCII; any byte of a non-ASCII character passes.
pub(super) fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

/// XML 1.0 §2.3 NameChar, likewise.
pub(super) fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit() || b == b'-' || b == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `input` (which starts with `<`) as one partial token, fed whole and byte by byte.
    fn check(input: &str, place: Place) -> Result<(), C> {
        let whole = Partial::new(0)
            .advance(input.as_bytes(), place)
            .map_err(|e| e.condition);
        let mut p = Partial::new(0);
        let mut dribbled = Ok(());
        for end in 1..=input.len() {
            if let Err(e) = p.advance(&input.as_bytes()[..end], place) {
                dribbled = Err(e.condition);
                break;
            }
        }
        assert_eq!(whole, dribbled, "{input}: whole and dribbled disagree");
        whole
    }

    #[test]
    fn prefixes_of_well_formed_tags_wait() {
        let tags = [
            ("<message from='a@b' to=\"c\" id = 'x>y'/>", Place::Between),
            (
                "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
                Place::Prolog,
            ),
            ("<?xml version='1.0' encoding='UTF-8'?>", Place::Prolog),
            ("</stream:stream >", Place::Between),
            ("<body xml:lang='en'>", Place::Inside),
            ("<![CDATA[ <x a='> ]]>", Place::Inside),
            ("<\u{e9}l\u{e9}ment \u{e9}='1'/>", Place::Inside),
        ];
        for (tag, place) in tags {
            for end in 1..=tag.len() {
                if tag.is_char_boundary(end) {
                    assert_eq!(check(&tag[..end], place), Ok(()), "{}", &tag[..end]);
                }
            }
        }
    }

    /// The class of defect: a byte that can never belong where it stands is refused at once,
    /// so nothing after it is taken as part of the token.
    #[test]
    fn a_byte_that_breaks_the_tag_is_refused_at_once() {
        use C::*;
        let cases = [
            ("<'/>", Place::Between, NotWellFormed),
            ("<\"", Place::Inside, NotWellFormed),
            ("<message '", Place::Between, NotWellFormed),
            ("<message to'x'", Place::Between, NotWellFormed),
            ("<message to=x", Place::Between, NotWellFormed),
            ("<message to='x'from", Place::Between, NotWellFormed),
            ("<message to='x' <message", Place::Between, NotWellFormed),
            (
                "<message to='x/><message to='",
                Place::Between,
                NotWellFormed,
            ),
            ("<a b='1' / >", Place::Inside, NotWellFormed),
            ("< message", Place::Between, NotWellFormed),
            ("<1a", Place::Inside, NotWellFormed),
            ("</a b>", Place::Inside, NotWellFormed),
            ("</'", Place::Inside, NotWellFormed),
            ("</>", Place::Inside, NotWellFormed),
            ("</stream:stream", Place::Prolog, NotWellFormed),
            ("<!x", Place::Inside, NotWellFormed),
            ("<![CDAT]", Place::Inside, NotWellFormed),
            ("<![CDATA[", Place::Between, BadFormat),
            ("<!--", Place::Inside, RestrictedXml),
            ("<!DOCTYPE", Place::Prolog, RestrictedXml),
            ("<?pi", Place::Inside, RestrictedXml),
            ("<?xml-stylesheet ", Place::Prolog, RestrictedXml),
            ("<?xml version='1.0'>", Place::Prolog, NotWellFormed),
        ];
        for (input, place, condition) in cases {
            assert_eq!(check(input, place), Err(condition), "{input}");
        }
    }
}
