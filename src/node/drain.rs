//! Draining a node for maintenance (`xfed drain`): it takes no new connection, closes its
//! component links and s2s streams gracefully, hands what it still has to the cluster's
//! other nodes, and says when it is idle. The process stays up (its admin API answers) until
//! it is stopped or restarted.
//!
//! The order matters. The other nodes stop handing this one stanzas first (its entries in
//! the link table are gone before anything closes: `node::supervisor` asks the cluster for
//! that). Then what leaves for remote domains goes through another node, so a stream that
//! ends here is not dialled again from here. Then links and streams close: each writes what
//! is queued before its closing tag; what a component or a remote server sends until it
//! closes its side is still read and routed — to the tenant's links on other nodes now.

use std::time::{Duration, Instant};

use super::Node;
use crate::model::DrainOutcome;
use crate::routing::ConnectionControl;
use crate::tenant::ControlLinks;

/// How long a drain waits for the node to be idle.
const IDLE_WITHIN: Duration = Duration::from_secs(30);

impl Node {
    /// Drains the node; answers once it is idle, or after [`IDLE_WITHIN`] with what is left.
    pub async fn drain(&self) -> DrainOutcome {
        let started = Instant::now();
        tracing::info!("draining: no new connections; links and streams close gracefully");
        self.accepting.abort();
        self.s2s_accepting.abort();
        self.router.set_draining();
        let links_closed = self.link_count().await;
        for (t, _) in self.tenants.load().iter() {
            let _ = t
                .send(ControlLinks(ConnectionControl::Retire("drain")))
                .await;
        }
        let s2s = self.s2s();
        let streams_closed = s2s.streams.len();
        let deadline = started + IDLE_WITHIN;
        let left = loop {
            // A stream that came up meanwhile (a remote server's, accepted just before)
            // is retired too.
            for stream in s2s.streams.iter() {
                stream.control.do_send(ConnectionControl::Retire("drain"));
            }
            let left = self.left().await;
            if left.is_none() || Instant::now() >= deadline {
                break left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let outcome = DrainOutcome {
            node: self.config.node_name.clone(),
            links_closed,
            streams_closed,
            took_ms: started.elapsed().as_millis() as u64,
            idle: left.is_none(),
            left,
        };
        tracing::info!(?outcome, "drained");
        outcome
    }

    /// What keeps the node from being idle, if anything.
    async fn left(&self) -> Option<String> {
        let links = self.link_count().await;
        let streams = self.s2s().streams.len();
        let unconfirmed = self.router.unconfirmed_forwards();
        let mut left = Vec::new();
        if links > 0 {
            left.push(format!("{links} component link(s)"));
        }
        if streams > 0 {
            left.push(format!("{streams} s2s stream(s)"));
        }
        if unconfirmed > 0 {
            left.push(format!(
                "{unconfirmed} bytes handed to other nodes and not yet confirmed"
            ));
        }
        (!left.is_empty()).then(|| left.join(", "))
    }
}
