//! Several local domains on one outbound stream (XEP-0220 §2.4, multiplexing): when another
//! domain of the same tenant, presenting the same certificate, needs the same remote
//! domain, a dialback result for it is sent on the stream already authenticated, instead of
//! opening a new one. An outbound stream never carries two tenants' domains, so a change to
//! one tenant never closes another's. A refusal (or no answer) sends that pair to a stream
//! of its own.

use actix::{AsyncContext, Context, Handler, Message};
use bytes::Bytes;

use super::{Role, S2sStream};
use crate::s2s::auth::Mechanism;
use crate::s2s::AuthedPair;
use crate::xmpp::Stanza;

/// Authenticate the local domain (the message) to the stream's remote domain.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddLocal(pub String);

impl Handler<AddLocal> for S2sStream {
    type Result = ();

    fn handle(&mut self, AddLocal(local): AddLocal, ctx: &mut Context<Self>) {
        let closing = self.closing;
        let Role::Outbound {
            remote,
            stream_id,
            pending,
            owner,
            ..
        } = &mut self.role
        else {
            return;
        };
        if closing {
            if let Some(f) = owner.upgrade() {
                f.multiplex_failed(&local, remote);
            }
            return;
        }
        let key = self.shared.dialback.generate(remote, &local, stream_id);
        self.outbox.send_raw(Bytes::from(format!(
            "<db:result from='{local}' to='{remote}'>{key}</db:result>"
        )));
        pending.insert(local.clone());
        ctx.run_later(self.shared.negotiate_timeout, move |act, ctx| {
            act.settle(&local, Err("no answer in time".into()), ctx);
        });
    }
}

impl S2sStream {
    /// A dialback result on our outbound stream: the verdict for a multiplexed domain.
    pub(super) fn outbound_result(&mut self, s: &Stanza, ctx: &mut Context<Self>) {
        let Role::Outbound { remote, .. } = &self.role else {
            return;
        };
        if s.from.as_deref() != Some(remote.as_str()) {
            return;
        }
        let Some(local) = s.to.clone() else { return };
        let verdict = match s.type_.as_deref() {
            Some("valid") => Ok(()),
            Some("invalid") => Err(format!("{remote} did not accept the key for {local}")),
            _ => Err(format!("{remote} answered with an error: {}", s.text())),
        };
        self.settle(&local, verdict, ctx);
    }

    /// Ends the wait for `local`: ready on this stream, or off to a stream of its own.
    /// Results for domains we did not ask about authenticate nothing.
    fn settle(&mut self, local: &str, verdict: Result<(), String>, ctx: &mut Context<Self>) {
        let Role::Outbound {
            remote,
            pending,
            extra,
            owner,
            ..
        } = &mut self.role
        else {
            return;
        };
        if !pending.remove(local) {
            return;
        }
        let Some(f) = owner.upgrade() else {
            return;
        };
        match verdict {
            Ok(()) => {
                extra.push(local.to_owned());
                let remote = remote.clone();
                tracing::info!(%local, %remote, stream = self.id, mechanism = %Mechanism::Dialback, "outbound s2s pair multiplexed onto an existing stream");
                f.ready(
                    local,
                    &remote,
                    self.id,
                    self.outbox.clone(),
                    Some(ctx.address()),
                );
                self.add_pair(AuthedPair {
                    local: local.to_owned(),
                    remote,
                    mechanism: Mechanism::Dialback,
                });
            }
            Err(reason) => {
                tracing::info!(%local, %remote, %reason, "multiplexing refused; opening a stream of its own");
                f.multiplex_failed(local, remote);
            }
        }
    }
}
