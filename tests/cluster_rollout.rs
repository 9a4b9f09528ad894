//! Rolling restarts across three nodes on one etcd, as an operator sees them: a tenant whose
//! component is linked to every node keeps a link up through the whole rollout, a second
//! tenant's links never drop, the leader runs the schedule, and a leader killed in the
//! middle of a rollout leaves it to the next. Also the cluster-wide `connections` and
//! `events`. Every wait is bounded.
#![cfg(feature = "cluster")]

mod common;

#[path = "cluster/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use harness::*;

/// The shipped configuration with delayed restarts on, and `schedule`.
fn delayed(schedule: &'static str) -> impl FnOnce(&Path) {
    move |dir: &Path| {
        let router = dir.join("config/router.toml");
        let text = std::fs::read_to_string(&router).unwrap();
        let text = text.replace("delayed = false", "delayed = true").replace(
            "schedule = \"0 0 2 * * *\"",
            &format!("schedule = \"{schedule}\""),
        );
        assert!(text.contains("delayed = true") && text.contains(schedule));
        std::fs::write(router, text).unwrap();
    }
}

/// What a component of one tenant on one node went through.
#[derive(Default)]
struct Link {
    up: AtomicBool,
    /// Times the node closed it.
    drops: AtomicUsize,
    /// Stanzas it sent.
    sent: AtomicUsize,
    /// Everything it received, over all its connections.
    text: std::sync::Mutex<String>,
}

impl Link {
    /// Error stanzas that came back to it.
    fn returned(&self) -> usize {
        self.text.lock().unwrap().matches("type='error'").count()
    }

    /// Messages it received that are not errors.
    fn delivered(&self) -> usize {
        let all = self.text.lock().unwrap().matches("<message").count();
        all - self.returned()
    }
}

/// Keeps a link of `domain` to `addr` up while `run` holds: connects, sends a message to
/// `to` every 50 ms while up and `go` holds, keeps what comes back, and reconnects after
/// `pause` when the node closes it (at most 20 times).
fn keep(
    addr: SocketAddr,
    domain: &'static str,
    to: &'static str,
    pause: Duration,
    (go, run): (Arc<AtomicBool>, Arc<AtomicBool>),
) -> Arc<Link> {
    let link = Arc::new(Link::default());
    let l = link.clone();
    tokio::spawn(async move {
        let secret = secret(domain.split('.').next().unwrap());
        for _ in 0..20 {
            if !run.load(Ordering::Relaxed) {
                return;
            }
            let mut c = common::component(addr, domain, &secret).await;
            l.up.store(true, Ordering::Relaxed);
            let mut buf = vec![0u8; 64 * 1024];
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            // The node closed the stream: as a component does, send nothing more, close ours.
            let mut closing = false;
            // Counted from the first byte after the handshake.
            let mut this = std::mem::take(&mut c.received);
            l.text.lock().unwrap().push_str(&this);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if closing || !go.load(Ordering::Relaxed) || !run.load(Ordering::Relaxed) {
                            continue;
                        }
                        let n = l.sent.fetch_add(1, Ordering::Relaxed);
                        let m = format!("<message from='k@{domain}' to='{to}' id='k{n}'><body>{n}</body></message>");
                        if c.stream.write_all(m.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    read = c.stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let text = String::from_utf8_lossy(&buf[..n]);
                            l.text.lock().unwrap().push_str(&text);
                            this.push_str(&text);
                            if !closing && this.contains("</stream:stream>") {
                                closing = true;
                                l.up.store(false, Ordering::Relaxed);
                                let _ = c.stream.write_all(b"</stream:stream>").await;
                                let _ = c.stream.shutdown().await;
                            }
                        }
                    }
                }
            }
            l.up.store(false, Ordering::Relaxed);
            l.drops.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
        }
    });
    link
}

/// Node `n`'s count of `tenant`'s links, as its own status says.
fn links(c: &Cluster, n: usize, tenant: &str) -> Option<u64> {
    let row = c.row(n, n)?;
    row["status"]["tenants"]
        .as_array()?
        .iter()
        .find(|t| t["tenant"] == tenant)?["links"]
        .as_u64()
}

