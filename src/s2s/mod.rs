//! Server-to-server federation (RFC 6120, XEP-0220 dialback with XEP-0185 keys, STARTTLS and
//! XEP-0368 direct TLS, DNS SRV and static routes).
//!
//! - [`federation::Federation`] is routing's way out: one outbound stream per (local,
//!   remote) domain pair, stanzas queued while it is set up, bounced when it cannot be;
//! - [`outbound`] opens streams (originating and receiving-server verify roles);
//! - [`verify`] keeps the receiving server's connections for dialback checks, shared;
//! - [`inbound`] negotiates streams peers open (receiving and authoritative roles);
//! - [`stream::S2sStream`] is the actor of an established stream, either direction;
//! - [`auth`] decides, in one place, whether a proven peer is trusted.

pub(crate) mod anycert;
pub mod auth;
mod certificate;
mod devcert;
pub mod dialback;
pub mod features;
pub mod federation;
pub mod inbound;
pub mod io;
pub mod outbound;
pub mod resolve;
pub mod stream;
pub mod tls;
pub mod verify;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::Recipient;
use dashmap::DashMap;

use crate::config::{Config, RouteTarget};
use crate::model::StreamRow;
use crate::observe::{Event, Kind, Observer};
use crate::routing::{ConnectionControl, Router};
use crate::workers::Workers;
use crate::xmpp::outbox::unix_ms;
use crate::xmpp::Limits;

/// Which side opened a stream, and a domain pair authenticated on it: what operators see of
/// a stream, so defined with the admin API's types.
pub use crate::model::{AuthedPair, Direction};

/// How long unacknowledged data may wait (TCP_USER_TIMEOUT, and a write stalled on a peer
/// that does not read). With [`KEEPALIVE`] there is always such data on a quiet stream, so a
/// dead peer is noticed within `KEEPALIVE + DEAD_PEER_TIMEOUT` = 30 s, not the 15 minutes
/// default TCP retries take.
pub const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(20);

/// A quiet stream gets a whitespace keepalive (RFC 6120 §4.6.1) this often.
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// Everything s2s connections share.
pub struct S2sShared {
    /// Where inbound stanzas go; weak because the router holds the federation.
    pub router: Weak<Router>,
    pub policy: auth::Policy,
    /// Offer and use SASL EXTERNAL when certificates allow.
    pub sasl_external: bool,
    /// Offer and use stream management (XEP-0198).
    pub stream_management: bool,
    pub dialback: dialback::DialbackKey,
    /// Replaced when a tenant's certificate changes; established streams keep their session.
    pub tls: arc_swap::ArcSwap<tls::TlsContext>,
    pub resolver: resolve::Resolver,
    pub workers: Arc<Workers>,
    pub limits: crate::config::Limits,
    /// Streams close after this long without a stanza.
    pub idle_timeout: Duration,
    /// Bound on stream set-up (connect to authenticated).
    pub negotiate_timeout: Duration,
    pub dead_peer_timeout: Duration,
    /// Live s2s streams, both directions.
    pub streams: DashMap<u64, StreamEntry>,
    /// Where events and metrics go.
    pub observer: Arc<Observer>,
    /// Connections to remote authoritative servers for dialback checks, shared.
    pub verify_links: verify::VerifyLinks,
    /// This node's name: its checkpoint pings carry it, so that an answer landing on
    /// another node of a cluster is handed back to this one.
    pub node: String,
}

/// A live s2s stream as the node keeps track of it.
pub struct StreamEntry {
    pub peer: SocketAddr,
    pub direction: Direction,
    /// TLS version and cipher suite, when the stream runs TLS.
    pub tls: Option<(String, String)>,
    /// Domain pairs authenticated on the stream, and how.
    pub pairs: Vec<AuthedPair>,
    /// Tells the stream to close.
    pub control: Recipient<ConnectionControl>,
    /// When the stream was established.
    pub since: chrono::DateTime<chrono::Utc>,
    /// The stream's write side: stanzas out, queued bytes, last write.
    pub outbox: crate::xmpp::Outbox,
    /// What the stream's actor counts on the read side.
    pub stats: Arc<StreamStats>,
}

impl StreamEntry {
    /// The stream as operators see it (`xfed connections`), `now_ms` being the time in Unix
    /// milliseconds its idleness is counted to.
    pub fn row(&self, id: u64, now_ms: u64) -> StreamRow {
        let stats = &self.stats;
        let last = self
            .outbox
            .last_write_ms()
            .max(stats.last_in_ms.load(Ordering::Relaxed))
            .max(self.since.timestamp_millis() as u64);
        StreamRow {
            id,
            peer_ip: self.peer.ip(),
            peer_port: self.peer.port(),
            direction: self.direction,
            pairs: self.pairs.clone(),
            tls_version: self.tls.as_ref().map(|t| t.0.clone()),
            tls_cipher: self.tls.as_ref().map(|t| t.1.clone()),
            connected_since: self.since,
            idle_secs: now_ms.saturating_sub(last) / 1000,
            stanzas_in: stats.stanzas_in.load(Ordering::Relaxed),
            stanzas_out: self.outbox.stanzas_written(),
            bytes_in: stats.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.outbox.bytes_written(),
            queued_bytes: self.outbox.queued_bytes(),
            stream_management: self.outbox.is_acked() || stats.sm_enabled.load(Ordering::Relaxed),
            unacked: self.outbox.unacked(),
        }
    }
}

