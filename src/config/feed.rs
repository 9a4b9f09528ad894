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
    /// Shared by every handle on the scheduler (admin API, signal handler).
    source: Arc<dyn Source + Send + Sync>,
}

/// One check of a source.
#[derive(Debug)]
pub struct Checked {
    /// The router document's name, for messages and the event log.
    pub from: PathBuf,
    /// The configuration, or every problem that refused it.
    pub config: Result<Config, ConfigErrors>,
}

impl Feed {
    pub fn new(source: impl Source + Send + Sync + 'static) -> Self {
        Self {
            source: Arc::new(source),
        }
    }

    /// The configuration on disk whose router document is at `router`.
    pub fn dir(router: &Path) -> Self {
        Self::new(Dir::new(router))
    }

    /// Reads and checks the source as it is now.
    pub fn check(&self) -> Checked {
        Checked {
            from: self.source.name().to_path_buf(),
            config: check(self.source.as_ref()),
        }
    }
}
