//! The cluster mode (xfed built with the `cluster` feature): edge B as three xfed nodes on
//! one etcd, all of them on the configuration pushed once.
//!
//! ```text
//! load ─► edge A ─s2s─► b1 ──inter-node link──► b2 ─► sink     (the hop)
//!                       b1 ─► sink                             (no hop)
//! ```
//!
//! Remote servers reach b1 (DNS names b1 for `b.test`); the sink's links sit on b1 (no hop)
//! or on b2 only, so that every stanza crosses an inter-node hop to leave by b2. Outbound
//! streams start from the node where a stanza entered, so the hop is measured where
//! forwarding happens: between the node that took the remote server's stream and the node
//! holding the tenant's links. Then the failover: the sink linked to b2 and b3, one sender,
//! and the node carrying it killed with `kill -9`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::link::{self, Tally};
use crate::measure::{self, Delivery, Latency, Rig, Throughput};
use crate::systems::{self, certificate, component_addr, local, remote, tenant, ADMIN_TOKEN};
use crate::world::{Proc, A_IP, B_IP, COMPONENT_PORT};
use crate::Plan;

/// The other two nodes of edge B, and etcd.
const B2_IP: &str = "127.0.0.4";
const B3_IP: &str = "127.0.0.6";
const ETCD_IP: &str = "127.0.0.5";
const PREFIX: &str = "/xfed/bench";
/// The nodes' lease: how soon a dead node leaves the others' tables at the latest.
pub const LEASE_SECS: u64 = 3;
/// The paced sender's rate in the failover measurement.
const FAILOVER_RATE: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct ClusterResult {
    pub direct: Throughput,
    pub hop: Throughput,
    pub direct_latency: Latency,
    pub hop_latency: Latency,
    pub failover: Failover,
}

#[derive(Debug, Clone)]
pub struct Failover {
    /// The node killed (the one carrying the sender).
    pub killed: String,
    /// The longest time between two deliveries to the sink after the kill, in ms: how long
    /// the sender's stanzas were not arriving.
    pub gap_ms: f64,
    /// From the kill to the delivery of the first stanza sent after it, in ms.
    pub first_after_ms: f64,
    pub delivery: Delivery,
}

/// Edge B's three nodes and their etcd, stopped when dropped (nodes first: fields drop in
/// order).
struct Cluster {
    nodes: Vec<Option<Proc>>,
    _etcd: Proc,
}

