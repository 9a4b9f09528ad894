//! xfed: a multitenant XMPP federation router.
//!
//! # Layout
//!
//! Dependencies run upward only: a module uses those listed above it.
//!
//! - [`config`]: `router.toml` and `tenants/*.toml`, read through a `Source` and checked into
//!   types (used by all).
//! - [`telemetry`]: logging set-up (used by all).
//! - [`model`]: the admin API's vocabulary — serde types for its answers and queries, read
//!   back by the `xfed` subcommands; serde and chrono only, so any layer below can build
//!   them (an s2s stream describes itself as a [`model::StreamRow`]).
//! - [`xmpp`]: the wire — stream reader under restricted XML, stanzas, error vocabulary, the
//!   coalescing [`xmpp::Outbox`] writer and the histogram of stanzas' time in the node that
//!   writers count into.
//! - [`observe`]: the event log and Prometheus metrics (used by all below).
//! - [`restart`]: versioned configuration: what a change touches, which instances run which
//!   version, and when staged changes apply (driven over a running node by `node`).
//! - [`routing`]: domain → tenant table, privacy policy, link choice; reads tenant snapshots
//!   and writes into outboxes, so it needs no protocol types.
//! - [`admission`]: caps on connections that have not authenticated, per source and in all.
//! - [`workers`]: one connection arbiter per core, and the accept loop that feeds them.
//! - [`component`]: XEP-0114 links from tenants' internal servers; asks routing.
//! - [`s2s`]: server-to-server federation; routing's [`routing::Remote`] for remote domains.
//! - [`tenant`]: one actor per tenant, owning its config and links, publishing snapshots.
//! - [`check`]: `check-dns`, `check-cert`, `csr`: troubleshooting without a running node.
//! - [`admin`]: the admin HTTP API, and the client and tables of the `xfed` subcommands that
//!   call it; asks the node for reloads and restarts through [`admin::Control`].
//! - [`console`]: the operator's web console on the admin listener: sessions, pages and
//!   the JSON its script polls, reading the node through `admin`'s views.
//! - [`cluster`] (cargo feature `cluster`): several nodes on one etcd — the configuration
//!   pushed once for all, membership under leases, what each node runs (the view it
//!   publishes is [`model::cluster`]); only `node` and the `xfed` binary use it.
//! - [`node`]: assembles a running node and shuts it down gracefully; its supervisor is the
//!   admin API's [`admin::Control`].
//!
//! The `xfed` binary (`src/main.rs`, its own modules under `src/cli/`) parses arguments and
//! prints; it uses this crate from the top.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod check;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod component;
pub mod config;
pub mod console;
pub mod model;
pub mod node;
pub mod observe;
pub mod restart;
pub mod routing;
pub mod s2s;
pub mod telemetry;
pub mod tenant;
pub mod workers;
pub mod xmpp;
