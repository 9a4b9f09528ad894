//! The `xfed` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use xfed::admin::client::{self, AdminClient, ClientError};
use xfed::config;
use xfed::node::supervisor::Supervisor;

#[cfg(feature = "cluster")]
mod cluster_cli;

/// mimalloc: thread-local free lists make the small allocations of the hot path (a stanza's
/// bytes and attributes, queue entries) cheaper than glibc's malloc, measured in the
/// federation benchmark (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// xfed: a multitenant XMPP federation router.
#[derive(Parser)]
#[command(version, about, after_help = config::CONFIG_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node.
    Run {
        /// The node's router file; tenant files are found through its `tenants_dir`.
        #[arg(long, default_value_os_t = config::default_router_path())]
        config: PathBuf,
    },
    /// Check the configuration without starting: exit 0 with a summary, or 2 with one line
    /// per problem (file, key, reason).
    CheckConfig {
        #[arg(long, default_value_os_t = config::default_router_path())]
        config: PathBuf,
    },
    /// A running node: federation, tenants, their links and streams.
    Status {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A running node's federated connections, and the last failure per domain pair.
    Connections {
        #[command(flatten)]
        node: NodeArgs,
        /// Only the connections of this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only the connections carrying this domain (local or remote).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Close a federated connection gracefully (by its id in `xfed connections`).
    CloseConnection {
        id: u64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Tell a running node to read its configuration again (as SIGHUP does). Exit 2 when the
    /// node refuses it (the running configuration stays).
    Reload {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Restart the stale router instances of a running node (staged changes apply).
    Restart {
        #[command(flatten)]
        node: NodeArgs,
        /// Only this tenant's router.
        #[arg(long)]
        tenant: Option<String>,
        /// Only show what would restart and what it would disconnect.
        #[arg(long)]
        dry_run: bool,
    },
    /// A running node's event log, oldest first.
    Events {
        #[command(flatten)]
        node: NodeArgs,
        /// Only events since this time: RFC 3339 (2026-11-24T10:00:00Z) or an age (30s,
        /// 10m, 2h, 1d).
        #[arg(long)]
        since: Option<String>,
        /// Only the events of this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many, the newest.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// DNS for a domain's XMPP servers, in the order xfed would try them, and whether each
    /// accepts a TCP connection. Exit 1 when a domain has no reachable server.
    CheckDns {
        /// The domain to check (a remote partner, or one of ours).
        #[arg(required_unless_present = "all")]
        domain: Option<String>,
        /// Check every domain and chat node alias of every tenant, as the world sees them.
        #[arg(long, conflicts_with = "domain")]
        all: bool,
        /// The node's router file: its `[dns] nameservers`, tenants and static routes (used
        /// when it exists; required with --all).
        #[arg(long, default_value_os_t = config::default_router_path())]
        config: PathBuf,
        /// Ask this nameserver (`ip:port`) instead of the configured or system one.
        #[arg(long)]
        nameserver: Vec<std::net::SocketAddr>,
    },
    /// The node's and each tenant's certificate: dates, chain, and the domains and aliases
    /// its names fail to cover. Exit 1 when something needs fixing.
    CheckCert {
        #[arg(long, default_value_os_t = config::default_router_path())]
        config: PathBuf,
    },
    /// A certificate signing request (PEM) naming the node, every tenant domain and every
    /// chat node alias, signed with KEY.
    Csr {
        /// PEM private key the certificate will go with.
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value_os_t = config::default_router_path())]
        config: PathBuf,
        /// A further name to include (a cluster name); repeat for more.
        #[arg(long)]
        name: Vec<String>,
        /// Only this tenant's domains and aliases (for a tenant's own certificate).
        #[arg(long)]
        tenant: Option<String>,
        /// Write the request here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The cluster's configuration in etcd (a node whose own file has [cluster]).
    #[cfg(feature = "cluster")]
    Config {
        #[command(subcommand)]
        command: cluster_cli::ConfigCommand,
        /// The node's own file: its [cluster] says where etcd is.
        #[arg(long, global = true, default_value_os_t = config::default_router_path())]
        config: PathBuf,
    },
    /// Show, or set at run time, the level of the federation log (error, warn, info, debug,
    /// trace; `default` goes back to the level the node started with).
    LogLevel {
        level: Option<String>,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// How to reach a running node's admin API.
#[derive(clap::Args)]
struct NodeArgs {
    /// The node's router file: its `[listen] admin` and `[admin] token_file`.
    #[arg(long, default_value_os_t = config::default_router_path())]
    config: PathBuf,
    /// The admin API's URL, instead of reading it from --config.
    #[arg(long, requires = "token_file")]
    admin: Option<String>,
    /// The file holding the admin token, with --admin.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Print the JSON the API answered instead of a table.
    #[arg(long)]
    json: bool,
}

impl NodeArgs {
    fn client(&self) -> Result<AdminClient, ClientError> {
        match (&self.admin, &self.token_file) {
            (Some(url), Some(token)) => AdminClient::from_args(url, token),
            #[cfg(feature = "cluster")]
            _ if cluster_cli::is_cluster(&self.config) => cluster_cli::admin_client(&self.config),
            _ => AdminClient::from_config(&self.config),
        }
    }
}

/// Runs one admin call and prints its answer.
fn admin_call(
    node: &NodeArgs,
    call: impl FnOnce(&AdminClient) -> Result<serde_json::Value, ClientError>,
    table: fn(&serde_json::Value) -> String,
) -> ExitCode {
    match node.client().and_then(|c| call(&c)) {
        Ok(v) if node.json => {
            println!("{v:#}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            print!("{}", table(&v));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xfed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `xfed status`'s table, with the cluster's part when the node is in one.
fn status_table(v: &serde_json::Value) -> String {
    #[allow(unused_mut)]
    let mut out = client::status_table(v);
    #[cfg(feature = "cluster")]
    out.push_str(&cluster_cli::status_table(v));
    out
}

/// Exit status for a refused configuration.
const BAD_CONFIG: u8 = 2;
/// Exit status for arguments that make no sense (as clap uses).
const BAD_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "cluster")]
        Command::CheckConfig { config } if cluster_cli::is_cluster(&config) => {
            cluster_cli::check_config(&config)
        }
        #[cfg(feature = "cluster")]
        Command::Config { command, config } => cluster_cli::config(command, &config),
        #[cfg(feature = "cluster")]
        Command::Run { config } if cluster_cli::is_cluster(&config) => {
            xfed::telemetry::init();
            cluster_cli::run(&config)
        }
        Command::CheckConfig { config } => match config::load(&config) {
            Ok(cfg) => {
                print!("{}", cfg.summary());
                ExitCode::SUCCESS
            }
            Err(errs) => {
                eprintln!("{errs}");
                eprintln!("configuration refused: {} problem(s)", errs.0.len());
                ExitCode::from(BAD_CONFIG)
            }
        },
        Command::Status { node } => admin_call(&node, |c| c.get("/api/status"), status_table),
        Command::Connections {
            node,
            tenant,
            domain,
        } => {
            let mut query = Vec::new();
            if let Some(t) = &tenant {
                query.push(format!("tenant={t}"));
            }
            if let Some(d) = &domain {
                query.push(format!("domain={}", config::domain_key(d)));
            }
            let path = format!("/api/connections?{}", query.join("&"));
            admin_call(&node, |c| c.get(&path), client::connections_table)
        }
        Command::CloseConnection { id, node } => admin_call(
            &node,
            |c| c.post(&format!("/api/connections/{id}/close")),
            |v| format!("closing connection {}\n", v["closed"]),
        ),
        Command::Reload { node } => {
            let client = match node.client() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("xfed: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match client.post("/api/reload") {
                Ok(v) if node.json => {
                    println!("{v:#}");
                    ExitCode::SUCCESS
                }
                Ok(v) => {
                    print!("{}", client::reload_table(&v));
                    ExitCode::SUCCESS
                }
                Err(ClientError::Refused { status: 422, body }) => {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                    for p in v["problems"].as_array().into_iter().flatten() {
                        eprintln!("{}", p.as_str().unwrap_or_default());
                    }
                    eprintln!("xfed: {}", v["error"].as_str().unwrap_or(&body));
                    ExitCode::from(BAD_CONFIG)
                }
                Err(e) => {
                    eprintln!("xfed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Restart {
            node,
            tenant,
            dry_run,
        } => {
            let mut query = vec![format!("dry_run={dry_run}")];
            if let Some(t) = tenant {
                query.push(format!("tenant={t}"));
            }
            let path = format!("/api/restart?{}", query.join("&"));
            admin_call(&node, |c| c.post(&path), client::restart_table)
        }
        Command::Events {
            node,
            since,
            tenant,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(s) = since {
                match client::parse_since(&s, chrono::Utc::now()) {
                    Ok(t) => query.push(format!("since={}", t.replace('+', "%2B"))),
                    Err(e) => {
                        eprintln!("xfed: {e}");
                        return ExitCode::from(BAD_USAGE);
                    }
                }
            }
            if let Some(t) = tenant {
                query.push(format!("tenant={t}"));
            }
            if let Some(n) = limit {
                query.push(format!("limit={n}"));
            }
            let path = format!("/api/events?{}", query.join("&"));
            admin_call(&node, |c| c.get(&path), client::events_table)
        }
        Command::LogLevel { level, node } => {
            let show = |v: &serde_json::Value| {
                format!(
                    "federation log ({}): {}\nfilter: {}\n",
                    v["target"].as_str().unwrap_or_default(),
                    v["federation"].as_str().unwrap_or_default(),
                    v["filter"].as_str().unwrap_or_default()
                )
            };
            match level {
                Some(l) => admin_call(&node, |c| c.post(&format!("/api/log-level/{l}")), show),
                None => admin_call(&node, |c| c.get("/api/log-level"), show),
            }
        }
        Command::CheckDns {
            domain,
            all,
            config,
            nameserver,
        } => check_dns(domain, all, &config, nameserver),
        Command::CheckCert { config } => {
            let cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(errs) => {
                    eprintln!("{errs}");
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            let reports = xfed::check::cert::check_certificates(&cfg);
            let mut failed = false;
            for r in &reports {
                print!("{}", r.text);
                for p in &r.problems {
                    println!("  PROBLEM: {p}");
                }
                failed |= !r.problems.is_empty();
                println!();
            }
            if failed {
                println!("certificates need attention");
                ExitCode::FAILURE
            } else {
                println!("certificates OK");
                ExitCode::SUCCESS
            }
        }
        Command::Csr {
            key,
            config,
            name,
            tenant,
            out,
        } => {
            let made = config::load(&config)
                .map_err(|e| e.to_string())
                .and_then(|cfg| xfed::check::csr::csr_names(&cfg, &name, tenant.as_deref()))
                .and_then(|names| {
                    let pem = xfed::check::csr::make_csr(&key, &names)?;
                    Ok((names, pem))
                });
            match made {
                Ok((names, pem)) => {
                    eprintln!("names: {}", names.join(", "));
                    match out {
                        Some(path) => {
                            if let Err(e) = std::fs::write(&path, pem) {
                                eprintln!("xfed: {}: {e}", path.display());
                                return ExitCode::FAILURE;
                            }
                            eprintln!("written to {}", path.display());
                        }
                        None => print!("{pem}"),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("xfed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run { config } => {
            let cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(errs) => {
                    eprintln!("{errs}");
                    eprintln!(
                        "configuration refused: {} problem(s); not starting",
                        errs.0.len()
                    );
                    return ExitCode::from(BAD_CONFIG);
                }
            };
            xfed::telemetry::init();
            run(cfg)
        }
    }
}

fn run(cfg: config::Config) -> ExitCode {
    let system = actix::System::new();
    let result = system.block_on(async move {
        let clock = std::sync::Arc::new(xfed::restart::schedule::SystemClock);
        let supervisor = Supervisor::start(cfg, clock).await?;
        let mut signals = Signals::new()?;
        while signals.next().await == Signal::Reload {
            match supervisor.reload().await {
                Ok(v) => tracing::info!(version = %v["version"], applied = %v["applied"], "SIGHUP: configuration read again"),
                Err(e) => tracing::warn!(problems = %e["problems"], "SIGHUP: {}", e["error"].as_str().unwrap_or_default()),
            }
        }
        supervisor.shutdown().await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xfed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A tenant's name and its static routes for a domain.
type StaticRoutesOf = (String, Vec<config::RouteTarget>);

/// `xfed check-dns`: one domain, or every domain of every tenant.
fn check_dns(
    domain: Option<String>,
    all: bool,
    config: &std::path::Path,
    nameservers: Vec<std::net::SocketAddr>,
) -> ExitCode {
    let cfg = if all || config.exists() {
        match config::load(config) {
            Ok(cfg) => Some(cfg),
            Err(errs) => {
                eprintln!("{errs}");
                return ExitCode::from(BAD_CONFIG);
            }
        }
    } else {
        None
    };
    let nameservers = match (&cfg, nameservers.is_empty()) {
        (Some(c), true) => c.dns_nameservers.clone(),
        _ => nameservers,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xfed: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let resolver = match xfed::s2s::resolve::Resolver::new(&nameservers) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("xfed: DNS resolver: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut checks: Vec<(String, Option<StaticRoutesOf>)> = Vec::new();
        match (domain, &cfg) {
            (Some(d), _) => {
                let d = match config::normalize_domain(&d) {
                    Ok(d) => d,
                    Err(why) => {
                        eprintln!("xfed: {d}: {why}");
                        return ExitCode::from(BAD_USAGE);
                    }
                };
                // A tenant with static routes for it reaches it only through them.
                let routed = cfg.iter().flat_map(|c| &c.tenants).find_map(|t| {
                    t.static_routes
                        .for_domain(&d)
                        .map(|r| (t.name.clone(), r.to_vec()))
                });
                checks.push((d, routed));
            }
            (None, Some(c)) => {
                for t in &c.tenants {
                    checks.extend(t.all_domains().map(|d| (d.to_owned(), None)));
                }
            }
            (None, None) => return ExitCode::from(BAD_USAGE),
        }
        let mut failed = 0;
        for (d, routed) in &checks {
            let routes = routed.as_ref().map(|(t, r)| (t.as_str(), r.as_slice()));
            let report = xfed::check::dns::check_domain(&resolver, d, routes).await;
            print!("{}", report.text);
            failed += usize::from(!report.reachable);
        }
        if failed > 0 {
            println!("{failed} of {} domain(s) not reachable", checks.len());
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Signal {
    /// SIGHUP: read the configuration again.
    Reload,
    /// SIGTERM or SIGINT: shut down.
    Stop,
}

/// The signals the node acts on.
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
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
