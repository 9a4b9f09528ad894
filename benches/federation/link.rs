//! The load and sink components: a minimal, fast XEP-0114 client shared by both systems.
//!
//! A link opens a `jabber:component:accept` stream for one domain, answers the handshake
//! (hex(SHA-1(stream id ‖ secret))) and then only writes pre-formatted stanzas or counts
//! what arrives. It parses nothing but what it measures: where each `</message>` ends, whether
//! the message is an error bounce, and the send time stamped into its body.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use memchr::memmem;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Size of every message the load sends, as the issue fixes it.
pub const MESSAGE_BYTES: usize = 300;

/// Counters shared by every load and sink link of one run.
pub struct Tally {
    /// Messages written by the load links.
    pub sent: AtomicU64,
    /// Messages that reached a sink link.
    pub received: AtomicU64,
    /// Messages that came back to a load link as errors (type='error').
    pub bounced: AtomicU64,
    /// Woken whenever a sink or load reader has counted something, so that senders waiting
    /// for their window to open do not poll.
    pub progress: Notify,
    /// While set, sinks record each message's latency in `latencies`.
    pub recording: AtomicBool,
    /// End-to-end latencies in microseconds, recorded while `recording` is set.
    pub latencies: Mutex<Vec<u32>>,
    /// The clock that send stamps count from (one process stamps and reads them).
    pub epoch: Instant,
    /// The first bounce seen, to say why stanzas came back.
    pub first_bounce: Mutex<Option<String>>,
    /// While `recording`, also each delivery's (send stamp, arrival), in microseconds: when
    /// deliveries stopped and resumed (the cluster's failover).
    pub arrivals: Mutex<Vec<(u64, u64)>>,
    /// When set, sinks record only messages whose head holds these bytes (`@l0.a.test/`:
    /// one sender's traffic among others').
    pub only_from: OnceLock<Vec<u8>>,
    /// Bounces by the domain they came back from and their error condition: how many, and
    /// when the first arrived (microseconds since `epoch`).
    pub returns: Mutex<BTreeMap<(String, String), (u64, u64)>>,
}

impl Tally {
    pub fn new() -> Arc<Tally> {
        Arc::new(Tally {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            bounced: AtomicU64::new(0),
            progress: Notify::new(),
            recording: AtomicBool::new(false),
            latencies: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            first_bounce: Mutex::new(None),
            arrivals: Mutex::new(Vec::new()),
            only_from: OnceLock::new(),
            returns: Mutex::new(BTreeMap::new()),
        })
    }

    /// Messages written but neither delivered nor bounced yet.
    pub fn in_flight(&self) -> u64 {
        let done = self.received.load(Ordering::Acquire) + self.bounced.load(Ordering::Acquire);
        self.sent.load(Ordering::Acquire).saturating_sub(done)
    }

    /// Waits until fewer than `window` messages are in flight, or `limit` passes.
    pub async fn wait_window(&self, window: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.progress.notified();
            if self.in_flight() < window {
                return true;
            }
            if tokio::time::timeout_at(deadline, async {
                // A wake-up may be missed between the check and the wait: re-check often.
                let _ = tokio::time::timeout(Duration::from_millis(2), notified).await;
            })
            .await
            .is_err()
            {
                return false;
            }
        }
    }

    /// Waits until nothing is in flight, or `limit` passes; true when drained.
    pub async fn drain(&self, limit: Duration) -> bool {
        self.wait_window(1, limit).await
    }

    /// Microseconds since the epoch, as stamped into message bodies.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// One authenticated XEP-0114 stream, split so that a task can read while another writes.
pub struct Link {
    pub reader: OwnedReadHalf,
    pub writer: OwnedWriteHalf,
    /// Bytes read after the handshake answer, not yet scanned.
    pub rest: Vec<u8>,
}

/// Opens a component stream for `domain` on `addr` and completes the handshake.
pub async fn connect(addr: SocketAddr, domain: &str, secret: &str) -> io::Result<Link> {
    tokio::time::timeout(Duration::from_secs(20), handshake(addr, domain, secret))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{domain}: handshake")))?
}

