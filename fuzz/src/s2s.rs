//! The s2s target: elements sent to a live node's s2s port in each authentication state.
//!
//! Two nodes run in this process, started once on a thread of their own (an actix system),
//! on loopback ports: one in `tls-required` mode (for the state before TLS) and one in
//! `no-tls` mode (after the features, and with an authenticated pair). Beside them run a
//! stand-in authoritative server for globex.example (the tenant's static route), which
//! answers every dialback verify as valid, and a DNS server on loopback that answers
//! NXDOMAIN to everything, so no input makes the node look anything up elsewhere.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use xfed::xmpp::Limits;

use super::reader::{End, Feeder};

/// How long the node may take to answer a step, or to close after the peer's end of input.
const WAIT: Duration = Duration::from_secs(5);

/// The header a peer for globex.example sends.
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams' \
    from='globex.example' to='acme.example' version='1.0'>";

/// The state an input is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `tls-required` node, right after our header: before TLS, before the features.
    BeforeTls,
    /// `no-tls` node, after its header and features.
    AfterFeatures,
    /// `no-tls` node, after dialback authenticated globex.example → acme.example.
    Authenticated,
}

struct Nodes {
    tls_required: SocketAddr,
    no_tls: SocketAddr,
    /// Keeps the configuration folder for the nodes' lifetime.
    _dir: tempfile::TempDir,
}

fn nodes() -> &'static Nodes {
    static NODES: OnceLock<Nodes> = OnceLock::new();
    NODES.get_or_init(start)
}

fn start() -> Nodes {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let auth = TcpListener::bind("127.0.0.1:0").expect("bind the authoritative server");
    let auth_port = auth.local_addr().expect("address").port();
    std::thread::spawn(move || authoritative(auth));
    let dns = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS server");
    let dns_addr = dns.local_addr().expect("address");
    std::thread::spawn(move || nxdomain(dns));

    let mut routers = Vec::new();
    for (name, federation) in [
        (
            "tls-required",
            "security_mode = \"tls-required\"\nrequire_client_certs = false",
        ),
        (
            "no-tls",
            "security_mode = \"no-tls\"\nrequire_client_certs = false",
        ),
    ] {
        let base = dir.path().join(name);
        std::fs::create_dir_all(base.join("tenants")).expect("folders");
        std::fs::write(base.join("dialback.secret"), "fuzz-dialback-secret\n").expect("secret");
        let router = format!(
            "tenants_dir = \"tenants\"\n[node]\nname = \"fuzz-{name}\"\n\
             [listen]\ns2s = \"127.0.0.1:0\"\ncomponent = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [federation]\ndialback_secret_file = \"dialback.secret\"\n{federation}\n\
             [dns]\nnameservers = [\"{dns_addr}\"]\n\
             [limits]\nhandshake_timeout_secs = 5\n"
        );
        std::fs::write(base.join("router.toml"), router).expect("router.toml");
        let tenant = format!(
            "name = \"acme\"\nsecret = \"acme-secret\"\n\
             domains = [\"acme.example\"]\nchat_node_aliases = [\"conference.acme.example\"]\n\
             [privacy]\nmode = \"off\"\n\
             [static_routes]\nenabled = true\n\
             routes = {{ \"globex.example\" = [\"127.0.0.1:{auth_port}\"] }}\n"
        );
        std::fs::write(base.join("tenants/acme.toml"), tenant).expect("acme.toml");
        routers.push(base.join("router.toml"));
    }

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            let mut running = Vec::new();
            for router in &routers {
                let config = xfed::config::load(router).unwrap_or_else(|e| panic!("{e}"));
                let node = xfed::node::Node::start(config).await.expect("node starts");
                running.push(node);
            }
            tx.send((running[0].s2s_addr(), running[1].s2s_addr()))
                .expect("report the addresses");
            // The nodes run for the life of the process.
            std::future::pending::<()>().await;
        });
    });
    let (tls_required, no_tls) = rx.recv().expect("the nodes started");
    Nodes {
        tls_required,
        no_tls,
        _dir: dir,
    }
}

/// `data[0] % 3` chooses the state; the rest is sent in it.
///
/// Checks: the node closes the stream within [`WAIT`] of our end of input; everything it
/// sent is a well-formed stream to our own reader (its errors included); and afterwards
/// it still answers a new stream with its features.
///
/// The nodes keep state from one input to the next, so a failure may need the inputs before
/// it: the last [`KEPT`] inputs are kept, and written in order to a folder when a check
/// fails, when `XFED_FUZZ_SEQUENCES` names a folder (scripts/fuzz sets it), for
/// `tests/fuzz_regressions.rs` to replay as a sequence.
pub fn check(data: &[u8]) {
    check_settled(data, Duration::ZERO);
}

