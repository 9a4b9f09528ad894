//! What the flow-control tests share: nodes with small queues, and a count of the messages
//! that arrive on a raw connection.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// Small queues, so that the path overflows them at once unless the sender is slowed.
pub const LIMITS: &str = "max_stanza_bytes = 16384\nqueue_bytes_per_connection = 65536\n\
                          in_flight_bytes_per_connection = 16384\n";

/// Starts a node in this process on `router` (written by `fed::write_node`), with
/// [`LIMITS`] and the `[limits]` lines `extra`, which take the place of those of the same key.
pub async fn start_limited(router: &Path, extra: &str) -> xfed::node::Node {
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_owned();
    let overridden: Vec<String> = extra.lines().map(key).collect();
    // write_node ends with `[limits]`: these lines belong to it.
    let mut text = std::fs::read_to_string(router).unwrap();
    for line in LIMITS.lines().filter(|l| !overridden.contains(&key(l))) {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(extra);
    std::fs::write(router, text).unwrap();
    let cfg = xfed::config::load(router).unwrap_or_else(|e| panic!("{e}"));
    xfed::node::Node::start(cfg).await.expect("node starts")
}

/// Counts complete `</message>` end tags in what arrives, across reads.
#[derive(Default)]
pub struct Tally {
    text: String,
    /// Messages that are not errors.
    pub messages: usize,
    /// Messages of type `error`.
    pub errors: usize,
    /// Errors by the domain they came back from (their `from`) and their condition.
    pub conditions: BTreeMap<(String, String), usize>,
}

impl Tally {
    pub fn add(&mut self, bytes: &[u8]) {
        self.text.push_str(&String::from_utf8_lossy(bytes));
        while let Some(end) = self.text.find("</message>") {
            let one = &self.text[..end];
            if one.contains("type='error'") {
                self.errors += 1;
                let key = (domain(attr(one, "from")), condition(one).to_owned());
                *self.conditions.entry(key).or_default() += 1;
            } else {
                self.messages += 1;
            }
            self.text.drain(..end + "</message>".len());
        }
    }

    /// Errors that came back from `domain`, whatever their condition.
    pub fn errors_from(&self, domain: &str) -> usize {
        self.conditions
            .iter()
            .filter(|((d, _), _)| d == domain)
            .map(|(_, n)| n)
            .sum()
    }

    /// Errors that came back from `domain` with `condition`.
    pub fn count(&self, domain: &str, condition: &str) -> usize {
        let key = (domain.to_owned(), condition.to_owned());
        self.conditions.get(&key).copied().unwrap_or(0)
    }
}

/// The first value of attribute `name` in `element` ("" without one).
fn attr<'a>(element: &'a str, name: &str) -> &'a str {
    let marker = format!(" {name}='");
    element
        .split_once(marker.as_str())
        .and_then(|(_, rest)| rest.split('\'').next())
        .unwrap_or("")
}

/// The domain part of an address.
fn domain(address: &str) -> String {
    let bare = address.split('/').next().unwrap_or("");
    bare.rsplit('@').next().unwrap_or("").to_owned()
}

/// The name of the condition element inside `<error>` (RFC 6120 §8.3.2), "" without one.
fn condition(stanza: &str) -> &str {
    let Some((_, rest)) = stanza.split_once("<error ") else {
        return "";
    };
    let Some((_, inner)) = rest.split_once("><") else {
        return "";
    };
    inner.split([' ', '/', '>']).next().unwrap_or("")
}
