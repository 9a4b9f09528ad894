//! The stuck destination (issue 14, xfed only): a remote that accepts the stream and then
//! stops reading. The same link's traffic to a healthy remote must keep its rate and latency,
//! and the stuck remote's stanzas must come back to their sender after the bound, none lost.
//!
//! ```text
//! load l0 ─► edge A ─s2s─► edge B ─► sink r0.b.test     (healthy)
//!                   └─s2s─► edge C ─► sink s0.c.test     (stopped with SIGSTOP)
//! ```
//!
//! Edge C is a third xfed edge, for `c.test`, configured as B is. Pair 0's link writes, each
//! tick of a fixed pace, one message to `r0.b.test` and then a few to `s0.c.test`; the other
//! pairs send to their own remotes as background. After a baseline, C gets `kill -STOP`: it
//! keeps its sockets, so A's stream to it stays up while the kernel's buffers fill and C's
//! window closes. A's stuck bound (`[limits] stuck_secs`) is what may hold pair 0's healthy
//! traffic up; past it that traffic moves again, and what A queues for C fills the queue's
//! bound and comes back with an error. Then `kill -CONT`, and every message must end up
//! delivered or returned.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

use crate::link::{self, Role, Tally, Template};
use crate::measure::{self, counters, Delivery, Rig};
use crate::systems::{component_addr, local, remote, tenant, Edges, XfedEdge, SECRET};
use crate::world::{Proc, A_IP, B_IP, C_IP};
use crate::Plan;

mod result;

pub use result::{Phase, StuckResult};

/// The destination that stops reading: edge C's one sink domain.
const STUCK_DOMAIN: &str = "s0.c.test";
/// How long the harness waits for the senders to stop, and then for every message to be
/// delivered or returned, after C is continued.
const SETTLE: Duration = Duration::from_secs(60);

/// The scenario's sizes and the edges' limits.
struct Sizes {
    /// Before the baseline: the s2s streams to B and C are set up.
    warm: Duration,
    baseline: Duration,
    /// How long C stays stopped.
    stopped: Duration,
    /// Pair 0's pace: each tick, one message to its healthy remote, then `stuck_per_tick`
    /// to the stuck one.
    tick: Duration,
    stuck_per_tick: u64,
    /// Messages per second from the other pairs, spread over them.
    background: u64,
    /// The edges' `[limits] stuck_secs`: the bound on how long the stuck destination may
    /// hold up pair 0's other traffic.
    stuck_secs: u64,
    /// Lines added to every edge's `[limits]` (none on a full run: the defaults).
    limits: &'static str,
}

impl Sizes {
    fn of(plan: &Plan) -> Sizes {
        if plan.smoke {
            // Bounds small enough that the whole story fits in a few seconds: past the 1 s
            // bound, the queue for C (512 KiB) fills in about 2 s at 800 messages a second.
            Sizes {
                warm: Duration::from_millis(500),
                baseline: Duration::from_secs(1),
                stopped: Duration::from_secs(4),
                tick: Duration::from_millis(5),
                stuck_per_tick: 4,
                background: 100,
                stuck_secs: 1,
                limits: "stuck_secs = 1\nqueue_bytes_per_connection = 524288\n\
                         in_flight_bytes_per_connection = 131072\n",
            }
        } else {
            // The defaults: a 5 s bound, 1 MiB in flight per link, 16 MiB queued per stream,
            // which 5,000 messages a second (1.5 MB/s) fill in about 11 s once the sender is
            // let go: 20 s stopped leave room for the returns.
            Sizes {
                warm: Duration::from_secs(2),
                baseline: Duration::from_secs(5),
                stopped: Duration::from_secs(20),
                tick: Duration::from_millis(1),
                stuck_per_tick: 5,
                background: 2_000,
                stuck_secs: 5,
                limits: "",
            }
        }
    }
}

/// Edge C, and whether it is stopped. Dropped, it is continued first (a stopped process does
/// not act on SIGTERM), then stopped like any edge, however the scenario ended.
struct EdgeC {
    proc: Proc,
    stopped: bool,
}

impl EdgeC {
    fn signal(&mut self, stop: bool) {
        let sig = if stop { "-STOP" } else { "-CONT" };
        let _ = Command::new("kill")
            .args([sig, &self.proc.pid().to_string()])
            .status();
        self.stopped = stop;
    }
}

impl Drop for EdgeC {
    fn drop(&mut self) {
        if self.stopped {
            self.signal(false);
        }
    }
}

/// The scenario on fresh edges A, B and C.
pub async fn run(bin: &Path, dir: &Path, plan: &Plan) -> Result<StuckResult, String> {
    let sizes = Sizes::of(plan);
    let pairs = plan.pairs.max(1);
    let (bin, d, limits) = (bin.to_path_buf(), dir.to_path_buf(), sizes.limits);
    let (edges, mut c) = tokio::task::spawn_blocking(move || start(&bin, &d, pairs, limits))
        .await
        .map_err(|e| format!("edges did not start: {e}"))?;
    let result = scenario(&edges, &mut c, pairs, &sizes).await;
    let _ = tokio::task::spawn_blocking(move || drop((c, edges))).await;
    result
}

