//! The connection workers: one actix arbiter (a thread with its own event loop) per core.
//! Listeners accept on the node's thread and hand each connection to the next worker, where
//! its actors live from then on.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use actix::{Arbiter, ArbiterHandle};
use tokio::net::TcpStream;

use crate::admission::{Admission, Permit, Refusal};
use crate::xmpp::stanza::{stream_error, stream_header};
use crate::xmpp::StreamError;

thread_local! {
    /// Set on each worker's thread: whose worker it is (a [`Workers`]' id).
    static CURRENT: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Tells the [`Workers`] of one process apart (tests run several nodes in one).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Round-robin over the worker arbiters.
pub struct Workers {
    id: u64,
    handles: Vec<ArbiterHandle>,
    /// The worker to get the next connection.
    next: AtomicUsize,
}

/// One arbiter per core, for [`Workers::new`]. They run until stopped (dropping one does
/// not stop its thread).
pub fn one_per_core() -> Vec<Arbiter> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..cores).map(|_| Arbiter::new()).collect()
}

impl Workers {
    pub fn new(arbiters: &[Arbiter]) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(|a| a.handle()).collect();
        for h in &handles {
            h.spawn_fn(move || CURRENT.with(|c| c.set(Some(id))));
        }
        Self {
            id,
            handles,
            next: AtomicUsize::new(0),
        }
    }

    /// Moves an accepted connection to the next worker and runs `serve` on it there.
    pub fn dispatch<F, Fut>(&self, stream: TcpStream, peer: SocketAddr, serve: F)
    where
        F: FnOnce(TcpStream, SocketAddr) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let _ = stream.set_nodelay(true);
        // Deregistered here, registered again with the worker's own reactor on arrival.
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand over a connection");
                return;
            }
        };
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        // The closure is sent; the connection's future is made and stays on the worker.
        let sent = self.handles[i].spawn_fn(move || match TcpStream::from_std(std_stream) {
            Ok(stream) => {
                actix_rt::spawn(serve(stream, peer));
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot adopt a connection"),
        });
        if !sent {
            tracing::warn!(%peer, "worker stopped; connection dropped");
        }
    }

    /// Runs `task` on the next worker.
    pub fn spawn<Fut>(&self, task: impl FnOnce() -> Fut + Send + 'static)
    where
        Fut: Future<Output = ()> + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn_fn(move || {
            actix_rt::spawn(task());
        });
    }

    /// Runs `task` on this thread when it is one of the workers, else on the next worker.
    /// What `task` starts stays with the caller's other connections: a stream dialed for a
    /// component link's stanzas gets its writer on the link's thread, so those stanzas reach
    /// the socket without waking another thread.
    pub fn spawn_here<Fut>(&self, task: impl FnOnce() -> Fut + Send + 'static)
    where
        Fut: Future<Output = ()> + 'static,
    {
        if CURRENT.with(Cell::get) == Some(self.id) {
            actix_rt::spawn(task());
        } else {
            self.spawn(task);
        }
    }
}

/// Accepts on `listener` forever, giving each connection a permit from `admission` and
/// handing both to `serve` on a worker; a connection over the caps is answered with a stream
/// error in `content_ns` and closed on the spot.
pub async fn accept_loop<F, Fut>(
    listener: tokio::net::TcpListener,
    workers: std::sync::Arc<Workers>,
    admission: std::sync::Arc<Admission>,
    content_ns: &'static str,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Permit) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match admission.admit(peer.ip()) {
                Ok(permit) => {
                    let serve = serve.clone();
                    workers.dispatch(stream, peer, move |s, p| serve(s, p, permit));
                }
                Err(why) => refuse(&stream, why, content_ns),
            },
            Err(e) => {
                // Out of descriptors and the like: keep serving those already connected.
                tracing::warn!(error = %e, "{} accept failed", admission.listener());
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers a refused connection without waiting on it: what the peer already sent is read
/// and dropped (so closing sends FIN, not a reset that could discard our answer), then our
/// header and the stream error go out in one write to an empty socket buffer.
fn refuse(stream: &TcpStream, why: Refusal, content_ns: &'static str) {
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        match stream.try_read(&mut sink) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let text = match why {
        Refusal::PerAddress => "too many connections from your address have not authenticated",
        Refusal::Total => "too many connections have not authenticated; try again later",
    };
    let mut reply = stream_header(content_ns, None, None, "refused");
    reply.push_str(&stream_error(&StreamError::new(why.condition(), text)));
    let _ = stream.try_write(reply.as_bytes());
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread::ThreadId;

    use super::*;

    /// Where `spawn_here` runs its task when called from `from`: the thread's id, and
    /// whether that thread is one of the workers.
    fn spawned_from(workers: &Arc<Workers>, on_worker: bool) -> (ThreadId, ThreadId) {
        let (tx, rx) = mpsc::channel();
        let w = workers.clone();
        let ask = move || {
            let caller = std::thread::current().id();
            w.spawn_here(move || async move {
                let _ = tx.send((caller, std::thread::current().id()));
            });
        };
        if on_worker {
            workers.handles[1].spawn_fn(ask);
        } else {
            ask();
        }
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the task ran")
    }

    #[test]
    fn spawn_here_stays_on_a_worker_and_goes_to_one_from_elsewhere() {
        let sys = actix_rt::System::new();
        sys.block_on(async {
            let arbiters: Vec<Arbiter> = (0..2).map(|_| Arbiter::new()).collect();
            let workers = Arc::new(Workers::new(&arbiters));
            let (caller, ran) = spawned_from(&workers, true);
            assert_eq!(caller, ran, "asked on a worker: ran on that worker");
            let (caller, ran) = spawned_from(&workers, false);
            assert_ne!(caller, ran, "asked elsewhere: ran on a worker");
            // Another node's workers are not "here".
            let others = Arc::new(Workers::new(&arbiters[..1]));
            let (tx, rx) = mpsc::channel();
            let o = others.clone();
            workers.handles[1].spawn_fn(move || {
                let caller = std::thread::current().id();
                o.spawn_here(move || async move {
                    let _ = tx.send(caller != std::thread::current().id());
                });
            });
            assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap());
            for a in arbiters {
                a.stop();
            }
        });
    }
}
