//! The measurements, each run the same way against either system: the load links on edge A
//! write, the sink links on edge B count, and the counters decide what arrived.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use crate::link::{self, Role, Tally};
use crate::pacer::Pacer;
use crate::systems::{component_addr, local, remote, Edges, SECRET};
use crate::world::{A_IP, B_IP};

/// The component links of one run.
pub struct Rig {
    pub tally: Arc<Tally>,
    /// One writer per load domain l<i>, in order.
    load: Vec<OwnedWriteHalf>,
    /// Kept open so the sink links stay up; they are read by their own tasks.
    _sink: Vec<OwnedWriteHalf>,
}

impl Rig {
    /// Connects the sink links to B, then one load link per pair to A.
    pub async fn connect(edges: &Edges, pairs: usize) -> Result<Rig, String> {
        let tally = Tally::new();
        let sink = open(B_IP, &edges.sink_domains, &tally, Role::Sink).await?;
        let domains: Vec<String> = (0..pairs).map(local).collect();
        let load = open(A_IP, &domains, &tally, Role::Load).await?;
        Ok(Rig {
            tally,
            load,
            _sink: sink,
        })
    }

    /// Connects sink links for `domains` to each of `sinks` (edge B's nodes in a cluster,
    /// or the harness's floor relay), then one load link per pair to `load_ip`.
    pub async fn connect_at(
        load_ip: &str,
        sinks: &[&str],
        domains: &[String],
        pairs: usize,
    ) -> Result<Rig, String> {
        let tally = Tally::new();
        let mut sink = Vec::new();
        for ip in sinks {
            sink.extend(open(ip, domains, &tally, Role::Sink).await?);
        }
        let load_domains: Vec<String> = (0..pairs).map(local).collect();
        let load = open(load_ip, &load_domains, &tally, Role::Load).await?;
        Ok(Rig {
            tally,
            load,
            _sink: sink,
        })
    }

    #[cfg(feature = "cluster")]
    /// One load link's writer (pair `i`), for measurements of their own.
    pub fn load_link(&mut self, i: usize) -> &mut OwnedWriteHalf {
        &mut self.load[i]
    }

    /// The load links' writers, in pair order, taken out for a scenario that paces each link
    /// its own way (the stuck destination's).
    pub fn take_load(&mut self) -> Vec<OwnedWriteHalf> {
        std::mem::take(&mut self.load)
    }

    /// Connects the load links again (after edge A restarted), keeping the sink.
    pub async fn reconnect_load(&mut self, pairs: usize) -> Result<(), String> {
        let domains: Vec<String> = (0..pairs).map(local).collect();
        self.load = open(A_IP, &domains, &self.tally, Role::Load).await?;
        Ok(())
    }
}

async fn open(
    ip: &str,
    domains: &[String],
    tally: &Arc<Tally>,
    role: Role,
) -> Result<Vec<OwnedWriteHalf>, String> {
    let addr = component_addr(ip);
    let mut writers = Vec::with_capacity(domains.len());
    for batch in domains.chunks(100) {
        let links =
            futures_util::future::join_all(batch.iter().map(|d| connect_patiently(addr, d))).await;
        for l in links {
            let l = l.map_err(|e| e.to_string())?;
            tokio::spawn(link::count(l.reader, l.rest, tally.clone(), role));
            writers.push(l.writer);
        }
    }
    Ok(writers)
}

/// A component link, tried again until it is accepted or five minutes have passed: Prosody
/// takes its component hosts into service one by one after it starts listening.
async fn connect_patiently(
    addr: std::net::SocketAddr,
    domain: &str,
) -> std::io::Result<link::Link> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match link::connect(addr, domain, SECRET).await {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// What happened to the messages of one measurement.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    pub sent: u64,
    pub received: u64,
    pub bounced: u64,
    /// Neither delivered nor bounced when the drain time ran out.
    pub lost: u64,
    pub first_bounce: Option<String>,
}

pub fn delivery(tally: &Tally, before: (u64, u64, u64)) -> Delivery {
    let now = counters(tally);
    let (sent, received, bounced) = (now.0 - before.0, now.1 - before.1, now.2 - before.2);
    Delivery {
        sent,
        received,
        bounced,
        lost: sent.saturating_sub(received + bounced),
        first_bounce: tally.first_bounce.lock().expect("not poisoned").clone(),
    }
}

/// Writes `count` messages held in `buf`, counted as sent unless the write fails.
pub async fn write_counted(w: &mut OwnedWriteHalf, tally: &Tally, buf: &[u8], count: u64) -> bool {
    tally.sent.fetch_add(count, Ordering::AcqRel);
    let ok = w.write_all(buf).await.is_ok();
    if !ok {
        tally.sent.fetch_sub(count, Ordering::AcqRel);
    }
    ok
}

