//! The `xfed` commands of a cluster (cargo feature `cluster`): `run` of a node whose own
//! file has `[cluster]`, `config push | pull | diff`, and the cluster part of `status`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use xfed::admin::client::{AdminClient, ClientError};
use xfed::cluster::client::Client;
use xfed::cluster::push::{gather, pull, push, Gathered, PushError, Pushed};
use xfed::cluster::status::ClusterView;
use xfed::node::cluster::{ClusterNode, ClusterStartError};

/// Exit status for a refused configuration or push.
const REFUSED: u8 = 2;

/// `xfed config ...`: the cluster's configuration in etcd.
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a folder laid out like config/ + tenants/ as check-config does, and write it to
    /// etcd in one transaction: the cluster's next version. Refused (exit 2, nothing
    /// written) when the folder is, or when someone else pushed since the version it holds.
    Push {
        /// The folder: DIR/config/router.toml and the tenants it names.
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the cluster's configuration into a folder, as it was pushed.
    Pull {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// What pushing a folder would change, per router instance (node, each tenant).
    Diff {
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
    },
}

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
pub fn config(command: ConfigCommand, local: &Path) -> ExitCode {
    runtime().block_on(async {
        let client = match Client::open(local).await {
            Ok(c) => c,
            Err(e) => return fail(&e),
        };
        match command {
            ConfigCommand::Push { dir, dry_run } => {
                let gathered = match gather(&dir) {
                    Ok(g) => g,
                    Err(e) => return refused(e),
                };
                match push(&client.etcd, &client.keys, &dir, &gathered, dry_run).await {
                    Ok(p) => {
                        print!("{}", pushed_text(&p, dry_run));
                        ExitCode::SUCCESS
                    }
                    Err(e) => refused(e),
                }
            }
            ConfigCommand::Diff { dir } => {
                let gathered = match gather(&dir) {
                    Ok(g) => Gathered {
                        based_on: None,
                        ..g
                    },
                    Err(e) => return refused(e),
                };
                match push(&client.etcd, &client.keys, &dir, &gathered, true).await {
                    Ok(p) => {
                        print!("{}", pushed_text(&p, true));
                        ExitCode::SUCCESS
                    }
                    Err(e) => refused(e),
                }
            }
            ConfigCommand::Pull { out } => {
                let snapshot = match client.snapshot().await {
                    Ok(s) => s,
                    Err(e) => return fail(&e),
                };
                match pull(&snapshot, &out) {
                    Ok(files) => {
                        println!(
                            "version {} ({} files) written to {}",
                            snapshot.version,
                            files.len(),
                            out.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(&format!("{}: {e}", out.display())),
                }
            }
        }
    })
}

fn pushed_text(p: &Pushed, dry_run: bool) -> String {
    let mut out = match (p.version, dry_run) {
        (Some(v), _) => format!("pushed version {v} (based on version {})\n", p.based_on),
        (None, true) => format!("would push (based on version {})\n", p.based_on),
        (None, false) => format!(
            "nothing changed: the cluster stays at version {}\n",
            p.based_on
        ),
    };
    if !p.files.is_empty() {
        out.push_str("files:\n");
        for f in &p.files {
            out.push_str(&format!("  {f}\n"));
        }
    }
    if !p.changes.is_empty() {
        out.push_str("changes:\n");
        for c in &p.changes {
            out.push_str(&format!("  {c}\n    -> {}\n", c.action.as_str()));
        }
    }
    out
}

fn refused(e: PushError) -> ExitCode {
    match e {
        PushError::Refused(errs) => {
            eprintln!("{errs}");
            eprintln!(
                "push refused: {} problem(s); nothing was written",
                errs.0.len()
            );
            ExitCode::from(REFUSED)
        }
        PushError::Etcd(e) => fail(&e.to_string()),
        other => {
            eprintln!("xfed: {other}");
            ExitCode::from(REFUSED)
        }
    }
}

fn fail(e: &str) -> ExitCode {
    eprintln!("xfed: {e}");
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
pub fn check_config(local: &Path) -> ExitCode {
    runtime().block_on(async {
        let client = match Client::open(local).await {
            Ok(c) => c,
            Err(e) => return fail(&e),
        };
        match client.config().await {
            Ok(Ok(cfg)) => {
                print!("{}", cfg.summary());
                ExitCode::SUCCESS
            }
            Ok(Err(errs)) => {
                eprintln!("{errs}");
                eprintln!("configuration refused: {} problem(s)", errs.0.len());
                ExitCode::from(REFUSED)
            }
            Err(e) => fail(&e),
        }
    })
}

/// `xfed run` of a node in a cluster.
pub fn run(local: &Path) -> ExitCode {
    let system = actix::System::new();
    let result = system.block_on(async move {
        let clock = Arc::new(xfed::restart::schedule::SystemClock);
        let node = match ClusterNode::start(local, clock).await {
            Ok(n) => n,
            Err(ClusterStartError::Refused(errs)) => {
                eprintln!("{errs}");
                eprintln!("configuration refused: {} problem(s)", errs.0.len());
                return Ok(ExitCode::from(REFUSED));
            }
            Err(e) => return Err(anyhow::Error::new(e)),
        };
        tracing::info!(node = node.agent.name(), "joined the cluster");
        let mut signals = crate::Signals::new()?;
        while signals.next().await == crate::Signal::Reload {
            match node.supervisor.reload().await {
                Ok(v) => tracing::info!(version = %v["version"], applied = %v["applied"], "SIGHUP: configuration read again"),
                Err(e) => tracing::warn!(problems = %e["problems"], "SIGHUP: {}", e["error"].as_str().unwrap_or_default()),
            }
        }
        node.shutdown().await;
        anyhow::Ok(ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xfed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The cluster part of `xfed status`, when the node is in one.
pub fn status_table(v: &serde_json::Value) -> String {
    let Ok(view) = serde_json::from_value::<ClusterView>(v["cluster"].clone()) else {
        return String::new();
    };
    let mut out = format!(
        "\ncluster {}: version {} (pushed by {} at {})\n",
        view.prefix, view.version, view.pushed_by, view.pushed_at
    );
    if !view.etcd.reachable {
        out.push_str(&format!(
            "etcd unreachable since {} ({}): serving on the last configuration read whole; other nodes as read at {}\n",
            view.etcd.unreachable_since.as_deref().unwrap_or("?"),
            view.etcd.error.as_deref().unwrap_or(""),
            view.etcd.read_at,
        ));
    }
    out.push_str("rolling restart: none in progress\n");
    for row in &view.nodes {
        let me = if row.name == view.this_node {
            " (this node)"
        } else {
            ""
        };
        let state = if !row.alive {
            "gone".to_owned()
        } else if row.current(view.version) {
            format!("alive, on version {}", view.version)
        } else {
            let seen = row.status.as_ref().map_or(0, |s| s.seen);
            format!("alive, read version {seen}, stale")
        };
        out.push_str(&format!("  {}{me}: {state}\n", row.name));
        if let Some(s) = &row.status {
            if let Some(r) = &s.refused {
                out.push_str(&format!(
                    "    refused version {}: {}\n",
                    r.version,
                    r.problems.join("; ")
                ));
            }
            for i in &s.instances {
                let mark = if i.is_stale() {
                    format!(" stale (runs {}): {}", i.applied, i.pending.join("; "))
                } else {
                    String::new()
                };
                out.push_str(&format!("    {} version {}{mark}\n", i.instance, i.latest));
            }
            for t in &s.tenants {
                out.push_str(&format!(
                    "    tenant {}: {} link(s), {} stream(s)\n",
                    t.tenant, t.links, t.streams
                ));
            }
        }
    }
    out
}
