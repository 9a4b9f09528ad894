//! `xfed run`: the node under its supervisor, until SIGTERM or SIGINT; SIGHUP reads the
//! configuration again.

use std::io;
use std::path::Path;
use std::process::ExitCode;

use super::out::stderr;
use super::{load_config, Refused};
use xfed::admin::Control;
use xfed::config::Config;
use xfed::node::supervisor::Supervisor;

/// `xfed run`: refuses to start on a refused configuration (exit 2).
pub fn run(path: &Path) -> io::Result<ExitCode> {
    let cfg = match load_config(path, Refused::NotStarting) {
        Ok(cfg) => cfg,
        Err(code) => return Ok(code),
    };
    let _log = xfed::telemetry::init();
    Ok(run_node(cfg))
}

fn run_node(cfg: Config) -> ExitCode {
    let system = actix::System::new();
    let result = system.block_on(async move {
        let clock = std::sync::Arc::new(xfed::restart::schedule::SystemClock);
        let supervisor = Supervisor::start(cfg, clock).await?;
        let mut signals = Signals::new()?;
        while signals.next().await == Signal::Reload {
            match Control::reload(&supervisor).await {
                Ok(r) => {
                    tracing::info!(
                        version = r.version,
                        applied = r.applied,
                        "SIGHUP: configuration read again"
                    )
                }
                Err(e) => tracing::warn!(problems = ?e.problems, "SIGHUP: {}", e.error),
            }
        }
        supervisor.shutdown().await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            stderr!("xfed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Signal {
    /// SIGHUP: read the configuration again.
    Reload,
    /// SIGTERM or SIGINT: shut down.
    Stop,
}

/// The signals the node acts on.
pub(super) struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub(super) async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => {
                tracing::info!("SIGTERM received");
                Signal::Stop
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupt received");
                Signal::Stop
            }
            _ = self.hup.recv() => {
                tracing::info!("SIGHUP received: reloading the configuration");
                Signal::Reload
            }
        }
    }
}