/// Node `n` has acme linked once and runs every instance on its latest version.
fn linked_and_current(c: &Cluster, n: usize) -> bool {
    links(c, n, "acme") == Some(1)
        && c.row(n, n).is_some_and(|r| {
            r["status"]["instances"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["applied"] == i["latest"])
        })
}

/// `xfed ARGS --json` on node `n`, read as JSON.
fn json(c: &Cluster, n: usize, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = c.xfed(n, &all);
    assert!(
        out.status.success(),
        "xfed {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Pushes a change to acme's tenant file: its next version, staged on every node.
fn change_acme(c: &Cluster) -> u64 {
    let edit = tempfile::tempdir().unwrap();
    c.pull(edit.path());
    let f = edit.path().join("tenants/acme.toml");
    let t = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        t.replace("[\"acme.example\"]", "[\"acme.example\", \"acme.net\"]"),
    )
    .unwrap();
    let (code, out, err) = c.push(edit.path());
    assert_eq!(code, 0, "{err}");
    let v = version_of(&out);
    wait("acme staged on every node", Duration::from_secs(5), || {
        (1..=3).all(|n| {
            c.row(n, n).is_some_and(|r| {
                let stale: Vec<String> = r["status"]["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|i| i["applied"] != i["latest"])
                    .map(|i| i["instance"].as_str().unwrap().to_owned())
                    .collect();
                r["status"]["seen"] == v && stale == ["tenant acme"]
            })
        })
    });
    v
}

/// Links of acme and globex to every node; waits until each node counts them, then lets
/// them send: acme to globex, globex to acme.
fn link_everywhere(
    c: &Cluster,
    pause: Duration,
    run: &Arc<AtomicBool>,
) -> (Vec<Arc<Link>>, Vec<Arc<Link>>) {
    let go = Arc::new(AtomicBool::new(false));
    let flags = || (go.clone(), run.clone());
    let acme: Vec<_> = (1..=3)
        .map(|n| {
            keep(
                c.component_addr(n),
                "acme.example",
                "g@globex.example",
                pause,
                flags(),
            )
        })
        .collect();
    let globex: Vec<_> = (1..=3)
        .map(|n| {
            keep(
                c.component_addr(n),
                "globex.example",
                "a@acme.example",
                pause,
                flags(),
            )
        })
        .collect();
    tokio::task::block_in_place(|| {
        wait(
            "both tenants linked to every node",
            Duration::from_secs(10),
            || (1..=3).all(|n| links(c, n, "acme") == Some(1) && links(c, n, "globex") == Some(1)),
        )
    });
    go.store(true, Ordering::Relaxed);
    (acme, globex)
}

/// Stops the senders and, once what they sent has landed, checks that every stanza either
/// way was delivered or returned with an error: none vanished. Acme's own stanzas, sent
/// over whichever of its links was up, were never refused.
async fn count(run: &AtomicBool, acme: &[Arc<Link>], globex: &[Arc<Link>]) {
    run.store(false, Ordering::Relaxed);
    let sum =
        |links: &[Arc<Link>], f: &dyn Fn(&Link) -> usize| links.iter().map(|l| f(l)).sum::<usize>();
    // Until everything sent has arrived or come back, at most 10 s (a busy machine).
    for _ in 0..200 {
        let settled = sum(acme, &|l| l.sent.load(Ordering::Relaxed))
            <= sum(globex, &|l| l.delivered()) + sum(acme, &|l| l.returned())
            && sum(globex, &|l| l.sent.load(Ordering::Relaxed))
                <= sum(acme, &|l| l.delivered()) + sum(globex, &|l| l.returned());
        if settled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (acme_sent, globex_sent) = (
        sum(acme, &|l| l.sent.load(Ordering::Relaxed)),
        sum(globex, &|l| l.sent.load(Ordering::Relaxed)),
    );
    let (to_acme, to_globex) = (
        sum(acme, &|l| l.delivered()),
        sum(globex, &|l| l.delivered()),
    );
    let (acme_back, globex_back) = (sum(acme, &|l| l.returned()), sum(globex, &|l| l.returned()));
    println!(
        "acme -> globex: sent {acme_sent}, delivered {to_globex}, returned {acme_back}; \
         globex -> acme: sent {globex_sent}, delivered {to_acme}, returned {globex_back}"
    );
    assert!(acme_sent > 0 && globex_sent > 0);
    assert_eq!(acme_back, 0, "a stanza of acme's was refused");
    assert_eq!(acme_sent, to_globex, "acme's stanzas all delivered");
    assert_eq!(
        globex_sent,
        to_acme + globex_back,
        "stanzas for acme delivered or returned"
    );
}

/// Samples acme's links every 10 ms until `done`: the fewest up at once.
async fn fewest_up(
    acme: &[Arc<Link>],
    within: Duration,
    done: impl Fn() -> bool + Send + Sync + 'static,
) -> usize {
    let done = Arc::new(done);
    let mut fewest = usize::MAX;
    let deadline = tokio::time::Instant::now() + within;
    let mut checked = tokio::time::Instant::now();
    loop {
        let up = acme.iter().filter(|l| l.up.load(Ordering::Relaxed)).count();
        fewest = fewest.min(up);
        if checked.elapsed() > Duration::from_millis(300) {
            let d = done.clone();
            if tokio::task::spawn_blocking(move || d()).await.unwrap() {
                return fewest;
            }
            checked = tokio::time::Instant::now();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rollout did not finish within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The last finished rollout as node `n` shows it.
fn last_rollout(c: &Cluster, n: usize) -> Option<Value> {
    let v = c.status(n)?;
    let last = &v["cluster"]["last_rollout"];
    (!last.is_null() && v["cluster"]["rollout"].is_null()).then(|| last.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_restart_rolls_node_by_node_and_its_links_never_all_drop() {
    let (c, _cfg, _) =
        tokio::task::block_in_place(|| start_three_with(delayed("0 0 0 1 1 * 2099")));
    let run = Arc::new(AtomicBool::new(true));
    let (acme, globex) = link_everywhere(&c, Duration::from_millis(500), &run);
    tokio::task::block_in_place(|| change_acme(&c));

    // The dry run, asked on edge-2, names acme on every node and nothing else.
    let dry =
        tokio::task::block_in_place(|| json(&c, 2, &["restart", "--tenant", "acme", "--dry-run"]));
    let nodes = dry["nodes"]
        .as_array()
        .expect("a cluster's dry run lists nodes");
    assert_eq!(nodes.len(), 3, "{dry}");
    for n in nodes {
        let restarted = n["restarted"].as_array().unwrap();
        assert_eq!(restarted.len(), 1, "{n}");
        assert_eq!(restarted[0]["instance"], "tenant acme", "{n}");
        assert_eq!(restarted[0]["links"], 1, "{n}");
    }
    // Nothing restarted by the dry run.
    assert!(acme.iter().all(|l| l.drops.load(Ordering::Relaxed) == 0));

    // Asked on edge-3; carried out by whichever node leads.
    let asked = tokio::task::block_in_place(|| json(&c, 3, &["restart", "--tenant", "acme"]));
    assert_eq!(
        asked["rollout"]["order"],
        serde_json::json!(["edge-1", "edge-2", "edge-3"]),
        "{asked}"
    );
    let admin = format!("http://{}.1:7480", c.etcd.net);
    let finished = move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
            .args(["status", "--json", "--admin", &admin, "--token-file"])
            .arg(repo().join("config/admin.token"))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| {
            v["cluster"]["rollout"].is_null() && !v["cluster"]["last_rollout"].is_null()
        })
    };
    let fewest = fewest_up(&acme, Duration::from_secs(60), finished).await;
    assert!(
        fewest >= 1,
        "acme had no link up at some moment of the rollout"
    );

    let last = tokio::task::block_in_place(|| last_rollout(&c, 1)).unwrap();
    println!("{last:#}");
    let steps = last["steps"].as_array().unwrap();
    let visited: Vec<&str> = steps.iter().map(|s| s["node"].as_str().unwrap()).collect();
    assert_eq!(visited, ["edge-1", "edge-2", "edge-3"], "{last}");
    assert!(steps.iter().all(|s| s["outcome"] == "restarted"), "{last}");
    tokio::task::block_in_place(|| {
        wait(
            "acme relinked and current on every node",
            Duration::from_secs(10),
            || (1..=3).all(|n| linked_and_current(&c, n)),
        )
    });
    for (n, l) in acme.iter().enumerate() {
        assert_eq!(
            l.drops.load(Ordering::Relaxed),
            1,
            "acme's link to edge-{} dropped once",
            n + 1
        );
    }
    for (n, l) in globex.iter().enumerate() {
        assert_eq!(
            l.drops.load(Ordering::Relaxed),
            0,
            "globex's link to edge-{} never dropped",
            n + 1
        );
    }
    count(&run, &acme, &globex).await;

    // The whole cluster from one node: each node's restart event, and each node's streams.
    let events =
        tokio::task::block_in_place(|| json(&c, 2, &["events", "--cluster", "--tenant", "acme"]));
    let nodes = events["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{events}");
    for n in nodes {
        assert!(
            n["answer"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event"] == "restart"),
            "{}: no restart event",
            n["node"]
        );
    }
    let table =
        tokio::task::block_in_place(|| c.xfed(1, &["events", "--cluster", "--tenant", "acme"]));
    let table = String::from_utf8_lossy(&table.stdout);
    for n in 1..=3 {
        assert!(table.contains(&format!("edge-{n} ")), "{table}");
    }
    let conns = tokio::task::block_in_place(|| json(&c, 3, &["connections", "--cluster"]));
    let answered: Vec<&str> = conns["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["answer"].is_object())
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(answered, ["edge-1", "edge-2", "edge-3"], "{conns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_runs_the_schedule_and_a_new_leader_finishes_a_rollout_whose_leader_died() {
    // Every 5 s: the leader finds nothing stale until the change is pushed.
    let (mut c, _cfg, _) =
        tokio::task::block_in_place(|| start_three_with(delayed("*/5 * * * * *")));
    let run = Arc::new(AtomicBool::new(true));
    // Links come back 2 s after a drop: each node's turn takes that long.
    let (acme, _globex) = link_everywhere(&c, Duration::from_secs(2), &run);
    let leader = tokio::task::block_in_place(|| {
        let mut leader = None;
        wait("a leader elected", Duration::from_secs(10), || {
            leader = c
                .status(1)
                .and_then(|v| v["cluster"]["leader"].as_str().map(str::to_owned));
            leader.is_some()
        });
        leader.unwrap()
    });
    let leader_n: usize = leader.strip_prefix("edge-").unwrap().parse().unwrap();
    tokio::task::block_in_place(|| change_acme(&c));

    // The schedule starts a rollout; once one node's turn is over, the leader dies.
    let other = if leader_n == 1 { 2 } else { 1 };
    tokio::task::block_in_place(|| {
        wait(
            "a scheduled rollout past its first node",
            Duration::from_secs(30),
            || {
                c.status(other).is_some_and(|v| {
                    let r = &v["cluster"]["rollout"];
                    r["why"].as_str().is_some_and(|w| w.starts_with("schedule"))
                        && r["steps"].as_array().is_some_and(|s| !s.is_empty())
                })
            },
        )
    });
    tokio::task::block_in_place(|| c.kill_9(leader_n));

    let survivors: Vec<usize> = (1..=3).filter(|&n| n != leader_n).collect();
    let last = tokio::task::block_in_place(|| {
        let mut last = None;
        wait(
            "another leader finishes the rollout",
            Duration::from_secs(60),
            || {
                last = last_rollout(&c, other);
                last.is_some()
            },
        );
        last.unwrap()
    });
    println!("killed leader {leader}; {last:#}");
    assert_ne!(last["leader"], leader.as_str(), "{last}");
    let steps = last["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "every node had its turn: {last}");
    for s in steps {
        let node: usize = s["node"]
            .as_str()
            .unwrap()
            .strip_prefix("edge-")
            .unwrap()
            .parse()
            .unwrap();
        if node == leader_n {
            assert!(s["outcome"] == "restarted" || s["outcome"] == "gone", "{s}");
        } else {
            assert_eq!(s["outcome"], "restarted", "{s}");
        }
    }
    // The survivors run the new version, with acme linked; acme kept a link up throughout
    // on the nodes that live.
    tokio::task::block_in_place(|| {
        wait("survivors current", Duration::from_secs(10), || {
            survivors.iter().all(|&n| linked_and_current(&c, n))
        })
    });
    for &n in &survivors {
        assert_eq!(
            acme[n - 1].drops.load(Ordering::Relaxed),
            1,
            "edge-{n} restarted acme once"
        );
    }
    run.store(false, Ordering::Relaxed);
}
