//! The write side of a connection: a task that owns the socket's write half and a queue in
//! front of it. Anyone holding an [`Outbox`] (routing, on any thread) puts a stanza straight
//! into the queue, so delivery never funnels through an actor's mailbox; the task writes
//! whatever has queued up in one system call, so writes coalesce under load by themselves.
//!
//! The queue is bounded in bytes: a peer that stops reading makes `send` fail with
//! [`SendError::Full`] instead of growing our memory. When the connection dies, the stanzas
//! still queued are handed back (`on_undelivered`) to be rerouted or bounced, never dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::acks::{TooHigh, Unacked, REQUEST};
use super::stanza::Stanza;

/// Most bytes gathered into one write.
const MAX_BATCH: usize = 256 * 1024;

/// With stream management on, an ack request (`<r/>`) follows every this many stanzas
/// (and the stream's owner asks on a timer when fewer are waiting): no round trip per
/// stanza, and at most this many stanzas between two checkpoints under load.
pub const ACK_EVERY: u32 = 64;

/// One entry of the queue.
enum Out {
    /// A routed stanza: counted against the queue bound, handed back if never written.
    Stanza(Box<Stanza>),
    /// Something we generated (an error reply, a handshake answer).
    Raw(Bytes),
    /// Final bytes (a stream error or `</stream:stream>`), then shut the socket down.
    Close(Bytes),
}

/// Why a stanza could not be queued; the stanza comes back to the caller.
#[derive(Debug)]
pub enum SendError {
    /// The connection already holds its limit of unwritten bytes.
    Full(Box<Stanza>),
    /// The connection is closing or closed.
    Closed(Box<Stanza>),
}

