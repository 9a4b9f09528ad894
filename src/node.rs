//! (Past 400 lines: start, federation restart and shutdown, in the order a node lives them.)
//!
//! A running node: the connection arbiters, one actor per tenant, the routing table, and the
//! listeners; and its graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::admin::{AdminState, Control};
use crate::admission::Admission;
use crate::component::ComponentService;
use crate::config::{Config, Secret};
use crate::model::{Direction, LinkRow, StreamRow};
use crate::observe::{Event, Kind, Observer};
use crate::routing::{ConnectionControl, Router};
use crate::s2s::dialback::DialbackKey;
use crate::s2s::federation::Federation;
use crate::s2s::tls::{dev_certificate, NodeCertificate, TlsContext};
use crate::s2s::{inbound, S2sShared, Side};
use crate::tenant::{ControlLinks, ListLinks, TenantActor, TenantList};
use crate::workers::{accept_loop, one_per_core, Workers};
use crate::xmpp::ns;
use crate::xmpp::{StreamCondition, StreamError};

mod apply;
#[cfg(feature = "cluster")]
pub mod cluster;
mod control;
mod drain;
pub mod supervisor;
mod traffic;

pub use apply::Dropped;
pub use traffic::Traffic;

/// How long a graceful shutdown waits for queued stanzas to be written.
const DRAIN: Duration = Duration::from_secs(5);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cause is in the message and not a `source`: a chain (`{:#}`) would say it twice.
    #[error("cannot listen for {what} on {addr}: {cause}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("DNS resolver: {0}")]
    Dns(String),
}

/// A running node. Must be started inside an actix `System`.
pub struct Node {
    pub config: Config,
    router: Arc<Router>,
    tenants: Arc<TenantList>,
    /// Threads that run connection actors, one per core.
    arbiters: Vec<Arbiter>,
    workers: Arc<Workers>,
    /// The component links' accept loop; aborted to stop taking connections.
    accepting: tokio::task::JoinHandle<()>,
    component_addr: SocketAddr,
    /// The federation connection manager (routing holds it only as its `Remote`).
    side: Arc<ArcSwap<Side>>,
    /// The s2s accept loop of the current side.
    s2s_accepting: tokio::task::JoinHandle<()>,
    observer: Arc<Observer>,
    /// The admin API, when `[admin] token_file` is set: its address, its server, and the
    /// console's sampler for its charts (stopped with the server).
    admin: Option<(
        SocketAddr,
        crate::admin::AdminServer,
        crate::console::Sampler,
    )>,
    pub certificate: NodeCertificate,
}

/// How long shutdown waits for the event log's file to take its last lines.
const FLUSH_EVENTS: Duration = Duration::from_secs(1);

impl Node {
    /// Binds the listeners and starts the tenants.
    pub async fn start(config: Config) -> Result<Node, StartError> {
        Self::start_with(config, None, None).await
    }

    /// Binds the listeners and starts the tenants; the admin API takes reloads and restarts
    /// through `supervisor` when given. A node started anew after a restart keeps the event
    /// log and metrics of the one before (`observer`).
    pub async fn start_with(
        config: Config,
        supervisor: Option<supervisor::Supervisor>,
        observer: Option<Arc<Observer>>,
    ) -> Result<Node, StartError> {
        let observer = observer.unwrap_or_else(|| Arc::new(Observer::new(&config.events)));
        observer.events.record(
            Event::new(Kind::ConfigLoaded)
                .field("file", config.path.display().to_string())
                .field("tenants", config.tenants.len()),
        );
        let router = Arc::new(Router::new(observer.clone()));
        if let Some(forward) = supervisor.as_ref().and_then(|s| s.forward()) {
            router.set_forward(forward);
        }
        let mut tenants = Vec::new();
        for t in &config.tenants {
            let (addr, slot) = TenantActor::start(Arc::new(t.clone()), observer.clone());
            router.install(slot.clone());
            tenants.push((addr, slot));
        }
        let tenants = Arc::new(TenantList::from_pointee(tenants));
        let arbiters = one_per_core();
        let workers = Arc::new(Workers::new(&arbiters));

        let (listener, component_addr) = bind("component links", config.listen.component).await?;
        let service = ComponentService::new(router.clone(), config.limits);
        let accepting = actix_rt::spawn(service.serve(listener, workers.clone()));
        let started = start_federation(&config, &router, &workers, &observer).await?;
        let side = Arc::new(ArcSwap::from_pointee(started.side));
        let admin = match &config.admin_token {
            Some(token) => {
                let (listener, addr) = bind("the admin API", config.listen.admin).await?;
                let std_listener = listener.into_std().map_err(|cause| StartError::Bind {
                    what: "the admin API",
                    addr,
                    cause,
                })?;
                let state = Arc::new(AdminState {
                    node_name: config.node_name.clone(),
                    tenants: tenants.clone(),
                    side: side.clone(),
                    token: token.clone(),
                    observer: observer.clone(),
                    control: supervisor.clone().map(|s| Arc::new(s) as Arc<dyn Control>),
                });
                if let Some(s) = &supervisor {
                    s.set_admin(Some(state.clone()));
                }
                let tls = admin_tls(addr, &started.certificate)?;
                let (mount, sampler) = crate::console::mount(addr, state.clone());
                let handle =
                    crate::admin::start(std_listener, state, mount, tls).map_err(|cause| {
                        StartError::Bind {
                            what: "the admin API",
                            addr,
                            cause,
                        }
                    })?;
                Some((addr, handle, sampler))
            }
            None => {
                tracing::warn!("no [admin] token_file: the admin API is off");
                None
            }
        };
        let (active, why) = crate::routing::policy::node_reach(&config.tenants);
        let kind = if active {
            Kind::FederationEnabled
        } else {
            Kind::FederationDisabled
        };
        observer
            .events
            .record(Event::new(kind).field("reason", why.as_str()));
        if !active {
            tracing::warn!("federation is inactive: {why}");
        }
        for t in &config.tenants {
            let (reaches, why) = crate::routing::policy::reach(&t.privacy, &t.static_routes);
            if !reaches {
                observer.events.record(
                    Event::new(Kind::FederationDisabled)
                        .tenant(Some(&t.name))
                        .domains(t.all_domains())
                        .field("reason", why),
                );
            }
        }
        tracing::info!(
            node = %config.node_name, component = %component_addr, s2s = %side.load().addr,
            security = config.federation.security_mode.as_str(), tenants = config.tenants.len(),
            "xfed node started"
        );
        Ok(Node {
            config,
            router,
            tenants,
            arbiters,
            workers,
            accepting,
            component_addr,
            side,
            s2s_accepting: started.accepting,
            observer,
            admin,
            certificate: started.certificate,
        })
    }

