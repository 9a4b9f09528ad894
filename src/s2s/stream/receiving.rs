//! The receiving and authoritative roles on inbound streams: dialback results verified with
//! the originating domain's authoritative server, verify requests answered with our keys,
//! and stanzas accepted only for authenticated pairs.

use std::sync::atomic::Ordering;

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};
use quick_xml::escape::escape;
use tokio::time::Instant;

use super::{Role, S2sStream};
use crate::config::{domain_key, domain_of};
use crate::s2s::auth::Mechanism;
use crate::s2s::outbound::is_dialback;
use crate::s2s::AuthedPair;
use crate::xmpp::{ns, Kind, Stanza, StreamCondition as C, StreamError};

impl S2sStream {
    /// An element on an inbound stream.
    pub(super) fn inbound(
        &mut self,
        mut s: Stanza,
        ctx: &mut Context<Self>,
    ) -> Result<(), StreamError> {
        if is_dialback(&s, "result") {
            return self.dialback_result(s, ctx);
        }
        if is_dialback(&s, "verify") {
            return self.dialback_verify(s);
        }
        if s.kind == Kind::Other {
            return Err(StreamError::new(
                C::UnsupportedStanzaType,
                format!("<{}> is not a stanza this stream accepts", s.name),
            ));
        }
        if let Some(x) = s.xmlns.as_deref().filter(|x| *x != ns::SERVER) {
            return Err(StreamError::new(
                C::InvalidNamespace,
                format!("stanza namespace {x}"),
            ));
        }
        let (Some(from), Some(to)) = (domain_of(s.from.as_deref()), domain_of(s.to.as_deref()))
        else {
            return Err(StreamError::new(
                C::ImproperAddressing,
                "a stanza between servers needs valid 'from' and 'to' addresses",
            ));
        };
        let Role::Inbound { authed, .. } = &self.role else {
            return Ok(());
        };
        if authed.is_empty() {
            return Err(StreamError::new(
                C::NotAuthorized,
                "no domain is authenticated on this stream yet",
            ));
        }
        let router = self.router()?;
        if !router.is_hosted(&to) {
            return Err(StreamError::new(
                C::HostUnknown,
                format!("{to} is not hosted here"),
            ));
        }
        if !authed.contains(&(to.clone(), from.clone())) {
            return Err(StreamError::new(
                C::InvalidFrom,
                format!("{from} is not authenticated for {to} on this stream"),
            ));
        }
        self.last_traffic = Instant::now();
        self.stats.stanzas_in.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_in
            .fetch_add(s.bytes.len() as u64, Ordering::Relaxed);
        self.stats
            .last_in_ms
            .store(crate::xmpp::outbox::unix_ms(), Ordering::Relaxed);
        s.drop_default_ns();
        self.count_handled();
        if router.checkpoint_answer(&to, &from, &s) || router.answer_checkpoint_ping(&s) {
            return Ok(());
        }
        s.credit = Some(self.credit.take(s.bytes.len()));
        router.route_inbound(&to, &from, s);
        Ok(())
    }

