//! The run's results: a table for the terminal, the same as JSON, and what counts as a
//! failed run (a system that could not be measured, or xfed losing or bouncing messages).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::measure::{Delivery, Latency, Streams, Throughput};
use crate::systems::System;
use crate::Plan;

pub struct SystemResult {
    pub system: System,
    pub throughput: Throughput,
    /// Every load link writing as fast as TCP takes it, right after `throughput` on the same
    /// edges: what a sender faster than the path gets (issue 14).
    pub open_loop: Throughput,
    /// One per offered load of the plan, in its order.
    pub latency: Vec<Latency>,
    /// At 30% of the closed loop's rate (the rate, the figures): issue 14's tail target.
    pub latency_cap: Option<(u64, Latency)>,
    pub streams: Streams,
    /// Throughput with the crowd of tenants and static routes on edge A (xfed only).
    pub crowd: Option<Throughput>,
    /// Throughput on edge A restarted with its one tenant, measured just before `crowd`
    /// under the same conditions: the tenancy share is taken against it.
    pub crowd_base: Option<Throughput>,
    /// Throughput with stream management (XEP-0198) on, then off, each on fresh edges,
    /// back to back (xfed only).
    pub sm_paired: Option<(Throughput, Throughput)>,
}

pub struct Report {
    plan: Plan,
    open_files: u64,
    pub systems: Vec<SystemResult>,
    pub failures: Vec<String>,
    /// The harness's own latency (load -> trivial relay -> sink) at each rate measured.
    pub floor: Vec<(u64, Latency)>,
    /// Edge B as a cluster of three xfed nodes (built with the `cluster` feature).
    #[cfg(feature = "cluster")]
    pub cluster: Option<crate::cluster::ClusterResult>,
    /// A remote that stops reading, beside a healthy one (xfed only).
    pub stuck: Option<crate::stuck::StuckResult>,
}