    /// Restarts the federation connection manager on `new`'s node settings (TLS, trust,
    /// DNS, dialback secret, `[federation]`, the s2s listener, limits): every s2s stream
    /// closes gracefully, component links stay. Answers how many streams closed. If the new
    /// settings cannot start, the old side keeps running and the error is returned.
    pub async fn restart_federation(&mut self, new: &Config) -> Result<usize, StartError> {
        let old = self.side.load_full();
        // The listener is released first: the new side usually binds the same address.
        self.s2s_accepting.abort();
        let _ = (&mut self.s2s_accepting).await;
        let started = match start_federation(new, &self.router, &self.workers, &self.observer).await
        {
            Ok(s) => s,
            Err(e) => {
                // Back to the old side on its old address.
                if let Ok((listener, _)) = bind("server-to-server", old.addr).await {
                    self.s2s_accepting = accept_s2s(listener, &self.workers, old.context().clone());
                }
                self.router.set_remote(old.federation.clone());
                return Err(e);
            }
        };
        self.side.store(Arc::new(started.side));
        self.s2s_accepting = started.accepting;
        self.certificate = started.certificate;
        let mut closed = 0;
        for stream in old.context().streams.iter() {
            stream.control.do_send(ConnectionControl::Retire("restart"));
            closed += 1;
        }
        self.config.listen.s2s = new.listen.s2s;
        self.config.tls = new.tls.clone();
        self.config.federation = new.federation.clone();
        self.config.dns_nameservers = new.dns_nameservers.clone();
        self.config.limits = new.limits;
        tracing::info!(s2s = %self.side.load().addr, closed, "federation restarted");
        Ok(closed)
    }

