//! Logging: `tracing` to stderr, filtered by `XFED_LOG` (same syntax as `RUST_LOG`,
//! default `info`). The level of the federation target (`xfed::s2s`) can be changed while
//! the node runs, through the admin API, without touching the rest of the filter.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

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
}

static LIVE: OnceLock<Live> = OnceLock::new();

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let base = std::env::var("XFED_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    let installed = tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only on a terminal: log files and journals get plain text.
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .try_init()
        .is_ok();
    if installed {
        let _ = LIVE.set(Live {
            base,
            federation: Mutex::new(None),
            handle,
        });
    }
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