async fn handshake(addr: SocketAddr, domain: &str, secret: &str) -> io::Result<Link> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let header = format!(
        "<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
    );
    writer.write_all(header.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let id = loop {
        read_more(&mut reader, &mut buf, domain).await?;
        if let Some(id) = stream_id(&buf) {
            break id;
        }
    };
    let digest = Sha1::digest(format!("{id}{secret}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    writer
        .write_all(format!("<handshake>{hex}</handshake>").as_bytes())
        .await?;
    loop {
        for done in ["<handshake/>", "<handshake></handshake>"] {
            if let Some(at) = memmem::find(&buf, done.as_bytes()) {
                let rest = buf.split_off(at + done.len());
                return Ok(Link {
                    reader,
                    writer,
                    rest,
                });
            }
        }
        read_more(&mut reader, &mut buf, domain).await?;
    }
}

async fn read_more(reader: &mut OwnedReadHalf, buf: &mut Vec<u8>, domain: &str) -> io::Result<()> {
    if memmem::find(buf, b"stream:error").is_some() {
        let text = String::from_utf8_lossy(buf).into_owned();
        return Err(io::Error::other(format!("{domain}: refused: {text}")));
    }
    let mut chunk = [0u8; 4096];
    let n = reader.read(&mut chunk).await?;
    if n == 0 {
        let text = String::from_utf8_lossy(buf).into_owned();
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{domain}: closed during handshake: {text}"),
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// The `id` of the server's stream header, once the whole header has arrived.
fn stream_id(buf: &[u8]) -> Option<String> {
    let start = memmem::find(buf, b"<stream:stream")?;
    let end = start + memchr::memchr(b'>', &buf[start..])?;
    let header = &buf[start..end];
    let at = memmem::find(header, b" id=")? + 4;
    let quote = *header.get(at)?;
    let value = &header[at + 1..];
    let close = memchr::memchr(quote, value)?;
    Some(String::from_utf8_lossy(&value[..close]).into_owned())
}

/// A 300-byte chat message from `from` to `to`, its body stamped with the send time.
pub fn message(out: &mut Vec<u8>, from: &str, to: &str, stamp_us: u64) {
    let start = out.len();
    out.extend_from_slice(
        format!("<message from='u@{from}/load' to='s@{to}' type='chat'><body>T{stamp_us:015} ")
            .as_bytes(),
    );
    let tail = b"</body></message>";
    let pad = MESSAGE_BYTES.saturating_sub(out.len() - start + tail.len());
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(tail);
}

/// A message from one sender to one recipient, formatted once: only its stamp changes, so
/// the load spends its share of the two cores on writing, not formatting.
pub struct Template {
    bytes: Vec<u8>,
    /// Where the 15 digits of the stamp start.
    stamp_at: usize,
}

impl Template {
    pub fn new(from: &str, to: &str) -> Template {
        let mut bytes = Vec::with_capacity(MESSAGE_BYTES);
        message(&mut bytes, from, to, 0);
        let stamp_at = memmem::find(&bytes, b"<body>T").expect("message() writes a stamp") + 7;
        Template { bytes, stamp_at }
    }

    /// The length of one message, in bytes.
    pub fn message_len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends the message to `out`, stamped `stamp_us`.
    pub fn write(&self, out: &mut Vec<u8>, mut stamp_us: u64) {
        let at = out.len() + self.stamp_at;
        out.extend_from_slice(&self.bytes);
        for digit in out[at..at + 15].iter_mut().rev() {
            *digit = b'0' + (stamp_us % 10) as u8;
            stamp_us /= 10;
        }
    }
}

/// What a reader does with each complete message it sees.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A sink: messages are deliveries (bounces are counted as such too).
    Sink,
    /// A load link's reader: everything that arrives is a bounce.
    Load,
}

/// Reads a link until it closes, counting messages into `tally`.
pub async fn count(mut reader: OwnedReadHalf, mut pending: Vec<u8>, tally: Arc<Tally>, role: Role) {
    let mut chunk = vec![0u8; 64 * 1024];
    let finder = memmem::Finder::new(b"</message>");
    loop {
        let mut delivered = 0u64;
        let mut bounced = 0u64;
        let mut from = 0;
        let recording = tally.recording.load(Ordering::Relaxed);
        let only = tally.only_from.get();
        let mut stamps = Vec::new();
        while let Some(at) = finder.find(&pending[from..]) {
            let end = from + at + b"</message>".len();
            let stanza = &pending[from..end];
            if role == Role::Load || is_error(stanza) {
                bounced += 1;
                note_bounce(&tally, stanza);
            } else {
                delivered += 1;
                if recording && only.is_none_or(|o| memmem::find(head(stanza), o).is_some()) {
                    if let Some(stamp) = send_stamp(stanza) {
                        stamps.push(stamp);
                    }
                }
            }
            from = end;
        }
        pending.drain(..from);
        if !stamps.is_empty() {
            let now = tally.now_us();
            let mut lat = tally.latencies.lock().expect("no panics while held");
            lat.extend(stamps.iter().map(|s| now.saturating_sub(*s) as u32));
            drop(lat);
            let mut arrivals = tally.arrivals.lock().expect("no panics while held");
            arrivals.extend(stamps.iter().map(|s| (*s, now)));
        }
        if delivered + bounced > 0 {
            tally.received.fetch_add(delivered, Ordering::AcqRel);
            tally.bounced.fetch_add(bounced, Ordering::AcqRel);
            tally.progress.notify_waiters();
        }
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A stanza's start tag.
fn head(stanza: &[u8]) -> &[u8] {
    &stanza[..memchr::memchr(b'>', stanza).unwrap_or(stanza.len())]
}

fn is_error(stanza: &[u8]) -> bool {
    let head = head(stanza);
    memmem::find(head, b"type='error'").is_some() || memmem::find(head, b"type=\"error\"").is_some()
}

fn note_bounce(tally: &Tally, stanza: &[u8]) {
    let mut first = tally.first_bounce.lock().expect("no panics while held");
    if first.is_none() {
        let text = String::from_utf8_lossy(&stanza[..stanza.len().min(600)]).into_owned();
        *first = Some(text);
    }
    drop(first);
    let key = (bounced_from(stanza), condition(stanza));
    let now = tally.now_us();
    let mut returns = tally.returns.lock().expect("no panics while held");
    returns.entry(key).or_insert((0, now)).0 += 1;
}

/// The domain of a bounce's `from`: the destination that did not take the stanza.
fn bounced_from(stanza: &[u8]) -> String {
    let head = head(stanza);
    let Some(at) = memmem::find(head, b" from=").map(|a| a + 6) else {
        return "?".into();
    };
    let Some(&quote) = head.get(at) else {
        return "?".into();
    };
    let value = &head[at + 1..];
    let value = &value[..memchr::memchr(quote, value).unwrap_or(value.len())];
    let bare = value.split(|&b| b == b'/').next().unwrap_or(value);
    let domain = bare.rsplit(|&b| b == b'@').next().unwrap_or(bare);
    String::from_utf8_lossy(domain).into_owned()
}

/// The defined condition of an error stanza (RFC 6120 §8.3.3): the first child of `<error>`.
fn condition(stanza: &[u8]) -> String {
    let Some(at) = memmem::find(stanza, b"<error") else {
        return "?".into();
    };
    let rest = &stanza[at + 6..];
    let Some(open) = memchr::memchr(b'<', rest) else {
        return "?".into();
    };
    let name = &rest[open + 1..];
    let end = name
        .iter()
        .position(|b| matches!(b, b' ' | b'/' | b'>'))
        .unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

fn send_stamp(stanza: &[u8]) -> Option<u64> {
    let at = memmem::find(stanza, b"<body>T")? + 7;
    let digits = stanza.get(at..at + 15)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}
