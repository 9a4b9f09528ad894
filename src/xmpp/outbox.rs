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

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::Notify;

pub use super::acks::{Checkpoint, PING_ID_PREFIX};
use super::acks::{TooHigh, Unacked};
use super::stanza::Stanza;
use super::transit::Transit;

/// Most bytes gathered into one write.
const MAX_BATCH: usize = 256 * 1024;

/// With stream management on, an ack request (`<r/>`) follows every this many stanzas
/// (and the stream's owner asks on a timer when fewer are waiting): no round trip per
/// stanza, and at most this many stanzas between two checkpoints under load.
pub const ACK_EVERY: u32 = 64;

/// With a checkpoint (stream management, or pings), requests for what was written are
/// spaced at least this far apart. When the queue runs dry and the last request is older,
/// the request goes out in the same write as the stanzas it covers: a stream carrying a
/// message now and then costs no write of its own for the request, nor a read at the peer.
/// When it is more recent, the request waits for the spacing and for [`ASK_IDLE_DELAY`] of
/// quiet: a busy stream is confirmed a few times a second, not stanza by stanza. A request
/// per stanza doubled the small writes and reads at both ends of a stream at moderate
/// rates; one written alone after a quiet moment did the same at low ones (issue 14). A
/// reader paused until the confirmation gives its credit back is asked for at once.
pub const ASK_SPACING: std::time::Duration = std::time::Duration::from_millis(50);

/// The quiet a request for a trickle waits for, so that it covers what follows closely.
pub const ASK_IDLE_DELAY: std::time::Duration = std::time::Duration::from_millis(10);

/// While stanzas that were asked about stay unconfirmed, the request is repeated this often
/// (a ping's answer comes back on the remote's own stream to us, which can die with it in
/// flight). The writer's own timer, armed only while something waits: an idle stream has
/// none (a timer on every stream cost an edge 4% of a core with 2,000 idle streams).
pub const ASK_AGAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// One entry of the queue.
enum Out {
    /// A routed stanza: counted against the queue bound, handed back if never written.
    Stanza(Box<Stanza>),
    /// Something we generated (an error reply, a handshake answer).
    Raw(Bytes),
    /// Final bytes (a stream error or `</stream:stream>`), then shut the socket down.
    Close(Bytes),
    /// Ask the peer to confirm what was written so far (outboxes that keep what they write).
    Ask,
}

/// What an outbox keeps until the peer confirms it, and how it asks.
struct Acks {
    retained: Mutex<Unacked>,
    checkpoint: Checkpoint,
}

/// With ping checkpoints, at most this many bytes wait for a confirmation; past it the
/// oldest are let go unconfirmed. Stream management holds the sender back instead (the
/// bytes count against the queue bound): a peer that offers it acknowledges. A peer
/// without it may not answer pings at all, and must not turn into a stalled queue.
pub const PING_WINDOW_BYTES: usize = 4 * 1024 * 1024;

impl Acks {
    /// Whether unconfirmed bytes count against the queue bound.
    fn holds_back(&self) -> bool {
        self.checkpoint == Checkpoint::StreamManagement
    }
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
    /// A write has waited past the stuck bound: stanzas queued now give their readers'
    /// credit back at once (flow control must not let one stuck destination stall the
    /// rest of its senders' traffic).
    stuck: AtomicBool,
    /// With checkpoints (stream management, or pings): every stanza taken and not yet
    /// confirmed, oldest first. Their bytes stay counted in `queued` until the peer confirms
    /// them, so a peer that stops confirming is held back like one that stops reading.
    acks: Option<Acks>,
    /// Where the time written stanzas spent in the node is counted, once set (a single
    /// pointer: an idle connection's share of memory is watched, see BENCHMARKS.md).
    transit: ArcSwapOption<Transit>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Out>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `out` unless the writer has stopped, in which case it comes back.
    fn push(&self, out: Out) -> Result<(), Out> {
        self.push_then(out, || ())
    }

