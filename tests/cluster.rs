//! Several nodes on one etcd, as an operator runs them: each test starts its own etcd on
//! a loopback address of its own (temporary data directory, stopped by PID) and `xfed`
//! processes on 127.a.b.1/2/3, pushes with `xfed config push` and asserts what
//! `xfed status --json` on each node shows. Every wait is bounded.
#![cfg(feature = "cluster")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "/xfed/test";
/// The nodes' lease in these tests (the default is 5 s).
const LEASE_SECS: u64 = 3;

/// A loopback network of its own for one test: 127.a.b.x.
fn net() -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ (std::process::id() << 8);
    format!("127.{}.{}", 100 + seed % 100, (seed >> 7) % 250 + 1)
}

/// A single-member etcd on `net`.100, killed by PID when dropped.
struct Etcd {
    child: Option<Child>,
    url: String,
    net: String,
    data: tempfile::TempDir,
}

impl Etcd {
    fn start(net: &str) -> Etcd {
        let data = tempfile::tempdir().unwrap();
        let mut etcd = Etcd {
            child: None,
            url: format!("http://{net}.100:2379"),
            net: net.to_owned(),
            data,
        };
        etcd.run();
        etcd
    }

    /// Starts (again) on the same data directory.
    fn run(&mut self) {
        let net = &self.net;
        let peer = format!("http://{net}.100:2380");
        let log = std::fs::File::create(self.data.path().join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(self.data.path().join("data"))
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd runs (Debian: etcd-server)");
        self.child = Some(child);
        let addr: std::net::SocketAddr = format!("{net}.100:2379").parse().unwrap();
        wait("etcd answers", Duration::from_secs(10), || {
            std::net::TcpStream::connect(addr).is_ok()
        });
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three node files and the nodes that run on them, killed by PID when dropped.
struct Cluster {
    etcd: Etcd,
    dir: tempfile::TempDir,
    nodes: Vec<Option<Child>>,
}

impl Cluster {
    fn new(count: usize) -> Cluster {
        let net = net();
        let etcd = Etcd::start(&net);
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=count {
            std::fs::write(
                dir.path().join(format!("node{n}.toml")),
                format!(
                    "[node]\nname = \"edge-{n}\"\n[listen]\ns2s = \"{net}.{n}:5269\"\n\
                     component = \"{net}.{n}:7400\"\nadmin = \"{net}.{n}:7480\"\n\
                     [events]\nfile = \"\"\n[cluster]\netcd = [\"{}\"]\n\
                     prefix = \"{PREFIX}\"\nlease_secs = {LEASE_SECS}\n",
                    etcd.url
                ),
            )
            .unwrap();
        }
        Cluster {
            etcd,
            dir,
            nodes: (0..count).map(|_| None).collect(),
        }
    }

    fn node_file(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("node{n}.toml"))
    }

    fn component_addr(&self, n: usize) -> std::net::SocketAddr {
        format!("{}.{n}:7400", self.etcd.net).parse().unwrap()
    }

    /// `xfed ARGS --config nodeN.toml`.
    fn xfed(&self, n: usize, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xfed"))
            .args(args)
            .arg("--config")
            .arg(self.node_file(n))
            .output()
            .unwrap()
    }

    /// Pushes folder `dir`: (exit code, stdout, stderr).
    fn push(&self, dir: &Path) -> (i32, String, String) {
        let out = self.xfed(1, &["config", "push", "--dir", dir.to_str().unwrap()]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn pull(&self, out: &Path) {
        let o = self.xfed(1, &["config", "pull", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    fn start(&mut self, n: usize) {
        let child = Command::new(env!("CARGO_BIN_EXE_xfed"))
            .arg("run")
            .arg("--config")
            .arg(self.node_file(n))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join(format!("node{n}.log"))).unwrap())
            .spawn()
            .unwrap();
        self.nodes[n - 1] = Some(child);
    }

    fn kill_9(&mut self, n: usize) {
        if let Some(mut c) = self.nodes[n - 1].take() {
            c.kill().unwrap();
            let _ = c.wait();
        }
    }

    /// `xfed status --json` on node `n`, by its admin address and the shipped token (so it
    /// works while etcd is down).
    fn status(&self, n: usize) -> Option<Value> {
        let token = repo().join("config/admin.token");
        let out = Command::new(env!("CARGO_BIN_EXE_xfed"))
            .args(["status", "--json", "--admin"])
            .arg(format!("http://{}.{n}:7480", self.etcd.net))
            .arg("--token-file")
            .arg(token)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Node `n`'s row in node `from`'s view.
    fn row(&self, from: usize, n: usize) -> Option<Value> {
        let v = self.status(from)?;
        v["cluster"]["nodes"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == format!("edge-{n}"))
            .cloned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in 1..=self.nodes.len() {
            self.kill_9(n);
        }
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the shipped configuration (config/ + tenants/).
fn shipped() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["config", "tenants"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        for e in std::fs::read_dir(repo().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() && p.extension().is_none_or(|x| x != "jsonl") {
                std::fs::copy(&p, dir.path().join(sub).join(p.file_name().unwrap())).unwrap();
            }
        }
    }
    dir
}

fn wait(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// The version every node of `c` reads and runs (asked of each node's own status).
fn all_on(c: &Cluster, count: usize, version: u64) -> bool {
    (1..=count).all(|n| {
        c.row(n, n).is_some_and(|r| {
            r["status"]["seen"] == version
                && r["status"]["instances"]
                    .as_array()
                    .is_some_and(|i| i.iter().all(|i| i["applied"] == i["latest"]))
        })
    })
}

fn version_of(pushed: &str) -> u64 {
    pushed
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {pushed:?}"))
}

fn start_three() -> (Cluster, tempfile::TempDir, u64) {
    let mut c = Cluster::new(3);
    let cfg = shipped();
    let (code, out, err) = c.push(cfg.path());
    assert_eq!(code, 0, "{err}");
    let v1 = version_of(&out);
    for n in 1..=3 {
        c.start(n);
    }
    wait(
        "three nodes up on the first version",
        Duration::from_secs(20),
        || all_on(&c, 3, v1),
    );
    (c, cfg, v1)
}

#[test]
fn a_push_is_run_by_every_node_within_two_seconds() {
    let (c, _cfg, v1) = start_three();
    let edit = tempfile::tempdir().unwrap();
    c.pull(edit.path());
    let acme = edit.path().join("tenants/acme.toml");
    let text = std::fs::read_to_string(&acme).unwrap();
    std::fs::write(
        &acme,
        text.replace("[\"acme.example\"]", "[\"acme.example\", \"acme.net\"]"),
    )
    .unwrap();
    let (code, out, err) = c.push(edit.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tenant acme: domains +acme.net"), "{out}");
    let v2 = version_of(&out);
    assert!(v2 > v1);
    let took = wait("the push on every node", Duration::from_secs(2), || {
        all_on(&c, 3, v2)
    });
    println!("push to applied on all 3 nodes: {took:?}");
    // Every node sees every other on the new version.
    let view = c.status(2).unwrap();
    assert_eq!(view["cluster"]["version"], v2);
    for row in view["cluster"]["nodes"].as_array().unwrap() {
        assert_eq!(row["alive"], true, "{row}");
    }
    // Only the tenant the change touched moved to the new version.
    let instances = &c.row(3, 3).unwrap()["status"]["instances"];
    let of = |name: &str| {
        instances
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance"] == name)
            .unwrap()["applied"]
            .clone()
    };
    assert_eq!(of("tenant acme"), v2);
    assert_eq!(of("tenant globex"), v1);
}

#[test]
fn refused_pushes_change_nothing_on_any_node() {
    let (c, _cfg, v1) = start_three();

    // A broken tenant file: check-config's lines, exit 2.
    let broken = tempfile::tempdir().unwrap();
    c.pull(broken.path());
    std::fs::write(
        broken.path().join("tenants/acme.toml"),
        "name = \"acme\"\ndomains = 3\n",
    )
    .unwrap();
    let (code, _, err) = c.push(broken.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tenants/acme.toml"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");

    // A domain held by two tenants.
    let dup = tempfile::tempdir().unwrap();
    c.pull(dup.path());
    let globex = dup.path().join("tenants/globex.toml");
    let text = std::fs::read_to_string(&globex).unwrap();
    std::fs::write(
        &globex,
        text.replace(
            "[\"globex.example\"]",
            "[\"globex.example\", \"acme.example\"]",
        ),
    )
    .unwrap();
    let (code, _, err) = c.push(dup.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("acme.example"), "{err}");

    // Two operators pulled the same version; the second push is refused naming both.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    c.pull(a.path());
    c.pull(b.path());
    for (dir, domain) in [(&a, "acme.net"), (&b, "acme.org")] {
        let f = dir.path().join("tenants/acme.toml");
        let t = std::fs::read_to_string(&f).unwrap();
        std::fs::write(
            &f,
            t.replace(
                "[\"acme.example\"]",
                &format!("[\"acme.example\", \"{domain}\"]"),
            ),
        )
        .unwrap();
    }
    let (code, out, err) = c.push(a.path());
    assert_eq!(code, 0, "{err}");
    let v2 = version_of(&out);
    let (code, _, err) = c.push(b.path());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("based on version {v1}"))
            && err.contains(&format!("at version {v2}")),
        "{err}"
    );
    wait(
        "every node on the one accepted push",
        Duration::from_secs(2),
        || all_on(&c, 3, v2),
    );
    // Nothing of the refused pushes anywhere: acme has acme.net, not acme.org.
    for n in 1..=3 {
        let v = c.status(n).unwrap();
        let acme = v["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "acme")
            .unwrap()
            .clone();
        let domains = acme["domains"].to_string();
        assert!(
            domains.contains("acme.net") && !domains.contains("acme.org"),
            "{domains}"
        );
        assert_eq!(v["cluster"]["version"], v2);
    }
}

#[test]
fn a_second_node_with_a_live_nodes_name_is_refused() {
    let mut c = Cluster::new(2);
    let (code, _, err) = c.push(shipped().path());
    assert_eq!(code, 0, "{err}");
    c.start(1);
    wait("edge-1 up", Duration::from_secs(20), || {
        c.status(1).is_some()
    });
    // node2.toml named edge-1 too.
    let f = c.node_file(2);
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replace("edge-2", "edge-1")).unwrap();
    let out = c.xfed(2, &["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("node name \"edge-1\" is held by a live node"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {}", c.nodes[0].as_ref().unwrap().id())),
        "{err}"
    );
}

#[test]
fn a_node_killed_with_sigkill_leaves_every_view_within_its_lease() {
    let (mut c, _cfg, _) = start_three();
    c.kill_9(3);
    let took = wait(
        "edge-3 gone from edge-1's and edge-2's views",
        Duration::from_secs(LEASE_SECS + 1),
        || {
            [1, 2].iter().all(|&n| {
                c.row(n, 3)
                    .is_some_and(|r| r["alive"] == false && r["status"].is_null())
            })
        },
    );
    println!("kill -9 to gone from every view: {took:?} (lease {LEASE_SECS} s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_etcd_serves_on_and_catches_up() {
    let (mut c, _cfg, _) = tokio::task::block_in_place(start_three);
    let addr = c.component_addr(1);
    let secret =
        |t: &str| std::fs::read_to_string(repo().join(format!("tenants/{t}.secret"))).unwrap();
    let mut acme = common::component(addr, "acme.example", secret("acme").trim()).await;
    let mut globex = common::component(addr, "globex.example", secret("globex").trim()).await;

    c.etcd.kill();
    tokio::task::block_in_place(|| {
        wait(
            "edge-1 says etcd is unreachable",
            Duration::from_secs(10),
            || {
                c.status(1).is_some_and(|v| {
                    v["cluster"]["etcd"]["reachable"] == false
                        && v["cluster"]["etcd"]["unreachable_since"].is_string()
                })
            },
        )
    });
    let table = tokio::task::block_in_place(|| {
        let token = repo().join("config/admin.token");
        let out = Command::new(env!("CARGO_BIN_EXE_xfed"))
            .args(["status", "--admin"])
            .arg(format!("http://{}.1:7480", c.etcd.net))
            .arg("--token-file")
            .arg(token)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    assert!(table.contains("etcd unreachable since"), "{table}");

    acme.send(
        "<message from='a@acme.example' to='b@globex.example' id='m1'><body>hi</body></message>",
    )
    .await;
    globex.expect("id='m1'").await;

    // etcd back: a push made now reaches the node.
    tokio::task::block_in_place(|| {
        c.etcd.run();
        let edit = tempfile::tempdir().unwrap();
        c.pull(edit.path());
        let f = edit.path().join("tenants/globex.toml");
        let t = std::fs::read_to_string(&f).unwrap();
        std::fs::write(
            &f,
            t.replace("spam.example", "spam.example\", \"junk.example"),
        )
        .unwrap();
        let (code, out, err) = c.push(edit.path());
        assert_eq!(code, 0, "{err}");
        let v = version_of(&out);
        wait("edge-1 catches up", Duration::from_secs(10), || {
            c.status(1)
                .is_some_and(|s| s["cluster"]["etcd"]["reachable"] == true)
                && all_on(&c, 3, v)
        });
    });
    c.kill_9(2);
}
