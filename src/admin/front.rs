//! The admin listener on an address that is not loopback: HTTPS for the web console, plain
//! HTTP still for the API (the `xfed` subcommands speak plain HTTP with the bearer token).
//!
//! Each connection is told apart by its first byte — a TLS record starts with 22, the
//! handshake content type (RFC 8446 §5.1), an HTTP request with a letter — then handed,
//! TLS ended here for the first kind, to one of two loopback listeners of the same actix
//! server. Which of the two a request arrived on is what [`over_tls`] reads: the console
//! serves only requests that came over TLS, and refuses the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest};
use tokio::net::{TcpListener, TcpStream};

/// A TLS record's first byte: the handshake content type.
const TLS_HANDSHAKE: u8 = 22;

/// How long a new connection may take to send its first byte and finish a TLS handshake.
const OPENING: Duration = Duration::from_secs(10);

/// Where TLS-terminated connections go: the loopback listener [`over_tls`] compares with.
#[derive(Debug, Clone, Copy)]
pub(super) struct TlsBack(pub SocketAddr);

/// Whether `req` reached the admin listener over TLS (always false on a loopback listener,
/// which speaks plain HTTP only).
pub fn over_tls(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<TlsBack>>()
        .is_some_and(|back| req.app_config().local_addr() == back.0)
}

/// Accepts on `public` for ever, handing each connection to `tls_back` (after ending TLS
/// with `tls`) or to `plain_back`.
pub(super) async fn serve(
    public: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    tls_back: SocketAddr,
    plain_back: SocketAddr,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match public.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        actix_rt::spawn(async move {
            if let Err(e) = hand_over(tcp, acceptor, tls_back, plain_back).await {
                tracing::debug!(%peer, error = %e, "admin connection ended");
            }
        });
    }
}

async fn hand_over(
    tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    tls_back: SocketAddr,
    plain_back: SocketAddr,
) -> std::io::Result<()> {
    let timeout = |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, what.to_owned());
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(OPENING, tcp.peek(&mut first))
        .await
        .map_err(|_| timeout("no first byte"))??;
    if n == 0 {
        return Ok(());
    }
    if first[0] == TLS_HANDSHAKE {
        let mut tls = tokio::time::timeout(OPENING, acceptor.accept(tcp))
            .await
            .map_err(|_| timeout("TLS handshake"))??;
        let mut back = TcpStream::connect(tls_back).await?;
        tokio::io::copy_bidirectional(&mut tls, &mut back).await?;
    } else {
        let mut tcp = tcp;
        let mut back = TcpStream::connect(plain_back).await?;
        tokio::io::copy_bidirectional(&mut tcp, &mut back).await?;
    }
    Ok(())
}
