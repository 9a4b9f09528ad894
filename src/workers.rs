//! The connection workers: one actix arbiter (a thread with its own event loop) per core.
//! Listeners accept on the node's thread and hand each connection to the next worker, where
//! its actors live from then on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{Arbiter, ArbiterHandle};
use tokio::net::TcpStream;

/// Round-robin over the worker arbiters.
pub struct Workers {
    handles: Vec<ArbiterHandle>,
    /// The worker to get the next connection.
    next: AtomicUsize,
}

impl Workers {
    pub fn new(arbiters: &[Arbiter]) -> Self {
        Self {
            handles: arbiters.iter().map(|a| a.handle()).collect(),
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
}

/// Accepts on `listener` forever, giving each connection to `serve` on a worker.
pub async fn accept_loop<F, Fut>(
    listener: tokio::net::TcpListener,
    workers: std::sync::Arc<Workers>,
    what: &'static str,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => workers.dispatch(stream, peer, serve.clone()),
            Err(e) => {
                // Out of descriptors and the like: keep serving those already connected.
                tracing::warn!(error = %e, "{what} accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
