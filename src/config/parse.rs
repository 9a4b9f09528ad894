//! One TOML document into its serde type, each problem named by document, line and key.
//!
//! serde stops at the first value it cannot take. For the router file, which has a default
//! for every key, [`parse_salvaging`] goes on past it: the line of the bad value is set
//! aside, its default stands in, and the file is read again, so one `check-config` run
//! reports every bad value (and then the tenants). It stops only at what leaves nothing to
//! read: a document that could not be read, or is not TOML at all.
//!
//! The text comes from the [`super::Source`] (in a [`Document`]); nothing here reads files.

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::source::Document;
use super::ConfigError;

/// More bad values than anyone writes by hand; a bound on the rereading.
const MAX_PROBLEMS: usize = 100;

/// Parses one TOML document into `T`, reporting the failing key path and line.
pub(super) fn parse<T: DeserializeOwned>(doc: &Document) -> Result<T, ConfigError> {
    parse_text(&doc.name, text_of(doc)?).map_err(|(e, _)| e)
}

/// Parses `doc` into `T`, reporting every bad value: each is set aside (with its line) and
/// the rest read again. Answers `T` with defaults in place of the bad values, unless the
/// document could not be read, is not TOML, or a bad value cannot be set aside (a required
/// key missing); and every problem found.
pub(super) fn parse_salvaging<T: DeserializeOwned>(
    doc: &Document,
) -> (Option<T>, Vec<ConfigError>) {
    let path = doc.name.as_path();
    let mut text = match text_of(doc) {
        Ok(t) => t.to_owned(),
        Err(e) => return (None, vec![e]),
    };
    let mut errs = Vec::new();
    while errs.len() < MAX_PROBLEMS {
        match parse_text(path, &text) {
            Ok(t) => return (Some(t), errs),
            Err((e, span)) => {
                errs.push(e);
                let Some(rest) = span.and_then(|s| set_aside(&text, s)) else {
                    break;
                };
                text = rest;
            }
        }
    }
    (None, errs)
}

/// The document's text, or the problem of a document that could not be read.
fn text_of(doc: &Document) -> Result<&str, ConfigError> {
    doc.text
        .as_deref()
        .map_err(|err| ConfigError::new(&doc.name, "", format!("cannot read: {err}")))
}

/// `text` without the lines holding `span` (kept as empty lines, so the line numbers of
/// what follows stay right); a table header takes its keys with it. `None` when that leaves
/// no TOML, or nothing was set aside.
fn set_aside(text: &str, span: Range<usize>) -> Option<String> {
    let start = text[..span.start.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let mut end = text[span.end.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| span.end + i);
    if text[start..end].trim_start().starts_with('[') {
        // The keys below an unknown table header would land in the table above it.
        end = text[end..]
            .match_indices('\n')
            .map(|(i, _)| end + i + 1)
            .find(|&next| text[next..].trim_start().starts_with('['))
            .map_or(text.len(), |next| next - 1);
    }
    let blank: String = text[start..end].chars().filter(|c| *c == '\n').collect();
    let rest = format!("{}{blank}{}", &text[..start], &text[end..]);
    let still_toml = rest.parse::<toml::Table>().is_ok();
    (rest != text && still_toml).then_some(rest)
}

/// `text` into `T`, or the problem and where it is in `text`.
fn parse_text<T: DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, (ConfigError, Option<Range<usize>>)> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let mut key = err.path().to_string();
        if key == "." {
            key.clear();
        }
        let inner = err.into_inner();
        // Some syntax errors carry their description only in the full text (found by the
        // configuration fuzzer: a NUL in a comment gave an empty reason).
        let message = match one_line(inner.message()) {
            m if m.is_empty() => one_line(&inner.to_string()),
            m => m,
        };
        if let Some(field) = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|prefix| message.strip_prefix(prefix))
            .and_then(|rest| rest.split('`').next())
        {
            if !key.ends_with(field) {
                key = if key.is_empty() {
                    field.to_owned()
                } else {
                    format!("{key}.{field}")
                };
            }
        }
        let span = inner.span();
        let error = ConfigError {
            file: path.to_path_buf(),
            line: span.clone().map(|span| {
                1 + text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
            }),
            key,
            reason: message,
        };
        // A missing key cannot be set aside; nor can what is not TOML.
        let salvageable =
            !error.reason.starts_with("missing field") && text.parse::<toml::Table>().is_ok();
        (error, span.filter(|_| salvageable))
    })
}

/// A message that may span lines, on one: `check-config` prints one line per problem.
pub(super) fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::RouterFile;

    /// `text` as the router document at `path`.
    fn document(path: &Path, text: &str) -> Document {
        Document {
            name: path.to_path_buf(),
            text: Ok(text.to_owned()),
        }
    }

    #[test]
    fn every_bad_value_of_the_router_file_is_reported_with_its_line() {
        let path = Path::new("router.toml");
        let text = "colour = \"blue\"\n\
                    [listen]\ns2s = \"not an address\"\ncomponent = \"127.0.0.1:7400\"\n\
                    [federation]\nsecurity_mode = \"maybe\"\nidle_timeout_secs = 600\n\
                    [limits]\nmax_depth = -3\n\
                    [colours]\nsky = \"blue\"\n";
        let (file, errs) = parse_salvaging::<RouterFile>(&document(path, text));
        let found: Vec<(Option<usize>, &str)> =
            errs.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert_eq!(
            found,
            [
                (Some(1), "colour"),
                (Some(3), "listen.s2s"),
                (Some(6), "federation.security_mode"),
                (Some(9), "limits.max_depth"),
                (Some(10), "colours"),
            ],
            "{errs:?}"
        );
        let file = file.expect("read past the bad values");
        assert_eq!(file.listen.component.port(), 7400);
        assert_eq!(file.federation.idle_timeout_secs, 600);
    }

    #[test]
    fn a_syntax_error_always_says_what_is_wrong() {
        let path = Path::new("router.toml");
        let text = "tenants_dir = \"t\"\n# \u{0}\n";
        let (_, errors) = parse_salvaging::<RouterFile>(&document(path, text));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(!errors[0].reason.trim().is_empty(), "{errors:?}");
    }

    #[test]
    fn a_file_that_is_not_toml_is_one_problem() {
        let path = Path::new("router.toml");
        let (file, errs) = parse_salvaging::<RouterFile>(&document(path, "[listen\ns2s = 1\n"));
        assert!(file.is_none());
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, Some(1));
    }
}
