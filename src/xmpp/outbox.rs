//! The write side of a connection: a task that owns the socket's write half and a queue in
//! front of it. Anyone holding an [`Outbox`] (routing, on any thread) puts a stanza straight
//! into the queue, so delivery never funnels through an actor's mailbox; the task writes
//! whatever has queued up in one system call, so writes coalesce under load by themselves.
//!
//! The queue is bounded in bytes: a peer that stops reading makes `send` fail with
//! [`SendError::Full`] instead of growing our memory. When the connection dies, the stanzas
//! still queued are handed back (`on_undelivered`) to be rerouted or bounced, never dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::stanza::Stanza;

/// Most bytes gathered into one write.
const MAX_BATCH: usize = 256 * 1024;

/// One entry of the queue. Kept small (a stanza is boxed): the queue's first block of slots
/// stays allocated for as long as the connection lives, idle or not.
enum Out {
    /// A routed stanza: counted against the queue bound, handed back if never written.
    Stanza(Box<Stanza>),
    /// Something we generated (an error reply, a handshake answer).
    Raw(Box<Bytes>),
    /// Final bytes (a stream error or `</stream:stream>`), then shut the socket down.
    Close(Box<Bytes>),
}

/// Why a stanza could not be queued; the stanza comes back to the caller.
#[derive(Debug)]
pub enum SendError {
    /// The connection already holds its limit of unwritten bytes.
    Full(Box<Stanza>),
    /// The connection is closing or closed.
    Closed(Box<Stanza>),
}

/// A cloneable handle on a connection's write queue.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    /// Bytes of stanzas queued and not yet written: the backpressure signal.
    queued: Arc<AtomicUsize>,
    /// The bound on `queued`.
    limit: usize,
    /// Stanzas written so far: tells idle connections from busy ones.
    written: Arc<AtomicU64>,
    /// Bytes of stanzas written so far.
    written_bytes: Arc<AtomicU64>,
    /// When a stanza was last written, in Unix milliseconds (0: never).
    last_write_ms: Arc<AtomicU64>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .field("closed", &self.tx.is_closed())
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
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let written_bytes = Arc::new(AtomicU64::new(0));
        let last_write_ms = Arc::new(AtomicU64::new(0));
        let task = actix_rt::spawn(write_loop(
            writer,
            rx,
            Counters {
                queued: queued.clone(),
                written: written.clone(),
                written_bytes: written_bytes.clone(),
                last_write_ms: last_write_ms.clone(),
            },
            stall,
            on_undelivered,
        ));
        (
            Outbox {
                tx,
                queued,
                limit,
                written,
                written_bytes,
                last_write_ms,
            },
            task,
        )
    }

    /// Queues a routed stanza.
    pub fn send(&self, stanza: Stanza) -> Result<(), SendError> {
        let len = stanza.bytes.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(SendError::Full(Box::new(stanza)));
        }
        self.tx.send(Out::Stanza(Box::new(stanza))).map_err(|e| {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            match e.0 {
                Out::Stanza(s) => SendError::Closed(s),
                // Invariant: we just sent an `Out::Stanza`.
                _ => unreachable!("send returns what was sent"),
            }
        })
    }

    /// Queues bytes we generated. Returns false when the connection is closed.
    pub fn send_raw(&self, bytes: Bytes) -> bool {
        self.tx.send(Out::Raw(Box::new(bytes))).is_ok()
    }

    /// Writes what is queued, then `tail`, then shuts the connection down.
    pub fn close(&self, tail: Bytes) {
        let _ = self.tx.send(Out::Close(Box::new(tail)));
    }

    /// True once the writer has stopped taking stanzas.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Bytes of stanzas waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Stanzas written since the connection opened.
    pub fn stanzas_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Bytes of stanzas written since the connection opened.
    pub fn bytes_written(&self) -> u64 {
        self.written_bytes.load(Ordering::Relaxed)
    }

    /// When a stanza was last written, in Unix milliseconds (0: never).
    pub fn last_write_ms(&self) -> u64 {
        self.last_write_ms.load(Ordering::Relaxed)
    }
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the writer task reports back through shared counters.
struct Counters {
    queued: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
    written_bytes: Arc<AtomicU64>,
    last_write_ms: Arc<AtomicU64>,
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    counters: Counters,
    stall: Duration,
    on_undelivered: impl FnOnce(Vec<Stanza>),
) {
    // Allocated when there is something to write and let go when the queue runs dry, so
    // that an idle connection holds no write buffer.
    let mut buf = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let mut counted = 0;
        let mut stanzas = 0;
        let mut closing = false;
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Out::Stanza(s) => {
                    counted += s.bytes.len();
                    stanzas += 1;
                    buf.extend_from_slice(&s.bytes);
                }
                Out::Raw(b) => buf.extend_from_slice(&b),
                Out::Close(b) => {
                    buf.extend_from_slice(&b);
                    closing = true;
                    break;
                }
            }
            if buf.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let written = tokio::time::timeout(stall, async {
            writer.write_all(&buf).await?;
            writer.flush().await
        })
        .await;
        counters.queued.fetch_sub(counted, Ordering::AcqRel);
        if stanzas > 0 {
            counters.written.fetch_add(stanzas, Ordering::Relaxed);
            counters
                .written_bytes
                .fetch_add(counted as u64, Ordering::Relaxed);
            counters.last_write_ms.store(unix_ms(), Ordering::Relaxed);
        }
        if rx.is_empty() {
            buf = BytesMut::new();
        } else {
            buf.clear();
        }
        if !matches!(written, Ok(Ok(()))) {
            tracing::debug!("write failed or stalled; closing the connection");
            break;
        }
        if closing {
            let _ = tokio::time::timeout(stall, writer.shutdown()).await;
            break;
        }
    }
    rx.close();
    let mut undelivered = Vec::new();
    while let Ok(out) = rx.try_recv() {
        if let Out::Stanza(s) = out {
            counters.queued.fetch_sub(s.bytes.len(), Ordering::AcqRel);
            undelivered.push(*s);
        }
    }
    if !undelivered.is_empty() {
        on_undelivered(undelivered);
    }
}
