//! A rolling restart of a node-level change drains each node before it restarts: the other
//! nodes stop handing it stanzas, its links close gracefully and its tenants' traffic moves
//! to the other nodes, so nothing comes back to a sender while the nodes restart one by one.
//! Real etcd, three `xfed run` processes taking inter-node links; every wait is bounded.
#![cfg(feature = "cluster")]

mod common;

#[path = "cluster/harness.rs"]
mod harness;
#[path = "cluster/traffic.rs"]
mod traffic;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use harness::*;

/// A component that keeps its link up: what it received over all its connections, what
/// it sent, and how often the node closed it.
#[derive(Default)]
struct Kept {
    text: Mutex<String>,
    sent: AtomicUsize,
    drops: AtomicUsize,
}

/// Links `domain` to `addr`; sends a message to `to` every `every` while `go` holds (when
/// `to` is given); on the node's `</stream:stream>` stops sending, closes its side and
/// connects again (retrying while the node restarts), until `run` ends.
fn keep(
    addr: SocketAddr,
    domain: &'static str,
    to: Option<&'static str>,
    every: Duration,
    go: Arc<AtomicBool>,
    run: Arc<AtomicBool>,
) -> Arc<Kept> {
    let kept = Arc::new(Kept::default());
    let k = kept.clone();
    tokio::spawn(async move {
        let secret = secret(domain.split('.').next().unwrap());
        for _ in 0..30 {
            if !run.load(Ordering::Relaxed) {
                return;
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut c = loop {
                let attempt = tokio::time::timeout(
                    Duration::from_secs(5),
                    try_component(addr, domain, &secret),
                )
                .await;
                match attempt {
                    Ok(Some(c)) => break c,
                    _ if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                    _ => return,
                }
            };
            let mut buf = vec![0u8; 64 * 1024];
            let mut tick = tokio::time::interval(every);
            let mut this = String::new();
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let Some(to) = to else { continue };
                        if !go.load(Ordering::Relaxed) || !run.load(Ordering::Relaxed) {
                            continue;
                        }
                        let n = k.sent.load(Ordering::Relaxed);
                        let m = format!("<message from='u{}@{domain}' to='{to}' id='m-{n}'/>", n % 8);
                        if c.write_all(m.as_bytes()).await.is_err() {
                            break;
                        }
                        k.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    read = c.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let text = String::from_utf8_lossy(&buf[..n]);
                            k.text.lock().unwrap().push_str(&text);
                            this.push_str(&text);
                            if this.contains("</stream:stream>") {
                                let _ = c.write_all(b"</stream:stream>").await;
                                let _ = c.shutdown().await;
                                // Read what is still coming until the node closes.
                                while let Ok(Ok(n)) = tokio::time::timeout(
                                    Duration::from_secs(6),
                                    c.read(&mut buf),
                                )
                                .await
                                {
                                    if n == 0 {
                                        break;
                                    }
                                    k.text
                                        .lock()
                                        .unwrap()
                                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                                }
                                break;
                            }
                        }
                    }
                }
            }
            k.drops.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    kept
}