/// [`check`], waiting `settle` after the input before our end of input, so that what the
/// node answers reaches us before it sees the end (it may drop answers still queued then).
/// The replay in `cargo test` waits, so its result does not depend on timing.
pub fn check_settled(data: &[u8], settle: Duration) {
    Kept::push(data);
    let Some((&mode, payload)) = data.split_first() else {
        return;
    };
    let state = match mode % 3 {
        0 => State::BeforeTls,
        1 => State::AfterFeatures,
        _ => State::Authenticated,
    };
    check_in(state, payload, settle);
}

/// How many recent inputs are kept for a failure's sequence.
const KEPT: usize = 256;

/// The recent inputs, and a panic hook that writes them out (libFuzzer's own hook aborts
/// the process, so nothing unwinds to do it later). Only when `XFED_FUZZ_SEQUENCES` is set.
struct Kept;

/// The last [`KEPT`] inputs, oldest first.
static RECENT: std::sync::Mutex<std::collections::VecDeque<Vec<u8>>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

impl Kept {
    fn push(data: &[u8]) {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let Some(base) = std::env::var_os("XFED_FUZZ_SEQUENCES") else {
                return;
            };
            let base = std::path::PathBuf::from(base);
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if let Some(dir) = write_sequence(&base) {
                    let _ = std::fs::write(dir.join("why.txt"), info.to_string());
                    if std::env::var_os("XFED_FUZZ_SNAPSHOT").is_some() {
                        snapshot(&dir);
                    }
                }
                previous(info);
            }));
        });
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back(data.to_vec());
    }
}

/// Where every thread of this process (the nodes' among them) is at the moment of a
/// failure, into `dir`: each thread's name, state and kernel stack from /proc, then, with
/// gdb, every thread's own stack (`threads.txt`). For stalls: a thread blocked in a system
/// call, or waiting on a lock, shows where.
fn snapshot(dir: &std::path::Path) {
    let mut out = String::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let path = task.path();
            let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
            out.push_str(&format!(
                "== {} {} wchan={}\n{}\n",
                task.file_name().to_string_lossy(),
                read("comm").trim(),
                read("wchan"),
                read("stack")
            ));
        }
    }
    let _ = std::fs::write(dir.join("tasks.txt"), out);
    let pid = std::process::id().to_string();
    if let Ok(bt) = std::process::Command::new("timeout")
        .args([
            "20",
            "gdb",
            "-p",
            &pid,
            "-batch",
            "-ex",
            "thread apply all bt",
        ])
        .output()
    {
        let _ = std::fs::write(dir.join("threads.txt"), bt.stdout);
    }
}

/// Writes the kept inputs, oldest first, to a new folder below `base`; returns the folder.
fn write_sequence(base: &std::path::Path) -> Option<std::path::PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = base.join(format!("sequence-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    // A panic while the lock is held (in `push`) cannot happen: nothing there panics.
    let recent = RECENT.try_lock().ok()?;
    for (i, input) in recent.iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("{i:03}")), input);
    }
    eprintln!("the last {} inputs are in {}", recent.len(), dir.display());
    Some(dir)
}

/// The checks of [`check`] for `payload` sent in `state`.
pub fn check_in(state: State, payload: &[u8], settle: Duration) {
    let n = nodes();
    let addr = match state {
        State::BeforeTls => n.tls_required,
        _ => n.no_tls,
    };
    let mut conn = Conn::open(addr);
    conn.send(HEADER.as_bytes());
    match state {
        State::BeforeTls => {}
        State::AfterFeatures => conn.until("</stream:features>"),
        State::Authenticated => {
            conn.until("</stream:features>");
            conn.send(
                b"<db:result from='globex.example' to='acme.example'>0123456789abcdef</db:result>",
            );
            conn.until("type='valid'");
        }
    }
    conn.send(payload);
    if !settle.is_zero() {
        std::thread::sleep(settle);
    }
    let _ = conn.stream.shutdown(Shutdown::Write);
    conn.read_to_close();
    if std::env::var_os("XFED_FUZZ_DEBUG").is_some() {
        eprintln!(
            "{state:?}: the node sent: {}",
            String::from_utf8_lossy(&conn.received)
        );
    }

    let mut f = Feeder::new(Limits::default());
    f.feed(&conn.received);
    assert!(
        !matches!(f.end, End::Error(_)),
        "the node sent what our reader refuses ({:?}): {}",
        f.end,
        String::from_utf8_lossy(&conn.received)
    );

    // The node still serves.
    let mut fresh = Conn::open(addr);
    fresh.send(HEADER.as_bytes());
    fresh.until("</stream:features>");
}

