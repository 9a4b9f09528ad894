//! Logging: `tracing` to stderr, filtered by `XFED_LOG` (same syntax as `RUST_LOG`,
//! default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_env("XFED_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: log files and journals get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
