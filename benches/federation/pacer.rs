//! The open loop's pacing: one thread of its own sends each message at its own time, so a
//! paced rate reaches the edges as evenly spaced messages rather than in bursts.
//!
//! A tokio interval fires on the runtime's millisecond timer wheel: a hundred links paced
//! with evenly spread offsets still all sent in the same few hundred microseconds after
//! each millisecond tick, as bursts of `rate / 1000` messages (31 at 31,600/s), which the
//! edges then worked through one after another. This thread sleeps until the next message
//! is due (the kernel's timer slack, 50 µs for an ordinary thread, is the grain), sends what
//! is due on the links' sockets without blocking, and keeps what a socket would not take for
//! its next wake-up. Each message carries the time it was made, so time spent waiting for a
//! slow socket counts in its latency; how late the thread itself made each message (behind
//! its schedule, when it did not get a core in time) is kept apart, so that a harness
//! starved of CPU shows as such rather than as a lower rate with good latencies.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::tcp::OwnedWriteHalf;

use crate::link::{Tally, Template};

/// One load link as the pacer drives it.
struct Lane {
    writer: OwnedWriteHalf,
    template: Template,
    /// Bytes made but not yet taken by the socket, oldest first.
    pending: Vec<u8>,
    /// The socket failed: nothing more is made for it.
    dead: bool,
}

impl Lane {
    /// Writes what is pending, as far as the socket takes it now.
    fn flush(&mut self, tally: &Tally) {
        while !self.pending.is_empty() && !self.dead {
            match self.writer.as_ref().try_write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => self.die(tally),
            }
        }
    }

    /// The socket failed: the messages it had not taken in full were not sent.
    fn die(&mut self, tally: &Tally) {
        self.dead = true;
        let unsent = self.pending.len().div_ceil(self.template.message_len());
        tally.sent.fetch_sub(unsent as u64, Ordering::AcqRel);
        self.pending.clear();
    }
}

/// The pacing thread, running until [`Pacer::stop`].
pub struct Pacer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<OwnedWriteHalf>, Vec<u32>)>,
}

impl Pacer {
    /// Starts sending `rate` messages per second, taking the links in turn (message k goes on
    /// link k mod n, so each link carries `rate / n` per second, evenly spaced and offset from
    /// its neighbours). `templates[i]` is link i's message.
    pub fn start(
        writers: Vec<OwnedWriteHalf>,
        templates: Vec<Template>,
        rate: u64,
        tally: Arc<Tally>,
    ) -> Pacer {
        let stop = Arc::new(AtomicBool::new(false));
        let lanes: Vec<Lane> = writers
            .into_iter()
            .zip(templates)
            .map(|(writer, template)| Lane {
                writer,
                template,
                pending: Vec::new(),
                dead: false,
            })
            .collect();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || run(lanes, rate, &tally, &flag))
            .expect("a pacing thread");
        Pacer { stop, thread }
    }

    /// Stops sending and hands the links back, in their order, with how late (µs behind its
    /// schedule) each message made while the tally was recording was made.
    pub async fn stop(self) -> (Vec<OwnedWriteHalf>, Vec<u32>) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().expect("the pacer did not panic"))
            .await
            .expect("joined")
    }
}

fn run(
    mut lanes: Vec<Lane>,
    rate: u64,
    tally: &Tally,
    stop: &AtomicBool,
) -> (Vec<OwnedWriteHalf>, Vec<u32>) {
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now() + Duration::from_millis(20);
    let mut next: u64 = 0;
    let mut late = Vec::new();
    while !stop.load(Ordering::Relaxed) && !lanes.is_empty() {
        let now = Instant::now();
        let due = start + period.mul_f64(next as f64);
        if due > now {
            // Also the moment to retry sockets that were full.
            lanes.iter_mut().for_each(|l| l.flush(tally));
            std::thread::sleep(due - now);
            continue;
        }
        if tally.recording.load(Ordering::Relaxed) {
            late.push((now - due).as_micros().min(u32::MAX as u128) as u32);
        }
        let n = lanes.len() as u64;
        let lane = &mut lanes[(next % n) as usize];
        next += 1;
        if lane.dead {
            continue;
        }
        lane.template.write(&mut lane.pending, tally.now_us());
        tally.sent.fetch_add(1, Ordering::AcqRel);
        lane.flush(tally);
    }
    // What is still pending goes out before the links are handed back, within a bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while lanes.iter().any(|l| !l.pending.is_empty() && !l.dead) && Instant::now() < deadline {
        lanes.iter_mut().for_each(|l| l.flush(tally));
        std::thread::sleep(Duration::from_millis(1));
    }
    (lanes.into_iter().map(|l| l.writer).collect(), late)
}
