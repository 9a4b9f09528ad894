//! The `xfed` command line: its subcommands and their arguments, as clap reads them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use xfed::config;

/// xfed: a multitenant XMPP federation router.
#[derive(Parser)]
#[command(version, about, after_help = config::CONFIG_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
        /// Every alive node of the cluster, with a NODE column.
        #[arg(long)]
        cluster: bool,
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
        /// In a cluster: only this node (by its [node] name).
        #[arg(long = "node")]
        on_node: Option<String>,
        /// Only show what would restart and what it would disconnect (in a cluster, on
        /// every node).
        #[arg(long)]
        dry_run: bool,
    },
    /// Take a node out of service for maintenance: it takes no new connections, closes its
    /// component links and s2s streams gracefully (in a cluster, what it has goes to the
    /// other nodes), and answers once it is idle. It stays drained until restarted.
    Drain {
        #[command(flatten)]
        node: NodeArgs,
        /// In a cluster: the node to drain, by its [node] name (default: the one asked).
        #[arg(long = "node")]
        on_node: Option<String>,
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
        /// Every alive node of the cluster, merged by time, with the node first.
        #[arg(long)]
        cluster: bool,
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
        command: ConfigCommand,
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
pub struct NodeArgs {
    /// The node's router file: its `[listen] admin` and `[admin] token_file`.
    #[arg(long, default_value_os_t = config::default_router_path())]
    pub config: PathBuf,
    /// The admin API's URL, instead of reading it from --config.
    #[arg(long, requires = "token_file")]
    pub admin: Option<String>,
    /// The file holding the admin token, with --admin.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Print the JSON the API answered instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `xfed config ...`: the cluster's configuration in etcd.
#[cfg(feature = "cluster")]
#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a folder laid out like config/ + tenants/ as check-config does, and write it to
    /// etcd in one transaction: the cluster's next version. Refused (exit 2, nothing
    /// written) when the folder is, or when someone else pushed since the version it holds.
    Push {
        /// The folder: DIR/config/router.toml and the tenants it names.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Only say what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the cluster's configuration into a folder, as it was pushed.
    Pull {
        #[arg(long)]
        out: PathBuf,
    },
    /// What pushing a folder would change, per router instance (node, each tenant).
    Diff {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}
