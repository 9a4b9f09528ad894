//! The receiving server's dialback questions (XEP-0220 §2.3): "is this the key you issued?",
//! asked of a remote domain's authoritative server over connections kept for the purpose.
//!
//! A busy remote server opens many streams to our domains, each to be checked with it. One
//! connection per check would cost a TCP and TLS handshake each; instead the checks of one
//! tenant's domains with one remote domain share a connection. `<db:verify/>` names its own
//! `from`, `to` and `id`, so any number of checks may be outstanding on it, and the answers
//! are matched back by those three. A connection that has had nothing to ask for a while is
//! closed; one that fails takes its outstanding checks with it, and each is asked once more
//! on a new connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use quick_xml::escape::escape;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::outbound::{self, DialError};
use super::resolve::Target;
use super::S2sShared;
use crate::xmpp::stanza::STREAM_CLOSE;
use crate::xmpp::{Frame, Outbox, Waits};

/// A verify connection with nothing outstanding closes after this long.
const IDLE: Duration = Duration::from_secs(30);

/// Bytes a verify connection may have queued unwritten.
const QUEUE_LIMIT: usize = 256 * 1024;

/// Which checks share a connection: (tenant of our domain, remote domain). Within a tenant
/// the stream is opened with the tenant's certificate, whichever of its domains asks.
type SlotKey = (String, String);

/// An outstanding check, as its answer names it: (our domain, remote domain, stream id).
type Question = (String, String, String);

/// The node's verify connections.
#[derive(Default)]
pub struct VerifyLinks {
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// Held while a connection is opened, so that concurrent checks wait for it instead of
    /// each opening their own.
    opening: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    link: Option<Arc<Link>>,
    /// The last failure to open, and when: checks that queued behind that attempt share its
    /// outcome rather than trying again one after another.
    failed: Option<(Instant, String)>,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live_link(&self) -> Option<Arc<Link>> {
        let mut state = self.state();
        if state
            .link
            .as_ref()
            .is_some_and(|l| l.outbox.is_closed() || l.pending().closed)
        {
            state.link = None;
        }
        state.link.clone()
    }

    /// Lets go of `link` if it is still the slot's connection, so that the next check opens
    /// another instead of finding the closed one again before its reader has cleared it.
    fn forget(&self, link: &Arc<Link>) {
        let mut state = self.state();
        if state.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
            state.link = None;
        }
    }
}

/// One open verify connection.
struct Link {
    outbox: Outbox,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    closed: bool,
    waiting: HashMap<Question, oneshot::Sender<bool>>,
    last_asked: Option<Instant>,
}

impl Link {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends the question; `None` when the connection has closed.
    fn ask(&self, q: Question, key: &str) -> Option<oneshot::Receiver<bool>> {
        let (tx, rx) = oneshot::channel();
        let mut pending = self.pending();
        if pending.closed {
            return None;
        }
        let (local, remote, id) = &q;
        let bytes = format!(
            "<db:verify from='{local}' to='{remote}' id='{}'>{}</db:verify>",
            escape(id),
            escape(key)
        );
        if !self.outbox.send_raw(Bytes::from(bytes)) {
            return None;
        }
        pending.waiting.insert(q, tx);
        pending.last_asked = Some(Instant::now());
        Some(rx)
    }

    /// Delivers an answer to its question (one nobody asked is ignored).
    /// A server that spells the domains of its answer differently is matched by the stream
    /// id alone, when that is unambiguous.
    fn answer(&self, q: &Question, valid: bool) {
        let mut pending = self.pending();
        let tx = pending.waiting.remove(q).or_else(|| {
            let mut same_id = pending.waiting.keys().filter(|k| k.2 == q.2);
            let only = same_id.next().cloned();
            let ambiguous = same_id.next().is_some();
            only.filter(|_| !ambiguous)
                .and_then(|k| pending.waiting.remove(&k))
        });
        if let Some(tx) = tx {
            let _ = tx.send(valid);
        }
    }

    /// Closes the link to new questions; outstanding ones get no answer (their senders are
    /// dropped, which their askers take as "ask again").
    fn close(&self) {
        let mut pending = self.pending();
        pending.closed = true;
        pending.waiting.clear();
    }

    /// Nothing outstanding and nothing asked for `IDLE`.
    fn idle(&self) -> bool {
        let pending = self.pending();
        pending.waiting.is_empty() && pending.last_asked.is_none_or(|t| t.elapsed() >= IDLE)
    }
}

impl VerifyLinks {
    fn slot(&self, key: SlotKey) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= 4096 {
            // Forget slots with no connection (their remote went quiet or never answered).
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.state().link.is_some());
        }
        slots.entry(key).or_default().clone()
    }
}

