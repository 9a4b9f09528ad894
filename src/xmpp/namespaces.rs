//! Namespaces in XML 1.0's constraints on a stream, which quick-xml does not apply: every
//! prefix used is declared (§5 "Prefix Declared"), a prefix is never undeclared (`xmlns:p=''`,
//! "No Prefix Undeclaring"), the reserved names stay where they belong (§3: `xml` only with
//! its own namespace, no prefix or default for the `xmlns` namespace), and attributes stay
//! unique once their prefixes are resolved (§6.3). A stream that breaks one is not
//! namespace-well-formed: `not-well-formed` (RFC 6120 §4.9.3.13).
//!
//! One rule of our own: xfed forwards a stanza on its own, on a stream whose header does
//! not carry the sender's declarations. So the prefixes declared on the stream header are in
//! scope only inside the stream's own elements (a first-level element with a prefixed name:
//! `stream:features`, `stream:error`, `db:result`); an element with an unprefixed name (a
//! stanza, or `<handshake/>`, `<starttls/>`) declares what it uses. A stanza that leans on
//! the header gets `bad-namespace-prefix` (§4.9.3.2), not a forwarded copy its receiver
//! cannot parse.

use std::borrow::Cow;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::BytesStart;

use super::error::{StreamCondition as C, StreamError};
use super::wellformed::{attr_value, may_be_reserved, Prefixes, XMLNS_NS, XML_NS};

/// Most prefixes declared in scope at once, in a stanza or on a stream header: each
/// prefixed name is looked up among them (a handful in any real stanza).
const MAX_DECLARED: usize = 64;

/// A prefix declared inside the current first-level element.
#[derive(Debug)]
struct Binding {
    /// The depth of the declaring element (0: the first-level element).
    depth: usize,
    prefix: Box<[u8]>,
    name: Box<str>,
}

/// The prefixes in scope where the reader is: the stream header's, and those declared on
/// the open elements of the current first-level element. Holds nothing for a stream whose
/// stanzas declare no prefixes, which is nearly every stream.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    header: Vec<(Box<[u8]>, Box<str>)>,
    /// Whether the header's prefixes are in scope in the current first-level element.
    header_visible: bool,
    inner: Vec<Binding>,
}

impl Scope {
    /// Takes the stream header's declarations; its own names must use only those.
    pub(crate) fn header(&mut self, e: &BytesStart<'_>) -> Result<(), StreamError> {
        self.header.clear();
        self.inner.clear();
        self.header_visible = true;
        let prefixed = declarations(e, |prefix, name| {
            self.header.push((prefix.into(), name.into()))
        })?;
        too_many(self.header.len())?;
        self.check_element(e, prefixed)
    }

    /// An element's start tag, at `depth` in its first-level element (0: that element), with
    /// what `wellformed::check_names` saw of its prefixes: takes its declarations (kept
    /// until [`Scope::leave`] when `open`: an empty element's go with it), then checks its
    /// names against the prefixes in scope. Nothing to do for an element without prefixes.
    #[inline]
    pub(crate) fn enter(
        &mut self,
        e: &BytesStart<'_>,
        prefixes: Prefixes,
        depth: usize,
        open: bool,
    ) -> Result<(), StreamError> {
        match prefixes {
            // Its first-level element's scope, if it is one, is the header's or nothing:
            // an element with an unprefixed name and no prefixes of its own uses neither.
            Prefixes::None if depth == 0 => {
                self.header_visible = false;
                Ok(())
            }
            Prefixes::None => Ok(()),
            Prefixes::Some => self.enter_prefixed(e, depth, open),
        }
    }

    #[inline(never)]
    fn enter_prefixed(
        &mut self,
        e: &BytesStart<'_>,
        depth: usize,
        open: bool,
    ) -> Result<(), StreamError> {
        if depth == 0 {
            self.inner.clear();
            self.header_visible = e.name().prefix().is_some();
        }
        let before = self.inner.len();
        let inner = &mut self.inner;
        let prefixed = declarations(e, |prefix, name| {
            inner.push(Binding {
                depth,
                prefix: prefix.into(),
                name: name.into(),
            })
        })?;
        too_many(self.inner.len())?;
        let checked = self.check_element(e, prefixed);
        if !open {
            self.inner.truncate(before);
        }
        checked
    }

    /// The element at `depth` ended: its declarations go out of scope.
    #[inline]
    pub(crate) fn leave(&mut self, depth: usize) {
        while self.inner.last().is_some_and(|b| b.depth >= depth) {
            self.inner.pop();
        }
    }

    /// The element's prefix and, when attributes other than declarations are `prefixed`,
    /// theirs are in scope, and no two attributes share a local name and a namespace.
    fn check_element(&self, e: &BytesStart<'_>, prefixed: bool) -> Result<(), StreamError> {
        if let Some(prefix) = e.name().prefix() {
            self.resolve(prefix.as_ref())?;
        }
        if prefixed {
            self.check_attributes(e)?;
        }
        Ok(())
    }