/// A client connection that keeps everything it received.
struct Conn {
    stream: TcpStream,
    received: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to the node");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            received: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        // The node may have closed already: what it said is checked afterwards.
        let _ = self.stream.write_all(bytes);
    }

    /// Reads until `needle` arrives; panics if the node closes or stays silent first.
    fn until(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        while !contains(&self.received, needle.as_bytes()) {
            if !self.read_some(deadline) {
                panic!(
                    "waited for {needle:?}; the node sent: {}",
                    String::from_utf8_lossy(&self.received)
                );
            }
        }
    }

    /// Reads until the node closes; panics if it does not within [`WAIT`].
    fn read_to_close(&mut self) {
        let deadline = Instant::now() + WAIT;
        while self.read_some(deadline) {}
        assert!(
            Instant::now() < deadline,
            "the node did not close the stream within {WAIT:?} of our end of input; it sent: {}",
            String::from_utf8_lossy(&self.received)
        );
    }

    /// Reads once; false at the end of the stream, on an error or at the deadline. A read
    /// interrupted by a signal is tried again: libFuzzer's `-timeout` sets an interval timer
    /// whose SIGALRM interrupts whichever thread it lands on (its handler is installed
    /// without SA_RESTART), and taking that for the end once made this target report stalls
    /// the node never had.
    fn read_some(&mut self, deadline: Instant) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let _ = self.stream.set_read_timeout(Some(deadline - now));
            match self.stream.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => return false,
                Ok(k) => {
                    self.received.extend_from_slice(&buf[..k]);
                    return true;
                }
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A stand-in for globex.example's server: answers a header with its own, and every
/// `<db:verify>` (as the authoritative server) and `<db:result>` (as the receiving server of
/// the node's outbound stream) as valid.
fn authoritative(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
            let mut text = String::new();
            let mut buf = [0u8; 16 * 1024];
            let mut opened = false;
            loop {
                let k = match s.read(&mut buf) {
                    // libFuzzer's SIGALRM (see `read_some`).
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Ok(0) | Err(_) => return,
                    Ok(k) => k,
                };
                text.push_str(&String::from_utf8_lossy(&buf[..k]));
                if !opened && text.contains("<stream:stream") {
                    opened = true;
                    let _ = s.write_all(
                        b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
                          xmlns:stream='http://etherx.jabber.org/streams' from='globex.example' \
                          id='auth-stream' version='1.0'><stream:features/>",
                    );
                }
                // Dialback questions (a verify on a verify connection) and claims (a
                // result on the node's own outbound stream) alike are answered valid.
                for element in ["db:verify", "db:result"] {
                    while let Some(start) = text.find(&format!("<{element} ")) {
                        let close = format!("</{element}>");
                        let Some(end) = text[start..].find(&close) else {
                            break;
                        };
                        let q = text[start..start + end].to_owned();
                        text.drain(..start + end);
                        let attr = |name: &str| {
                            q.split(&format!("{name}='"))
                                .nth(1)
                                .and_then(|r| r.split('\'').next())
                                .unwrap_or("")
                                .to_owned()
                        };
                        let id = match attr("id").as_str() {
                            "" => String::new(),
                            id => format!(" id='{id}'"),
                        };
                        let answer = format!(
                            "<{element} from='{}' to='{}'{id} type='valid'/>",
                            attr("to"),
                            attr("from"),
                        );
                        let _ = s.write_all(answer.as_bytes());
                    }
                }
                if text.len() > 1 << 20 {
                    text.clear();
                }
            }
        });
    }
}

/// A DNS server that answers every query with NXDOMAIN (RFC 1035 §4.1.1, RCODE 3).
fn nxdomain(socket: UdpSocket) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if n < 12 {
            continue;
        }
        // The header and the question, without the query's additional records.
        let mut end = 12;
        while end < n && buf[end] != 0 {
            end += 1 + usize::from(buf[end]);
        }
        end += 5;
        if end > n {
            continue;
        }
        let mut answer = buf[..end].to_vec();
        answer[2] = 0x80 | (buf[2] & 0x01); // QR, RD copied
        answer[3] = 0x83; // RA, NXDOMAIN
        answer[6..12].fill(0); // no answer, authority or additional records
        let _ = socket.send_to(&answer, from);
    }
}