fn start(bin: &Path, dir: &Path, pairs: usize, limits: &str) -> (Edges, EdgeC) {
    let edge = |side, ip| XfedEdge {
        side,
        ip,
        sm: true,
        limits,
    };
    let load = tenant("load", (0..pairs).map(local));
    let a = edge("a", A_IP).start(bin, &dir.join("xfed-a"), &[("load", load)]);
    let sink = tenant("sink", (0..pairs).map(remote));
    let b = edge("b", B_IP).start(bin, &dir.join("xfed-b"), &[("sink", sink)]);
    let sink = tenant("sink", std::iter::once(STUCK_DOMAIN.to_string()));
    let c = edge("c", C_IP).start(bin, &dir.join("xfed-c"), &[("sink", sink)]);
    let sink_domains = (0..pairs).map(remote).collect();
    let edges = Edges { a, b, sink_domains };
    let c = EdgeC {
        proc: c,
        stopped: false,
    };
    (edges, c)
}

async fn scenario(
    edges: &Edges,
    c: &mut EdgeC,
    pairs: usize,
    sizes: &Sizes,
) -> Result<StuckResult, String> {
    let mut rig = Rig::connect(edges, pairs).await?;
    let tally = rig.tally.clone();
    // Only pair 0's deliveries are recorded; the background's are counted.
    let _ = tally.only_from.set(format!("@{}/", local(0)).into_bytes());
    // Edge C's sink counts apart: what reaches it is the stuck destination's.
    let c_tally = Tally::new();
    let sink = link::connect(component_addr(C_IP), STUCK_DOMAIN, SECRET)
        .await
        .map_err(|e| format!("edge C's sink: {e}"))?;
    tokio::spawn(link::count(
        sink.reader,
        sink.rest,
        c_tally.clone(),
        Role::Sink,
    ));
    let _c_sink = sink.writer;

    let stop = Arc::new(AtomicBool::new(false));
    let stuck_sent = Arc::new(AtomicU64::new(0));
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    tally.recording.store(true, Ordering::Release);
    let mut links = rig.take_load().into_iter();
    let first = links.next().ok_or("no load link")?;
    let pair0 = Pacer {
        healthy: Template::new(&local(0), &remote(0)),
        stuck: Some((Template::new(&local(0), STUCK_DOMAIN), sizes.stuck_per_tick)),
        period: sizes.tick,
        start,
    };
    let mut tasks = vec![pair0.spawn(first, &tally, &stop, &stuck_sent)];
    let others = pairs as u64 - 1;
    if others > 0 && sizes.background > 0 {
        let period = Duration::from_secs_f64(others as f64 / sizes.background as f64);
        for (k, w) in links.enumerate() {
            let i = k + 1;
            let pacer = Pacer {
                healthy: Template::new(&local(i), &remote(i)),
                stuck: None,
                period,
                start: start + period.mul_f64(k as f64 / others as f64),
            };
            tasks.push(pacer.spawn(w, &tally, &stop, &stuck_sent));
        }
    }

    tokio::time::sleep(sizes.warm).await;
    let t_base = tally.now_us();
    tokio::time::sleep(sizes.baseline).await;
    let t_stop = tally.now_us();
    c.signal(true);
    eprintln!("   edge C stopped (SIGSTOP) for {:?}", sizes.stopped);
    tokio::time::sleep(sizes.stopped).await;
    stop.store(true, Ordering::Release);
    let t_end = tally.now_us();
    let returned_while_stopped = returns_from(&tally, STUCK_DOMAIN).0;
    c.signal(false);
    let t_cont = Instant::now();
    // The writers back, kept open until the end: a bounce for a closed link is lost.
    let mut writers = Vec::new();
    for mut t in tasks {
        match tokio::time::timeout(SETTLE, &mut t).await {
            Ok(Ok(w)) => writers.push(w),
            _ => t.abort(),
        }
    }
    let settled = settle(&tally, &c_tally).await.then(|| t_cont.elapsed());
    tally.recording.store(false, Ordering::Release);
    tally.latencies.lock().expect("not poisoned").clear();
    let mut arrivals = std::mem::take(&mut *tally.arrivals.lock().expect("not poisoned"));
    arrivals.sort_unstable_by_key(|a| a.1);
    drop(writers);

    let bound = t_stop + sizes.stuck_secs * 1_000_000;
    let phases = vec![
        phase("baseline", &arrivals, t_base, t_stop),
        phase(
            "stopped, before the bound",
            &arrivals,
            t_stop,
            bound.min(t_end),
        ),
        phase(
            "stopped, after the bound",
            &arrivals,
            bound.min(t_end),
            t_end,
        ),
    ];
    let mut last = t_stop;
    let mut gap = 0;
    for &(_, at) in arrivals.iter().filter(|a| a.1 >= t_stop && a.1 < t_end) {
        gap = gap.max(at - last);
        last = at;
    }
    gap = gap.max(t_end - last);

    let (returned, first_return) = returns_from(&tally, STUCK_DOMAIN);
    let returns: Vec<(String, String, u64)> = {
        let map = tally.returns.lock().expect("not poisoned");
        map.iter()
            .map(|((d, cond), (n, _))| (d.clone(), cond.clone(), *n))
            .collect()
    };
    let (sent, received, bounced) = counters(&tally);
    let stuck_sent = stuck_sent.load(Ordering::Acquire);
    let stuck_delivered = c_tally.received.load(Ordering::Acquire);
    let healthy_sent = sent - stuck_sent;
    let healthy_bounced = bounced - returned;
    let delivery = |sent: u64, received: u64, bounced: u64| Delivery {
        sent,
        received,
        bounced,
        lost: sent.saturating_sub(received + bounced),
        first_bounce: None,
    };
    let tick = sizes.tick.as_secs_f64();
    Ok(StuckResult {
        stuck_secs: sizes.stuck_secs,
        offered: (1.0 / tick, sizes.stuck_per_tick as f64 / tick),
        background: if others > 0 { sizes.background } else { 0 },
        stopped_secs: (t_end - t_stop) as f64 / 1e6,
        phases,
        longest_gap_ms: gap as f64 / 1000.0,
        first_return_ms: first_return.map(|f| f.saturating_sub(t_stop) as f64 / 1000.0),
        returned_while_stopped,
        returns,
        settled_ms: settled.map(|d| d.as_secs_f64() * 1000.0),
        pair0: (
            stuck_sent / sizes.stuck_per_tick.max(1),
            arrivals.len() as u64,
        ),
        healthy: delivery(healthy_sent, received, healthy_bounced),
        stuck: delivery(stuck_sent, stuck_delivered, returned),
    })
}