    /// XEP-0220 §2.1.2: the originating server claims (`from`) towards our `to`.
    fn dialback_result(&mut self, s: Stanza, ctx: &mut Context<Self>) -> Result<(), StreamError> {
        if s.type_.is_some() {
            // A verdict we never asked for on this stream authenticates nothing.
            tracing::debug!(peer = %self.peer, "unsolicited dialback result ignored");
            return Ok(());
        }
        let (Some(remote), Some(local)) = (domain(s.from.as_deref()), domain(s.to.as_deref()))
        else {
            return Err(StreamError::new(
                C::ImproperAddressing,
                "dialback needs 'from' and 'to' domains",
            ));
        };
        if !self.router()?.is_hosted(&local) {
            let reason = format!("{local} is not hosted here");
            // XEP-0220 §2.4: with dialback errors offered, the request fails alone and the
            // stream keeps its other pairs; without, RFC 6120 §4.9.3.6 ends the stream.
            if !matches!(
                self.role,
                Role::Inbound {
                    dialback_errors: true,
                    ..
                }
            ) {
                return Err(StreamError::new(C::HostUnknown, reason));
            }
            tracing::info!(peer = %self.peer, %remote, %local, "dialback for a domain not hosted here");
            self.send(db_result_error(&local, &remote, "item-not-found", &reason));
            return Ok(());
        }
        if let Err(reason) =
            self.shared
                .policy
                .trusts(&self.shared.tls.load(), self.tls.as_ref(), &remote)
        {
            tracing::info!(peer = %self.peer, %remote, %local, %reason, "inbound dialback refused");
            self.pair_refused(&local, &remote, "not-authorized", &reason);
            self.send(db_result_error(&local, &remote, "not-authorized", &reason));
            return Ok(());
        }
        let Role::Inbound {
            stream_id,
            authed,
            pending,
            ..
        } = &mut self.role
        else {
            return Ok(());
        };
        let pair = (local.clone(), remote.clone());
        if authed.contains(&pair) {
            self.send(format!(
                "<db:result from='{}' to='{}' type='valid'/>",
                escape(&local),
                escape(&remote)
            ));
            return Ok(());
        }
        if !pending.insert(pair) {
            return Ok(());
        }
        let key = s.text();
        let sid = stream_id.clone();
        let c = self.shared.clone();
        let (l, r) = (local.clone(), remote.clone());
        let check = async move {
            let routes = c.static_routes(&l, &r);
            let targets = c
                .resolver
                .targets(&r, routes.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            crate::s2s::verify::verify(&c, &l, &r, &targets, &sid, &key)
                .await
                .map_err(|e| e.to_string())
        };
        ctx.spawn(
            check
                .into_actor(self)
                .map(move |result, act, ctx| act.verified(local, remote, result, ctx)),
        );
        Ok(())
    }

    fn verified(
        &mut self,
        local: String,
        remote: String,
        result: Result<bool, String>,
        ctx: &mut Context<Self>,
    ) {
        let Role::Inbound {
            authed,
            pending,
            admission,
            ..
        } = &mut self.role
        else {
            return;
        };
        let pair = (local.clone(), remote.clone());
        pending.remove(&pair);
        match result {
            Ok(true) => {
                authed.insert(pair);
                // Authenticated: no longer one of the listener's unauthenticated connections.
                admission.take();
                self.add_pair(AuthedPair {
                    local: local.clone(),
                    remote: remote.clone(),
                    mechanism: Mechanism::Dialback,
                });
                tracing::info!(peer = %self.peer, %local, %remote, mechanism = %Mechanism::Dialback, "inbound s2s pair authenticated");
                self.send(format!(
                    "<db:result from='{}' to='{}' type='valid'/>",
                    escape(&local),
                    escape(&remote)
                ));
            }
            Ok(false) => {
                // XEP-0220 §2.1.3: an invalid key ends a stream that carries nothing else.
                let nothing_else = authed.is_empty() && pending.is_empty();
                tracing::info!(peer = %self.peer, %local, %remote, "dialback key refused by the authoritative server");
                self.pair_refused(
                    &local,
                    &remote,
                    "not-authorized",
                    "dialback key refused by the authoritative server",
                );
                self.send(format!(
                    "<db:result from='{}' to='{}' type='invalid'/>",
                    escape(&local),
                    escape(&remote)
                ));
                if nothing_else {
                    self.ending("dialback key invalid and no other pair on the stream");
                    self.close_gracefully(ctx);
                }
            }
            Err(reason) => {
                tracing::info!(peer = %self.peer, %local, %remote, %reason, "dialback key could not be verified");
                self.pair_refused(
                    &local,
                    &remote,
                    "remote-server-not-found",
                    &format!("dialback key could not be verified: {reason}"),
                );
                self.send(db_result_error(
                    &local,
                    &remote,
                    "remote-server-not-found",
                    &reason,
                ));
            }
        }
    }

    /// XEP-0220 §2.3.2: a receiving server asks us, the authoritative server, about a key.
    fn dialback_verify(&mut self, s: Stanza) -> Result<(), StreamError> {
        if s.type_.is_some() {
            tracing::debug!(peer = %self.peer, "unsolicited dialback verify answer ignored");
            return Ok(());
        }
        let (Some(receiving), Some(ours), Some(id)) = (
            domain(s.from.as_deref()),
            domain(s.to.as_deref()),
            s.id.as_deref(),
        ) else {
            return Err(StreamError::new(
                C::ImproperAddressing,
                "dialback verify needs 'from', 'to' and 'id'",
            ));
        };
        let valid = self.router()?.is_hosted(&ours)
            && self
                .shared
                .dialback
                .verify(&receiving, &ours, id, &s.text());
        self.send(format!(
            "<db:verify from='{}' to='{}' id='{}' type='{}'/>",
            escape(&ours),
            escape(&receiving),
            escape(id),
            if valid { "valid" } else { "invalid" }
        ));
        Ok(())
    }
}

/// A dialback result of type error (XEP-0220 §2.4).
fn db_result_error(local: &str, remote: &str, condition: &str, text: &str) -> String {
    format!(
        "<db:result from='{}' to='{}' type='error'><error type='cancel'><{condition} xmlns='{}'/><text xmlns='{}'>{}</text></error></db:result>",
        escape(local),
        escape(remote),
        ns::XMPP_STANZAS,
        ns::XMPP_STANZAS,
        escape(text)
    )
}

/// A domain name from a peer, in our canonical form.
fn domain(raw: Option<&str>) -> Option<String> {
    let part = jid::DomainPart::new(raw?).ok()?;
    Some(domain_key(part.as_str()).into_owned())
}