/// Tells the writer tasks to stop and takes their links back into the rig.
async fn rejoin(
    rig: &mut Rig,
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<OwnedWriteHalf>>,
) {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if let Ok(w) = t.await {
            rig.load.push(w);
        }
    }
}

pub fn counters(tally: &Tally) -> (u64, u64, u64) {
    (
        tally.sent.load(Ordering::Acquire),
        tally.received.load(Ordering::Acquire),
        tally.bounced.load(Ordering::Acquire),
    )
}

/// How often the throughput loop reads the delivery count.
const SAMPLE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Throughput {
    /// The median of the one-second delivery rates over the steady-state window: a passing
    /// stall of the shared machine moves it less than it moves the mean.
    pub per_sec: f64,
    /// Messages delivered over the whole window, per second.
    pub mean_per_sec: f64,
    /// The slowest and fastest one-second rates.
    pub range: (f64, f64),
    pub delivery: Delivery,
}

/// Closed loop (`Some(window)`): every pair writes as fast as the window of messages in
/// flight allows (`window` per pair), so nothing is dropped for being offered faster than it
/// can be carried. Open loop (`None`): every pair writes as fast as TCP takes it, and the
/// system either slows the writers or returns what it cannot carry. Delivered messages are
/// counted over `measure` after `warm`.
pub async fn throughput(
    rig: &mut Rig,
    warm: Duration,
    measure: Duration,
    window: Option<u64>,
) -> Throughput {
    const BATCH: usize = 16;
    let tally = rig.tally.clone();
    let before = counters(&tally);
    let stop = Arc::new(AtomicBool::new(false));
    let total_window = window.map(|w| w * rig.load.len() as u64);
    let mut tasks = Vec::new();
    for (i, mut w) in rig.load.drain(..).enumerate() {
        let (tally, stop) = (tally.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let template = link::Template::new(&local(i), &remote(i));
            let mut buf = Vec::with_capacity(BATCH * link::MESSAGE_BYTES);
            while !stop.load(Ordering::Relaxed) {
                if let Some(total) = total_window {
                    if !tally.wait_window(total, Duration::from_millis(200)).await {
                        continue;
                    }
                }
                buf.clear();
                let stamp = tally.now_us();
                for _ in 0..BATCH {
                    template.write(&mut buf, stamp);
                }
                if !write_counted(&mut w, &tally, &buf, BATCH as u64).await {
                    break;
                }
            }
            w
        }));
    }
    tokio::time::sleep(warm).await;
    let (r0, t0) = (tally.received.load(Ordering::Acquire), Instant::now());
    let mut rates = Vec::new();
    let (mut last_r, mut last_t) = (r0, t0);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE, SAMPLE);
    while last_t < t0 + measure {
        tick.tick().await;
        let (r, t) = (tally.received.load(Ordering::Acquire), Instant::now());
        rates.push((r - last_r) as f64 / (t - last_t).as_secs_f64());
        (last_r, last_t) = (r, t);
    }
    rejoin(rig, &stop, tasks).await;
    tally.drain(Duration::from_secs(60)).await;
    rates.sort_by(f64::total_cmp);
    Throughput {
        per_sec: rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        mean_per_sec: (last_r - r0) as f64 / (last_t - t0).as_secs_f64(),
        range: (
            rates.first().copied().unwrap_or(0.0),
            rates.last().copied().unwrap_or(0.0),
        ),
        delivery: delivery(&tally, before),
    }
}

#[derive(Debug, Clone)]
pub struct Latency {
    pub offered_per_sec: f64,
    pub p50_us: u32,
    pub p99_us: u32,
    pub p999_us: u32,
    pub max_us: u32,
    pub samples: usize,
    pub delivery: Delivery,
    /// How late the pacer made messages behind its schedule (p99, most), in µs: the
    /// harness's own lag, which the latencies above do not include.
    pub pacer_late_us: (u32, u32),
}

