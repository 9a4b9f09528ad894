//! `--latency-only`, a diagnostic run for the latency tail: latency at each of the plan's
//! rates on fresh edges (or through the harness's floor), each edge's CPU time per message,
//! each thread's share of a core (the edges' and the harness's), and when the slowest
//! messages were sent; with `--arrivals` every message's send time and latency, with
//! `--sched-trace` what held the cores while the slowest were in flight. Nothing else runs
//! and nothing is reported.

use std::path::Path;

use crate::measure::{self, Rig};
use crate::sched_trace;
use crate::systems::{metrics_text, Edges, Layout, System};
use crate::world::{A_IP, B_IP};
use crate::{start, stop, world, Plan};

/// `--latency-only`: the latency at each of the plan's rates on fresh edges, printed.
pub async fn run(system: System, dir: &Path, plan: &Plan) -> Result<(), String> {
    let layout = Layout {
        pairs: plan.pairs,
        fresh: 0,
    };
    let edges = start(system, &dir.join(system.name()).join("latency"), layout).await?;
    let mut rig = Rig::connect(&edges, plan.pairs).await?;
    series(&mut rig, plan, Some(&edges)).await;
    drop(rig);
    stop(edges).await;
    Ok(())
}

/// Latency at each of the plan's rates through `rig`, printed with when the slowest
/// messages were sent and, given the edges, their CPU time per message.
pub async fn series(rig: &mut Rig, plan: &Plan, edges: Option<&Edges>) {
    for &rate in &plan.latency_rates {
        let cpu = edges.map(|e| (e.a.cpu_ms(), e.b.cpu_ms()));
        let switches = edges.map(|e| (e.a.switches(), e.b.switches()));
        let host = crate::world::host_ticks();
        let threads = Threads::take(edges);
        let transit = edges.map(|_| InEdges::take());
        rig.tally.arrivals.lock().expect("not poisoned").clear();
        let trace = plan
            .sched_trace
            .then(|| sched_trace::Trace::start(&std::env::temp_dir(), rate))
            .flatten();
        let l = measure::latency(rig, rate, plan.latency_warm, plan.latency_measure).await;
        let threads = threads.since();
        let mut arrivals = std::mem::take(&mut *rig.tally.arrivals.lock().expect("not poisoned"));
        arrivals.sort_unstable();
        let unix_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let unix_base = unix_us - rig.tally.now_us();
        print_slowest(&arrivals, unix_base);
        if let Some(path) = &plan.arrivals {
            write_arrivals(path, rate, unix_base, &arrivals);
        }
        let traced = trace.map(|trace| {
            // The trace's clock is the monotonic one.
            let base = sched_trace::monotonic_us() - rig.tally.now_us();
            let flights: Vec<(u64, u64)> =
                arrivals.iter().map(|&(s, at)| (base + s, at - s)).collect();
            let mut ours = vec![std::process::id()];
            ours.extend(edges.iter().flat_map(|e| [e.a.pid(), e.b.pid()]));
            tokio::task::block_in_place(|| trace.finish(&flights, &ours))
        });
        let sent = l.delivery.sent.max(1) as f64;
        let cpu = match (edges, cpu) {
            (Some(e), Some((a, b))) => format!(
                "; CPU per message: A {:.1} us, B {:.1} us",
                (e.a.cpu_ms() - a) as f64 * 1000.0 / sent,
                (e.b.cpu_ms() - b) as f64 * 1000.0 / sent,
            ),
            _ => String::new(),
        };
        let switches = match (edges, switches) {
            (Some(e), Some((a, b))) => format!(
                "; switches per message: A {:.2}, B {:.2}",
                (e.a.switches() - a) as f64 / sent,
                (e.b.switches() - b) as f64 / sent,
            ),
            _ => String::new(),
        };
        // Time the hypervisor gave to others: a tail measured while it is high is the
        // host's, whatever the figures say.
        let (stolen, all) = crate::world::host_ticks();
        let steal = (stolen - host.0) as f64 * 100.0 / (all - host.1).max(1) as f64;
        eprintln!(
            "   {rate}/s: p50 {} p99 {} p99.9 {} us{cpu}{switches}; host CPU stolen {steal:.0}%",
            l.p50_us, l.p99_us, l.p999_us
        );
        // A pacer that did not get a core in time sends less, later: its lag is the
        // harness's, and a rate it did not reach was not measured.
        eprintln!(
            "   {rate}/s: sent {:.0}/s; pacer behind schedule p99 {} us, at most {} us",
            l.offered_per_sec, l.pacer_late_us.0, l.pacer_late_us.1
        );
        eprintln!("   {rate}/s: % of a core: {threads}");
        if let Some(text) = transit.and_then(InEdges::since) {
            eprintln!("   {rate}/s: time in the edges: {text}");
        }
        if let Some(text) = traced {
            eprintln!("   {rate}/s, scheduler trace: {text}");
        }
    }
}

/// When the slowest messages were sent (`arrivals` are (sent, arrived) on the harness's
/// clock, `unix_base` that clock's zero in Unix microseconds): a tail that comes at a period
/// points at a timer or a periodic task.
fn print_slowest(arrivals: &[(u64, u64)], unix_base: u64) {
    let Some(t0) = arrivals.iter().map(|a| a.0).min() else {
        return;
    };
    let mut worst: Vec<(u64, u64)> = arrivals.iter().map(|&(s, at)| (at - s, s - t0)).collect();
    worst.sort_unstable_by(|a, b| b.cmp(a));
    // One entry per millisecond of sending: a stall delays many messages at once.
    let mut seen = std::collections::HashSet::new();
    let list: Vec<String> = worst
        .iter()
        .filter(|w| seen.insert(w.1 / 1000))
        .take(30)
        .map(|(lat, at)| format!("{}us@{}ms", lat, at / 1000))
        .collect();
    eprintln!("   slowest: {}", list.join(" "));
    let walls: Vec<String> = worst
        .iter()
        .take(5)
        .map(|(_, at)| format!("{:.6}", (unix_base + t0 + at) as f64 / 1e6))
        .collect();
    eprintln!("   slowest sent at (unix s): {}", walls.join(" "));
}

