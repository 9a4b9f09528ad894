//! The stuck-destination scenario's figures, its part of the run's table and JSON, and what
//! fails the run.

use std::fmt::Write as _;

use super::{SETTLE, STUCK_DOMAIN};
use crate::measure::Delivery;

#[derive(Debug, Clone)]
pub struct StuckResult {
    pub stuck_secs: u64,
    /// Pair 0's offered rates, messages per second: to its healthy remote, to the stuck one.
    pub offered: (f64, f64),
    /// The other pairs' messages per second, all together.
    pub background: u64,
    pub stopped_secs: f64,
    /// Pair 0's healthy traffic: before the stop, stopped up to the bound, after it.
    pub phases: Vec<Phase>,
    /// The longest time without a delivery of pair 0's healthy traffic while C was
    /// stopped, in ms: how long the stuck destination held it up.
    pub longest_gap_ms: f64,
    /// From the stop to the first stanza for the stuck destination coming back, in ms.
    pub first_return_ms: Option<f64>,
    /// Stanzas for the stuck destination returned before C was continued.
    pub returned_while_stopped: u64,
    /// Every return: (the domain it came back from, its error condition, how many).
    pub returns: Vec<(String, String, u64)>,
    /// From the continue until every message was delivered or returned, in ms.
    pub settled_ms: Option<f64>,
    /// Pair 0's healthy messages: sent, delivered.
    pub pair0: (u64, u64),
    /// Every message to a healthy remote: pair 0's and the background.
    pub healthy: Delivery,
    pub stuck: Delivery,
}

/// Pair 0's healthy traffic in one phase: latency by send time, rate by arrival time.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub secs: f64,
    pub delivered_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Its messages sent in the phase and delivered: all that were sent, unless the run
    /// fails for a lost one.
    pub samples: usize,
}

impl StuckResult {
    /// The section of the run's table. Judged (full runs): the longest hold-up of the
    /// healthy traffic against the design's bound, the stuck bound plus a second.
    pub fn table(&self, judged: bool) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nstuck destination (xfed): edge C stopped (SIGSTOP) for {:.1} s; [limits] stuck_secs = {}",
            self.stopped_secs, self.stuck_secs
        );
        let _ = writeln!(
            out,
            "  pair 0 sends {:.0}/s to r0.b.test and {:.0}/s to {STUCK_DOMAIN} on one link; background {}/s",
            self.offered.0, self.offered.1, self.background
        );
        let _ = writeln!(
            out,
            "  {:<40} {:>6} {:>12} {:>10} {:>10} {:>10}",
            "pair 0 -> r0.b.test, by phase", "sent", "delivered/s", "p50", "p99", "max"
        );
        for p in &self.phases {
            // Latency by send time: a phase in which the link took nothing has none.
            let lat = |us: u64| match p.samples {
                0 => "-".to_string(),
                _ => format!("{:.2} ms", ms(us)),
            };
            let _ = writeln!(
                out,
                "    {:<38} {:>6} {:>12.1} {:>10} {:>10} {:>10}",
                format!("{} ({:.1} s)", p.name, p.secs),
                p.samples,
                p.delivered_per_sec,
                lat(p.p50_us),
                lat(p.p99_us),
                lat(p.max_us)
            );
        }
        let bound = (self.stuck_secs * 1000 + 1000) as f64;
        let mark = match (judged, self.longest_gap_ms <= bound) {
            (false, _) => "",
            (true, true) => "  met",
            (true, false) => "  NOT met",
        };
        let _ = writeln!(
            out,
            "  longest pause in pair 0's healthy deliveries while C was stopped: {:.1} ms (bound: stuck_secs + 1 s = {bound:.0} ms){mark}",
            self.longest_gap_ms
        );
        let first = match self.first_return_ms {
            None => "nothing returned".to_string(),
            Some(f) => format!(
                "first returned {:.2} s after the stop; {} returned while C was stopped",
                f / 1000.0,
                self.returned_while_stopped
            ),
        };
        let _ = writeln!(out, "  {STUCK_DOMAIN}: {first}");
        for (domain, condition, n) in &self.returns {
            let _ = writeln!(out, "    returned from {domain}: {condition} x {n}");
        }
        let settled = self.settled_ms.map_or(
            format!("NOT everything within {} s", SETTLE.as_secs()),
            |s| format!("everything delivered or returned {:.2} s later", s / 1000.0),
        );
        let _ = writeln!(out, "  after SIGCONT: {settled}");
        let _ = writeln!(
            out,
            "  pair 0 -> r0.b.test: sent {}, delivered {}",
            self.pair0.0, self.pair0.1
        );
        for (what, d) in [
            ("healthy (pair 0 + background)", &self.healthy),
            (STUCK_DOMAIN, &self.stuck),
        ] {
            let _ = writeln!(
                out,
                "  delivery, {what}: sent {}, delivered {}, returned {}, lost {}",
                d.sent, d.received, d.bounced, d.lost
            );
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let d = |d: &Delivery| {
            serde_json::json!({"sent": d.sent, "received": d.received, "bounced": d.bounced,
                               "lost": d.lost})
        };
        let phases: Vec<_> = self
            .phases
            .iter()
            .map(|p| {
                serde_json::json!({"phase": p.name, "secs": p.secs,
                                   "delivered_per_sec": p.delivered_per_sec,
                                   "p50_us": p.p50_us, "p99_us": p.p99_us,
                                   "max_us": p.max_us, "samples": p.samples})
            })
            .collect();
        let returns: Vec<_> = self
            .returns
            .iter()
            .map(|(domain, condition, n)| {
                serde_json::json!({"from": domain, "condition": condition, "count": n})
            })
            .collect();
        serde_json::json!({
            "stuck_secs": self.stuck_secs,
            "offered_healthy_per_sec": self.offered.0,
            "offered_stuck_per_sec": self.offered.1,
            "background_per_sec": self.background,
            "stopped_secs": self.stopped_secs,
            "pair0_healthy": phases,
            "longest_gap_ms": self.longest_gap_ms,
            "first_return_ms": self.first_return_ms,
            "returned_while_stopped": self.returned_while_stopped,
            "returns": returns,
            "settled_ms": self.settled_ms,
            "pair0_healthy_sent": self.pair0.0,
            "pair0_healthy_delivered": self.pair0.1,
            "healthy": d(&self.healthy),
            "stuck": d(&self.stuck),
        })
    }

    /// What fails the run: a message lost, a healthy one returned, or nothing sent.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, d, may_return) in [
            ("healthy traffic", &self.healthy, false),
            ("traffic to the stuck destination", &self.stuck, true),
        ] {
            if d.sent == 0 || d.lost > 0 || (!may_return && d.bounced > 0) {
                out.push(format!(
                    "xfed stuck destination, {what}: sent {}, delivered {}, returned {}, lost {}",
                    d.sent, d.received, d.bounced, d.lost
                ));
            }
        }
        out
    }
}