/// Read-side counters of a stream, shared between its actor and the registry.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Stanzas routed from the stream.
    pub stanzas_in: std::sync::atomic::AtomicU64,
    /// Bytes of those stanzas.
    pub bytes_in: std::sync::atomic::AtomicU64,
    /// When one was last routed, in Unix milliseconds (0: never).
    pub last_in_ms: std::sync::atomic::AtomicU64,
    /// The peer enabled stream management (XEP-0198) on this inbound stream.
    pub sm_enabled: std::sync::atomic::AtomicBool,
}

/// The node's federation connection manager as the rest of the node sees it; replaced
/// whole when federation restarts for a configuration change.
pub struct Side {
    pub federation: Arc<federation::Federation>,
    /// Where server-to-server streams connect.
    pub addr: SocketAddr,
}

impl Side {
    pub fn context(&self) -> &Arc<S2sShared> {
        self.federation.context()
    }
}

/// A domain pair that could not be authenticated or federated with, as
/// [`S2sShared::report_failure`] records it. (Not `Failure`: that is what
/// [`federation::Federation`] remembers of a pair.)
#[derive(Debug, Clone, Copy)]
pub struct FailureReport<'a> {
    pub direction: Direction,
    /// The remote end of the stream, when there was one.
    pub peer: Option<SocketAddr>,
    /// Our domain, when the stream got as far as naming it.
    pub local: Option<&'a str>,
    /// The remote domain, when known.
    pub remote: Option<&'a str>,
    /// The stream or stanza error condition it comes to (`not-authorized`...).
    pub condition: &'a str,
    pub reason: &'a str,
}

impl S2sShared {
    pub fn new(
        config: &Config,
        router: Weak<Router>,
        tls: tls::TlsContext,
        dialback: dialback::DialbackKey,
        workers: Arc<Workers>,
        observer: Arc<Observer>,
    ) -> Result<Self, String> {
        Ok(Self {
            router,
            policy: auth::Policy {
                security_mode: config.federation.security_mode,
                require_client_certs: config.federation.require_client_certs,
            },
            sasl_external: config.federation.sasl_external,
            stream_management: config.federation.stream_management,
            dialback,
            tls: arc_swap::ArcSwap::from_pointee(tls),
            resolver: resolve::Resolver::new(&config.dns_nameservers)?,
            workers,
            limits: config.limits,
            idle_timeout: config.federation.idle_timeout,
            negotiate_timeout: config.limits.handshake_timeout,
            dead_peer_timeout: DEAD_PEER_TIMEOUT,
            streams: DashMap::new(),
            observer,
            verify_links: verify::VerifyLinks::default(),
            node: config.node_name.clone(),
        })
    }

    /// A stream id unique in this process, across federation restarts (operators close
    /// streams by id).
    pub fn next_id(&self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    pub fn reader_limits(&self) -> Limits {
        Limits {
            max_stanza_bytes: self.limits.max_stanza_bytes,
            max_depth: self.limits.max_depth,
        }
    }

    /// The name of the tenant that hosts `local`.
    pub fn tenant_of(&self, local: &str) -> Option<String> {
        Some(self.router.upgrade()?.tenant_of(local)?.name.clone())
    }

    /// Reports a domain pair that could not be authenticated or federated with: a metric by
    /// direction and condition, and a `stream_failed` event.
    pub fn report_failure(&self, failure: FailureReport<'_>) {
        let FailureReport {
            direction,
            peer,
            local,
            remote,
            condition,
            reason,
        } = failure;
        let o = &self.observer;
        o.metrics
            .counter(
                "xfed_s2s_failures_total",
                &[("direction", direction.as_str()), ("condition", condition)],
            )
            .increment(1);
        let mut event = Event::new(Kind::StreamFailed)
            .tenant(local.and_then(|l| self.tenant_of(l)).as_deref())
            .domains(local.into_iter().chain(remote))
            .field("direction", direction.as_str())
            .field("condition", condition)
            .field("reason", reason);
        if let Some(peer) = peer {
            event = event.field("peer", peer.to_string());
        }
        o.events.record(event);
    }

    /// Every live stream as operators see it, by id.
    pub fn stream_rows(&self) -> Vec<StreamRow> {
        let now = unix_ms();
        let mut rows: Vec<StreamRow> = self.streams.iter().map(|e| e.row(*e.key(), now)).collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// The static routes the tenant owning `local` has for `remote`, if any.
    pub fn static_routes(&self, local: &str, remote: &str) -> Option<Vec<RouteTarget>> {
        let router = self.router.upgrade()?;
        let tenant = router.tenant_of(local)?;
        let view = tenant.view();
        view.config
            .static_routes
            .for_domain(remote)
            .map(<[RouteTarget]>::to_vec)
    }
}
