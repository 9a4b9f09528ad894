//! Configuration: `config/router.toml` for the node and `tenants/*.toml`, one per tenant,
//! parsed into types (unknown keys refused) and checked as a whole. A configuration is
//! either entirely valid or refused with one [`ConfigError`] per problem, naming the file,
//! the key and the reason.
//!
//! Reading is kept apart from checking. A [`Source`] hands out the router document, the
//! tenant documents and the bytes of the files they refer to; [`Dir`] is a folder on disk.
//! [`check`] holds every rule and reads only through its source, each file once; the
//! [`Config`] it answers carries the checked bytes of every certificate, key, CA and CRL
//! ([`Config::files`]), which TLS is built from. A running node's next configurations come
//! from a [`Feed`], checked by whoever asks for a reload.
//!
//! The files follow the seams: `source.rs` (reading), `parse.rs` (TOML with line numbers),
//! `reader.rs` (referenced files, read once), `router.rs` (the router document's rules),
//! `tenant.rs` (one tenant's), `tenants.rs` (across tenants), `check.rs` (the entry),
//! `feed.rs` (reloads).

mod check;
mod domain;
mod etcd;
mod feed;
pub mod file;
mod locate;
mod material;
mod parse;
mod reader;
mod router;
pub use router::relay_addresses;
mod source;
mod summary;
mod tenant;
mod tenants;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use check::{admin_endpoint, check, endpoint, load};
pub use domain::{address_domain, domain_key, domain_of, normalize_domain};
pub use etcd::{etcd_access, EtcdTls};
pub use feed::{Checked, Feed};
pub use file::{PrivacyMode, SecurityMode};
pub use locate::{default_router_path, CONFIG_HELP};
pub use material::Material;
pub use source::{Dir, Document, Source};

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The router document it was checked from (for a [`Dir`], the path of `router.toml`).
    pub path: PathBuf,
    pub node_name: String,
    pub listen: Listen,
    pub tls: Tls,
    pub federation: Federation,
    /// Nameservers for remote lookups; empty = the system resolver.
    pub dns_nameservers: Vec<SocketAddr>,
    /// Bearer token of the admin API.
    pub admin_token: Option<Secret>,
    pub restart: Restart,
    pub limits: Limits,
    pub events: EventsConfig,
    /// `Some`: the node is one of a cluster, its configuration held in etcd.
    pub cluster: Option<Cluster>,
    /// Tenants, sorted by name.
    pub tenants: Vec<TenantConfig>,
    /// Every certificate, key, CA and CRL file as read when checked, by path: TLS is built
    /// from these bytes, and their digests make a file replaced in place count as a change
    /// at the next reload.
    pub files: BTreeMap<PathBuf, Material>,
}

/// Listening sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub s2s: SocketAddr,
    pub component: SocketAddr,
    pub admin: SocketAddr,
}

/// A certificate chain and its key, both PEM files; what they held when checked is in
/// [`Config::files`] under these paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The node's TLS files (their checked bytes are in [`Config::files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// `None`: self-signed development certificates, the node's and one per tenant.
    pub cert: Option<CertPaths>,
    pub ca: Vec<PathBuf>,
    pub crl: Vec<PathBuf>,
}

/// Server-to-server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    pub security_mode: SecurityMode,
    pub require_client_certs: bool,
    pub sasl_external: bool,
    /// Offer and use XEP-0198 stream management on s2s streams.
    pub stream_management: bool,
    /// `None`: a random secret is made at start (fine for a single node only).
    pub dialback_secret: Option<Secret>,
    pub idle_timeout: Duration,
}

/// When changes apply.
#[derive(Debug, Clone)]
pub struct Restart {
    pub delayed: bool,
    /// The cron expression as written.
    pub schedule_text: String,
    pub schedule: cron::Schedule,
}

/// The event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// `None`: events are kept in memory only.
    pub file: Option<PathBuf>,
    pub max_file_bytes: u64,
    pub keep_files: usize,
    /// Events kept in memory.
    pub memory: usize,
}

/// How a node reaches its cluster's etcd (`[cluster]`, the machine's own settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Endpoints, `http://host:port` or `https://host:port`.
    pub etcd: Vec<String>,
    /// `/xfed/<cluster name>`: absolute, no trailing `/`.
    pub prefix: String,
    /// The node's lease: how long it stays listed after it stops renewing it.
    pub lease: Duration,
    /// How long a node's turn in a rolling restart may take.
    pub rollout_step: Duration,
    /// etcd's user and password, when its authentication is on.
    pub user: Option<(String, Secret)>,
    /// For `https://` endpoints: whom to trust, and the node's client certificate.
    pub tls: Option<EtcdTls>,
    /// Where inter-node links are taken, and the address other nodes dial for them.
    pub relay: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
}

/// Per-connection bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_stanza_bytes: usize,
    pub max_depth: usize,
    pub handshake_timeout: Duration,
    pub queue_bytes_per_connection: usize,
    /// Reading a connection pauses while this many bytes of what it read are in flight.
    pub in_flight_bytes_per_connection: usize,
    /// A destination whose write waited this long is stuck: it stops holding its senders
    /// back.
    pub stuck: Duration,
    /// Caps on connections that have not authenticated, for each listener.
    pub unauthenticated: Caps,
}

/// Caps on the connections one listener holds that have not authenticated yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// From one source address (IPv6: one /64).
    pub per_address: usize,
    /// From all sources together.
    pub total: usize,
}

/// One tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    pub name: String,
    /// The file it was read from.
    pub file: PathBuf,
    pub secret: Secret,
    /// Federation domains, normalized (see [`domain_key`]).
    pub domains: Vec<String>,
    /// Chat node aliases, normalized.
    pub chat_node_aliases: Vec<String>,
    pub privacy: Privacy,
    pub static_routes: StaticRoutes,
    pub tls: Option<CertPaths>,
}

impl Config {
    /// The tenant called `name`.
    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The checked bytes of `path`, a certificate, key, CA or CRL file of this configuration.
    pub fn material(&self, path: &Path) -> Result<&Material, String> {
        self.files.get(path).ok_or_else(|| {
            format!(
                "{}: not among the files checked with the configuration",
                path.display()
            )
        })
    }
}

impl TenantConfig {
    /// Every domain and alias the tenant owns.
    pub fn all_domains(&self) -> impl Iterator<Item = &str> {
        self.domains
            .iter()
            .chain(&self.chat_node_aliases)
            .map(String::as_str)
    }
}

/// Whom a tenant federates with (evaluated by `routing::policy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Privacy {
    pub mode: PrivacyMode,
    pub allow: BTreeSet<String>,
    pub deny: BTreeSet<String>,
}

/// A tenant's static routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticRoutes {
    pub enabled: bool,
    /// Remote domain (normalized) → targets, tried in turn.
    pub routes: BTreeMap<String, Vec<RouteTarget>>,
}

impl StaticRoutes {
    /// The targets for `domain` when static routing is on and has routes for it.
    pub fn for_domain(&self, domain: &str) -> Option<&[RouteTarget]> {
        if !self.enabled {
            return None;
        }
        self.routes.get(domain).map(Vec::as_slice)
    }
}

/// One static route target: an IP address or host name, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A secret that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One problem in a configuration: which file, which key (dotted path), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Line of the problem, when the parser knows it.
    pub line: Option<usize>,
    /// Dotted key path (`federation.security_mode`, `static_routes.routes."a.example"`);
    /// empty when the problem is the file itself.
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
