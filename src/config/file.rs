//! (Past 400 lines: one type per section of docs/CONFIG.md, each with its named defaults.)
//!
//! The on-disk shapes of `router.toml` and `tenants/*.toml`, exactly as operators write
//! them. Every field is documented in `docs/CONFIG.md`; unknown keys are refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `config/router.toml`: the node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterFile {
    /// Folder holding one `*.toml` per tenant, relative to this file.
    #[serde(default = "default_tenants_dir")]
    pub tenants_dir: PathBuf,
    #[serde(default)]
    pub node: NodeSection,
    #[serde(default)]
    pub listen: ListenSection,
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub federation: FederationSection,
    #[serde(default)]
    pub dns: DnsSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub restart: RestartSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub events: EventsSection,
    /// Absent: a node on its own, configured from its files alone.
    pub cluster: Option<ClusterSection>,
}

fn default_tenants_dir() -> PathBuf {
    PathBuf::from("../tenants")
}

/// `[node]`: this router's identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Name in logs, status and certificates.
    #[serde(default = "default_node_name")]
    pub name: String,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            name: default_node_name(),
        }
    }
}

fn default_node_name() -> String {
    "xfed".to_owned()
}

/// `[listen]`: the three listening sockets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSection {
    /// Server-to-server streams from the XMPP network.
    #[serde(default = "default_s2s")]
    pub s2s: SocketAddr,
    /// XEP-0114 component links from tenants' internal servers.
    #[serde(default = "default_component")]
    pub component: SocketAddr,
    /// The admin HTTP API.
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
}

impl Default for ListenSection {
    fn default() -> Self {
        Self {
            s2s: default_s2s(),
            component: default_component(),
            admin: default_admin(),
        }
    }
}

fn default_s2s() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 5269))
}
fn default_component() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7400))
}
fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7480))
}

/// `[tls]`: the node's certificate and what it trusts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain; unset = self-signed development certificates (`s2s::devcert`).
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
    /// PEM files of CAs trusted for peer certificates.
    #[serde(default)]
    pub ca: Vec<PathBuf>,
    /// CRL files (PEM or DER) checked against peer certificates.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
}

/// How TLS is used on server-to-server streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityMode {
    /// STARTTLS before anything else; no federation without it.
    #[default]
    TlsRequired,
    /// TLS when both sides can, plain otherwise.
    TlsOptional,
    /// Never TLS.
    NoTls,
}

impl SecurityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityMode::TlsRequired => "tls-required",
            SecurityMode::TlsOptional => "tls-optional",
            SecurityMode::NoTls => "no-tls",
        }
    }
}

/// `[federation]`: server-to-server behaviour.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationSection {
    #[serde(default)]
    pub security_mode: SecurityMode,
    /// Peer certificate chains must verify against `[tls] ca` and pass the CRLs.
    #[serde(default = "yes")]
    pub require_client_certs: bool,
    /// Offer and use SASL EXTERNAL (XEP-0178) when certificates allow.
    #[serde(default = "yes")]
    pub sasl_external: bool,
    /// Offer and use stream management (XEP-0198) on s2s streams: acknowledged delivery,
    /// and what a dead stream did not get acknowledged goes out again on a new one.
    #[serde(default = "yes")]
    pub stream_management: bool,
    /// File holding the dialback secret shared by all nodes (XEP-0185).
    pub dialback_secret_file: Option<PathBuf>,
    /// Seconds without traffic after which an s2s stream closes.
    #[serde(default = "default_idle")]
    pub idle_timeout_secs: u64,
}

impl Default for FederationSection {
    fn default() -> Self {
        Self {
            security_mode: SecurityMode::default(),
            require_client_certs: true,
            sasl_external: true,
            stream_management: true,
            dialback_secret_file: None,
            idle_timeout_secs: default_idle(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_idle() -> u64 {
    600
}

/// `[dns]`: how remote servers are resolved.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// Nameservers to ask (`ip:port`); empty = the system resolver.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
}

/// `[admin]`: the admin API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// File holding the bearer token the admin API requires.
    pub token_file: Option<PathBuf>,
}

/// `[restart]`: when configuration changes take effect.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartSection {
    /// Stage changes until `xfed restart` or the schedule, instead of applying at reload.
    #[serde(default)]
    pub delayed: bool,
    /// Cron expression (sec min hour day-of-month month day-of-week [year]), in UTC.
    #[serde(default = "default_schedule")]
    pub schedule: String,
}

impl Default for RestartSection {
    fn default() -> Self {
        Self {
            delayed: false,
            schedule: default_schedule(),
        }
    }
}

fn default_schedule() -> String {
    "0 0 2 * * *".to_owned()
}

/// `[events]`: the event log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// JSON-lines file the events are appended to, relative to this file; `""` = none.
    #[serde(default = "default_events_file")]
    pub file: PathBuf,
    /// The file rotates when it would grow past this many bytes.
    #[serde(default = "default_events_max_bytes")]
    pub max_file_bytes: u64,
    /// Rotated files kept (`events.jsonl.1` … `.N`).
    #[serde(default = "default_events_keep")]
    pub keep_files: usize,
    /// Newest events kept in memory for `xfed events`.
    #[serde(default = "default_events_memory")]
    pub memory: usize,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            file: default_events_file(),
            max_file_bytes: default_events_max_bytes(),
            keep_files: default_events_keep(),
            memory: default_events_memory(),
        }
    }
}

