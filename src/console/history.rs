//! The status page's charts over the last minutes: a sampler task, started with the admin
//! server, reads every [`EVERY`] the counters the node already keeps (the s2s streams open
//! and the stanzas they carried, as the status view reads them) into a ring of
//! [`CAPACITY`] samples, which the page draws as soon as it opens. The hot path is
//! untouched: one small lock, taken every 5 s and when a page opens.
//!
//! The history lives in the admin server: a node-level restart makes a new one, and the
//! charts start over then.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::admin::AdminState;

/// How often the sampler reads the counters.
pub const EVERY: Duration = Duration::from_secs(5);
/// Ten minutes of samples.
pub const CAPACITY: usize = 120;

/// One point of the charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// When it was read, Unix milliseconds.
    pub at_ms: u64,
    /// Stanzas per second since the sample before, in and out over the s2s streams; `None`
    /// for the first sample (nothing to compare with).
    pub rate: Option<f64>,
    /// s2s streams open.
    pub streams: usize,
}

/// `GET /console/data/history`: the samples, oldest first, and the node's clock, so that
/// the page places them whatever its own clock says.
#[derive(Debug, Serialize)]
pub struct Samples {
    pub now_ms: u64,
    pub samples: Vec<Sample>,
}

/// The ring of samples.
#[derive(Debug)]
pub struct History {
    inner: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    samples: VecDeque<Sample>,
    capacity: usize,
    /// The last reading of the stanza total and when, to make the next rate.
    last: Option<(u64, u64)>,
}

impl History {
    pub fn new(capacity: usize) -> History {
        History {
            inner: Mutex::new(Ring {
                samples: VecDeque::with_capacity(capacity),
                capacity,
                last: None,
            }),
        }
    }

    /// Adds a reading at `at_ms`: `stanzas` in all over the streams open then, and how many
    /// are open. The total falls when streams close (their counts leave it) and starts
    /// from zero after a restart: a total lower than the last one gives a rate of zero,
    /// never a negative one.
    pub fn record(&self, at_ms: u64, stanzas: u64, streams: usize) {
        let mut ring = self.lock();
        let rate = ring.last.map(|(then_ms, then)| {
            let secs = at_ms.saturating_sub(then_ms) as f64 / 1000.0;
            if secs <= 0.0 {
                0.0
            } else {
                stanzas.saturating_sub(then) as f64 / secs
            }
        });
        ring.last = Some((at_ms, stanzas));
        if ring.samples.len() == ring.capacity {
            ring.samples.pop_front();
        }
        ring.samples.push_back(Sample {
            at_ms,
            rate,
            streams,
        });
    }

    /// The samples, oldest first.
    pub fn samples(&self, now_ms: u64) -> Samples {
        Samples {
            now_ms,
            samples: self.lock().samples.iter().copied().collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding the lock leaves a ring that is still whole: go on with it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// The stanzas in and out over the s2s streams open now, and how many are open: the
/// counters each stream keeps (its outbox, its reader's stats), read without a row each.
pub fn reading(admin: &AdminState) -> (u64, usize) {
    use std::sync::atomic::Ordering;
    let side = admin.side.load();
    let streams = &side.context().streams;
    let stanzas = streams
        .iter()
        .map(|e| e.stats.stanzas_in.load(Ordering::Relaxed) + e.outbox.stanzas_written())
        .sum();
    (stanzas, streams.len())
}

/// Samples `admin` into `history` every [`EVERY`], until aborted (with the admin server).
pub async fn sample(history: Arc<History>, admin: Arc<AdminState>) {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let (stanzas, streams) = reading(&admin);
        history.record(now_ms(), stanzas, streams);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_counter_delta_over_the_time_between_readings() {
        let h = History::new(CAPACITY);
        h.record(10_000, 100, 2);
        h.record(15_000, 150, 3);
        h.record(20_000, 150, 3);
        let s = h.samples(20_000).samples;
        assert_eq!(s[0].rate, None, "nothing to compare the first with");
        assert_eq!(s[1].rate, Some(10.0));
        assert_eq!(s[2].rate, Some(0.0));
        assert_eq!(s.iter().map(|s| s.streams).collect::<Vec<_>>(), [2, 3, 3]);
    }

    #[test]
    fn the_ring_keeps_the_last_capacity_samples() {
        let h = History::new(CAPACITY);
        for i in 0..(CAPACITY as u64 + 7) {
            h.record(i * 5_000, i, 1);
        }
        let s = h.samples(0).samples;
        assert_eq!(s.len(), CAPACITY);
        assert_eq!(s[0].at_ms, 7 * 5_000, "the oldest went first");
        assert_eq!(s[CAPACITY - 1].at_ms, (CAPACITY as u64 + 6) * 5_000);
    }

    #[test]
    fn a_counter_that_falls_gives_no_negative_rate() {
        // Streams closed, or the node restarted: the total starts over lower.
        let h = History::new(4);
        h.record(0, 1_000, 5);
        h.record(5_000, 3, 1);
        h.record(10_000, 53, 1);
        let s = h.samples(0).samples;
        assert_eq!(s[1].rate, Some(0.0));
        assert_eq!(s[2].rate, Some(10.0), "counted from the lower total on");
    }

    #[test]
    fn readings_at_the_same_millisecond_do_not_divide_by_zero() {
        let h = History::new(4);
        h.record(5_000, 10, 1);
        h.record(5_000, 20, 1);
        assert_eq!(h.samples(0).samples[1].rate, Some(0.0));
    }
}
