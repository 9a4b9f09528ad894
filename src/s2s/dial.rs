//! Setting up one outbound stream for a domain pair: the remote's servers from static routes
//! or DNS, then each in turn until one connects, negotiates and authenticates.

use actix::Addr;
use tokio::time::Instant;

use super::Federation;
use crate::s2s::auth::Mechanism;
use crate::s2s::outbound::{self, DialError};
use crate::s2s::stream::{Role, S2sStream};
use crate::xmpp::outbox::Checkpoint;
use crate::xmpp::Outbox;

impl Federation {
    /// Resolves, connects, negotiates and authenticates; tries each target in turn.
    pub(super) async fn connect(
        &self,
        local: &str,
        remote: &str,
    ) -> Result<(u64, Outbox, Option<Addr<S2sStream>>), DialError> {
        let started = Instant::now();
        let routes = self.shared.static_routes(local, remote);
        let metrics = &self.shared.observer.metrics;
        if routes.is_none() {
            metrics.dns_lookups.increment(1);
        }
        let targets = self
            .shared
            .resolver
            .targets(remote, routes.as_deref())
            .await
            .map_err(|e| {
                if routes.is_none() {
                    metrics.dns_failures.increment(1);
                }
                DialError::Dns(e)
            })?;
        let mut last = DialError::Refused(format!("no server found for {remote}"));
        for target in &targets {
            let attempt = async {
                let mut dialed = outbound::open(&self.shared, local, remote, target).await?;
                if dialed.mechanism.is_none() {
                    outbound::authenticate(&self.shared, &mut dialed, local, remote).await?;
                    dialed.mechanism = Some(Mechanism::Dialback);
                }
                outbound::enable_sm(&self.shared, &mut dialed, remote).await?;
                Ok::<_, DialError>(dialed)
            };
            match attempt.await {
                Ok(dialed) => {
                    let tls = dialed.conn.tls.clone();
                    let peer = dialed.conn.peer;
                    let mechanism = dialed.mechanism.unwrap_or(Mechanism::Dialback);
                    let role = Role::Outbound {
                        local: local.to_owned(),
                        remote: remote.to_owned(),
                        mechanism,
                        owner: self.me.clone(),
                        stream_id: dialed.stream_id.clone(),
                        extra: Vec::new(),
                        pending: Default::default(),
                    };
                    let sm = dialed.sm;
                    // Without stream management, pings through the remote server confirm
                    // what it read (XEP-0199; the answer comes back on its own stream).
                    let checkpoint = if sm {
                        Checkpoint::StreamManagement
                    } else {
                        Checkpoint::ping(local, remote, &self.shared.node)
                    };
                    let (stream, outbox, addr) = S2sStream::start(
                        self.shared.clone(),
                        dialed.conn,
                        role,
                        tls.clone(),
                        None,
                        Some(checkpoint),
                    );
                    // Only dialback streams take more domains: a certificate speaks for one.
                    let joinable = (mechanism == Mechanism::Dialback).then_some(addr);
                    tracing::info!(
                        %local, %remote, %peer, tls = tls.as_ref().map_or("none", |t| t.version.as_str()),
                        %mechanism, sm, "outbound s2s stream authenticated"
                    );
                    metrics.dialed(started.elapsed());
                    return Ok((stream, outbox, joinable));
                }
                Err(e) => {
                    tracing::info!(%local, %remote, target = %format!("{}:{}", target.host, target.port), error = %e, "outbound s2s attempt failed");
                    last = e;
                }
            }
        }
        Err(last)
    }
}