/// Every cluster measurement on fresh edges: A as usual, B as three nodes.
pub async fn run(bin: &Path, dir: &Path, plan: &Plan) -> Result<ClusterResult, String> {
    let (bin, d) = (bin.to_path_buf(), dir.to_path_buf());
    let pairs = plan.pairs;
    let (a, mut cluster) = tokio::task::spawn_blocking(move || {
        let a = systems::xfed_a(&bin, &d.join("xfed-a"), pairs);
        (a, start_b(&bin, &d, pairs))
    })
    .await
    .map_err(|e| format!("the cluster did not start: {e}"))?;
    let domains: Vec<String> = (0..pairs).map(remote).collect();
    let rate = plan.latency_rates.first().copied().unwrap_or(10_000);

    let mut measured = Vec::new();
    for (label, sinks) in [("no hop", [B_IP]), ("hop", [B2_IP])] {
        let mut rig = Rig::connect_at(A_IP, &sinks, &domains, pairs).await?;
        // The link table: published by the sinks' node (every half second), read by b1 (every
        // quarter second).
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        eprintln!("   cluster throughput, {label}");
        let t = measure::throughput(&mut rig, plan.warm, plan.measure, Some(plan.window)).await;
        eprintln!("   {t:?}");
        eprintln!("   cluster latency at {rate}/s, {label}");
        let l = measure::latency(&mut rig, rate, plan.latency_warm, plan.latency_measure).await;
        eprintln!("   {l:?}");
        measured.push((t, l));
        drop(rig);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (hop, hop_latency) = measured.pop().expect("two measured");
    let (direct, direct_latency) = measured.pop().expect("two measured");

    eprintln!("   cluster failover: kill -9 of the node carrying the sender");
    let failover = failover(&mut cluster, &domains, pairs).await?;
    eprintln!("   {failover:?}");
    let _ = tokio::task::spawn_blocking(move || {
        drop(cluster);
        drop(a);
    })
    .await;
    Ok(ClusterResult {
        direct,
        hop,
        direct_latency,
        hop_latency,
        failover,
    })
}

/// The sink linked to b2 and b3; pair 0 alone sends, paced; after a second, the node it
/// goes through is killed with `kill -9`.
async fn failover(
    cluster: &mut Cluster,
    domains: &[String],
    pairs: usize,
) -> Result<Failover, String> {
    let mut rig = Rig::connect_at(A_IP, &[B2_IP, B3_IP], domains, pairs).await?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let tally = rig.tally.clone();
    // Which node carries pair 0: b1's forwarding counters before and after a probe second.
    let before = forwarded_from_b1();
    pace(&mut rig, Duration::from_secs(1)).await;
    let after = forwarded_from_b1();
    let carrying = if after.0 - before.0 >= after.1 - before.1 {
        2
    } else {
        3
    };
    tally.drain(Duration::from_secs(10)).await;
    let counts = measure::counters(&tally);
    tally.arrivals.lock().expect("not poisoned").clear();
    tally.recording.store(true, Ordering::Release);
    let kill_at = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let killer = {
        let pid = cluster.nodes[carrying - 1]
            .as_ref()
            .map(|p| p.pid())
            .ok_or("the node to kill is gone")?;
        let (tally, kill_at) = (tally.clone(), kill_at.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            kill_at.store(tally.now_us(), Ordering::Release);
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        })
    };
    pace(&mut rig, Duration::from_secs(4)).await;
    let _ = killer.await;
    tally.drain(Duration::from_secs(30)).await;
    tally.recording.store(false, Ordering::Release);
    if let Some(p) = cluster.nodes[carrying - 1].take() {
        let _ = tokio::task::spawn_blocking(move || drop(p)).await;
    }
    let kill_at = kill_at.load(Ordering::Acquire);
    let mut arrivals = std::mem::take(&mut *tally.arrivals.lock().expect("not poisoned"));
    arrivals.sort_by_key(|a| a.1);
    let mut last = kill_at;
    let mut gap = 0u64;
    for &(_, at) in arrivals.iter().filter(|a| a.1 >= kill_at) {
        gap = gap.max(at - last);
        last = at;
    }
    let first_after = arrivals
        .iter()
        .filter(|a| a.0 >= kill_at)
        .map(|a| a.1 - kill_at)
        .min()
        .unwrap_or(u64::MAX);
    Ok(Failover {
        killed: format!("b{carrying}"),
        gap_ms: gap as f64 / 1000.0,
        first_after_ms: first_after as f64 / 1000.0,
        delivery: measure::delivery(&tally, counts),
    })
}

/// Pair 0 sends at [`FAILOVER_RATE`] for `how_long`, each message stamped.
async fn pace(rig: &mut Rig, how_long: Duration) {
    let tally: std::sync::Arc<Tally> = rig.tally.clone();
    let template = link::Template::new(&local(0), &remote(0));
    let w = rig.load_link(0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / FAILOVER_RATE as f64));
    let end = Instant::now() + how_long;
    let mut buf = Vec::with_capacity(link::MESSAGE_BYTES);
    while Instant::now() < end {
        tick.tick().await;
        buf.clear();
        template.write(&mut buf, tally.now_us());
        if !measure::write_counted(w, &tally, &buf, 1).await {
            return;
        }
    }
}