    /// [`Shared::push`], running `then` while the queue is still locked (whether or not
    /// `out` was taken): the writer cannot take `out` before `then` has run.
    fn push_then(&self, out: Out, then: impl FnOnce()) -> Result<(), Out> {
        let mut queue = self.queue();
        // Checked under the lock: the writer sets it under the lock before its last drain.
        if self.closed.load(Ordering::Acquire) {
            then();
            return Err(out);
        }
        let was_empty = queue.is_empty();
        queue.push_back(out);
        then();
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

/// How long one write may wait for the peer to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// Past it the destination is stuck: what waits for it stops holding its senders back
    /// (flow control), and they read on.
    pub stuck: Duration,
    /// Past it the connection counts as dead.
    pub stall: Duration,
}

impl Waits {
    /// `stuck` no longer than `stall`.
    pub fn new(stuck: Duration, stall: Duration) -> Waits {
        Waits {
            stuck: stuck.min(stall),
            stall,
        }
    }
}

impl Outbox {
    /// Starts the writer task on the current (arbiter's) runtime.
    ///
    /// `waits` bound how long one write may wait for the peer to read: past `stuck` its
    /// queue stops holding its senders back, past `stall` the connection counts as dead.
    /// `on_undelivered` receives the stanzas that were queued when the connection ended.
    pub fn spawn<W>(
        writer: W,
        limit: usize,
        waits: Waits,
        on_undelivered: impl FnOnce(Vec<Stanza>) + 'static,
    ) -> (Outbox, tokio::task::JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + 'static,
    {
        Self::start(writer, limit, waits, on_undelivered, None)
    }

    /// Like [`Outbox::spawn`], for a stream whose peer confirms what it read (`checkpoint`):
    /// written stanzas are kept until [`Outbox::acknowledge`] confirms them, a request
    /// follows every [`ACK_EVERY`] stanzas (and on [`Outbox::ask`]), and when the writer
    /// ends nothing is handed back: the owner takes everything unconfirmed, in order, with
    /// [`Outbox::take_unconfirmed`].
    pub fn spawn_acked<W>(
        writer: W,
        limit: usize,
        waits: Waits,
        checkpoint: Checkpoint,
    ) -> (Outbox, tokio::task::JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + 'static,
    {
        Self::start(writer, limit, waits, |_| {}, Some(checkpoint))
    }

    fn start<W>(
        writer: W,
        limit: usize,
        waits: Waits,
        on_undelivered: impl FnOnce(Vec<Stanza>) + 'static,
        checkpoint: Option<Checkpoint>,
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
            stuck: AtomicBool::new(false),
            acks: checkpoint.map(|checkpoint| Acks {
                retained: Mutex::new(Unacked::default()),
                checkpoint,
            }),
            transit: ArcSwapOption::empty(),
        });
        let task = actix_rt::spawn(write_loop(
            writer,
            Closer(shared.clone()),
            waits,
            on_undelivered,
        ));
        (Outbox { shared, limit }, task)
    }

    /// Queues a routed stanza.
    pub fn send(&self, mut stanza: Stanza) -> Result<(), SendError> {
        if self.shared.stuck.load(Ordering::Acquire) {
            stanza.credit = None;
        }
        let len = stanza.bytes.len();
        let queued = &self.shared.queued;
        let before = queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.limit {
            queued.fetch_sub(len, Ordering::AcqRel);
            return Err(SendError::Full(Box::new(stanza)));
        }
        self.push_counted(stanza, len)
    }

    /// Queues a stanza coming back to its sender with an error (or an error stanza on its
    /// way), past the queue bound if need be: a return must not be lost because the
    /// sender is slow to read its returns. What it adds is bounded elsewhere: a return holds
    /// the credit of the reader that read the stanza it answers, so that reader pauses
    /// while its returns wait; one without credit answers a stanza that was held, and
    /// counted, in another queue until now.
    pub fn send_return(&self, mut stanza: Stanza) -> Result<(), SendError> {
        if self.shared.stuck.load(Ordering::Acquire) {
            stanza.credit = None;
        }
        let len = stanza.bytes.len();
        self.shared.queued.fetch_add(len, Ordering::AcqRel);
        self.push_counted(stanza, len)
    }

    /// Queues `stanza`, whose `len` bytes are already counted in `queued`; uncounts them
    /// when the writer has stopped.
    fn push_counted(&self, stanza: Stanza, len: usize) -> Result<(), SendError> {
        self.shared
            .push(Out::Stanza(Box::new(stanza)))
            .map_err(|out| {
                self.shared.queued.fetch_sub(len, Ordering::AcqRel);
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

    /// Queues bytes we generated, and runs `publish` before the writer can take them: what
    /// `publish` makes visible (a link becoming routable) is so before the peer reads the
    /// bytes (the handshake that tells it so), and anything queued once it is visible goes
    /// out after them. `publish` runs with this queue locked: it must not send on this
    /// outbox. Returns false when the connection is closed (`publish` ran all the same).
    pub fn send_raw_then(&self, bytes: Bytes, publish: impl FnOnce()) -> bool {
        self.shared.push_then(Out::Raw(bytes), publish).is_ok()
    }

    /// Writes what is queued, then `tail`, then shuts the connection down.
    pub fn close(&self, tail: Bytes) {
        let _ = self.shared.push(Out::Close(tail));
    }

    /// Counts in `transit` how long each stanza written from now on stayed in the node.
    pub fn measure(&self, transit: Arc<Transit>) {
        self.shared.transit.store(Some(transit));
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

#[path = "outbox_confirm.rs"]
mod confirm;

#[path = "outbox_writer.rs"]
mod writer;
use writer::{write_loop, Closer};

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "outbox_ack_tests.rs"]
mod ack_tests;