    /// Where the admin API listens, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(addr, ..)| *addr)
    }

    /// Where server-to-server streams connect (the bound address, useful with port 0).
    pub fn s2s_addr(&self) -> SocketAddr {
        self.side.load().addr
    }

    /// The current federation connection manager.
    pub fn s2s(&self) -> Arc<S2sShared> {
        self.side.load().context().clone()
    }

    /// Live s2s streams: (outbound, inbound).
    pub fn s2s_stream_counts(&self) -> (usize, usize) {
        let s2s = self.s2s();
        let out = s2s
            .streams
            .iter()
            .filter(|e| e.direction == Direction::Outgoing)
            .count();
        (out, s2s.streams.len() - out)
    }

    /// Live s2s streams as operators see them (`xfed connections`), by id.
    pub fn s2s_streams(&self) -> Vec<StreamRow> {
        self.s2s().stream_rows()
    }

    /// Where component links connect (the bound address, useful with port 0).
    pub fn component_addr(&self) -> SocketAddr {
        self.component_addr
    }

    /// The node's event log and metrics.
    pub fn observer(&self) -> &Arc<Observer> {
        &self.observer
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The links of one tenant.
    pub async fn links(&self, tenant: &str) -> Vec<LinkRow> {
        let Some((addr, _)) = self
            .tenants
            .load()
            .iter()
            .find(|(_, s)| s.name == tenant)
            .cloned()
        else {
            return Vec::new();
        };
        addr.send(ListLinks).await.unwrap_or_default()
    }

    /// Graceful shutdown: stop accepting; stop reading on component links so tenants send
    /// nothing new; close s2s streams gracefully (our closing tag, then what peers still had
    /// in flight is read and delivered until their own close); then close component links
    /// with `system-shutdown` once what is queued for them has been written.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.observer.events.record(
            Event::new(Kind::FederationDisabled).field("reason", "the node is shutting down"),
        );
        self.accepting.abort();
        self.s2s_accepting.abort();
        if let Some((_, admin, sampler)) = &self.admin {
            sampler.stop();
            admin.stop().await;
        }
        for (t, _) in self.tenants.load().iter() {
            let _ = t.send(ControlLinks(ConnectionControl::StopReading)).await;
        }
        // Let stanzas already read finish routing into their outboxes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let s2s = self.s2s();
        for stream in s2s.streams.iter() {
            stream
                .control
                .do_send(ConnectionControl::Retire("shutdown"));
        }
        let deadline = tokio::time::Instant::now() + DRAIN;
        while !s2s.streams.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let shutdown =
            StreamError::new(StreamCondition::SystemShutdown, "the node is shutting down");
        for (t, _) in self.tenants.load().iter() {
            let _ = t.send(ControlLinks::close(Some(shutdown.clone()))).await;
        }
        for (_, slot) in self.tenants.load().iter() {
            while !slot.view().links.is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Writers flush after the link actors stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for a in &self.arbiters {
            a.stop();
        }
        // The event log's last lines into its file, unless its disk is stalled.
        let observer = self.observer.clone();
        let _ = tokio::task::spawn_blocking(move || observer.events.flush(FLUSH_EVENTS)).await;
        tracing::info!("shut down");
    }
}

/// A started federation connection manager.
struct StartedFederation {
    side: Side,
    accepting: tokio::task::JoinHandle<()>,
    certificate: NodeCertificate,
}

/// TLS for an admin listener on `addr` that is not loopback, presenting the node's
/// certificate (`[tls] cert`, else its self-signed development one): the web console is
/// served there over HTTPS only. `None` on loopback.
fn admin_tls(
    addr: SocketAddr,
    certificate: &NodeCertificate,
) -> Result<Option<Arc<rustls::ServerConfig>>, StartError> {
    if addr.ip().is_loopback() {
        return Ok(None);
    }
    let (chain, key) = certificate.load().map_err(StartError::Tls)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| StartError::Tls(format!("admin listener: {e}")))?;
    Ok(Some(Arc::new(config)))
}

/// Starts the federation side for `config`: certificate, TLS, dialback key, resolver, the
/// outbound federation (made routing's way out) and the s2s listener.
async fn start_federation(
    config: &Config,
    router: &Arc<Router>,
    workers: &Arc<Workers>,
    observer: &Arc<Observer>,
) -> Result<StartedFederation, StartError> {
    let certificate = match &config.tls.cert {
        Some(paths) => NodeCertificate::configured(config, paths).map_err(StartError::Tls)?,
        None => dev_certificate(config).map_err(StartError::Tls)?,
    };
    if config.federation.dialback_secret.is_none() {
        tracing::warn!("no [federation] dialback_secret_file: using a random secret; other nodes cannot verify this one's dialback keys");
    }
    let secret = config
        .federation
        .dialback_secret
        .clone()
        .unwrap_or_else(|| Secret::new(format!("{:032x}", rand::random::<u128>())));
    let tls = TlsContext::new(config, &certificate).map_err(StartError::Tls)?;
    let s2s = Arc::new(
        S2sShared::new(
            config,
            Arc::downgrade(router),
            tls,
            DialbackKey::new(&secret),
            workers.clone(),
            observer.clone(),
        )
        .map_err(StartError::Dns)?,
    );
    let (listener, addr) = bind("server-to-server", config.listen.s2s).await?;
    let federation = Federation::new(s2s.clone());
    router.set_remote(federation.clone());
    Ok(StartedFederation {
        side: Side { federation, addr },
        accepting: accept_s2s(listener, workers, s2s),
        certificate,
    })
}

/// The s2s accept loop, handing connections to `shared`.
fn accept_s2s(
    listener: TcpListener,
    workers: &Arc<Workers>,
    shared: Arc<S2sShared>,
) -> tokio::task::JoinHandle<()> {
    let admission = Admission::new(
        "s2s",
        shared.limits.unauthenticated,
        Some(shared.observer.clone()),
    );
    actix_rt::spawn(accept_loop(
        listener,
        workers.clone(),
        admission,
        ns::SERVER,
        move |tcp, peer, permit| inbound::accept(tcp, peer, shared.clone(), permit),
    ))
}

async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |cause| StartError::Bind { what, addr, cause };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}
