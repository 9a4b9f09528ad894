//! The outbox's writer task: takes whatever has queued up, writes it in one system call,
//! keeps what it wrote where the peer confirms it, and ends by handing back what it could
//! not write.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{
    lock, unix_ms, Acks, Out, Shared, Waits, ACK_EVERY, ASK_AGAIN, ASK_IDLE_DELAY, ASK_SPACING,
    MAX_BATCH, PING_WINDOW_BYTES,
};
use crate::xmpp::stanza::Stanza;
use crate::xmpp::transit::Batch;

/// The writer's hold on the shared state: however the writer ends (returns, or its task is
/// dropped with the runtime), the queue is closed to senders.
pub(super) struct Closer(pub(super) Arc<Shared>);

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

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    shared: Closer,
    waits: Waits,
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
                if idle(counters, &waits).await {
                    batch.push_back(Out::Ask);
                }
                continue;
            }
        }
        let Take {
            mut counted,
            mut stanzas,
            closing,
            tail,
            keep,
            mut in_write,
            asked,
        } = take(&mut batch, &mut buf, counters);
        if let Some(acks) = &counters.acks {
            if !batch.is_empty() {
                // Back to the queue's front rather than held here across the write: whoever
                // takes what is unconfirmed finds everything in the queue or in `retained`.
                let mut queue = counters.queue();
                while let Some(out) = batch.pop_back() {
                    queue.push_front(out);
                }
            }
            let mut retained = lock(&acks.retained);
            let mut request = asked && (!keep.is_empty() || !retained.is_empty());
            for s in keep {
                request |= retained.sent(s, ACK_EVERY);
            }
            // Nothing more to send: the request goes with this write when the last one is
            // older than the spacing, or when a reader is paused until what this confirms
            // gives its credit back. Otherwise it waits (`idle`), so that a busy stream is
            // not confirmed stanza by stanza.
            if !request && batch.is_empty() && counters.queue().is_empty() {
                let due = retained
                    .next_request_at(ASK_SPACING)
                    .is_none_or(|at| at <= tokio::time::Instant::now());
                request =
                    retained.unrequested() && (due || retained.unrequested_hold_a_paused_reader());
            }
            if request {
                retained.requested();
            }
            let sent = retained.sent_count();
            let released = if acks.holds_back() {
                0
            } else {
                retained.release_over(PING_WINDOW_BYTES)
            };
            drop(retained);
            if released > 0 {
                tracing::debug!(
                    released,
                    "ping checkpoints lag: oldest stanzas let go unconfirmed"
                );
            }
            if request {
                // After the stanzas it covers, before a closing tail.
                let rest = buf.split_off(buf.len() - tail);
                buf.extend_from_slice(acks.checkpoint.request(sent).as_bytes());
                buf.unsplit(rest);
            }
        }
        // Bytes of `buf` the socket took, so far.
        let mut done = 0;
        let written = tokio::time::timeout(waits.stall, async {
            let write = async {
                while done < buf.len() {
                    match writer.write(&buf[done..]).await? {
                        0 => return Err(std::io::ErrorKind::WriteZero.into()),
                        n => done += n,
                    }
                }
                writer.flush().await
            };
            tokio::pin!(write);
            tokio::select! {
                // The write first: a timer is armed only when it has to wait.
                biased;
                done = &mut write => done,
                _ = tokio::time::sleep(waits.stuck) => {
                    // The peer stopped reading: what waits here no longer holds its readers
                    // back, so their traffic to other destinations goes on.
                    counters.stuck.store(true, Ordering::Release);
                    let mut freed = 0;
                    for out in batch.iter_mut().chain(counters.queue().iter_mut()) {
                        if let Out::Stanza(s) = out {
                            freed += usize::from(s.credit.take().is_some());
                        }
                    }
                    tracing::debug!(freed, "destination stuck: its queued stanzas let their readers go");
                    let done = write.await;
                    counters.stuck.store(false, Ordering::Release);
                    done
                }
            }
        })
        .await;
        let failed = !matches!(written, Ok(Ok(())));
        if failed {
            // What the socket never took goes back with the rest, ahead of it.
            let unbegun: Vec<Box<Stanza>> = in_write
                .drain(..)
                .filter(|(start, _)| *start >= done)
                .map(|(_, s)| s)
                .collect();
            for s in unbegun.into_iter().rev() {
                stanzas -= 1;
                counted -= s.bytes.len();
                batch.push_front(Out::Stanza(s));
            }
        }
        if !counters.acks.as_ref().is_some_and(Acks::holds_back) {
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
        if failed {
            tracing::debug!("write failed or stalled; closing the connection");
            break;
        }
        drop(in_write);
        if closing {
            let _ = tokio::time::timeout(waits.stall, writer.shutdown()).await;
            break;
        }
    }
    let left = shared.close();
    let unsent = batch.into_iter().chain(left).filter_map(|out| match out {
        Out::Stanza(s) => Some(s),
        _ => None,
    });
    if let Some(acks) = &counters.acks {
        // They follow what was written; the owner takes them all with the unconfirmed.
        lock(&acks.retained).extend(unsent);
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

/// What one write carries: the entries taken from the front of the batch, their bytes
/// already in the write buffer.
#[derive(Default)]
struct Take {
    /// Bytes of the stanzas taken, and how many.
    counted: usize,
    stanzas: u64,
    /// A closing tail was taken: nothing follows it.
    closing: bool,
    /// Bytes of the closing tail at the end of the buffer.
    tail: usize,
    /// With checkpoints: what this write sends, kept until confirmed (boxed as queued, and
    /// moved on boxed into the unconfirmed list).
    #[allow(clippy::vec_box)]
    keep: Vec<Box<Stanza>>,
    /// Without: the stanzas of this write with where each starts in the buffer, kept until
    /// the write is done: a receipt that tells another node a stanza left
    /// (`xmpp::receipt`) must not fire for one that never reached the socket, and those a
    /// failed write never began are handed back with the rest.
    in_write: Vec<(usize, Box<Stanza>)>,
    /// An `Out::Ask` came: a request goes out whatever the count.
    asked: bool,
}

/// Takes entries from the front of `batch` into `buf` until a closing tail or
/// [`MAX_BATCH`] bytes. Each stanza's time in the node is counted as it is taken; this runs
/// between two awaits of the writer, so nothing of the count stays in the writer's task
/// (idle connections stay small).
fn take(batch: &mut VecDeque<Out>, buf: &mut BytesMut, counters: &Shared) -> Take {
    let mut t = Take::default();
    let transit = counters.transit.load();
    let mut times = transit
        .as_ref()
        .map(|histogram| (histogram, Instant::now(), Batch::default()));
    while let Some(out) = batch.pop_front() {
        match out {
            Out::Stanza(mut s) => {
                t.counted += s.bytes.len();
                t.stanzas += 1;
                if let (Some(at), Some((_, now, times))) = (s.read_at, times.as_mut()) {
                    times.add(at, *now);
                }
                buf.extend_from_slice(&s.bytes);
                // Its reader's share goes back as it is written, unless the peer's
                // confirmation frees its room in the queue (stream management): then the
                // share goes back with it.
                if !counters.acks.as_ref().is_some_and(Acks::holds_back) {
                    s.credit = None;
                }
                if counters.acks.is_some() {
                    t.keep.push(s);
                } else {
                    t.in_write.push((buf.len() - s.bytes.len(), s));
                }
            }
            Out::Raw(b) => buf.extend_from_slice(&b),
            Out::Ask => t.asked = true,
            Out::Close(b) => {
                buf.extend_from_slice(&b);
                t.tail = b.len();
                t.closing = true;
                break;
            }
        }
        if buf.len() >= MAX_BATCH {
            break;
        }
    }
    if let Some((histogram, _, times)) = times {
        histogram.add(&times);
    }
    t
}

/// Waits, the queue empty, until a sender wakes the writer. Answers whether to write an ack
/// request now: stanzas written since the last one, nothing more within [`ASK_IDLE_DELAY`],
/// and [`ASK_SPACING`] since the last request; or [`ASK_AGAIN`] since the last request
/// while what it asked about is unconfirmed. When written stanzas have waited the stuck
/// bound without the peer confirming anything (the requests sent meanwhile do not move that
/// deadline), the peer counts as stuck: they let their readers go. A timer is armed only
/// when something is unconfirmed.
async fn idle(counters: &Shared, waits: &Waits) -> bool {
    let Some(acks) = &counters.acks else {
        counters.wake.notified().await;
        return false;
    };
    let (unrequested, since, spaced, again) = {
        let mut retained = lock(&acks.retained);
        if retained.is_empty() {
            // Confirmed unasked: nothing for a request to cover.
            retained.covered();
        }
        (
            retained.unrequested(),
            retained.waiting_since(),
            retained.next_request_at(ASK_SPACING),
            retained.next_request_at(ASK_AGAIN),
        )
    };
    if unrequested {
        let quiet = tokio::time::Instant::now() + ASK_IDLE_DELAY;
        let at = spaced.map_or(quiet, |spaced| spaced.max(quiet));
        let wait = tokio::time::timeout_at(at, counters.wake.notified());
        return wait.await.is_err();
    }
    let Some(since) = since else {
        counters.wake.notified().await;
        return false;
    };
    let again = again.unwrap_or_else(|| tokio::time::Instant::now() + ASK_AGAIN);
    // Already stuck: only the requests are left to time.
    let deadline = (!counters.stuck.load(Ordering::Acquire)).then_some(since + waits.stuck);
    let at = deadline.map_or(again, |deadline| deadline.min(again));
    if tokio::time::timeout_at(at, counters.wake.notified())
        .await
        .is_ok()
    {
        return false;
    }
    let now = tokio::time::Instant::now();
    if deadline.is_some_and(|deadline| deadline <= now) {
        let mut retained = lock(&acks.retained);
        if retained.waiting_since() == Some(since) {
            counters.stuck.store(true, Ordering::Release);
            let freed = retained.let_readers_go();
            tracing::debug!(
                freed,
                "peer stuck: unconfirmed stanzas let their readers go"
            );
        }
    }
    again <= now
}
