//! `--sched-trace` (with `--latency-only`): a scheduler trace of the whole machine through each
//! rate (`perf record` of every context switch and wake-up, read back with `perf sched
//! timehist`), laid beside each message's flight: what held the cores while the slowest
//! messages waited.
//!
//! Three questions, one line of figures each rate:
//! - were the slowest 1% in flight while some other program (a kernel thread, say) held a core
//!   for 0.5 ms or more, and how often is that true of the other messages;
//! - how much of a core stood idle while they were in flight (a message that waits while a
//!   core is idle waits on something other than CPU);
//! - how long the edges' and the harness's threads waited, runnable, for a core, and how much
//!   of that wait fell while another core was idle (how the kernel places woken threads).
//!
//! perf itself costs CPU, so latencies measured under a trace are higher than without.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A foreign run at least this long counts as holding a core.
const HOLD_US: u64 = 500;

/// One stretch a thread ran on a core, from the trace.
struct Run {
    start: u64,
    end: u64,
    cpu: u32,
    /// 0 for the idle task.
    pid: u32,
    name: String,
    /// How long it had waited, runnable, before this stretch began.
    waited: u64,
}

/// A trace being recorded.
pub struct Trace {
    child: Child,
    file: PathBuf,
}

/// CLOCK_MONOTONIC in microseconds: the clock the trace is stamped with.
pub fn monotonic_us() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

impl Trace {
    /// Starts recording every context switch and wake-up on every core into `dir`.
    pub fn start(dir: &Path, rate: u64) -> Option<Trace> {
        let file = dir.join(format!("sched-{rate}.data"));
        let child = Command::new("perf")
            .args(["record", "-q", "-a", "-k", "monotonic"])
            .args(["-e", "sched:sched_switch", "-e", "sched:sched_wakeup", "-o"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                // perf needs a moment to set up its buffers before it records anything.
                std::thread::sleep(std::time::Duration::from_millis(500));
                Some(Trace { child, file })
            }
            Err(e) => {
                eprintln!("   --sched-trace needs perf (Debian linux-perf): {e}");
                None
            }
        }
    }

    /// Stops recording and describes the slowest messages' flights. `flights` are
    /// (sent, latency) in monotonic microseconds; `ours` are the processes measured (the
    /// harness and the edges).
    pub fn finish(mut self, flights: &[(u64, u64)], ours: &[u32]) -> String {
        // perf writes its file out when interrupted.
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let tracer = self.child.id();
        let _ = self.child.wait();
        let out = Command::new("perf")
            .args(["sched", "timehist", "-i"])
            .arg(&self.file)
            .stderr(Stdio::null())
            .output();
        let _ = std::fs::remove_file(&self.file);
        let text = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            _ => return "no trace (perf sched timehist failed)".into(),
        };
        let runs = parse(&text);
        if runs.is_empty() || flights.is_empty() {
            return "no trace (nothing recorded)".into();
        }
        describe(&runs, flights, ours, tracer)
    }
}

impl Drop for Trace {
    /// A trace left unread (no message was recorded) must not keep perf running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The runs of `perf sched timehist`'s table: "time [cpu] name[tid/pid] wait delay run",
/// times in seconds, the three durations in milliseconds.
fn parse(text: &str) -> Vec<Run> {
    let ms = |s: &str| s.parse::<f64>().ok().map(|v| (v * 1000.0) as u64);
    let mut runs: Vec<Run> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || !f[1].starts_with('[') {
                return None;
            }
            let end = (f[0].parse::<f64>().ok()? * 1e6) as u64;
            let cpu = f[1].trim_matches(|c| c == '[' || c == ']').parse().ok()?;
            let ran = ms(f[f.len() - 1])?;
            let waited = ms(f[f.len() - 2])?;
            let task = f[2..f.len() - 3].join(" ");
            let (name, pid) = match task.rsplit_once('[') {
                Some((name, ids)) => {
                    let ids = ids.trim_end_matches(']');
                    let pid = ids.rsplit('/').next()?.parse().ok()?;
                    (name.to_string(), pid)
                }
                None => (task, 0),
            };
            Some(Run {
                start: end.saturating_sub(ran),
                end,
                cpu,
                pid,
                name,
                waited,
            })
        })
        .collect();
    runs.sort_unstable_by_key(|r| r.start);
    runs
}