    /// Each prefixed attribute's prefix is in scope, and (Namespaces in XML §6.3) no two
    /// share a local name and a namespace.
    fn check_attributes(&self, e: &BytesStart<'_>) -> Result<(), StreamError> {
        let mut seen: Vec<(&str, &[u8])> = Vec::new();
        for attr in e.attributes().with_checks(false).flatten() {
            let key = attr.key;
            let Some(prefix) = key.prefix().filter(|p| p.as_ref() != b"xmlns") else {
                continue;
            };
            let ns = self.resolve(prefix.as_ref())?;
            let local = key.local_name().into_inner();
            if seen.iter().any(|(n, l)| *n == ns && *l == local) {
                return Err(StreamError::new(
                    C::NotWellFormed,
                    format!(
                        "two attributes named {:?} in namespace {ns:?} (Namespaces in XML §6.3)",
                        String::from_utf8_lossy(local)
                    ),
                ));
            }
            seen.push((ns, local));
        }
        Ok(())
    }

    /// The namespace `prefix` is bound to where the reader is.
    fn resolve(&self, prefix: &[u8]) -> Result<&str, StreamError> {
        if let Some(b) = self.inner.iter().rev().find(|b| &*b.prefix == prefix) {
            return Ok(&b.name);
        }
        if prefix == b"xml" {
            return Ok(XML_NS);
        }
        let shown = String::from_utf8_lossy(prefix);
        match self.header.iter().find(|(p, _)| &**p == prefix) {
            Some((_, name)) if self.header_visible => Ok(name),
            Some(_) => Err(StreamError::new(
                C::BadNamespacePrefix,
                format!(
                    "prefix {shown:?} is declared only on the stream header: a stanza is \
                     forwarded on its own, so it declares the prefixes it uses"
                ),
            )),
            None => Err(StreamError::new(
                C::NotWellFormed,
                format!("prefix {shown:?} is not declared (Namespaces in XML §5)"),
            )),
        }
    }
}

fn too_many(declared: usize) -> Result<(), StreamError> {
    if declared > MAX_DECLARED {
        return Err(StreamError::new(
            C::PolicyViolation,
            format!("more than {MAX_DECLARED} namespace prefixes declared in scope"),
        ));
    }
    Ok(())
}

/// One pass over `e`'s attributes: each namespace declaration checked, and those of a
/// prefix handed to `declare`. Answers whether any other attribute has a prefix.
fn declarations(
    e: &BytesStart<'_>,
    mut declare: impl FnMut(&[u8], String),
) -> Result<bool, StreamError> {
    let mut prefixed = false;
    for attr in e.attributes().with_checks(false).flatten() {
        let key = attr.key.as_ref();
        match key.strip_prefix(b"xmlns") {
            Some(b"") => default_declaration(&attr)?,
            Some(rest) if rest.starts_with(b":") => {
                let name = prefix_declaration(&rest[1..], &attr)?;
                declare(&rest[1..], name);
            }
            _ if key.contains(&b':') => prefixed = true,
            _ => {}
        }
    }
    Ok(prefixed)
}

/// `xmlns='name'`: never the xml or the xmlns namespace.
fn default_declaration(attr: &Attribute<'_>) -> Result<(), StreamError> {
    if !may_be_reserved(&attr.value) {
        return Ok(());
    }
    let value = attr_value(attr)?;
    if value == XMLNS_NS {
        return Err(refused(b"xmlns", "the xmlns namespace is never declared"));
    }
    if value == XML_NS {
        return Err(refused(b"xmlns", "the xml namespace is never the default"));
    }
    Ok(())
}

/// `xmlns:prefix='name'`: the namespace name, unescaped and checked.
fn prefix_declaration(prefix: &[u8], attr: &Attribute<'_>) -> Result<String, StreamError> {
    let key = attr.key.as_ref();
    let value: Cow<'_, str> = attr_value(attr)?;
    if value == XMLNS_NS {
        return Err(refused(key, "the xmlns namespace is never declared"));
    }
    if value.is_empty() {
        return Err(refused(key, "a prefix is never undeclared in XML 1.0"));
    }
    if (prefix == b"xml") != (value == XML_NS) {
        return Err(refused(
            key,
            "the prefix xml and the xml namespace belong together",
        ));
    }
    Ok(value.into_owned())
}

fn refused(key: &[u8], why: &str) -> StreamError {
    StreamError::new(
        C::NotWellFormed,
        format!(
            "{:?}: {why} (Namespaces in XML §3)",
            String::from_utf8_lossy(key)
        ),
    )
}