fn default_events_file() -> PathBuf {
    PathBuf::from("events.jsonl")
}
fn default_events_max_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_events_keep() -> usize {
    5
}
fn default_events_memory() -> usize {
    10_000
}

/// `[cluster]`: this node is one of several sharing their configuration through etcd
/// (docs/CLUSTER.md). Only the machine's own settings stay in its file then.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// etcd endpoints, `http://host:port` or `https://host:port`.
    pub etcd: Vec<String>,
    /// PEM CA certificates that sign etcd's server certificate (`https://` endpoints),
    /// relative to this file.
    pub etcd_ca: Option<PathBuf>,
    /// This node's client certificate for etcd (`--client-cert-auth`), with `etcd_key`.
    pub etcd_cert: Option<PathBuf>,
    pub etcd_key: Option<PathBuf>,
    /// Where this cluster's keys live in etcd, `/xfed/<cluster name>`.
    pub prefix: String,
    /// Seconds the node's lease lives without renewal: how soon a dead node leaves the views.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// etcd user, when etcd's authentication is on.
    pub user: Option<String>,
    /// File holding that user's password, relative to this file.
    pub password_file: Option<PathBuf>,
    /// Seconds a node has, in a rolling restart, to restart its stale instances and get
    /// their links back before the leader reports it timed out and moves on (the leader's
    /// own setting counts).
    #[serde(default = "default_rollout_step_secs")]
    pub rollout_step_secs: u64,
    /// Where this node takes inter-node links (stanzas for tenants linked here, from the
    /// other nodes). Without it the node forwards to others but takes nothing from them.
    pub listen: Option<SocketAddr>,
    /// The address the other nodes dial to reach `listen` (default: `listen` itself).
    pub advertise: Option<SocketAddr>,
}

fn default_lease_secs() -> u64 {
    5
}

fn default_rollout_step_secs() -> u64 {
    60
}

/// `[limits]`: what one peer may cost us.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest stanza accepted, in bytes (RFC 6120 §13.12 asks for at least 10000).
    #[serde(default = "default_max_stanza")]
    pub max_stanza_bytes: usize,
    /// Deepest element nesting inside one stanza.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Seconds a new connection has to open its stream and authenticate.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout_secs: u64,
    /// Bytes of stanzas that may wait for one slow connection before more are refused.
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes_per_connection: usize,
    /// Bytes of stanzas read from one connection and not yet gone on (written, returned)
    /// past which xfed stops reading it until half of them have: TCP slows the sender.
    #[serde(default = "default_in_flight_bytes")]
    pub in_flight_bytes_per_connection: usize,
    /// Seconds a write may wait for a destination that does not read before it counts as
    /// stuck and stops holding its senders back.
    #[serde(default = "default_stuck_secs")]
    pub stuck_secs: u64,
    /// Connections to the s2s or component listener that have not authenticated yet, per
    /// source address (IPv6: per /64); more are refused at once.
    #[serde(default = "default_unauthenticated_per_address")]
    pub unauthenticated_per_address: usize,
    /// Connections to one listener that have not authenticated yet, from all sources.
    #[serde(default = "default_unauthenticated_total")]
    pub unauthenticated_total: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_stanza_bytes: default_max_stanza(),
            max_depth: default_max_depth(),
            handshake_timeout_secs: default_handshake_timeout(),
            queue_bytes_per_connection: default_queue_bytes(),
            in_flight_bytes_per_connection: default_in_flight_bytes(),
            stuck_secs: default_stuck_secs(),
            unauthenticated_per_address: default_unauthenticated_per_address(),
            unauthenticated_total: default_unauthenticated_total(),
        }
    }
}

fn default_max_stanza() -> usize {
    512 * 1024
}
fn default_max_depth() -> usize {
    64
}
fn default_handshake_timeout() -> u64 {
    30
}
fn default_stuck_secs() -> u64 {
    5
}
fn default_in_flight_bytes() -> usize {
    1024 * 1024
}
fn default_queue_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_unauthenticated_per_address() -> usize {
    32
}
fn default_unauthenticated_total() -> usize {
    4096
}

/// `tenants/<name>.toml`: one tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Unique tenant name.
    pub name: String,
    /// The component secret, inline.
    pub secret: Option<String>,
    /// The component secret, in a file (relative to this file).
    pub secret_file: Option<PathBuf>,
    /// Federation domains the tenant owns.
    pub domains: Vec<String>,
    /// Group-chat (MUC) node aliases the tenant owns.
    #[serde(default)]
    pub chat_node_aliases: Vec<String>,
    #[serde(default)]
    pub privacy: PrivacySection,
    #[serde(default)]
    pub static_routes: StaticRoutesSection,
    /// The tenant's own certificate, presented for its domains.
    pub tls: Option<TenantTlsSection>,
}

/// Whom a tenant federates with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivacyMode {
    /// Federate with everyone.
    Off,
    /// Federate only with the listed domains (and those with static routes).
    #[default]
    AllowList,
    /// Federate with everyone but the listed domains.
    DenyList,
}

impl PrivacyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyMode::Off => "off",
            PrivacyMode::AllowList => "allow-list",
            PrivacyMode::DenyList => "deny-list",
        }
    }
}

/// `[privacy]` of a tenant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySection {
    #[serde(default)]
    pub mode: PrivacyMode,
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `[static_routes]` of a tenant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRoutesSection {
    #[serde(default)]
    pub enabled: bool,
    /// Remote domain → `host[:port]` targets, tried in turn, no DNS fallback.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
}

/// `[tls]` of a tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantTlsSection {
    pub cert: PathBuf,
    pub key: PathBuf,
}
