//! How long stanzas stay in the node: from the moment a reader has a stanza whole to the
//! moment the writer of the connection it leaves on takes it for a write into the socket
//! (`xfed_stanza_transit_seconds`). Under load it
//! tells an operator whether a stanza waits in xfed's own queues or elsewhere (the sender,
//! the network, the peer, or a busy machine keeping xfed from reading).
//!
//! A histogram of fixed buckets counted with atomics: writers add one batch at a time, so
//! a busy stream pays a few atomic additions per write, not one per stanza, and nothing
//! grows between scrapes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the buckets, in microseconds; one more bucket counts the rest.
const BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];
const BUCKETS: usize = BOUNDS_US.len() + 1;

/// The node's transit histogram.
#[derive(Default)]
pub struct Transit {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

/// One write's stanzas, counted before they are added to the histogram.
#[derive(Default)]
pub struct Batch {
    counts: [u32; BUCKETS],
    sum_us: u64,
}

impl Batch {
    /// Counts a stanza read at `read_at` and written at `now`.
    pub fn add(&mut self, read_at: Instant, now: Instant) {
        let us = now.saturating_duration_since(read_at).as_micros() as u64;
        self.counts[BOUNDS_US.partition_point(|&b| b < us)] += 1;
        self.sum_us += us;
    }
}

impl Transit {
    /// Adds a write's stanzas.
    pub fn add(&self, batch: &Batch) {
        for (slot, &n) in self.counts.iter().zip(&batch.counts) {
            if n > 0 {
                slot.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        }
        self.sum_us.fetch_add(batch.sum_us, Ordering::Relaxed);
    }

    /// The histogram in Prometheus text format, as `name`.
    pub fn render(&self, name: &str, help: &str) -> String {
        let mut out = format!("# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut total = 0;
        for (i, slot) in self.counts.iter().enumerate() {
            total += slot.load(Ordering::Relaxed);
            let le = BOUNDS_US.get(i).map_or("+Inf".to_owned(), |&b| {
                Duration::from_micros(b).as_secs_f64().to_string()
            });
            out.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {total}\n"));
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!("{name}_sum {sum}\n{name}_count {total}\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_stanza_in_the_bucket_of_its_time_cumulatively() {
        let t = Transit::default();
        let read = Instant::now();
        let mut batch = Batch::default();
        batch.add(read, read + Duration::from_micros(30));
        batch.add(read, read + Duration::from_micros(50));
        batch.add(read, read + Duration::from_millis(3));
        t.add(&batch);
        let mut late = Batch::default();
        late.add(read, read + Duration::from_secs(9));
        t.add(&late);
        let text = t.render("x_seconds", "help");
        for line in [
            "# TYPE x_seconds histogram",
            "x_seconds_bucket{le=\"0.00005\"} 2",
            "x_seconds_bucket{le=\"0.0025\"} 2",
            "x_seconds_bucket{le=\"0.005\"} 3",
            "x_seconds_bucket{le=\"5\"} 3",
            "x_seconds_bucket{le=\"+Inf\"} 4",
            "x_seconds_count 4",
            "x_seconds_sum 9.00308",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
