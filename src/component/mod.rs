//! The internal side: XEP-0114 component links from tenants' internal servers.
//!
//! The listener accepts on the node's thread and hands each connection to a worker (one per
//! core), where [`link::accept`] negotiates the stream and the handshake and, once
//! authenticated, starts a [`link::ComponentLink`] actor.

mod handshake;
pub mod link;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::admission::Admission;
use crate::config::Limits;
use crate::routing::Router;
use crate::workers::{accept_loop, Workers};
use crate::xmpp::ns;

pub use handshake::{digest, verify};

/// What every component connection needs, shared.
pub struct ComponentService {
    pub router: Arc<Router>,
    pub limits: Limits,
    /// Source of link ids, unique within the node.
    next_id: AtomicU64,
}

impl ComponentService {
    pub fn new(router: Arc<Router>, limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            router,
            limits,
            next_id: AtomicU64::new(1),
        })
    }

    fn next_link_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Accepts component connections until the task is aborted. A connection holds its
    /// admission permit until its handshake succeeds.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, workers: Arc<Workers>) {
        let admission = Admission::new(
            "component",
            self.limits.unauthenticated,
            Some(self.router.observer.clone()),
        );
        accept_loop(
            listener,
            workers,
            admission,
            ns::COMPONENT_ACCEPT,
            move |stream, peer, permit| link::accept(stream, peer, self.clone(), permit),
        )
        .await;
    }
}
