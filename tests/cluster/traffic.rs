//! Traffic through a cluster as its tenants' components make it: a component that keeps
//! what it receives (and can stop reading), one that sends at a steady pace, the ids in
//! what they saw, and a node's counters.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common;
use crate::harness::*;

/// Everything one component received, and when each message with a `k…` id first came.
#[derive(Default)]
pub struct Seen {
    pub text: Mutex<String>,
    pub up: AtomicBool,
    /// While set, the component reads nothing (a slow internal server).
    pub paused: AtomicBool,
}

impl Seen {
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

/// The ids of the messages in `text` that are error replies (`errors`) or not, in the order
/// they came.
pub fn ids(text: &str, errors: bool) -> Vec<String> {
    text.split("<message")
        .skip(1)
        .filter(|m| m[..m.find('>').unwrap_or(m.len())].contains("type='error'") == errors)
        .filter_map(|m| {
            m.split("id='")
                .nth(1)?
                .split('\'')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

/// The ids of the messages (not errors) in `text`, in the order they came.
pub fn delivered_ids(text: &str) -> Vec<String> {
    ids(text, false)
}

/// The ids of the error replies in `text`.
pub fn returned_ids(text: &str) -> Vec<String> {
    ids(text, true)
}

/// Links a component of `domain` to `addr` and keeps what it receives until the node
/// closes it or `run` ends.
pub async fn receiver(addr: SocketAddr, domain: &'static str, run: Arc<AtomicBool>) -> Arc<Seen> {
    let seen = Arc::new(Seen::default());
    let mut c = common::component(addr, domain, &secret(domain.split('.').next().unwrap())).await;
    seen.up.store(true, Ordering::Relaxed);
    let s = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while run.load(Ordering::Relaxed) {
            if s.paused.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            match tokio::time::timeout(Duration::from_millis(200), c.stream.read(&mut buf)).await {
                Err(_) => continue,
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => s
                    .text
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        s.up.store(false, Ordering::Relaxed);
    });
    seen
}

/// A globex component on `addr` sending, from `senders` addresses in turn, one message to
/// acme every `every` until `go` ends; answers what it sent and what came back.
pub struct Sender {
    pub sent: AtomicUsize,
    pub back: Mutex<String>,
}

pub fn sender(
    addr: SocketAddr,
    tag: &'static str,
    body: usize,
    senders: usize,
    every: Duration,
    go: Arc<AtomicBool>,
) -> Arc<Sender> {
    let s = Arc::new(Sender {
        sent: AtomicUsize::new(0),
        back: Mutex::new(String::new()),
    });
    let me = s.clone();
    let pad = "x".repeat(body);
    tokio::spawn(async move {
        let mut c = common::component(addr, "globex.example", &secret("globex")).await;
        let mut tick = tokio::time::interval(every);
        let mut buf = vec![0u8; 64 * 1024];
        let mut stopped_at: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if !go.load(Ordering::Relaxed) {
                        // Keep reading what comes back for a while after the last send.
                        let since = *stopped_at.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_secs(15) {
                            break;
                        }
                        continue;
                    }
                    let n = me.sent.fetch_add(1, Ordering::Relaxed);
                    let m = format!(
                        "<message from='u{}@globex.example' to='someone@acme.example' id='{tag}-{n}'><body>{n} {pad}</body></message>",
                        n % senders
                    );
                    if c.stream.write_all(m.as_bytes()).await.is_err() {
                        break;
                    }
                }
                read = c.stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => me.back.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        }
    });
    s
}

/// A counter of node `n`'s `/metrics`, summed over the series that contain every one of
/// `needles`.
pub fn metric(c: &Cluster, n: usize, needles: &[&str]) -> u64 {
    let token = std::fs::read_to_string(repo().join("config/admin.token")).unwrap();
    let url = format!("http://{}.{n}:7480/metrics", c.etcd.net);
    let text = ureq::get(&url)
        .header("Authorization", &format!("Bearer {}", token.trim()))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && needles.iter().all(|n| l.contains(n)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub const FORWARDED: &str = "xfed_cluster_forwarded_stanzas_total";

/// Three nodes taking inter-node links on `<net>.n:7500`.
pub fn three_relaying() -> (Cluster, tempfile::TempDir, u64) {
    start_three_with_nodes(|c| {
        for n in 1..=3 {
            let file = c.node_file(n);
            let mut text = std::fs::read_to_string(&file).unwrap();
            text.push_str(&format!("listen = \"{}.{n}:7500\"\n", c.etcd.net));
            std::fs::write(file, text).unwrap();
        }
    })
}

/// Waits until node `from` can reach acme through another node (a probe message from a
/// globex component there comes back delivered to `seen`).
pub fn until_forwarding(rt: &tokio::runtime::Runtime, c: &Cluster, from: usize, seen: &Seen) {
    let addr = c.component_addr(from);
    rt.block_on(async {
        let mut g = common::component(addr, "globex.example", &secret("globex")).await;
        for i in 0..100 {
            let probe = format!("probe{from}-{i}");
            g.send(format!(
                "<message from='p{i}@globex.example' to='someone@acme.example' id='{probe}'/>"
            ))
            .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if seen.text().contains(&probe) {
                return;
            }
        }
        panic!("node {from} never forwarded to acme: {}", seen.text());
    });
}

/// The senders of the messages delivered in `text`.
pub fn from_of_delivered(text: &str) -> BTreeSet<String> {
    text.split("<message")
        .skip(1)
        .filter_map(|m| {
            m.split("from='")
                .nth(1)?
                .split('\'')
                .next()
                .map(str::to_owned)
        })
        .collect()
}
