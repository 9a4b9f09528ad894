//! RFC 6120 §11.1's restricted XML as the reader meets it: what a peer may not send at all
//! (comments, processing instructions, DTDs, a declaration inside the stream), and what a
//! token quick-xml could not finish means — more to wait for, or a refusal.

use quick_xml::errors::{Error as XmlError, SyntaxError};
use quick_xml::events::Event;

use super::error::{StreamCondition as C, StreamError};
use super::wellformed::{escape_error, nwf};

/// The refusal for markup restricted XML forbids.
pub(super) fn forbidden(event: &Event<'_>) -> StreamError {
    let what = match event {
        Event::Comment(_) => "comments are",
        Event::DocType(_) => "DTDs are",
        Event::Decl(_) => "an XML declaration inside the stream is",
        _ => "processing instructions are",
    };
    StreamError::new(
        C::RestrictedXml,
        format!("{what} not allowed (RFC 6120 §11.1)"),
    )
}

/// What quick-xml's error `e` on the token `rest` (the input from where it began) means:
/// `Ok` when the token may still end well (read more), else the refusal. Only in the prolog
/// may a `<?` be a declaration still arriving.
pub(super) fn unfinished(e: XmlError, rest: &[u8], in_prolog: bool) -> Result<(), StreamError> {
    match e {
        XmlError::Syntax(SyntaxError::UnclosedTag | SyntaxError::UnclosedCData) => Ok(()),
        XmlError::Syntax(SyntaxError::UnclosedPIOrXmlDecl) if in_prolog => Ok(()),
        XmlError::Syntax(
            SyntaxError::UnclosedPIOrXmlDecl
            | SyntaxError::UnclosedComment
            | SyntaxError::UnclosedDoctype,
        ) => Err(StreamError::new(
            C::RestrictedXml,
            "comments, processing instructions and DTDs are not allowed",
        )),
        XmlError::Syntax(SyntaxError::InvalidBangMarkup) => {
            let after = rest.get(2..).unwrap_or_default();
            if after.starts_with(b"-") || after.starts_with(b"D") {
                Err(StreamError::new(
                    C::RestrictedXml,
                    "comments and DTDs are not allowed",
                ))
            } else if b"[CDATA[".starts_with(&after[..after.len().min(7)]) && after.len() < 7 {
                Ok(())
            } else {
                Err(StreamError::new(
                    C::NotWellFormed,
                    "invalid markup after <!",
                ))
            }
        }
        XmlError::Escape(e) => Err(escape_error(XmlError::Escape(e))),
        other => Err(nwf(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unclosed(e: SyntaxError, rest: &[u8], in_prolog: bool) -> Result<(), C> {
        unfinished(XmlError::Syntax(e), rest, in_prolog).map_err(|e| e.condition)
    }

    /// A tag or CDATA section still arriving is waited on; a declaration only in the prolog;
    /// a comment, DTD or processing instruction is refused before it ends.
    #[test]
    fn what_may_still_arrive_and_what_is_refused_unfinished() {
        use SyntaxError::*;
        assert_eq!(unclosed(UnclosedTag, b"<a", false), Ok(()));
        assert_eq!(unclosed(UnclosedCData, b"<![CDATA[x", false), Ok(()));
        assert_eq!(unclosed(UnclosedPIOrXmlDecl, b"<?xml", true), Ok(()));
        assert_eq!(
            unclosed(UnclosedPIOrXmlDecl, b"<?x", false),
            Err(C::RestrictedXml)
        );
        assert_eq!(
            unclosed(UnclosedComment, b"<!--", false),
            Err(C::RestrictedXml)
        );
        assert_eq!(
            unclosed(InvalidBangMarkup, b"<!D", false),
            Err(C::RestrictedXml)
        );
        assert_eq!(unclosed(InvalidBangMarkup, b"<![CD", false), Ok(()));
        assert_eq!(
            unclosed(InvalidBangMarkup, b"<!x", false),
            Err(C::NotWellFormed)
        );
    }
}