/// What the senders and the writer task share: one allocation per connection. The queue
/// is a plain deque under a lock that the writer holds only to swap it out whole, so an
/// idle connection holds no slots at all (a channel would keep its first block of slots and
/// its padded halves, about 1 KiB, for the connection's life).
struct Shared {
    queue: Mutex<VecDeque<Out>>,
    /// Wakes the writer when a sender puts the first entry into an empty queue.
    wake: Notify,
    /// Set once the writer has stopped: nothing more is taken.
    closed: AtomicBool,
    /// Bytes of stanzas queued and not yet written: the backpressure signal.
    queued: AtomicUsize,
    /// Stanzas written so far: tells idle connections from busy ones.
    written: AtomicU64,
    /// Bytes of stanzas written so far.
    written_bytes: AtomicU64,
    /// When a stanza was last written, in Unix milliseconds (0: never).
    last_write_ms: AtomicU64,
    /// With stream management (XEP-0198) on: every stanza taken and not yet acknowledged,
    /// oldest first. Their bytes stay counted in `queued` until the peer acknowledges
    /// them, so a peer that stops acknowledging is held back like one that stops reading.
    retained: Option<Mutex<Unacked>>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Out>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `out` unless the writer has stopped, in which case it comes back.
    fn push(&self, out: Out) -> Result<(), Out> {
        let mut queue = self.queue();
        // Checked under the lock: the writer sets it under the lock before its last drain.
        if self.closed.load(Ordering::Acquire) {
            return Err(out);
        }
        let was_empty = queue.is_empty();
        queue.push_back(out);
        drop(queue);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// A cloneable handle on a connection's write queue.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
    /// The bound on queued stanza bytes.
    limit: usize,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("queued", &self.queued_bytes())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Outbox {
    /// Starts the writer task on the current (arbiter's) runtime.
    ///
    /// `stall` bounds how long one write may wait for the peer to read; past it the
    /// connection counts as dead. `on_undelivered` receives the stanzas that were queued
    /// when the connection ended.
    pub fn spawn<W>(
        writer: W,
        limit: usize,
        stall: Duration,
        on_undelivered: impl FnOnce(Vec<Stanza>) + 'static,
    ) -> (Outbox, tokio::task::JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + 'static,
    {
        Self::start(writer, limit, stall, on_undelivered, false)
    }

    /// Like [`Outbox::spawn`], for a stream with stream management on (XEP-0198): written
    /// stanzas are kept until [`Outbox::acknowledge`] confirms them, an ack request follows
    /// every [`ACK_EVERY`] stanzas, and when the writer ends nothing is handed back: the
    /// owner takes everything unconfirmed, in order, with [`Outbox::take_unconfirmed`].
    pub fn spawn_acked<W>(
        writer: W,
        limit: usize,
        stall: Duration,
    ) -> (Outbox, tokio::task::JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + 'static,
    {
        Self::start(writer, limit, stall, |_| {}, true)
    }

    fn start<W>(
        writer: W,
        limit: usize,
        stall: Duration,
        on_undelivered: impl FnOnce(Vec<Stanza>) + 'static,
        acked: bool,
    ) -> (Outbox, tokio::task::JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + 'static,
    {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            written: AtomicU64::new(0),
            written_bytes: AtomicU64::new(0),
            last_write_ms: AtomicU64::new(0),
            retained: acked.then(|| Mutex::new(Unacked::default())),
        });
        let task = actix_rt::spawn(write_loop(
            writer,
            Closer(shared.clone()),
            stall,
            on_undelivered,
        ));
        (Outbox { shared, limit }, task)
    }

    /// Queues a routed stanza.
    pub fn send(&self, stanza: Stanza) -> Result<(), SendError> {
        let len = stanza.bytes.len();
        let queued = &self.shared.queued;
        let before = queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.limit {
            queued.fetch_sub(len, Ordering::AcqRel);
            return Err(SendError::Full(Box::new(stanza)));
        }
        self.shared
            .push(Out::Stanza(Box::new(stanza)))
            .map_err(|out| {
                queued.fetch_sub(len, Ordering::AcqRel);
                match out {
                    Out::Stanza(s) => SendError::Closed(s),
                    // Invariant: we just pushed an `Out::Stanza`.
                    _ => unreachable!("push returns what was pushed"),
                }
            })
    }

    /// Queues bytes we generated. Returns false when the connection is closed.
    pub fn send_raw(&self, bytes: Bytes) -> bool {
        self.shared.push(Out::Raw(bytes)).is_ok()
    }

    /// Writes what is queued, then `tail`, then shuts the connection down.
    pub fn close(&self, tail: Bytes) {
        let _ = self.shared.push(Out::Close(tail));
    }

    /// True once the writer has stopped taking stanzas.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Bytes of stanzas waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Stanzas written since the connection opened.
    pub fn stanzas_written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Bytes of stanzas written since the connection opened.
    pub fn bytes_written(&self) -> u64 {
        self.shared.written_bytes.load(Ordering::Relaxed)
    }

    /// When a stanza was last written, in Unix milliseconds (0: never).
    pub fn last_write_ms(&self) -> u64 {
        self.shared.last_write_ms.load(Ordering::Relaxed)
    }

    /// Whether stream management keeps what this outbox writes until acknowledged.
    pub fn is_acked(&self) -> bool {
        self.shared.retained.is_some()
    }

    /// Stanzas written and not yet acknowledged (0 without stream management).
    pub fn unacked(&self) -> usize {
        self.shared.retained.as_ref().map_or(0, |r| lock(r).len())
    }

    /// Takes in the peer's `<a h=…/>`: the stanzas it confirms are let go. Answers how
    /// many, or the error when the peer confirms more than was sent.
    pub fn acknowledge(&self, h: u32) -> Result<usize, TooHigh> {
        let Some(retained) = &self.shared.retained else {
            return Ok(0);
        };
        let confirmed = lock(retained).acknowledge(h)?;
        let bytes: usize = confirmed.iter().map(|s| s.bytes.len()).sum();
        self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
        Ok(confirmed.len())
    }

    /// Everything the peer has not confirmed, oldest first: written and unacknowledged,
    /// then queued and never written. The queue takes no stanza after this (what is still
    /// queued of our own, such as a closing tag, is still written).
    pub fn take_unconfirmed(&self) -> Vec<Stanza> {
        let Some(retained) = &self.shared.retained else {
            return Vec::new();
        };
        let mut taken = lock(retained).take();
        {
            let mut queue = self.shared.queue();
            self.shared.closed.store(true, Ordering::Release);
            let (stanzas, ours): (VecDeque<Out>, VecDeque<Out>) =
                queue.drain(..).partition(|o| matches!(o, Out::Stanza(_)));
            *queue = ours;
            taken.extend(stanzas.into_iter().filter_map(|o| match o {
                Out::Stanza(s) => Some(*s),
                _ => None,
            }));
        }
        let bytes: usize = taken.iter().map(|s| s.bytes.len()).sum();
        self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
        taken
    }
}

fn lock(m: &Mutex<Unacked>) -> MutexGuard<'_, Unacked> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The writer's hold on the shared state: however the writer ends (returns, or its task is
/// dropped with the runtime), the queue is closed to senders.
struct Closer(Arc<Shared>);

impl Closer {
    /// Closes the queue and takes what is left in it.
    fn close(&self) -> VecDeque<Out> {
        let mut queue = self.0.queue();
        self.0.closed.store(true, Ordering::Release);
        std::mem::take(&mut *queue)
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.close();
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    shared: Closer,
    stall: Duration,
    on_undelivered: impl FnOnce(Vec<Stanza>),
) {
    let counters = &*shared.0;
    // Allocated when there is something to write and let go when the queue runs dry, so
    // that an idle connection holds no write buffer and no queue slots.
    let mut buf = BytesMut::new();
    // Entries taken from the queue and not yet written (a write stops at MAX_BATCH).
    let mut batch = VecDeque::new();
    loop {
        if batch.is_empty() {
            std::mem::swap(&mut batch, &mut *counters.queue());
            if batch.is_empty() {
                // Let the drained deque's slots and the write buffer go while idle.
                batch = VecDeque::new();
                buf = BytesMut::new();
                counters.wake.notified().await;
                continue;
            }
        }
        let mut counted = 0;
        let mut stanzas = 0;
        let mut closing = false;
        // Bytes of the closing tail at the end of `buf`.
        let mut tail = 0;
        // With stream management: what this write sends, kept until acknowledged.
        let mut keep = Vec::new();
        while let Some(out) = batch.pop_front() {
            match out {
                Out::Stanza(s) => {
                    counted += s.bytes.len();
                    stanzas += 1;
                    buf.extend_from_slice(&s.bytes);
                    if counters.retained.is_some() {
                        keep.push(s);
                    }
                }
                Out::Raw(b) => buf.extend_from_slice(&b),
                Out::Close(b) => {
                    buf.extend_from_slice(&b);
                    tail = b.len();
                    closing = true;
                    break;
                }
            }
            if buf.len() >= MAX_BATCH {
                break;
            }
        }
        if counters.retained.is_some() && !batch.is_empty() {
            // Back to the queue's front rather than held here across the write: whoever
            // takes what is unconfirmed finds everything in the queue or in `retained`.
            let mut queue = counters.queue();
            while let Some(out) = batch.pop_back() {
                queue.push_front(out);
            }
        }
        if let Some(retained) = &counters.retained {
            let mut retained = lock(retained);
            let mut request = false;
            for s in keep {
                request |= retained.sent(s, ACK_EVERY);
            }
            drop(retained);
            if request {
                // Before a closing tail, never after it.
                let rest = buf.split_off(buf.len() - tail);
                buf.extend_from_slice(REQUEST.as_bytes());
                buf.unsplit(rest);
            }
        }
        let written = tokio::time::timeout(stall, async {
            writer.write_all(&buf).await?;
            writer.flush().await
        })
        .await;
        if counters.retained.is_none() {
            counters.queued.fetch_sub(counted, Ordering::AcqRel);
        }
        if stanzas > 0 {
            counters.written.fetch_add(stanzas, Ordering::Relaxed);
            counters
                .written_bytes
                .fetch_add(counted as u64, Ordering::Relaxed);
            counters.last_write_ms.store(unix_ms(), Ordering::Relaxed);
        }
        buf.clear();
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!("write failed or stalled; closing the connection");
            break;
        }
        if closing {
            let _ = tokio::time::timeout(stall, writer.shutdown()).await;
            break;
        }
    }
    let left = shared.close();
    let unsent = batch.into_iter().chain(left).filter_map(|out| match out {
        Out::Stanza(s) => Some(s),
        _ => None,
    });
    if let Some(retained) = &counters.retained {
        // They follow what was written; the owner takes them all with the unacknowledged.
        lock(retained).extend(unsent);
        return;
    }
    let undelivered: Vec<Stanza> = unsent
        .map(|s| {
            counters.queued.fetch_sub(s.bytes.len(), Ordering::AcqRel);
            *s
        })
        .collect();
    if !undelivered.is_empty() {
        on_undelivered(undelivered);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::xmpp::stanza::Kind;

    fn stanza(body: &str) -> Stanza {
        Stanza {
            bytes: Bytes::from(format!("<message>{body}</message>")),
            name: "message".into(),
            kind: Kind::Message,
            to: None,
            from: None,
            id: None,
            type_: None,
            xmlns: None,
            resends: 0,
        }
    }

    /// Reads what the peer end of a duplex pipe got until it closes.
    async fn read_all(mut peer: tokio::io::DuplexStream) -> String {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), peer.read_to_end(&mut got)).await;
        String::from_utf8(got).unwrap()
    }

    #[test]
    fn stanzas_raw_bytes_and_the_tail_are_written_in_order_then_the_socket_shuts() {
        actix_rt::System::new().block_on(async {
            let (ours, peer) = tokio::io::duplex(1 << 16);
            let (outbox, task) = Outbox::spawn(ours, 1 << 20, Duration::from_secs(5), |_| {});
            assert!(outbox.send_raw(Bytes::from_static(b"<a/>")));
            outbox.send(stanza("1")).unwrap();
            outbox.send(stanza("2")).unwrap();
            outbox.close(Bytes::from_static(b"</stream:stream>"));
            let got = read_all(peer).await;
            assert_eq!(
                got,
                "<a/><message>1</message><message>2</message></stream:stream>"
            );
            task.await.unwrap();
            assert!(outbox.is_closed());
            assert_eq!(outbox.stanzas_written(), 2);
            assert_eq!(outbox.queued_bytes(), 0);
            let refused = outbox.send(stanza("3"));
            assert!(
                matches!(refused, Err(SendError::Closed(s)) if s.bytes.ends_with(b"3</message>"))
            );
        });
    }

    /// With stream management: written stanzas stay until acknowledged, an ack request
    /// follows every ACK_EVERY stanzas, and what is unconfirmed comes out oldest first.
    #[test]
    fn acked_outbox_keeps_what_it_wrote_until_acknowledged() {
        actix_rt::System::new().block_on(async {
            let (ours, mut peer) = tokio::io::duplex(1 << 20);
            let (outbox, _task) = Outbox::spawn_acked(ours, 1 << 20, Duration::from_secs(5));
            let n = ACK_EVERY as usize + 6;
            for i in 0..n {
                outbox.send(stanza(&format!("{i}"))).unwrap();
            }
            let mut got = Vec::new();
            let want = n * "<message>0</message>".len() + 100;
            while !String::from_utf8_lossy(&got).contains(&format!("<message>{}</message>", n - 1))
            {
                let mut buf = vec![0u8; want];
                let k = peer.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..k]);
            }
            let got = String::from_utf8(got).unwrap();
            assert_eq!(
                got.matches("<r xmlns='urn:xmpp:sm:3'/>").count(),
                1,
                "{got}"
            );
            assert_eq!(outbox.unacked(), n);
            assert!(
                outbox.queued_bytes() > 0,
                "unacknowledged bytes still count"
            );
            assert_eq!(outbox.acknowledge(60), Ok(60));
            assert!(outbox.acknowledge(1000).is_err());
            let rest = outbox.take_unconfirmed();
            let bodies: Vec<String> = rest
                .iter()
                .map(|s| String::from_utf8_lossy(&s.bytes).into_owned())
                .collect();
            assert_eq!(
                bodies.first().map(String::as_str),
                Some("<message>60</message>")
            );
            assert_eq!(bodies.len(), n - 60);
            assert_eq!(outbox.queued_bytes(), 0);
            assert!(matches!(
                outbox.send(stanza("late")),
                Err(SendError::Closed(_))
            ));
        });
    }

    /// A peer that reads nothing: the queue fills to its bound and refuses more, and when
    /// the write stalls past its limit every stanza still queued comes back.
    #[test]
    fn a_stalled_peer_fills_the_bound_and_queued_stanzas_come_back() {
        actix_rt::System::new().block_on(async {
            let (ours, _peer) = tokio::io::duplex(64);
            let back = Rc::new(RefCell::new(Vec::new()));
            let sink = back.clone();
            let (outbox, task) = Outbox::spawn(ours, 200, Duration::from_millis(200), move |s| {
                sink.borrow_mut().extend(s)
            });
            let mut accepted = 0;
            let mut full = 0;
            for i in 0..50 {
                match outbox.send(stanza(&format!("{i:03}"))) {
                    Ok(()) => accepted += 1,
                    Err(SendError::Full(_)) => full += 1,
                    Err(SendError::Closed(_)) => panic!("closed before the stall limit"),
                }
                tokio::task::yield_now().await;
            }
            assert!(full > 0, "the bound refused some");
            task.await.unwrap();
            assert!(outbox.is_closed());
            let written = outbox.stanzas_written() as usize;
            let back = back.borrow();
            // Those the writer had taken for its stalled write are lost with the socket;
            // everything still queued behind them comes back.
            assert!(!back.is_empty(), "queued stanzas were handed back");
            assert!(written + back.len() <= accepted);
            assert_eq!(outbox.queued_bytes(), 0, "nothing left counted as queued");
        });
    }
}
