//! The event log: what an operator needs to know happened — streams authenticated, failed
//! and closed, policy denials, configuration and restarts — as structured JSON lines, each
//! tagged `module = "XMPPFederation"` with its tenant and domains. The newest events are kept
//! in a bounded ring for the admin API; all are appended to a file that rotates by size, by
//! a thread of its own (`writer`), so a stalled disk never holds up a thread that routes.

mod rotating;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::config::EventsConfig;
use crate::model::EventRecord;
use rotating::Rotating;
use writer::{FileWriter, Queued};

/// The `module` every event carries.
pub const MODULE: &str = "XMPPFederation";

/// A repeated event of the same key (e.g. a flood of denied stanzas) is recorded once per
/// this long, with how many were folded into it.
const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FederationEnabled,
    FederationDisabled,
    StreamAuthenticated,
    StreamFailed,
    StreamClosed,
    /// A stream ended with stanzas the peer had not acknowledged (XEP-0198), and what
    /// became of them.
    StreamUnacknowledged,
    PolicyDenied,
    /// A new connection refused by a listener's admission caps.
    ConnectionRefused,
    LinkUp,
    LinkDown,
    ConfigLoaded,
    ConfigRefused,
    ConfigStaged,
    ConfigApplied,
    Restart,
    LogLevel,
    /// An inter-node link of the cluster opened or ended, or a party that is not a node
    /// was refused one.
    ClusterLinkUp,
    ClusterLinkDown,
    ClusterLinkRefused,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FederationEnabled => "federation_enabled",
            Kind::FederationDisabled => "federation_disabled",
            Kind::StreamAuthenticated => "stream_authenticated",
            Kind::StreamFailed => "stream_failed",
            Kind::StreamClosed => "stream_closed",
            Kind::StreamUnacknowledged => "stream_unacknowledged",
            Kind::PolicyDenied => "policy_denied",
            Kind::ConnectionRefused => "connection_refused",
            Kind::LinkUp => "link_up",
            Kind::LinkDown => "link_down",
            Kind::ConfigLoaded => "config_loaded",
            Kind::ConfigRefused => "config_refused",
            Kind::ConfigStaged => "config_staged",
            Kind::ConfigApplied => "config_applied",
            Kind::Restart => "restart",
            Kind::LogLevel => "log_level",
            Kind::ClusterLinkUp => "cluster_link_up",
            Kind::ClusterLinkDown => "cluster_link_down",
            Kind::ClusterLinkRefused => "cluster_link_refused",
        }
    }
}

/// One event about to be recorded: built with [`Event::new`] and its `with_*` methods.
#[derive(Debug, Clone)]
pub struct Event {
    kind: Kind,
    tenant: Option<String>,
    domains: Vec<String>,
    fields: Map<String, Value>,
}

impl Event {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            tenant: None,
            domains: Vec::new(),
            fields: Map::new(),
        }
    }

    pub fn tenant(mut self, tenant: Option<&str>) -> Self {
        self.tenant = tenant.map(str::to_owned);
        self
    }

    pub fn domains<S: AsRef<str>>(mut self, domains: impl IntoIterator<Item = S>) -> Self {
        self.domains
            .extend(domains.into_iter().map(|d| d.as_ref().to_owned()));
        self
    }

    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }
}

/// Which events a query wants.
#[derive(Debug, Default, Clone)]
pub struct Query {
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events of this tenant.
    pub tenant: Option<String>,
    /// At most this many, the newest.
    pub limit: Option<usize>,
}

/// The node's event log.
pub struct EventLog {
    inner: Mutex<Inner>,
}

struct Inner {
    next_seq: u64,
    ring: VecDeque<Recorded>,
    capacity: usize,
    file: Option<FileWriter>,
    /// Events left out of the file because its writer was behind, since the start.
    unwritten: u64,
    /// The last event offered to the file was left out of it.
    behind: bool,
    /// Per repeat key: when it was last recorded and how many were folded since.
    repeats: HashMap<String, (Instant, u64)>,
}

/// An event as the ring keeps it: its JSON line, as written to the file, and what queries
/// filter on. A line is a few hundred bytes where the same event as a JSON tree is several
/// times that; with one or two events per stream, that difference is paid per stream on a
/// node that has just opened thousands.
struct Recorded {
    time: DateTime<Utc>,
    tenant: Option<Box<str>>,
    line: Box<str>,
}