/// Open loop: `rate` messages per second spread evenly over the pairs by the [`Pacer`], each
/// stamped with its send time; the sinks record the end-to-end latency of those that arrive
/// during `measure`.
pub async fn latency(rig: &mut Rig, rate: u64, warm: Duration, measure: Duration) -> Latency {
    let tally = rig.tally.clone();
    let before = counters(&tally);
    let templates = (0..rig.load.len())
        .map(|i| link::Template::new(&local(i), &remote(i)))
        .collect();
    let pacer = Pacer::start(
        std::mem::take(&mut rig.load),
        templates,
        rate,
        tally.clone(),
    );
    tokio::time::sleep(warm).await;
    tally.latencies.lock().expect("not poisoned").clear();
    let sent0 = tally.sent.load(Ordering::Acquire);
    let t0 = Instant::now();
    tally.recording.store(true, Ordering::Release);
    tokio::time::sleep(measure).await;
    tally.recording.store(false, Ordering::Release);
    let offered = (tally.sent.load(Ordering::Acquire) - sent0) as f64 / t0.elapsed().as_secs_f64();
    let (load, mut late) = pacer.stop().await;
    rig.load = load;
    tally.drain(Duration::from_secs(60)).await;
    let mut lat = std::mem::take(&mut *tally.latencies.lock().expect("not poisoned"));
    lat.sort_unstable();
    late.sort_unstable();
    let pick = |q: f64| quantile(&lat, q);
    Latency {
        offered_per_sec: offered,
        p50_us: pick(0.50),
        p99_us: pick(0.99),
        p999_us: pick(0.999),
        max_us: lat.last().copied().unwrap_or(0),
        samples: lat.len(),
        delivery: delivery(&tally, before),
        pacer_late_us: (quantile(&late, 0.99), late.last().copied().unwrap_or(0)),
    }
}

/// The `q` quantile of `sorted` (zero when it is empty).
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct Streams {
    /// Streams asked for (one fresh remote domain each).
    pub streams: usize,
    /// New s2s streams per second: first message to a fresh domain until it arrived.
    pub per_sec: f64,
    pub rss_a: (u64, u64),
    pub rss_b: (u64, u64),
    pub fds_a: (usize, usize),
    pub fds_b: (usize, usize),
    /// Each edge's CPU while the streams sat idle, in milliseconds per second (A, B): what
    /// idle streams cost in timers and keepalives.
    pub idle_cpu: (f64, f64),
    pub delivery: Delivery,
    /// How edge A's streams were secured, where the system can tell.
    pub secured: String,
}

impl Streams {
    /// RSS growth per stream on (A, B), in bytes.
    pub fn per_stream(&self) -> (f64, f64) {
        let n = self.streams.max(1) as f64;
        (
            self.rss_a.1.saturating_sub(self.rss_a.0) as f64 / n,
            self.rss_b.1.saturating_sub(self.rss_b.0) as f64 / n,
        )
    }
}

/// How long the streams sit idle while each edge's CPU is measured.
const IDLE_WINDOW: Duration = Duration::from_secs(5);

/// One message from l0 to each of `n` fresh remote domains, at most `concurrency` of them
/// waiting for their stream at a time: every message needs a new s2s stream (TCP, TLS 1.3,
/// dialback). Then the streams sit idle: each edge's resident memory is read again, and its
/// CPU measured over [`IDLE_WINDOW`].
pub async fn streams(
    rig: &mut Rig,
    edges: &Edges,
    first: usize,
    n: usize,
    concurrency: u64,
) -> Streams {
    let tally = rig.tally.clone();
    let before = counters(&tally);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_a0, rss_b0) = (edges.a.rss(), edges.b.rss());
    let (fds_a0, fds_b0) = (edges.a.open_files(), edges.b.open_files());
    let from = local(0);
    let w = &mut rig.load[0];
    let t0 = Instant::now();
    let mut buf = Vec::with_capacity(link::MESSAGE_BYTES);
    for j in 0..n {
        if !tally
            .wait_window(concurrency, Duration::from_secs(60))
            .await
        {
            break;
        }
        buf.clear();
        link::message(&mut buf, &from, &remote(first + j), tally.now_us());
        if !write_counted(w, &tally, &buf, 1).await {
            break;
        }
    }
    tally.drain(Duration::from_secs(120)).await;
    let elapsed = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let d = delivery(&tally, before);
    let (rss_a, rss_b) = (edges.a.rss(), edges.b.rss());
    let (fds_a, fds_b) = (edges.a.open_files(), edges.b.open_files());
    let (cpu_a, cpu_b, idle) = (edges.a.cpu_ms(), edges.b.cpu_ms(), Instant::now());
    tokio::time::sleep(IDLE_WINDOW).await;
    let secs = idle.elapsed().as_secs_f64();
    Streams {
        streams: n,
        per_sec: d.received as f64 / elapsed.as_secs_f64(),
        rss_a: (rss_a0, rss_a),
        rss_b: (rss_b0, rss_b),
        fds_a: (fds_a0, fds_a),
        fds_b: (fds_b0, fds_b),
        idle_cpu: (
            (edges.a.cpu_ms() - cpu_a) as f64 / secs,
            (edges.b.cpu_ms() - cpu_b) as f64 / secs,
        ),
        delivery: d,
        secured: String::new(),
    }
}
