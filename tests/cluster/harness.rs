//! The test harness of the cluster's tests: a single-member etcd and `xfed` processes on a
//! loopback network of the test's own, driven by the `xfed` commands an operator runs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const PREFIX: &str = "/xfed/test";
/// The nodes' lease in these tests (the default is 5 s).
pub const LEASE_SECS: u64 = 3;

/// A loopback network of its own for one test: 127.a.b.x.
pub fn net() -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ (std::process::id() << 8);
    format!("127.{}.{}", 100 + seed % 100, (seed >> 7) % 250 + 1)
}

/// A single-member etcd on `net`.100, killed by PID when dropped.
pub struct Etcd {
    child: Option<Child>,
    pub url: String,
    pub net: String,
    data: tempfile::TempDir,
    tls: Option<EtcdTls>,
}

/// etcd's client TLS: its certificate and key, and the CA its clients' certificates must
/// chain to (etcd's `--client-cert-auth`).
#[derive(Clone)]
pub struct EtcdTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

impl Etcd {
    pub fn start(net: &str) -> Etcd {
        Self::start_with(net, None)
    }

    /// On `https://` only, taking only clients with a certificate of `tls.client_ca`.
    pub fn start_tls(net: &str, tls: EtcdTls) -> Etcd {
        Self::start_with(net, Some(tls))
    }

    fn start_with(net: &str, tls: Option<EtcdTls>) -> Etcd {
        let data = tempfile::tempdir().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut etcd = Etcd {
            child: None,
            url: format!("{scheme}://{net}.100:2379"),
            net: net.to_owned(),
            data,
            tls,
        };
        etcd.run();
        etcd
    }

    /// Starts (again) on the same data directory.
    pub fn run(&mut self) {
        let net = &self.net;
        let peer = format!("http://{net}.100:2380");
        let log = std::fs::File::create(self.data.path().join("etcd.log")).unwrap();
        let mut command = Command::new("etcd");
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.cert)
                .arg("--key-file")
                .arg(&tls.key)
                .arg("--trusted-ca-file")
                .arg(&tls.client_ca)
                .arg("--client-cert-auth");
        }
        let child = command
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

    pub fn kill(&mut self) {
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
pub struct Cluster {
    pub etcd: Etcd,
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Option<Child>>,
}

impl Cluster {
    pub fn new(count: usize) -> Cluster {
        Self::on(Etcd::start(&net()), count, "")
    }

    /// `count` node files for `etcd`, their `[cluster]` sections ending with `keys`.
    pub fn on(etcd: Etcd, count: usize, keys: &str) -> Cluster {
        let net = &etcd.net;
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=count {
            std::fs::write(
                dir.path().join(format!("node{n}.toml")),
                format!(
                    "[node]\nname = \"edge-{n}\"\n[listen]\ns2s = \"{net}.{n}:5269\"\n\
                     component = \"{net}.{n}:7400\"\nadmin = \"{net}.{n}:7480\"\n\
                     [events]\nfile = \"\"\n[cluster]\netcd = [\"{}\"]\n\
                     prefix = \"{PREFIX}\"\nlease_secs = {LEASE_SECS}\n{keys}",
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

    pub fn node_file(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("node{n}.toml"))
    }

    pub fn component_addr(&self, n: usize) -> std::net::SocketAddr {
        format!("{}.{n}:7400", self.etcd.net).parse().unwrap()
    }

    /// `xfed ARGS --config nodeN.toml`.
    pub fn xfed(&self, n: usize, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xfed"))
            .args(args)
            .arg("--config")
            .arg(self.node_file(n))
            .output()
            .unwrap()
    }

    /// Pushes folder `dir`: (exit code, stdout, stderr).
    pub fn push(&self, dir: &Path) -> (i32, String, String) {
        let out = self.xfed(1, &["config", "push", "--dir", dir.to_str().unwrap()]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn pull(&self, out: &Path) {
        let o = self.xfed(1, &["config", "pull", "--out", out.to_str().unwrap()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    pub fn start(&mut self, n: usize) {
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

    pub fn kill_9(&mut self, n: usize) {
        if let Some(mut c) = self.nodes[n - 1].take() {
            c.kill().unwrap();
            let _ = c.wait();
        }
    }

    /// `xfed status --json` on node `n`, by its admin address and the shipped token (so it
    /// works while etcd is down).
    pub fn status(&self, n: usize) -> Option<Value> {
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
    pub fn row(&self, from: usize, n: usize) -> Option<Value> {
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

/// The shipped component secret of `tenant`.
pub fn secret(tenant: &str) -> String {
    std::fs::read_to_string(repo().join(format!("tenants/{tenant}.secret")))
        .unwrap()
        .trim()
        .to_owned()
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the shipped configuration (config/ + tenants/).
pub fn shipped() -> tempfile::TempDir {
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

pub fn wait(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// The version every node of `c` reads and runs (asked of each node's own status).
pub fn all_on(c: &Cluster, count: usize, version: u64) -> bool {
    (1..=count).all(|n| {
        c.row(n, n).is_some_and(|r| {
            r["status"]["seen"] == version
                && r["status"]["instances"]
                    .as_array()
                    .is_some_and(|i| i.iter().all(|i| i["applied"] == i["latest"]))
        })
    })
}

pub fn version_of(pushed: &str) -> u64 {
    pushed
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {pushed:?}"))
}

pub fn start_three() -> (Cluster, tempfile::TempDir, u64) {
    start_three_with(|_| {})
}

/// Three nodes on a first push of the shipped configuration as `edit` leaves it.
pub fn start_three_with(edit: impl FnOnce(&Path)) -> (Cluster, tempfile::TempDir, u64) {
    start_three_custom(edit, |_| {})
}

/// Three nodes whose own files `nodes` edits, on the shipped configuration.
pub fn start_three_with_nodes(nodes: impl FnOnce(&Cluster)) -> (Cluster, tempfile::TempDir, u64) {
    start_three_custom(|_| {}, nodes)
}

/// Three nodes whose own files `nodes` edits, on a first push of the shipped
/// configuration as `edit` leaves it.
pub fn start_three_custom(
    edit: impl FnOnce(&Path),
    nodes: impl FnOnce(&Cluster),
) -> (Cluster, tempfile::TempDir, u64) {
    let mut c = Cluster::new(3);
    nodes(&c);
    let cfg = shipped();
    edit(cfg.path());
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