impl EventLog {
    /// A log per `config`. A file that cannot be opened is reported in the log and the
    /// events are kept in memory only.
    pub fn new(config: &EventsConfig) -> Self {
        let file = config.file.as_ref().and_then(|path| {
            let opened = Rotating::open(path, config.max_file_bytes, config.keep_files)
                .and_then(|f| FileWriter::start(f, writer::QUEUE_LINES));
            match opened {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot open the event log file; events are kept in memory only");
                    None
                }
            }
        });
        Self {
            inner: Mutex::new(Inner {
                next_seq: 1,
                ring: VecDeque::new(),
                capacity: config.memory.max(1),
                file,
                unwritten: 0,
                behind: false,
                repeats: HashMap::new(),
            }),
        }
    }

    /// Events left out of the file since the start because its disk did not keep up (they
    /// were kept in memory like any other).
    pub fn unwritten(&self) -> u64 {
        self.lock().unwritten
    }

    /// Waits up to `wait` until every event recorded so far is in the file (or there is no
    /// file); false if they were not all written by then.
    pub fn flush(&self, wait: Duration) -> bool {
        let writer = self.lock().file.clone();
        writer.is_none_or(|w| w.flush(wait))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A log in memory only (tests and tools).
    pub fn in_memory(capacity: usize) -> Self {
        Self::new(&EventsConfig {
            file: None,
            max_file_bytes: 0,
            keep_files: 0,
            memory: capacity,
        })
    }

    /// Records an event.
    pub fn record(&self, event: Event) {
        let mut inner = self.lock();
        inner.push(event, None);
    }

    /// Records an event unless one with the same `key` was recorded in the last few
    /// seconds; then it is only counted, and the next one recorded says how many were
    /// folded into it (`"repeated"`).
    pub fn record_folded(&self, key: &str, event: Event) {
        let mut inner = self.lock();
        let now = Instant::now();
        let folded = match inner.repeats.get_mut(key) {
            Some((last, count)) if now.duration_since(*last) < REPEAT_WINDOW => {
                *count += 1;
                return;
            }
            Some((last, count)) => {
                *last = now;
                std::mem::take(count)
            }
            None => {
                if inner.repeats.len() >= 10_000 {
                    inner
                        .repeats
                        .retain(|_, (last, _)| now.duration_since(*last) < REPEAT_WINDOW);
                }
                inner.repeats.insert(key.to_owned(), (now, 0));
                0
            }
        };
        inner.push(event, (folded > 0).then_some(folded));
    }

    /// Events matching `query`, oldest first, as JSON objects.
    pub fn query(&self, query: &Query) -> Vec<Value> {
        self.matching(query)
    }

    /// Events matching `query`, oldest first, as the admin API serves them.
    pub fn records(&self, query: &Query) -> Vec<EventRecord> {
        self.matching(query)
    }

    fn matching<T: DeserializeOwned>(&self, query: &Query) -> Vec<T> {
        let inner = self.lock();
        let matching: Vec<&Recorded> = inner
            .ring
            .iter()
            .filter(|e| {
                query.since.is_none_or(|since| e.time >= since)
                    && query
                        .tenant
                        .as_deref()
                        .is_none_or(|t| e.tenant.as_deref() == Some(t))
            })
            .collect();
        let skip = query
            .limit
            .map_or(0, |limit| matching.len().saturating_sub(limit));
        matching[skip..]
            .iter()
            // Invariant: every line was serialized by `push` from a JSON object with the
            // fields of an `EventRecord`.
            .filter_map(|e| serde_json::from_str(&e.line).ok())
            .collect()
    }
}

impl Inner {
    fn push(&mut self, event: Event, repeated: Option<u64>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let now = Utc::now();
        let mut v = Map::new();
        v.insert("seq".into(), seq.into());
        // One fixed format (UTC, microseconds), as readers of the file expect.
        v.insert(
            "time".into(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        v.insert("module".into(), MODULE.into());
        v.insert("event".into(), event.kind.as_str().into());
        v.insert(
            "tenant".into(),
            event.tenant.clone().map_or(Value::Null, Value::String),
        );
        v.insert("domains".into(), json!(event.domains));
        for (k, val) in event.fields {
            v.insert(k, val);
        }
        if let Some(n) = repeated {
            v.insert("repeated".into(), n.into());
        }
        let line = Value::Object(v).to_string();
        self.write_out(&line);
        if self.ring.len() == self.capacity {
            self.ring.pop_front();
        }
        self.ring.push_back(Recorded {
            time: now,
            tenant: event.tenant.map(String::into_boxed_str),
            line: line.into_boxed_str(),
        });
    }

    /// Queues `line` for the file; a full queue leaves it out and says so once per spell.
    fn write_out(&mut self, line: &str) {
        let Some(file) = &self.file else { return };
        match file.queue(line.into()) {
            Queued::Yes if self.behind => {
                self.behind = false;
                tracing::warn!(
                    unwritten = self.unwritten,
                    "the event log file is keeping up again; the events left out of it are in memory (admin API) while the ring holds them"
                );
            }
            Queued::Yes => {}
            Queued::Full => {
                self.unwritten += 1;
                if !self.behind {
                    self.behind = true;
                    tracing::warn!("the event log file is not keeping up (a slow or stalled disk); events are left out of it until it does, and kept in memory");
                }
            }
            Queued::Closed => self.file = None,
        }
    }
}

#[cfg(test)]
mod tests;
