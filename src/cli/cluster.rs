//! The `xfed` commands of a cluster (cargo feature `cluster`): `run` and `check-config` of a
//! node whose own file has `[cluster]`, `config push | pull | diff`, and the admin API of
//! such a node (its token is in etcd). The cluster's part of `xfed status` is printed with
//! the rest of the status table (`xfed::admin::tables`).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::args::ConfigCommand;
use super::out::{stderr, Out};
use super::run::{Signal, Signals};
use super::{refuse, Refused, BAD_CONFIG};
use xfed::admin::client::{AdminClient, ClientError};
use xfed::admin::Control;
use xfed::cluster::client::Client;
use xfed::cluster::push::{gather, pull, push, Gathered, PushError, Pushed};
use xfed::node::cluster::{ClusterNode, ClusterStartError};

/// Whether the node's own file `local` puts it in a cluster.
pub fn is_cluster(local: &Path) -> bool {
    std::fs::read_to_string(local)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("cluster"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// `xfed config ...` with the node's own file `local`.
pub fn config(out: &mut Out, command: ConfigCommand, local: &Path) -> io::Result<ExitCode> {
    runtime().block_on(async {
        let client = match Client::open(local).await {
            Ok(c) => c,
            Err(e) => return Ok(fail(&e)),
        };
        match command {
            ConfigCommand::Push { dir, dry_run } => {
                let gathered = match gather(&dir) {
                    Ok(g) => g,
                    Err(e) => return Ok(refused(e)),
                };
                match push(&client.etcd, &client.keys, &dir, &gathered, dry_run).await {
                    Ok(p) => pushed(out, &p, dry_run),
                    Err(e) => Ok(refused(e)),
                }
            }
            ConfigCommand::Diff { dir } => {
                let gathered = match gather(&dir) {
                    Ok(g) => Gathered {
                        based_on: None,
                        ..g
                    },
                    Err(e) => return Ok(refused(e)),
                };
                match push(&client.etcd, &client.keys, &dir, &gathered, true).await {
                    Ok(p) => pushed(out, &p, true),
                    Err(e) => Ok(refused(e)),
                }
            }
            ConfigCommand::Pull { out: folder } => {
                let snapshot = match client.snapshot().await {
                    Ok(s) => s,
                    Err(e) => return Ok(fail(&e)),
                };
                match pull(&snapshot, &folder) {
                    Ok(files) => {
                        writeln!(
                            out,
                            "version {} ({} files) written to {}",
                            snapshot.version,
                            files.len(),
                            folder.display()
                        )?;
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => Ok(fail(&format!("{}: {e}", folder.display()))),
                }
            }
        }
    })
}

/// What a push did, or (dry) would do.
fn pushed(out: &mut Out, p: &Pushed, dry_run: bool) -> io::Result<ExitCode> {
    match (p.version, dry_run) {
        (Some(v), _) => writeln!(out, "pushed version {v} (based on version {})", p.based_on)?,
        (None, true) => writeln!(out, "would push (based on version {})", p.based_on)?,
        (None, false) => writeln!(
            out,
            "nothing changed: the cluster stays at version {}",
            p.based_on
        )?,
    }
    if !p.files.is_empty() {
        writeln!(out, "files:")?;
        for f in &p.files {
            writeln!(out, "  {f}")?;
        }
    }
    if !p.changes.is_empty() {
        writeln!(out, "changes:")?;
        for c in &p.changes {
            writeln!(out, "  {c}\n    -> {}", c.action.as_str())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A push that wrote nothing: a refused folder as `check-config` says it (exit 2), etcd
/// out of reach (exit 1), anything else about the folder or the version (exit 2).
fn refused(e: PushError) -> ExitCode {
    match e {
        PushError::Refused(errs) => refuse(&errs, Refused::NotPushed),
        PushError::Etcd(e) => fail(&e.to_string()),
        other => {
            stderr!("xfed: {other}");
            ExitCode::from(BAD_CONFIG)
        }
    }
}

fn fail(e: &str) -> ExitCode {
    stderr!("xfed: {e}");
    ExitCode::FAILURE
}

/// The admin API of the node whose own file is `local`, its token read from etcd.
pub fn admin_client(local: &Path) -> Result<AdminClient, ClientError> {
    runtime().block_on(async {
        let client = Client::open(local).await.map_err(ClientError::Setup)?;
        let (addr, token) = client.admin_endpoint().await.map_err(ClientError::Setup)?;
        let token = token.ok_or_else(|| {
            ClientError::Setup(
                "the cluster's [admin] token_file is not set, so the admin API is off".into(),
            )
        })?;
        Ok(AdminClient::new(addr, &token))
    })
}

/// `xfed check-config` of a node in a cluster: the cluster's configuration as it would run.
pub fn check_config(out: &mut Out, local: &Path) -> io::Result<ExitCode> {
    runtime().block_on(async {
        let client = match Client::open(local).await {
            Ok(c) => c,
            Err(e) => return Ok(fail(&e)),
        };
        match client.config().await {
            Ok(Ok(cfg)) => {
                write!(out, "{}", cfg.summary())?;
                Ok(ExitCode::SUCCESS)
            }
            Ok(Err(errs)) => Ok(refuse(&errs, Refused::Counted)),
            Err(e) => Ok(fail(&e)),
        }
    })
}

/// `xfed run` of a node in a cluster: joins, runs what the cluster pushed, until SIGTERM or
/// SIGINT (then leaves at once); SIGHUP reads its own file again.
pub fn run(local: &Path) -> io::Result<ExitCode> {
    let _log = xfed::telemetry::init();
    let system = actix::System::new();
    let result = system.block_on(async move {
        let clock = Arc::new(xfed::restart::schedule::SystemClock);
        let node = match ClusterNode::start(local, clock).await {
            Ok(n) => n,
            Err(ClusterStartError::Refused(errs)) => {
                return Ok(refuse(&errs, Refused::NotStarting));
            }
            Err(e) => return Err(anyhow::Error::new(e)),
        };
        tracing::info!(node = node.agent.name(), "joined the cluster");
        let mut signals = Signals::new()?;
        while signals.next().await == Signal::Reload {
            match Control::reload(&node.supervisor).await {
                Ok(r) => tracing::info!(
                    version = r.version,
                    applied = r.applied,
                    "SIGHUP: configuration read again"
                ),
                Err(e) => tracing::warn!(problems = ?e.problems, "SIGHUP: {}", e.error),
            }
        }
        node.shutdown().await;
        anyhow::Ok(ExitCode::SUCCESS)
    });
    Ok(match result {
        Ok(code) => code,
        Err(e) => {
            stderr!("xfed: {e:#}");
            ExitCode::FAILURE
        }
    })
}
