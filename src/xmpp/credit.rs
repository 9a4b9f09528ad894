//! Flow control: a connection stops reading while too much of what it read is still on its
//! way, so that TCP slows its sender instead of xfed refusing stanzas.
//!
//! Each stanza a reader hands on carries a [`Held`] share of the reader's [`Credit`]: its
//! size, counted as in flight until the last copy of the stanza is dropped — written to its
//! destination's socket (or, with stream management, confirmed by the peer), returned to
//! its sender with an error, or dropped. The reader's stream is [`Gated`]: past the
//! high-water mark it is not polled (nothing more is read from the socket, the kernel's
//! buffers fill, the peer's writes block) until what is in flight falls to the low-water
//! mark.
//!
//! A destination that is merely slower than the sender thus slows the sender. One that is
//! stuck (its writer waited, or nothing was confirmed, for `[limits] stuck_secs`) lets
//! its readers go: the bound on how long it can hold up the rest of the same reader's
//! traffic (`outbox_writer.rs`).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use futures_util::Stream;

/// One reader's account of what it read and handed on that has not yet left xfed.
pub struct Credit {
    /// Bytes of stanzas in flight.
    in_flight: AtomicUsize,
    /// Reading pauses above this...
    high: usize,
    /// ...and resumes at or below this.
    low: usize,
    /// The paused reader, woken when in-flight bytes fall to `low`.
    waker: AtomicWaker,
    /// Reading is paused.
    paused: AtomicBool,
    /// Times reading paused, for metrics.
    pauses: AtomicU64,
}

impl Credit {
    /// Pauses above `high` bytes in flight, resumes at `high / 2`.
    pub fn new(high: usize) -> Arc<Credit> {
        Arc::new(Credit {
            in_flight: AtomicUsize::new(0),
            high,
            low: high / 2,
            waker: AtomicWaker::new(),
            paused: AtomicBool::new(false),
            pauses: AtomicU64::new(0),
        })
    }

    /// Counts `bytes` in flight until the returned share is dropped.
    pub fn take(self: &Arc<Self>, bytes: usize) -> Held {
        self.in_flight.fetch_add(bytes, Ordering::AcqRel);
        Held {
            credit: self.clone(),
            bytes,
        }
    }

    /// Bytes in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// How many times reading paused.
    pub fn pauses(&self) -> u64 {
        self.pauses.load(Ordering::Relaxed)
    }

    /// Whether reading is paused now.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    fn release(&self, bytes: usize) {
        let before = self.in_flight.fetch_sub(bytes, Ordering::AcqRel);
        if before > self.low && before - bytes <= self.low {
            self.waker.wake();
        }
    }

    /// Whether the reader may read on: pauses above `high`, stays paused above `low`.
    fn may_read(&self) -> bool {
        let now = self.in_flight();
        if self.paused.load(Ordering::Acquire) {
            if now <= self.low {
                self.paused.store(false, Ordering::Release);
                return true;
            }
            return false;
        }
        if now > self.high {
            self.paused.store(true, Ordering::Release);
            self.pauses.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
}

impl fmt::Debug for Credit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credit")
            .field("in_flight", &self.in_flight())
            .field("high", &self.high)
            .field("paused", &self.is_paused())
            .finish()
    }
}

/// A stanza's share of its reader's credit, given back when dropped. A copy of the stanza
/// takes a share of its own: every copy in flight counts.
pub struct Held {
    credit: Arc<Credit>,
    bytes: usize,
}

impl Held {
    /// Whether the reader this share belongs to is paused, waiting for credit.
    pub fn reader_paused(&self) -> bool {
        self.credit.is_paused()
    }
}

impl Clone for Held {
    fn clone(&self) -> Held {
        self.credit.take(self.bytes)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.credit.release(self.bytes);
    }
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Held({} bytes)", self.bytes)
    }
}

/// A reader's stream of frames, not polled while its credit is spent.
pub struct Gated<S> {
    inner: S,
    credit: Arc<Credit>,
}

impl<S> Gated<S> {
    pub fn new(inner: S, credit: Arc<Credit>) -> Self {
        Gated { inner, credit }
    }
}

impl<S: Stream + Unpin> Stream for Gated<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if !self.credit.may_read() {
            self.credit.waker.register(cx.waker());
            // Released between the check and the registration: read on.
            if !self.credit.may_read() {
                return Poll::Pending;
            }
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn reading_pauses_above_the_high_mark_and_resumes_at_the_low_one() {
        let c = Credit::new(100);
        let a = c.take(60);
        assert!(c.may_read());
        let b = c.take(60);
        assert!(!c.may_read(), "120 > 100: paused");
        assert_eq!(c.pauses(), 1);
        drop(a);
        assert!(!c.may_read(), "60 > 50: still paused (hysteresis)");
        let d = b.clone();
        drop(b);
        assert!(!c.may_read(), "a clone of the stanza still holds its share");
        assert_eq!(c.in_flight(), 60);
        drop(d);
        assert!(c.may_read(), "0 <= 50: resumed");
        assert_eq!(c.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_gated_stream_waits_for_its_credit_and_wakes_when_it_is_given_back() {
        let c = Credit::new(10);
        let mut s = Gated::new(futures_util::stream::iter(1..=3), c.clone());
        assert_eq!(s.next().await, Some(1));
        let held = c.take(11);
        let next = tokio::spawn(async move { s.next().await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!next.is_finished(), "paused while 11 bytes are in flight");
        drop(held);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), next)
            .await
            .expect("woken when the credit came back")
            .unwrap();
        assert_eq!(got, Some(2));
    }
}