/// Returns from `domain` so far, and when the first arrived.
fn returns_from(tally: &Tally, domain: &str) -> (u64, Option<u64>) {
    let map = tally.returns.lock().expect("not poisoned");
    map.iter()
        .filter(|((d, _), _)| d == domain)
        .fold((0, None), |(n, first), (_, &(k, at))| {
            (n + k, Some(first.map_or(at, |f: u64| f.min(at))))
        })
}

/// Waits until every message sent is delivered (to B's sinks or C's) or returned, or
/// [`SETTLE`] passes; true when everything is accounted for.
async fn settle(tally: &Tally, c_tally: &Tally) -> bool {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        let (sent, received, bounced) = counters(tally);
        if received + bounced + c_tally.received.load(Ordering::Acquire) >= sent {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Pair 0's healthy deliveries in `[from, to)`: latency of those sent then, rate of those
/// that arrived then.
fn phase(name: &'static str, arrivals: &[(u64, u64)], from: u64, to: u64) -> Phase {
    let secs = to.saturating_sub(from) as f64 / 1e6;
    let arrived = arrivals.iter().filter(|a| a.1 >= from && a.1 < to).count();
    let mut lat: Vec<u64> = arrivals
        .iter()
        .filter(|a| a.0 >= from && a.0 < to)
        .map(|a| a.1.saturating_sub(a.0))
        .collect();
    lat.sort_unstable();
    let pick = |q: f64| measure::quantile(&lat, q);
    Phase {
        name,
        secs,
        delivered_per_sec: arrived as f64 / secs.max(1e-9),
        p50_us: pick(0.5),
        p99_us: pick(0.99),
        max_us: lat.last().copied().unwrap_or(0),
        samples: lat.len(),
    }
}

/// One load link's pace: each tick, one message to its healthy remote and, for pair 0,
/// a few to the stuck destination.
struct Pacer {
    healthy: Template,
    /// The stuck destination's message and how many of it each tick.
    stuck: Option<(Template, u64)>,
    period: Duration,
    start: tokio::time::Instant,
}

impl Pacer {
    fn spawn(
        self,
        mut w: OwnedWriteHalf,
        tally: &Arc<Tally>,
        stop: &Arc<AtomicBool>,
        stuck_sent: &Arc<AtomicU64>,
    ) -> JoinHandle<OwnedWriteHalf> {
        let (tally, stop, stuck_sent) = (tally.clone(), stop.clone(), stuck_sent.clone());
        tokio::spawn(async move {
            let per_tick = self.stuck.as_ref().map_or(0, |s| s.1);
            let mut ticks = tokio::time::interval_at(self.start, self.period);
            let mut buf = Vec::with_capacity((1 + per_tick as usize) * link::MESSAGE_BYTES);
            while !stop.load(Ordering::Acquire) {
                // Stamped with the tick's own time, not when it came: a message held back
                // while A did not read the link counts that wait in its latency.
                let at = ticks.tick().await.into_std();
                let stamp = at.saturating_duration_since(tally.epoch).as_micros() as u64;
                buf.clear();
                self.healthy.write(&mut buf, stamp);
                if let Some((stuck, n)) = &self.stuck {
                    for _ in 0..*n {
                        stuck.write(&mut buf, stamp);
                    }
                }
                stuck_sent.fetch_add(per_tick, Ordering::AcqRel);
                if !measure::write_counted(&mut w, &tally, &buf, 1 + per_tick).await {
                    stuck_sent.fetch_sub(per_tick, Ordering::AcqRel);
                    break;
                }
            }
            w
        })
    }
}
