//! The internal side: XEP-0114 component links from tenants' internal servers.
//!
//! The listener accepts on the node's thread and hands each connection to one of the
//! connection arbiters (one per core), where [`link::accept`] negotiates the stream and the
//! handshake and, once authenticated, starts a [`link::ComponentLink`] actor.

mod handshake;
pub mod link;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::ArbiterHandle;
use tokio::net::TcpListener;

use crate::config::Limits;
use crate::routing::Router;

pub use handshake::{digest, verify};

/// What every component connection needs, shared.
pub struct ComponentService {
    pub router: Arc<Router>,
    pub limits: Limits,
    /// Connection arbiters, one per core; connections are spread round-robin.
    arbiters: Vec<ArbiterHandle>,
    /// The next arbiter to get a connection.
    next_arbiter: AtomicUsize,
    /// Source of link ids, unique within the node.
    next_id: AtomicU64,
}

impl ComponentService {
    pub fn new(router: Arc<Router>, limits: Limits, arbiters: Vec<ArbiterHandle>) -> Arc<Self> {
        Arc::new(Self {
            router,
            limits,
            arbiters,
            next_arbiter: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
        })
    }

    fn next_link_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Accepts connections until the task is aborted.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors and the like: keep serving those already connected.
                    tracing::warn!(error = %e, "component accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            self.dispatch(stream, peer);
        }
    }

    fn dispatch(self: &Arc<Self>, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        // Re-registered with the arbiter's own reactor on arrival.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand over a component connection");
                return;
            }
        };
        let i = self.next_arbiter.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        let svc = self.clone();
        let sent = self.arbiters[i].spawn(async move {
            match tokio::net::TcpStream::from_std(std_stream) {
                Ok(stream) => link::accept(stream, peer, svc).await,
                Err(e) => tracing::warn!(%peer, error = %e, "cannot adopt a component connection"),
            }
        });
        if !sent {
            tracing::warn!(%peer, "connection arbiter stopped; connection dropped");
        }
    }
}
