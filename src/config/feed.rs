//! Where a running node's next configurations come from.
//!
//! The restart scheduler (`node::supervisor`) never reads a configuration: it is handed
//! [`Checked`] ones. Whoever watches the source — the SIGHUP handler and the admin API's
//! `reload`, through the scheduler's handle — checks it with the node's [`Feed`] and hands
//! over the result, refusal included.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::source::{Dir, Source};
use super::{check, Config, ConfigErrors};

/// A source, checked afresh each time someone asks.
#[derive(Clone)]
pub struct Feed {
    /// Reads and checks the source; shared by every handle on the scheduler (admin API,
    /// signal handler).
    read: Arc<dyn Fn() -> Checked + Send + Sync>,
}

/// One check of a source.
#[derive(Debug)]
pub struct Checked {
    /// The router document's name, for messages and the event log.
    pub from: PathBuf,
    /// The configuration, or every problem that refused it.
    pub config: Result<Config, ConfigErrors>,
    /// The source's own number for what it held (a cluster's: the etcd revision of the
    /// push); `None`: the scheduler numbers versions itself.
    pub version: Option<u64>,
}

impl Feed {
    pub fn new(source: impl Source + Send + Sync + 'static) -> Self {
        let source = Arc::new(source);
        Self::with(move || Checked {
            from: source.name().to_path_buf(),
            config: check(source.as_ref()),
            version: None,
        })
    }

    /// A feed that reads its source its own way each time (a cluster's takes the last
    /// configuration read whole from etcd, and says its version).
    pub fn with(read: impl Fn() -> Checked + Send + Sync + 'static) -> Self {
        Self {
            read: Arc::new(read),
        }
    }

    /// The configuration on disk whose router document is at `router`.
    pub fn dir(router: &Path) -> Self {
        Self::new(Dir::new(router))
    }

    /// Reads and checks the source as it is now.
    pub fn check(&self) -> Checked {
        (self.read)()
    }
}