/// b1's stanzas forwarded to b2 and to b3 so far (its `/metrics`).
fn forwarded_from_b1() -> (u64, u64) {
    let text = systems::metrics_text(B_IP);
    let to = |node: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("xfed_cluster_forwarded_stanzas_total")
                    && l.contains("\"out\"")
                    && l.contains(&format!("\"{node}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    (to("bench-b2"), to("bench-b3"))
}

/// etcd, the configuration pushed once, and b1, b2, b3 started on it.
fn start_b(bin: &Path, dir: &Path, pairs: usize) -> Cluster {
    let dir = dir.join("xfed-b-cluster");
    let push = dir.join("push");
    fs::create_dir_all(push.join("config")).expect("work folder writable");
    fs::create_dir_all(push.join("tenants")).expect("work folder writable");
    let url = format!("http://{ETCD_IP}:2379");
    let peer = format!("http://{ETCD_IP}:2380");
    let argv: Vec<String> = ["etcd", "--name", "bench", "--data-dir"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            dir.join("etcd").display().to_string(),
            "--listen-client-urls".into(),
            url.clone(),
            "--advertise-client-urls".into(),
            url.clone(),
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("bench={peer}"),
        ])
        .collect();
    let mut etcd = Proc::spawn("etcd", &dir, &argv, &[]);
    etcd.wait_listening(
        format!("{ETCD_IP}:2379").parse().expect("an address"),
        Duration::from_secs(30),
    );
    let (cert, key) = certificate(&dir, "b.test");
    fs::write(push.join("config/dialback.secret"), "bench-dialback-b\n").expect("writable");
    fs::write(push.join("config/admin.token"), format!("{ADMIN_TOKEN}\n")).expect("writable");
    fs::write(
        push.join("config/router.toml"),
        "[federation]\nsecurity_mode = \"tls-required\"\nrequire_client_certs = false\n\
         sasl_external = false\ndialback_secret_file = \"dialback.secret\"\n\
         [dns]\nnameservers = [\"127.0.0.53:53\"]\n\
         [admin]\ntoken_file = \"admin.token\"\n\
         [limits]\nunauthenticated_per_address = 65536\nunauthenticated_total = 65536\n",
    )
    .expect("writable");
    fs::write(
        push.join("tenants/sink.toml"),
        tenant("sink", (0..pairs).map(remote)),
    )
    .expect("writable");
    let node_file = |n: usize, ip: &str| {
        let file = dir.join(format!("b{n}.toml"));
        fs::write(
            &file,
            format!(
                "[node]\nname = \"bench-b{n}\"\n\
                 [listen]\ns2s = \"{ip}:5269\"\ncomponent = \"{ip}:{COMPONENT_PORT}\"\nadmin = \"{ip}:7480\"\n\
                 [tls]\ncert = \"{}\"\nkey = \"{}\"\n[events]\nfile = \"\"\n\
                 [cluster]\netcd = [\"{url}\"]\nprefix = \"{PREFIX}\"\nlease_secs = {LEASE_SECS}\n\
                 listen = \"{ip}:7500\"\n",
                cert.display(),
                key.display()
            ),
        )
        .expect("writable");
        file
    };
    let ips = [B_IP, B2_IP, B3_IP];
    let files: Vec<_> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| node_file(i + 1, ip))
        .collect();
    let pushed = Command::new(bin)
        .args(["config", "push", "--dir"])
        .arg(&push)
        .arg("--config")
        .arg(&files[0])
        .output()
        .expect("xfed runs");
    assert!(
        pushed.status.success(),
        "xfed config push: {}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let nodes = files
        .iter()
        .zip(ips)
        .enumerate()
        .map(|(i, (file, ip))| {
            let argv = [
                bin.display().to_string(),
                "run".into(),
                "--config".into(),
                file.display().to_string(),
            ];
            let mut p = Proc::spawn(
                &format!("xfed-b{}", i + 1),
                &dir,
                &argv,
                &[("XFED_LOG", "warn")],
            );
            p.wait_listening(component_addr(ip), Duration::from_secs(60));
            Some(p)
        })
        .collect();
    Cluster { nodes, _etcd: etcd }
}

impl ClusterResult {
    /// The section of the run's table: each figure with the hop beside the one without it,
    /// and the issue's targets (judged on full runs only).
    pub fn table(&self, judged: bool) -> String {
        use std::fmt::Write as _;
        let ms = |us: u32| us as f64 / 1000.0;
        let tp = self.hop.per_sec / self.direct.per_sec.max(1.0);
        let p99 = ms(self.hop_latency.p99_us) / ms(self.direct_latency.p99_us).max(0.001);
        let bound = LEASE_SECS as f64 * 1000.0 + 1000.0;
        let mark = |met: bool| match (judged, met) {
            (false, _) => "",
            (true, true) => "  met",
            (true, false) => "  NOT met",
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\ncluster: edge B as three xfed nodes on etcd; remote servers reach b1"
        );
        let _ = writeln!(
            out,
            "  throughput, sink on b1 (no hop)            {:>10.0} msg/s",
            self.direct.per_sec
        );
        let _ = writeln!(
            out,
            "  throughput, sink on b2 (inter-node hop)    {:>10.0} msg/s  {:.0}% of no hop (target >= 70%){}",
            self.hop.per_sec,
            tp * 100.0,
            mark(tp >= 0.7)
        );
        for (label, l) in [("no hop", &self.direct_latency), ("hop", &self.hop_latency)] {
            let _ = writeln!(
                out,
                "  latency at {:.0}/s, {label:<7}  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
                l.offered_per_sec,
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.p999_us)
            );
        }
        let _ = writeln!(
            out,
            "  p99 with the hop / without                 {p99:>10.2}x  (target <= 1.5x){}",
            mark(p99 <= 1.5)
        );
        let f = &self.failover;
        let _ = writeln!(
            out,
            "  failover (kill -9 of {}, sink linked to b2 and b3): deliveries stopped {:.1} ms at most; first stanza sent after the kill delivered in {:.1} ms (target <= lease + 1 s = {bound:.0} ms){}",
            f.killed,
            f.gap_ms,
            f.first_after_ms,
            mark(f.gap_ms <= bound)
        );
        let d = &f.delivery;
        let _ = writeln!(
            out,
            "  failover delivery: sent {}, delivered {}, returned {}, lost {}",
            d.sent, d.received, d.bounced, d.lost
        );
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let t = |t: &Throughput| {
            serde_json::json!({"median_per_sec": t.per_sec, "mean_per_sec": t.mean_per_sec,
                               "sent": t.delivery.sent, "received": t.delivery.received,
                               "bounced": t.delivery.bounced, "lost": t.delivery.lost})
        };
        let l = |l: &Latency| {
            serde_json::json!({"offered_per_sec": l.offered_per_sec, "p50_us": l.p50_us,
                               "p99_us": l.p99_us, "p999_us": l.p999_us, "samples": l.samples})
        };
        let f = &self.failover;
        serde_json::json!({
            "throughput_no_hop": t(&self.direct),
            "throughput_hop": t(&self.hop),
            "latency_no_hop": l(&self.direct_latency),
            "latency_hop": l(&self.hop_latency),
            "failover": {"killed": f.killed, "gap_ms": f.gap_ms,
                         "first_after_ms": f.first_after_ms, "lease_secs": LEASE_SECS,
                         "sent": f.delivery.sent, "received": f.delivery.received,
                         "bounced": f.delivery.bounced, "lost": f.delivery.lost},
        })
    }

    /// A stanza lost anywhere in the cluster's measurements fails the run.
    pub fn problems(&self) -> Vec<String> {
        [
            ("throughput without the hop", &self.direct.delivery),
            ("throughput with the hop", &self.hop.delivery),
            ("latency without the hop", &self.direct_latency.delivery),
            ("latency with the hop", &self.hop_latency.delivery),
            ("failover", &self.failover.delivery),
        ]
        .into_iter()
        .enumerate()
        // Everything delivered; in the failover, returned to its sender is allowed.
        .filter(|(i, (_, d))| d.sent == 0 || d.lost > 0 || (*i < 4 && d.bounced > 0))
        .map(|(_, x)| x)
        .map(|(what, d)| {
            format!(
                "xfed cluster {what}: sent {}, delivered {}, returned {}, lost {}",
                d.sent, d.received, d.bounced, d.lost
            )
        })
        .collect()
    }
}
