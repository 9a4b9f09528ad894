//! Shared test harness: a node on 127.0.0.1 port 0 from a configuration written to a
//! temporary folder, and a raw XEP-0114 client over a plain socket.
#![allow(dead_code)]

pub mod fed;
pub mod flow;
pub mod peer;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use xfed::config::{self, Config};
use xfed::node::Node;

/// The Python that runs the interop drivers: `$XFED_PYTHON` (set by `./scripts/test`), else
/// the virtual environment `./scripts/test` makes under `target/`, else `python3`.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("XFED_PYTHON").filter(|p| !p.is_empty()) {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// How long any single wait in a test may last.
pub const WAIT: Duration = Duration::from_secs(5);

/// A tenant for [`write_config`]: name, secret, TOML body after the name and secret.
pub struct TenantSpec<'a> {
    pub name: &'a str,
    pub secret: &'a str,
    pub body: &'a str,
}

/// Writes `router.toml` (listeners on port 0, the given `[limits]` lines) and one file per
/// tenant into a fresh temporary folder.
pub fn write_config(limits: &str, tenants: &[TenantSpec<'_>]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("tenants")).expect("tenants dir");
    std::fs::write(dir.path().join("dialback.secret"), "test-dialback-secret\n").unwrap();
    let router = format!(
        "tenants_dir = \"tenants\"\n\
         [node]\nname = \"test-node\"\n\
         [listen]\ns2s = \"127.0.0.1:0\"\ncomponent = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [federation]\ndialback_secret_file = \"dialback.secret\"\n\
         [limits]\n{limits}\n"
    );
    std::fs::write(dir.path().join("router.toml"), router).unwrap();
    for t in tenants {
        let text = format!(
            "name = \"{}\"\nsecret = \"{}\"\n{}\n",
            t.name, t.secret, t.body
        );
        std::fs::write(
            dir.path().join("tenants").join(format!("{}.toml", t.name)),
            text,
        )
        .unwrap();
    }
    dir
}

/// Loads the configuration written by [`write_config`].
pub fn load(dir: &Path) -> Config {
    config::load(&dir.join("router.toml")).unwrap_or_else(|e| panic!("config refused:\n{e}"))
}

/// Two tenants that allow each other: acme (acme.example, conference.acme.example) and
/// globex (globex.example), plus initech whom neither allows, with `limits` lines.
pub fn two_tenants(limits: &str) -> tempfile::TempDir {
    write_config(
        limits,
        &[
            TenantSpec {
                name: "acme",
                secret: "acme-secret",
                body: "domains = [\"acme.example\"]\nchat_node_aliases = [\"conference.acme.example\"]\n\
                       [privacy]\nmode = \"allow-list\"\nallow = [\"globex.example\"]\n",
            },
            TenantSpec {
                name: "globex",
                secret: "globex-secret",
                body: "domains = [\"globex.example\"]\n[privacy]\nmode = \"deny-list\"\ndeny = [\"initech.example\"]\n",
            },
            TenantSpec {
                name: "initech",
                secret: "initech-secret",
                body: "domains = [\"initech.example\"]\n[privacy]\nmode = \"off\"\n",
            },
        ],
    )
}

/// Starts a node on the configuration in `dir` (inside the test's actix system).
pub async fn start(dir: &Path) -> Node {
    Node::start(load(dir)).await.expect("node starts")
}

/// A raw client connection that reads into a growing string.
pub struct Raw {
    pub stream: TcpStream,
    pub received: String,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            received: String::new(),
        }
    }

    pub async fn send(&mut self, data: impl AsRef<[u8]>) {
        self.stream.write_all(data.as_ref()).await.expect("send");
    }

    /// Reads until `done(received)` holds; panics after [`WAIT`] with what was read.
    pub async fn read_until(&mut self, done: impl Fn(&str) -> bool) -> &str {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 64 * 1024];
        while !done(&self.received) {
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("timed out; received so far: {}", self.received))
                .expect("read");
            if n == 0 {
                break;
            }
            self.received.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        &self.received
    }

    /// Reads until `needle` has arrived.
    pub async fn expect(&mut self, needle: &str) {
        let got = self.read_until(|r| r.contains(needle)).await;
        assert!(got.contains(needle), "expected {needle:?}, got: {got}");
    }

    /// Reads until the peer closes the connection; returns everything received.
    pub async fn read_to_close(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => panic!("connection not closed; received: {}", self.received),
                Ok(Ok(0)) | Ok(Err(_)) => return self.received.clone(),
                Ok(Ok(n)) => self.received.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    }

    /// Forgets what was received so far.
    pub fn clear(&mut self) {
        self.received.clear();
    }
}

/// The opening of a component stream to `domain`.
pub fn component_header(domain: &str) -> String {
    format!(
        "<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
    )
}

/// The stream id from our header in `received`.
pub fn stream_id(received: &str) -> String {
    let at = received.find(" id='").expect("stream id") + 5;
    received[at..].split('\'').next().unwrap().to_owned()
}

/// Connects a component for `domain` and completes the handshake.
pub async fn component(addr: SocketAddr, domain: &str, secret: &str) -> Raw {
    let mut c = handshake(addr, domain, secret).await;
    // What came after the handshake in the same read is the link's first traffic: kept.
    c.received = c
        .received
        .split_once("<handshake/>")
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_default();
    c
}

/// Connects a component for `domain` and reads until the node's `<handshake/>`, keeping
/// everything it read (the stream header, and whatever came with the handshake).
pub async fn handshake(addr: SocketAddr, domain: &str, secret: &str) -> Raw {
    handshake_with(addr, &component_header(domain), secret).await
}

/// [`handshake`] after the stream header `header`, as written.
pub async fn handshake_with(addr: SocketAddr, header: &str, secret: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    c.send(header).await;
    c.read_until(|r| r.contains(" id='") && r.contains('>'))
        .await;
    let id = stream_id(&c.received);
    c.send(format!(
        "<handshake>{}</handshake>",
        xfed::component::digest(&id, secret)
    ))
    .await;
    c.expect("<handshake/>").await;
    c
}

/// Waits until `tenant` has `n` links up on `node`.
pub async fn wait_links(node: &Node, tenant: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.links(tenant).await.len() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tenant {tenant} never had {n} links"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The stream error condition in `received`, if any.
pub fn stream_error_condition(received: &str) -> Option<String> {
    let at = received.find("<stream:error><")? + "<stream:error><".len();
    Some(received[at..].split([' ', '/', '>']).next()?.to_owned())
}