/// Is `key` the one `remote`'s authoritative server issued for the stream `stream_id` to us
/// (`local`)? Asked on the tenant's connection to `remote`, opened to `targets` if needed.
pub async fn verify(
    shared: &S2sShared,
    local: &str,
    remote: &str,
    targets: &[Target],
    stream_id: &str,
    key: &str,
) -> Result<bool, DialError> {
    let tenant = shared.tenant_of(local).unwrap_or_default();
    let slot = shared.verify_links.slot((tenant, remote.to_owned()));
    let question = || (local.to_owned(), remote.to_owned(), stream_id.to_owned());
    // A connection that closes under an outstanding question is replaced once.
    for _ in 0..2 {
        let link = match slot.live_link() {
            Some(link) => link,
            None => open(shared, &slot, local, remote, targets).await?,
        };
        let Some(answer) = link.ask(question(), key) else {
            slot.forget(&link);
            continue;
        };
        match tokio::time::timeout(shared.negotiate_timeout, answer).await {
            Ok(Ok(valid)) => return Ok(valid),
            Ok(Err(_closed)) => {
                slot.forget(&link);
                continue;
            }
            Err(_) => {
                link.pending().waiting.remove(&question());
                return Err(DialError::Timeout(format!("verify with {remote}")));
            }
        }
    }
    Err(DialError::Refused(format!(
        "the connection to {remote} closed before it answered"
    )))
}

/// Opens the slot's connection, or waits for the one being opened.
async fn open(
    shared: &S2sShared,
    slot: &Arc<Slot>,
    local: &str,
    remote: &str,
    targets: &[Target],
) -> Result<Arc<Link>, DialError> {
    let arrived = Instant::now();
    let _opening = slot.opening.lock().await;
    if let Some(link) = slot.live_link() {
        return Ok(link);
    }
    if let Some((when, why)) = &slot.state().failed {
        if *when >= arrived {
            return Err(DialError::Refused(why.clone()));
        }
    }
    let mut last = DialError::Refused(format!("no server found for {remote}"));
    for target in targets {
        match outbound::open(shared, local, remote, target).await {
            Ok(dialed) => {
                tracing::info!(peer = %dialed.conn.peer, %remote, "dialback verify connection opened");
                let link = start(dialed.conn, slot.clone(), shared.negotiate_timeout);
                let mut state = slot.state();
                state.link = Some(link.clone());
                state.failed = None;
                return Ok(link);
            }
            Err(e) => last = e,
        }
    }
    slot.state().failed = Some((Instant::now(), last.to_string()));
    Err(last)
}

/// Runs a freshly negotiated verify connection: a task that matches answers to questions
/// until the peer closes, fails, or the connection has been idle for [`IDLE`].
fn start(conn: super::io::XmlConn, slot: Arc<Slot>, stall: Duration) -> Arc<Link> {
    // No routed stanza waits here: nothing to let go when stuck.
    let (frames, outbox) = conn.into_parts(QUEUE_LIMIT, Waits::new(stall, stall), None, |_| {});
    let link = Arc::new(Link {
        outbox,
        pending: Mutex::new(Pending::default()),
    });
    let ours = link.clone();
    actix_rt::spawn(async move {
        let mut frames = std::pin::pin!(frames);
        loop {
            let frame = match tokio::time::timeout(IDLE, frames.next()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(_) => break,
                Err(_) if ours.idle() => {
                    ours.outbox
                        .close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
                    break;
                }
                Err(_) => continue,
            };
            match frame {
                Frame::Stanza(s) if outbound::is_dialback(&s, "verify") => {
                    if let (Some(local), Some(remote), Some(id)) = (s.to, s.from, s.id) {
                        ours.answer(&(local, remote, id), s.type_.as_deref() == Some("valid"));
                    }
                }
                Frame::Stanza(s) if s.name.ends_with(":error") => {
                    tracing::debug!(error = %s.text(), "verify connection closed by a stream error");
                    break;
                }
                Frame::Close => {
                    ours.outbox
                        .close(Bytes::from_static(STREAM_CLOSE.as_bytes()));
                    break;
                }
                _ => {}
            }
        }
        ours.close();
        slot.forget(&ours);
    });
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Arc<Link> {
        let stall = Duration::from_secs(5);
        let (outbox, _) = Outbox::spawn(tokio::io::sink(), 1024, Waits::new(stall, stall), |_| {});
        Arc::new(Link {
            outbox,
            pending: Mutex::new(Pending::default()),
        })
    }

    fn question() -> Question {
        ("acme.example".into(), "globex.example".into(), "s1".into())
    }

    /// The window the reader leaves between the peer's close and clearing the slot: a check
    /// arriving then must not be asked on the closed connection (nor count it as its retry).
    #[actix_rt::test]
    async fn a_connection_closed_under_its_reader_is_not_handed_out_again() {
        let slot = Slot::default();
        let old = link();
        slot.state().link = Some(old.clone());
        assert!(slot.live_link().is_some_and(|l| Arc::ptr_eq(&l, &old)));

        let answer = old.ask(question(), "key").expect("asked on an open link");
        old.close();
        assert!(answer.await.is_err(), "an outstanding question is let go");
        assert!(old.ask(question(), "key").is_none(), "closed to new ones");
        assert!(slot.live_link().is_none(), "the slot no longer offers it");

        let new = link();
        slot.state().link = Some(new.clone());
        slot.forget(&old);
        assert!(
            slot.live_link().is_some_and(|l| Arc::ptr_eq(&l, &new)),
            "forgetting the old link leaves its successor"
        );
        slot.forget(&new);
        assert!(slot.live_link().is_none());
    }
}
