//! Logging: `tracing` to stderr, filtered by `XFED_LOG` (same syntax as `RUST_LOG`,
//! default `info`). The level of the federation target (`xfed::s2s`) can be changed while
//! the node runs, through the admin API, without touching the rest of the filter.
//!
//! Lines are written by a thread of their own behind a bounded queue: a journal or pipe
//! that stops reading delays the log, never a thread that routes. When the queue is full,
//! lines are dropped and counted (`lines_dropped`, the metric
//! `xfed_log_lines_dropped_total`).

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The log target of server-to-server federation.
pub const FEDERATION_TARGET: &str = "xfed::s2s";

/// The filter installed at start, and the handle that swaps it.
struct Live {
    base: String,
    federation: Mutex<Option<String>>,
    handle: reload::Handle<EnvFilter, Registry>,
    dropped: ErrorCounter,
}

static LIVE: OnceLock<Live> = OnceLock::new();

/// Lines waiting for stderr: a few MB at most.
const QUEUE_LINES: usize = 16_384;

/// Keeps the log's writer thread; dropping it writes what is still queued (for up to about
/// a second). Hold it until the process ends.
#[must_use = "lines still queued are lost unless this is held until the end"]
pub struct LogGuard {
    _writer: Option<WorkerGuard>,
}

/// Installs the global subscriber. Safe to call more than once (later calls do nothing and
/// return a guard that holds nothing).
pub fn init() -> LogGuard {
    if LIVE.get().is_some() {
        return LogGuard { _writer: None };
    }
    let base = std::env::var("XFED_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("xfed-log")
        .finish(std::io::stderr());
    let dropped = writer.error_counter();
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                // Colour codes only on a terminal: log files and journals get plain text.
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .try_init()
        .is_ok();
    if !installed {
        return LogGuard { _writer: None };
    }
    let _ = LIVE.set(Live {
        base,
        federation: Mutex::new(None),
        handle,
        dropped,
    });
    LogGuard {
        _writer: Some(guard),
    }
}

/// Log lines dropped since the start because stderr did not keep up.
pub fn lines_dropped() -> u64 {
    LIVE.get().map_or(0, |l| l.dropped.dropped_lines() as u64)
}

/// Why the federation log level cannot be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    #[error("logging is not set up by this process")]
    NotSetUp,
    #[error("{0:?} is not a log level (error, warn, info, debug, trace)")]
    BadLevel(String),
    #[error("cannot change the log filter: {0}")]
    Reload(String),
}

/// The federation target's level set at run time (`None`: as the start-up filter says),
/// and the whole filter in effect.
pub fn federation_level() -> Result<(Option<String>, String), LevelError> {
    let live = LIVE.get().ok_or(LevelError::NotSetUp)?;
    let level = live
        .federation
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let filter = live
        .handle
        .with_current(|f| f.to_string())
        .map_err(|e| LevelError::Reload(e.to_string()))?;
    Ok((level, filter))
}

/// Sets the federation target's level (`"default"` goes back to the start-up filter);
/// answers the filter now in effect.
pub fn set_federation_level(level: &str) -> Result<String, LevelError> {
    let live = LIVE.get().ok_or(LevelError::NotSetUp)?;
    let level = level.trim().to_ascii_lowercase();
    let directives = match level.as_str() {
        "default" => live.base.clone(),
        "error" | "warn" | "info" | "debug" | "trace" | "off" => {
            format!("{},{FEDERATION_TARGET}={level}", live.base)
        }
        _ => return Err(LevelError::BadLevel(level)),
    };
    let filter = EnvFilter::try_new(&directives).map_err(|e| LevelError::Reload(e.to_string()))?;
    live.handle
        .reload(filter)
        .map_err(|e| LevelError::Reload(e.to_string()))?;
    *live.federation.lock().unwrap_or_else(|e| e.into_inner()) =
        (level != "default").then_some(level);
    Ok(directives)
}
