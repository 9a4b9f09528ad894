//! The harness's own floor: the load and the sink joined by a trivial relay instead of two
//! edges, so that the harness's share of a latency figure is visible beside the systems'.
//!
//! The relay runs in the harness's own process, on its runtime: it takes any component
//! link (the handshake is answered without checking the secret), and copies each message
//! a load link writes, as it is, to the sink link of the message's domain. It parses
//! nothing but where a message ends and its `to`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::measure::{self, Latency, Rig};
use crate::systems::{component_addr, remote};
use crate::Plan;

/// Where the relay listens.
pub const FLOOR_IP: &str = "127.0.0.7";

/// The sink links by domain: a channel to each one's writer.
type Sinks = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Vec<u8>>>>>;

/// Starts the relay on [`FLOOR_IP`]; it runs until the runtime ends.
pub async fn start() -> std::io::Result<()> {
    let listener = TcpListener::bind(component_addr(FLOOR_IP)).await?;
    let sinks: Sinks = Arc::default();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream, sinks.clone()));
        }
    });
    Ok(())
}

async fn serve(stream: TcpStream, sinks: Sinks) {
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    // The stream header: its `to` is the link's domain.
    let domain = loop {
        if let Some(d) = header_to(&buf) {
            break d;
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let answer = format!(
        "<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' from='{domain}' id='floor'>"
    );
    if wr.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let end = loop {
        if let Some(at) = memmem::find(&buf, b"</handshake>") {
            break at + b"</handshake>".len();
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    buf.drain(..end);
    if wr.write_all(b"<handshake/>").await.is_err() {
        return;
    }
    // A sink link takes what the load links send to its domain; a load link's messages go
    // to their domain's sink link.
    let (tx, rx) = mpsc::unbounded_channel();
    sinks
        .lock()
        .expect("not poisoned")
        .insert(domain.clone(), tx);
    tokio::spawn(write(wr, rx));
    let finder = memmem::Finder::new(b"</message>");
    loop {
        let mut from = 0;
        let mut out: HashMap<String, Vec<u8>> = HashMap::new();
        while let Some(at) = finder.find(&buf[from..]) {
            let end = from + at + b"</message>".len();
            if let Some(to) = message_domain(&buf[from..end]) {
                out.entry(to)
                    .or_default()
                    .extend_from_slice(&buf[from..end]);
            }
            from = end;
        }
        buf.drain(..from);
        if !out.is_empty() {
            let sinks = sinks.lock().expect("not poisoned");
            for (to, bytes) in out {
                if let Some(tx) = sinks.get(&to) {
                    let _ = tx.send(bytes);
                }
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes what is sent to a sink link, gathering what waits into one write.
async fn write(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(mut bytes) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            bytes.extend_from_slice(&more);
        }
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// The `to` of the stream header in `buf`, once it is complete.
fn header_to(buf: &[u8]) -> Option<String> {
    let start = memmem::find(buf, b"<stream:stream")?;
    let end = start + memchr::memchr(b'>', &buf[start..])?;
    attr(&buf[start..end], b" to='")
}

/// The domain of a message's `to` (`s@r3.b.test` → `r3.b.test`).
fn message_domain(message: &[u8]) -> Option<String> {
    let head = &message[..memchr::memchr(b'>', message)?];
    let to = attr(head, b" to='")?;
    Some(to.rsplit('@').next().unwrap_or(&to).to_owned())
}

fn attr(tag: &[u8], key: &[u8]) -> Option<String> {
    let at = memmem::find(tag, key)? + key.len();
    let len = memchr::memchr(b'\'', &tag[at..])?;
    Some(String::from_utf8_lossy(&tag[at..at + len]).into_owned())
}

/// Latency through the relay at each of `rates`, on the plan's pairs.
pub async fn measure(rates: &[u64], plan: &Plan) -> Result<Vec<(u64, Latency)>, String> {
    let mut rig = rig(plan).await?;
    let mut out = Vec::new();
    for &rate in rates {
        eprintln!("   floor latency at {rate}/s");
        let l = measure::latency(&mut rig, rate, plan.latency_warm, plan.latency_measure).await;
        eprintln!("   {l:?}");
        out.push((rate, l));
    }
    Ok(out)
}

/// Starts the relay and connects the load and sink through it.
pub async fn rig(plan: &Plan) -> Result<Rig, String> {
    start().await.map_err(|e| format!("the relay: {e}"))?;
    let domains: Vec<String> = (0..plan.pairs).map(remote).collect();
    Rig::connect_at(FLOOR_IP, &[FLOOR_IP], &domains, plan.pairs).await
}

/// The floor's lines of the run's table.
pub fn table(floor: &[(u64, Latency)]) -> String {
    use std::fmt::Write as _;
    let ms = |us: u32| us as f64 / 1000.0;
    let mut out = String::new();
    if !floor.is_empty() {
        let _ = writeln!(
            out,
            "\nharness floor: load -> trivial relay in the harness -> sink"
        );
    }
    for (rate, l) in floor {
        let _ = writeln!(
            out,
            "  at {rate}/s: p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  (delivered {} of {})",
            ms(l.p50_us),
            ms(l.p99_us),
            ms(l.p999_us),
            l.delivery.received,
            l.delivery.sent
        );
    }
    out
}

pub fn json(floor: &[(u64, Latency)]) -> serde_json::Value {
    floor
        .iter()
        .map(|(rate, l)| {
            serde_json::json!({"rate": rate, "p50_us": l.p50_us, "p99_us": l.p99_us,
                               "p999_us": l.p999_us, "samples": l.samples,
                               "pacer_late_us": [l.pacer_late_us.0, l.pacer_late_us.1],
                               "sent": l.delivery.sent, "received": l.delivery.received})
        })
        .collect()
}