/// Runs sorted by start, searchable for those overlapping a span.
struct Spans<'a> {
    runs: Vec<&'a Run>,
    longest: u64,
}

impl<'a> Spans<'a> {
    fn new(runs: impl Iterator<Item = &'a Run>) -> Spans<'a> {
        let runs: Vec<&Run> = runs.collect();
        let longest = runs.iter().map(|r| r.end - r.start).max().unwrap_or(0);
        Spans { runs, longest }
    }

    fn overlapping(&self, from: u64, to: u64) -> impl Iterator<Item = &'a Run> + '_ {
        let first = self
            .runs
            .partition_point(|r| r.start < from.saturating_sub(self.longest));
        self.runs[first..]
            .iter()
            .take_while(move |r| r.start < to)
            .filter(move |r| r.end > from)
            .copied()
    }

    /// Microseconds of [from, to) these runs cover, on cores other than `except`.
    fn covered(&self, from: u64, to: u64, except: Option<u32>) -> u64 {
        self.overlapping(from, to)
            .filter(|r| Some(r.cpu) != except)
            .map(|r| r.end.min(to) - r.start.max(from))
            .sum()
    }
}

fn describe(runs: &[Run], flights: &[(u64, u64)], ours: &[u32], tracer: u32) -> String {
    let foreign = Spans::new(runs.iter().filter(|r| {
        r.pid != 0 && r.pid != tracer && !ours.contains(&r.pid) && r.end - r.start >= HOLD_US
    }));
    let idle = Spans::new(runs.iter().filter(|r| r.pid == 0));
    let mut by_latency: Vec<&(u64, u64)> = flights.iter().collect();
    by_latency.sort_unstable_by_key(|f| std::cmp::Reverse(f.1));
    let slow_n = (flights.len() / 100).max(1);
    let (slow, rest) = by_latency.split_at(slow_n);
    let mut holders: HashMap<&str, usize> = HashMap::new();
    let mut share = |group: &[&(u64, u64)], count_holders: bool| {
        let (mut held, mut idle_us) = (0usize, 0u64);
        for &&(sent, latency) in group {
            let longest = foreign
                .overlapping(sent, sent + latency)
                .max_by_key(|r| r.end - r.start);
            if let Some(r) = longest {
                held += 1;
                if count_holders {
                    *holders.entry(r.name.as_str()).or_default() += 1;
                }
            }
            idle_us += idle.covered(sent, sent + latency, None);
        }
        let n = group.len().max(1);
        (held * 100 / n, idle_us as f64 / n as f64 / 1000.0)
    };
    let (slow_held, slow_idle) = share(slow, true);
    let (rest_held, rest_idle) = share(rest, false);
    let mut names: Vec<(&str, usize)> = holders.into_iter().collect();
    names.sort_unstable_by_key(|n| std::cmp::Reverse(n.1));
    let names: Vec<String> = names
        .iter()
        .take(4)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    // The runnable waits of our threads inside the messages' window.
    let first = flights.iter().map(|f| f.0).min().unwrap_or(0);
    let last = flights.iter().map(|f| f.0 + f.1).max().unwrap_or(0);
    let (mut waited, mut beside_idle) = (0u64, 0u64);
    for r in runs
        .iter()
        .filter(|r| ours.contains(&r.pid) && r.waited > 0)
    {
        if r.start < first || r.start > last {
            continue;
        }
        waited += r.waited;
        beside_idle += idle.covered(r.start - r.waited, r.start, Some(r.cpu));
    }
    format!(
        "slowest 1% ({slow_n}): {slow_held}% in flight while another program held a core for \
         {HOLD_US} us or more ({}), other messages {rest_held}%; a core idle {slow_idle:.2} ms \
         per slowest message in flight, {rest_idle:.2} ms per other; the measured processes' \
         threads waited {:.1} s for a core over {:.1} s, {}% of it while another core was idle",
        names.join(", "),
        waited as f64 / 1e6,
        (last - first) as f64 / 1e6,
        beside_idle * 100 / waited.max(1),
    )
}