/// Appends each message of one rate to `path`: the rate, when it was sent (Unix
/// microseconds, from `base` plus the harness's clock) and its latency.
fn write_arrivals(path: &Path, rate: u64, base: u64, arrivals: &[(u64, u64)]) {
    use std::io::Write;
    let mut out = String::with_capacity(arrivals.len() * 32);
    for &(sent, at) in arrivals {
        out.push_str(&format!("{rate}\t{}\t{}\n", base + sent, at - sent));
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(out.as_bytes()));
    if let Err(e) = written {
        eprintln!("   cannot write {}: {e}", path.display());
    }
}

/// Where the cores went during one rate: the CPU time of each thread of the harness and of
/// the edges. Threads that ended meanwhile (the harness's pacing thread) count as what the
/// process used beyond its living threads. Two shared cores are 200%.
struct Threads {
    at: std::time::Instant,
    /// (name, pid, each thread's CPU time, the process's).
    sides: Vec<(&'static str, u32, world::ThreadTimes, u64)>,
}

impl Threads {
    fn take(edges: Option<&Edges>) -> Threads {
        let mut pids = vec![("harness", std::process::id())];
        if let Some(e) = edges {
            pids.extend([("A", e.a.pid()), ("B", e.b.pid())]);
        }
        Threads {
            at: std::time::Instant::now(),
            sides: pids
                .into_iter()
                .map(|(side, pid)| {
                    let threads = world::thread_cpu_ms(pid);
                    (side, pid, threads, world::process_cpu_ms(pid))
                })
                .collect(),
        }
    }

    /// Each side's CPU and its busy threads (at least 1% of a core) since [`Threads::take`].
    fn since(self) -> String {
        let ms = self.at.elapsed().as_millis().max(1) as u64;
        let pct = |used: u64| used * 100 / ms;
        let mut out = Vec::new();
        for (side, pid, before, process) in self.sides {
            let mut busy: Vec<(u64, String)> = world::thread_cpu_ms(pid)
                .into_iter()
                .map(|(tid, (name, t))| {
                    (t.saturating_sub(before.get(&tid).map_or(0, |b| b.1)), name)
                })
                .collect();
            let total = world::process_cpu_ms(pid).saturating_sub(process);
            let living: u64 = busy.iter().map(|b| b.0).sum();
            busy.push((total.saturating_sub(living), "ended threads".into()));
            busy.sort_unstable_by(|a, b| b.cmp(a));
            let list: Vec<String> = busy
                .iter()
                .filter(|b| pct(b.0) >= 1)
                .map(|(t, name)| format!("{name} {}", pct(*t)))
                .collect();
            out.push(format!(
                "{side} {} ({})",
                pct(total.max(living)),
                list.join(", ")
            ));
        }
        out.join("; ")
    }
}

/// How long the messages stayed inside each xfed edge (its `xfed_stanza_transit_seconds`
/// histogram, read from its `/metrics` before and after a rate): whether they waited in
/// xfed's own queues or elsewhere (the kernel's buffers, a thread waiting for a core).
struct InEdges {
    /// Each edge's cumulative buckets: (upper bound in seconds, count).
    before: [Vec<(f64, u64)>; 2],
}

impl InEdges {
    fn take() -> InEdges {
        InEdges {
            before: [transit_buckets(A_IP), transit_buckets(B_IP)],
        }
    }

    /// Per edge, the bucket bounds that hold the median and the 99th percentile since
    /// [`InEdges::take`]; `None` where the edges have no such histogram (Prosody).
    fn since(self) -> Option<String> {
        let mut out = Vec::new();
        for (name, ip, before) in [("A", A_IP, &self.before[0]), ("B", B_IP, &self.before[1])] {
            let after = transit_buckets(ip);
            if after.is_empty() {
                return None;
            }
            let counts: Vec<(f64, u64)> = after
                .iter()
                .map(|&(le, n)| {
                    let was = before.iter().find(|b| b.0 == le).map_or(0, |b| b.1);
                    (le, n - was)
                })
                .collect();
            let all = counts.last().map_or(0, |c| c.1).max(1);
            let at = |q: f64| {
                let le = counts
                    .iter()
                    .find(|c| c.1 as f64 >= q * all as f64)
                    .map_or(f64::INFINITY, |c| c.0);
                format!("{} ms", le * 1000.0)
            };
            let within_ms = counts.iter().find(|c| c.0 >= 0.001).map_or(0, |c| c.1);
            out.push(format!(
                "{name} p50 <= {}, p99 <= {}, {:.2}% over 1 ms",
                at(0.5),
                at(0.99),
                (all - within_ms.min(all)) as f64 * 100.0 / all as f64
            ));
        }
        Some(out.join("; "))
    }
}

/// An xfed edge's transit histogram: (upper bound in seconds, cumulative count), `+Inf` last.
fn transit_buckets(ip: &str) -> Vec<(f64, u64)> {
    metrics_text(ip)
        .lines()
        .filter_map(|l| l.strip_prefix("xfed_stanza_transit_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, n.parse().ok()?))
        })
        .collect()
}
