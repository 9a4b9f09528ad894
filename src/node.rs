//! A running node: the connection arbiters, one actor per tenant, the routing table, and the
//! listeners; and its graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Arbiter};
use tokio::net::TcpListener;

use crate::component::ComponentService;
use crate::config::Config;
use crate::routing::{LinkControl, Router, TenantSlot};
use crate::tenant::{ControlLinks, LinkInfo, ListLinks, TenantActor};
use crate::xmpp::{StreamCondition, StreamError};

/// How long a graceful shutdown waits for queued stanzas to be written.
const DRAIN: Duration = Duration::from_secs(5);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot make the development certificate: {0}")]
    DevCert(String),
}

/// The node's TLS identity, loaded or made at start.
pub enum NodeCertificate {
    /// From `[tls] cert` and `key`.
    Configured,
    /// Made at start because none is configured: PEM certificate and key.
    SelfSigned { cert_pem: String, key_pem: String },
}

/// A running node. Must be started inside an actix `System`.
pub struct Node {
    pub config: Config,
    router: Arc<Router>,
    tenants: Vec<(Addr<TenantActor>, Arc<TenantSlot>)>,
    /// Threads that run connection actors, one per core.
    arbiters: Vec<Arbiter>,
    /// The component accept loop; aborted to stop taking connections.
    component_accept: tokio::task::JoinHandle<()>,
    component_addr: SocketAddr,
    pub certificate: NodeCertificate,
}

impl Node {
    /// Binds the listeners and starts the tenants.
    pub async fn start(config: Config) -> Result<Node, StartError> {
        let certificate = match &config.tls.cert {
            Some(_) => NodeCertificate::Configured,
            None => dev_certificate(&config)?,
        };
        if config.federation.dialback_secret.is_none() {
            tracing::warn!("no [federation] dialback_secret_file: using a random secret; other nodes cannot verify this one's dialback keys");
        }
        let router = Arc::new(Router::new());
        let mut tenants = Vec::new();
        for t in &config.tenants {
            let (addr, slot) = TenantActor::start(Arc::new(t.clone()));
            router.install(slot.clone());
            tenants.push((addr, slot));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();

        let listener = TcpListener::bind(config.listen.component)
            .await
            .map_err(|source| StartError::Bind {
                what: "component links",
                addr: config.listen.component,
                source,
            })?;
        let component_addr = listener.local_addr().map_err(|source| StartError::Bind {
            what: "component links",
            addr: config.listen.component,
            source,
        })?;
        let service = ComponentService::new(
            router.clone(),
            config.limits,
            arbiters.iter().map(|a| a.handle()).collect(),
        );
        let component_accept = actix_rt::spawn(service.serve(listener));
        tracing::info!(
            node = %config.node_name, component = %component_addr, tenants = tenants.len(),
            "xfed node started"
        );
        Ok(Node {
            config,
            router,
            tenants,
            arbiters,
            component_accept,
            component_addr,
            certificate,
        })
    }

    /// Where component links connect (the bound address, useful with port 0).
    pub fn component_addr(&self) -> SocketAddr {
        self.component_addr
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The links of one tenant.
    pub async fn links(&self, tenant: &str) -> Vec<LinkInfo> {
        let Some((addr, _)) = self.tenants.iter().find(|(_, s)| s.name == tenant) else {
            return Vec::new();
        };
        addr.send(ListLinks).await.unwrap_or_default()
    }

    /// Graceful shutdown: stop accepting, stop reading on every link so nothing new is
    /// accepted, then close every stream with `system-shutdown` after what is queued has
    /// been written.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.component_accept.abort();
        for (t, _) in &self.tenants {
            let _ = t.send(ControlLinks(LinkControl::StopReading)).await;
        }
        // Let stanzas already read finish routing into their outboxes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let shutdown =
            StreamError::new(StreamCondition::SystemShutdown, "the node is shutting down");
        for (t, _) in &self.tenants {
            let _ = t.send(ControlLinks::close(Some(shutdown.clone()))).await;
        }
        let deadline = tokio::time::Instant::now() + DRAIN;
        for (_, slot) in &self.tenants {
            while !slot.view().links.is_empty() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Writers flush after the link actors stop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for a in &self.arbiters {
            a.stop();
        }
        tracing::info!("shut down");
    }
}

/// Makes a self-signed certificate for the node name and every tenant domain and alias.
fn dev_certificate(config: &Config) -> Result<NodeCertificate, StartError> {
    let mut names = vec![config.node_name.clone()];
    for t in &config.tenants {
        names.extend(t.all_domains().map(str::to_owned));
    }
    names.retain(|n| !n.is_empty());
    let made = rcgen::generate_simple_self_signed(names.clone())
        .map_err(|e| StartError::DevCert(e.to_string()))?;
    tracing::warn!(
        names = ?names,
        "NO TLS CERTIFICATE CONFIGURED ([tls] cert/key): using a self-signed development certificate made at start. Remote servers will not trust it; configure a real certificate for production."
    );
    Ok(NodeCertificate::SelfSigned {
        cert_pem: made.cert.pem(),
        key_pem: made.key_pair.serialize_pem(),
    })
}