/// A component link of `domain` to `addr`, handshake done; `None` if refused.
async fn try_component(
    addr: SocketAddr,
    domain: &str,
    secret: &str,
) -> Option<tokio::net::TcpStream> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(common::component_header(domain).as_bytes())
        .await
        .ok()?;
    let mut got = String::new();
    let mut buf = vec![0u8; 4096];
    while !(got.contains(" id='") && got.contains('>')) {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let id = common::stream_id(&got);
    let digest = xfed::component::digest(&id, secret);
    s.write_all(format!("<handshake>{digest}</handshake>").as_bytes())
        .await
        .ok()?;
    got.clear();
    while !got.contains("<handshake/>") {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 || got.contains("stream:error") {
            return None;
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Some(s)
}

/// This test's message ids (`m-…`) in `text`: error replies (`errors`) or deliveries.
fn ids(text: &str, errors: bool) -> Vec<String> {
    let mut ids = traffic::ids(text, errors);
    ids.retain(|i| i.starts_with("m-"));
    ids
}

/// `xfed status --json` of node `n`, with the admin token in `token`.
fn status(c: &Cluster, n: usize, token: &std::path::Path) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["status", "--json", "--admin"])
        .arg(format!("http://{}.{n}:7480", c.etcd.net))
        .arg("--token-file")
        .arg(token)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// acme linked to edge-2 and edge-3, globex to edge-1 sending to acme every 5 ms from 8
/// addresses. A new admin token (a change that restarts the whole node) is staged, then
/// rolled out node by node: each node drains first (its log says so), and every message globex sent
/// is delivered — none returned, none lost — while every node restarts in turn.
#[test]
fn a_node_level_rolling_restart_drains_each_node_first_and_returns_nothing() {
    let (c, _cfg, _v) = start_three_custom(
        |dir| {
            let router = dir.join("config/router.toml");
            let text = std::fs::read_to_string(&router).unwrap();
            std::fs::write(router, text.replace("delayed = false", "delayed = true")).unwrap();
        },
        |c| {
            for n in 1..=3 {
                let file = c.node_file(n);
                let mut text = std::fs::read_to_string(&file).unwrap();
                text.push_str(&format!("listen = \"{}.{n}:7500\"\n", c.etcd.net));
                std::fs::write(file, text).unwrap();
            }
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (go, run) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(true)),
    );
    let every = Duration::from_millis(5);
    let (on2, on3) = rt.block_on(async {
        (
            keep(
                c.component_addr(2),
                "acme.example",
                None,
                every,
                go.clone(),
                run.clone(),
            ),
            keep(
                c.component_addr(3),
                "acme.example",
                None,
                every,
                go.clone(),
                run.clone(),
            ),
        )
    });
    // The link table: published by edge-2 and edge-3, read by edge-1.
    std::thread::sleep(Duration::from_millis(1_500));
    let globex = rt.block_on(async {
        keep(
            c.component_addr(1),
            "globex.example",
            Some("someone@acme.example"),
            every,
            go.clone(),
            run.clone(),
        )
    });
    std::thread::sleep(Duration::from_secs(1));

    let edit = tempfile::tempdir().unwrap();
    c.pull(edit.path());
    let token = edit.path().join("config/admin.token");
    std::fs::write(&token, "a-new-admin-token-for-every-node\n").unwrap();
    let (code, out, err) = c.push(edit.path());
    assert_eq!(code, 0, "{err}");
    let v2 = version_of(&out);
    wait(
        "the change staged on every node",
        Duration::from_secs(10),
        || {
            (1..=3).all(|n| {
                c.row(n, n).is_some_and(|r| {
                    r["status"]["seen"] == v2
                        && r["status"]["instances"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|i| i["instance"] == "node" && i["applied"] != i["latest"])
                })
            })
        },
    );
    let old = repo().join("config/admin.token");
    let asked = std::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["restart", "--json", "--admin"])
        .arg(format!("http://{}.2:7480", c.etcd.net))
        .arg("--token-file")
        .arg(&old)
        .output()
        .unwrap();
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    // Once edge-2 restarted it takes the new token only; the rollout ends with edge-3.
    wait("the rollout finished", Duration::from_secs(90), || {
        let v = status(&c, 2, &token);
        v["cluster"]["rollout"].is_null() && !v["cluster"]["last_rollout"].is_null()
    });
    let last = status(&c, 2, &token)["cluster"]["last_rollout"].clone();
    let steps = last["steps"].as_array().unwrap();
    assert!(
        steps.iter().all(|s| s["outcome"] == "restarted") && steps.len() == 3,
        "{last:#}"
    );
    std::thread::sleep(Duration::from_secs(1));
    go.store(false, Ordering::Relaxed);
    let sent = globex.sent.load(Ordering::Relaxed);
    let settled = || {
        let mut all: BTreeSet<String> = ids(&on2.text.lock().unwrap(), false).into_iter().collect();
        all.extend(ids(&on3.text.lock().unwrap(), false));
        all.extend(ids(&globex.text.lock().unwrap(), true));
        all
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while settled().len() < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let returned = ids(&globex.text.lock().unwrap(), true);
    let all = settled();
    let missing: Vec<usize> = (0..sent)
        .filter(|n| !all.contains(&format!("m-{n}")))
        .collect();
    assert_eq!(missing, Vec::<usize>::new(), "vanished of {sent}");
    assert_eq!(
        returned,
        Vec::<String>::new(),
        "returned while the nodes restarted"
    );
    for n in 1..=3 {
        let log = std::fs::read_to_string(c.dir.path().join(format!("node{n}.log"))).unwrap();
        assert!(
            log.contains("drained before the restart"),
            "edge-{n} did not drain:\n{log}"
        );
    }
    println!(
        "node-level rolling restart: {sent} sent, all delivered, none returned; globex's link dropped {} time(s), acme's on edge-2 {} and edge-3 {}",
        globex.drops.load(Ordering::Relaxed),
        on2.drops.load(Ordering::Relaxed),
        on3.drops.load(Ordering::Relaxed)
    );
    run.store(false, Ordering::Relaxed);
}