/// Picks one quantile out of a latency measurement.
type Quantile = fn(&Latency) -> u32;
/// The target for xfed: a bound and whether xfed must be above (`>=`) or below it.
type Target = Option<(f64, &'static str)>;

/// One row: a figure per system, how to compare them, and the target for xfed.
struct Row {
    name: String,
    unit: &'static str,
    values: Vec<Option<f64>>,
    /// The ratio is xfed / Prosody when higher is better, Prosody / xfed when lower is.
    higher_is_better: bool,
    target: Target,
}

impl Report {
    pub fn new(plan: &Plan, open_files: u64) -> Report {
        Report {
            plan: plan.clone(),
            open_files,
            systems: Vec::new(),
            failures: Vec::new(),
            floor: Vec::new(),
            #[cfg(feature = "cluster")]
            cluster: None,
            stuck: None,
        }
    }

    fn get(&self, s: System) -> Option<&SystemResult> {
        self.systems.iter().find(|r| r.system == s)
    }

    fn rows(&self) -> Vec<Row> {
        let p = &self.plan;
        let per = |f: &dyn Fn(&SystemResult) -> Option<f64>| -> Vec<Option<f64>> {
            [System::Xfed, System::Prosody]
                .iter()
                .map(|s| self.get(*s).and_then(f))
                .collect()
        };
        let lat = |k: usize, q: fn(&Latency) -> u32| {
            per(&|r| r.latency.get(k).map(|l| q(l) as f64 / 1000.0))
        };
        let xfed_base = self
            .get(System::Xfed)
            .and_then(|r| r.crowd_base.as_ref())
            .map(|b| b.per_sec);
        let mut rows = vec![Row {
            name: format!(
                "throughput, {} pairs, median of {} s",
                p.pairs,
                p.measure.as_secs()
            ),
            unit: "msg/s",
            values: per(&|r| Some(r.throughput.per_sec)),
            higher_is_better: true,
            target: Some((200_000.0, ">=")),
        }];
        rows.push(Row {
            name: "open-loop maximum (links write as fast as TCP takes), median".into(),
            unit: "msg/s",
            values: per(&|r| Some(r.open_loop.per_sec)),
            higher_is_better: true,
            target: None,
        });
        rows.push(Row {
            name: "open-loop messages returned with an error".into(),
            unit: "",
            values: per(&|r| Some(r.open_loop.delivery.bounced as f64)),
            higher_is_better: false,
            target: Some((0.0, "<=")),
        });
        for (k, &rate) in p.latency_rates.iter().enumerate() {
            let quantiles: [(&str, Quantile, Target); 3] = [
                ("p50", |l| l.p50_us, None),
                ("p99", |l| l.p99_us, (rate == 10_000).then_some((1.0, "<="))),
                ("p99.9", |l| l.p999_us, None),
            ];
            for (q, f, target) in quantiles {
                rows.push(Row {
                    name: format!("latency {q} at {rate}/s offered"),
                    unit: "ms",
                    values: lat(k, f),
                    higher_is_better: false,
                    target,
                });
            }
        }
        let cap = |f: &dyn Fn(&Latency) -> f64| per(&|r| r.latency_cap.as_ref().map(|(_, l)| f(l)));
        let cap_rates: Vec<String> = [System::Xfed, System::Prosody]
            .iter()
            .filter_map(|s| self.get(*s).and_then(|r| r.latency_cap.as_ref()))
            .map(|(rate, _)| rate.to_string())
            .collect();
        let at = format!("at 30% of its capacity ({}/s)", cap_rates.join(" / "));
        let ms = |us: u32| us as f64 / 1000.0;
        for (q, f, target) in [
            (
                "p50",
                &(|l: &Latency| ms(l.p50_us)) as &dyn Fn(&Latency) -> f64,
                None,
            ),
            ("p99", &|l: &Latency| ms(l.p99_us), None),
            ("p99.9", &|l: &Latency| ms(l.p999_us), None),
        ] {
            let target: Target = target;
            rows.push(Row {
                name: format!("latency {q} {at}"),
                unit: "ms",
                values: cap(f),
                higher_is_better: false,
                target,
            });
        }
        // The harness's own lag at that rate (not in the latencies): a pacer that did not
        // get a core in time sent late, in bursts.
        rows.push(Row {
            name: format!("harness pacer behind schedule, p99, {at}"),
            unit: "ms",
            values: cap(&|l| ms(l.pacer_late_us.0)),
            higher_is_better: false,
            target: None,
        });
        for (q, f, bound) in [
            (
                "p99",
                &(|l: &Latency| l.p99_us as f64) as &dyn Fn(&Latency) -> f64,
                3.0,
            ),
            ("p99.9", &|l: &Latency| l.p999_us as f64, 10.0),
        ] {
            rows.push(Row {
                name: format!("latency {q} / p50 {at}"),
                unit: "x",
                values: cap(&|l| f(l) / (l.p50_us as f64).max(1.0)),
                higher_is_better: false,
                target: Some((bound, "<=")),
            });
        }
        // A saturated system's tail looks flat because its median rose: the ratios above
        // mean something only where this stays near 1.
        if let Some((k, low)) = p.latency_rates.iter().enumerate().min_by_key(|(_, r)| **r) {
            rows.push(Row {
                name: format!("latency p50 {at} / p50 at {low}/s"),
                unit: "x",
                values: per(&|r| {
                    let median = |l: &Latency| (l.p50_us as f64).max(1.0);
                    Some(median(&r.latency_cap.as_ref()?.1) / median(r.latency.get(k)?))
                }),
                higher_is_better: false,
                target: None,
            });
        }
        rows.extend([
            Row {
                name: "RSS per idle TLS s2s stream, edge A (outbound)".into(),
                unit: "KiB",
                values: per(&|r| Some(r.streams.per_stream().0 / 1024.0)),
                higher_is_better: false,
                target: Some((16.0, "<=")),
            },
            Row {
                name: "RSS per idle TLS s2s stream, edge B (inbound)".into(),
                unit: "KiB",
                values: per(&|r| Some(r.streams.per_stream().1 / 1024.0)),
                higher_is_better: false,
                target: Some((16.0, "<=")),
            },
            Row {
                name: "CPU of edge A while the idle TLS s2s streams are open".into(),
                unit: "% core",
                values: per(&|r| Some(r.streams.idle_cpu.0 / 10.0)),
                higher_is_better: false,
                target: None,
            },
            Row {
                name: "CPU of edge B while the idle TLS s2s streams are open".into(),
                unit: "% core",
                values: per(&|r| Some(r.streams.idle_cpu.1 / 10.0)),
                higher_is_better: false,
                target: None,
            },
            Row {
                name: "streams measured for RSS and handshakes".into(),
                unit: "",
                values: per(&|r| Some(r.streams.streams as f64)),
                higher_is_better: true,
                target: None,
            },
            Row {
                name: "new s2s streams per second (TCP+TLS 1.3+dialback)".into(),
                unit: "/s",
                values: per(&|r| Some(r.streams.per_sec)),
                higher_is_better: true,
                target: Some((1_000.0, ">=")),
            },
            Row {
                name: format!(
                    "throughput with {} tenants / {} routes, share of 1 tenant (both on a restarted edge A)",
                    p.crowd.tenants, p.crowd.routes
                ),
                unit: "%",
                values: vec![
                    self.get(System::Xfed)
                        .and_then(|r| r.crowd.as_ref())
                        .zip(xfed_base)
                        .map(|(c, b)| 100.0 * c.per_sec / b.max(1e-9)),
                    None,
                ],
                higher_is_better: true,
                target: Some((90.0, ">=")),
            },
            Row {
                name: "throughput with stream management (XEP-0198) on, share of off (fresh edges, back to back)".into(),
                unit: "%",
                values: vec![
                    self.get(System::Xfed)
                        .and_then(|r| r.sm_paired.as_ref())
                        .map(|(on, off)| 100.0 * on.per_sec / off.per_sec.max(1e-9)),
                    None,
                ],
                higher_is_better: true,
                target: Some((95.0, ">=")),
            },
        ]);
        rows
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        // A smoke run's figures come from tiny sizes: judged against the targets they would
        // read as failures of a run that passed.
        let judged = !self.plan.smoke;
        let header = format!(
            "{:<58} {:>12} {:>12} {:>8}  {}",
            "metric",
            "xfed",
            "prosody",
            "ratio",
            if judged { "target (xfed)" } else { "" }
        );
        // A scenario run alone (`--cluster-only`, `--stuck-only`) measured no system: no rows.
        let rows = if self.systems.is_empty() {
            Vec::new()
        } else {
            let _ = writeln!(out, "\n{}", header.trim_end());
            self.rows()
        };
        for row in rows {
            let cell =
                |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} {}", row.unit));
            let ratio = match (row.values[0], row.values[1]) {
                // A ratio with a zero in it (no CPU measured at all) says nothing.
                (Some(x), Some(p)) if !row.unit.is_empty() && x > 0.0 && p > 0.0 => {
                    let r = if row.higher_is_better { x / p } else { p / x };
                    format!("{r:.1}x")
                }
                _ => "-".into(),
            };
            let target = match (row.target, row.values[0]) {
                (Some((t, op)), Some(x)) if judged => {
                    let met = if op == ">=" { x >= t } else { x <= t };
                    format!(
                        "{op} {t} {}: {}",
                        row.unit,
                        if met { "met" } else { "NOT met" }
                    )
                }
                _ => String::new(),
            };
            let line = format!(
                "{:<58} {:>12} {:>12} {:>8}  {}",
                row.name,
                cell(row.values[0]),
                cell(row.values[1]),
                ratio,
                target
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        for r in &self.systems {
            if !r.streams.secured.is_empty() {
                let _ = writeln!(
                    out,
                    "{:<8} edge A streams: {}",
                    r.system.name(),
                    r.streams.secured
                );
            }
            let d = [
                ("throughput", &r.throughput.delivery),
                ("open loop", &r.open_loop.delivery),
                ("streams", &r.streams.delivery),
            ]
            .into_iter()
            .chain(r.latency.iter().map(|l| ("latency", &l.delivery)));
            for (what, d) in d {
                let _ = writeln!(
                    out,
                    "{:<8} {:<11} sent {:>9}  delivered {:>9}  bounced {:>6}  lost {:>6}",
                    r.system.name(),
                    what,
                    d.sent,
                    d.received,
                    d.bounced,
                    d.lost
                );
            }
        }
        out.push_str(&crate::floor::table(&self.floor));
        #[cfg(feature = "cluster")]
        if let Some(c) = &self.cluster {
            out.push_str(&c.table(judged));
        }
        if let Some(s) = &self.stuck {
            out.push_str(&s.table(judged));
        }
        out
    }

    pub fn json(&self) -> String {
        let delivery = |d: &Delivery| {
            json!({"sent": d.sent, "received": d.received, "bounced": d.bounced, "lost": d.lost,
                   "first_bounce": d.first_bounce})
        };
        let systems: Vec<Value> = self
            .systems
            .iter()
            .map(|r| {
                let (a, b) = r.streams.per_stream();
                json!({
                    "system": r.system.name(),
                    "throughput": {"median_per_sec": r.throughput.per_sec,
                                   "mean_per_sec": r.throughput.mean_per_sec,
                                   "slowest_second": r.throughput.range.0,
                                   "fastest_second": r.throughput.range.1,
                                   "delivery": delivery(&r.throughput.delivery)},
                    "open_loop": {"median_per_sec": r.open_loop.per_sec,
                                  "mean_per_sec": r.open_loop.mean_per_sec,
                                  "slowest_second": r.open_loop.range.0,
                                  "fastest_second": r.open_loop.range.1,
                                  "delivery": delivery(&r.open_loop.delivery)},
                    "latency_at_30_percent": r.latency_cap.as_ref().map(|(rate, l)| json!({
                                "rate": rate, "p50_us": l.p50_us, "p99_us": l.p99_us,
                                "p999_us": l.p999_us, "samples": l.samples,
                                "pacer_late_us": [l.pacer_late_us.0, l.pacer_late_us.1],
                                "delivery": delivery(&l.delivery)})),
                    "latency": r.latency.iter().map(|l| json!({
                                "offered_per_sec": l.offered_per_sec,
                                "p50_us": l.p50_us, "p99_us": l.p99_us,
                                "p999_us": l.p999_us, "max_us": l.max_us,
                                "samples": l.samples,
                                "pacer_late_us": [l.pacer_late_us.0, l.pacer_late_us.1],
                                "delivery": delivery(&l.delivery)})).collect::<Vec<_>>(),
                    "streams": {"count": r.streams.streams, "per_sec": r.streams.per_sec,
                                "rss_a_bytes": [r.streams.rss_a.0, r.streams.rss_a.1],
                                "rss_b_bytes": [r.streams.rss_b.0, r.streams.rss_b.1],
                                "fds_a": [r.streams.fds_a.0, r.streams.fds_a.1],
                                "fds_b": [r.streams.fds_b.0, r.streams.fds_b.1],
                                "rss_per_stream_a_bytes": a, "rss_per_stream_b_bytes": b,
                                "idle_cpu_ms_per_sec": [r.streams.idle_cpu.0, r.streams.idle_cpu.1],
                                "secured": r.streams.secured,
                                "delivery": delivery(&r.streams.delivery)},
                    "crowd_throughput": r.crowd.as_ref().map(|c| json!({
                        "median_per_sec": c.per_sec, "mean_per_sec": c.mean_per_sec,
                        "delivery": delivery(&c.delivery)})),
                    "crowd_base_throughput": r.crowd_base.as_ref().map(|c| json!({
                        "median_per_sec": c.per_sec, "mean_per_sec": c.mean_per_sec,
                        "delivery": delivery(&c.delivery)})),
                    "stream_management_throughput": r.sm_paired.as_ref().map(|(on, off)| json!({
                        "on": {"median_per_sec": on.per_sec, "mean_per_sec": on.mean_per_sec,
                               "delivery": delivery(&on.delivery)},
                        "off": {"median_per_sec": off.per_sec, "mean_per_sec": off.mean_per_sec,
                                "delivery": delivery(&off.delivery)}})),
                })
            })
            .collect();
        let rows: Vec<Value> = self
            .rows()
            .iter()
            .map(|r| {
                json!({"metric": r.name, "unit": r.unit, "xfed": r.values[0],
                       "prosody": r.values[1], "target": r.target.map(|t| format!("{} {}", t.1, t.0))})
            })
            .collect();
        let p = &self.plan;
        let doc = json!({
            "date": chrono::Utc::now().to_rfc3339(),
            "machine": {"cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
                        "open_files_limit": self.open_files},
            "plan": {"pairs": p.pairs, "warm_secs": p.warm.as_secs(),
                     "measure_secs": p.measure.as_secs(), "window_per_pair": p.window,
                     "latency_rates": p.latency_rates, "latency_secs": p.latency_measure.as_secs(),
                     "streams": p.streams, "stream_concurrency": p.concurrency,
                     "tenants": p.crowd.tenants, "routes": p.crowd.routes},
            "rows": rows,
            "systems": systems,
            "failures": self.failures,
            "harness_floor": crate::floor::json(&self.floor),
            "stuck_destination": self.stuck.as_ref().map(|s| s.json()),
        });
        #[cfg(feature = "cluster")]
        let doc = {
            let mut doc = doc;
            doc["cluster"] = self.cluster.as_ref().map_or(Value::Null, |c| c.json());
            doc
        };
        serde_json::to_string_pretty(&doc).expect("JSON values serialise") + "\n"
    }

    /// What makes the run fail: a system not measured, or xfed not delivering everything.
    pub fn problems(&self) -> Vec<String> {
        let mut out = self.failures.clone();
        #[cfg(feature = "cluster")]
        if let Some(c) = &self.cluster {
            out.extend(c.problems());
        }
        if let Some(s) = &self.stuck {
            out.extend(s.problems());
        }
        if let Some(x) = self.get(System::Xfed) {
            let mut check = |what: &str, d: &Delivery| {
                if d.sent == 0 || d.received != d.sent {
                    out.push(format!(
                        "xfed {what}: sent {}, delivered {}, bounced {} (first: {}), lost {}",
                        d.sent,
                        d.received,
                        d.bounced,
                        d.first_bounce.as_deref().unwrap_or("-"),
                        d.lost
                    ));
                }
            };
            check("throughput", &x.throughput.delivery);
            check("open-loop maximum", &x.open_loop.delivery);
            for l in &x.latency {
                check("latency", &l.delivery);
            }
            if let Some((_, l)) = &x.latency_cap {
                check("latency at 30% of capacity", &l.delivery);
            }
            check("streams", &x.streams.delivery);
            if let Some(c) = &x.crowd_base {
                check("tenancy baseline throughput", &c.delivery);
            }
            if let Some(c) = &x.crowd {
                check("tenancy throughput", &c.delivery);
            }
            if let Some((on, off)) = &x.sm_paired {
                check("throughput with stream management", &on.delivery);
                check("throughput without stream management", &off.delivery);
            }
        }
        out
    }
}
