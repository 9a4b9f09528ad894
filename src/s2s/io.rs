//! The byte stream under an s2s connection while it is being negotiated: plain TCP that may
//! become TLS (STARTTLS, or direct TLS per XEP-0368), read as XMPP frames and written
//! directly. Once negotiated it is split into a framed reader and an [`Outbox`].

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::Stream;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

use crate::xmpp::outbox::Checkpoint;
use crate::xmpp::{Frame, Limits, Outbox, ReadError, Stanza, StreamReader, Waits};

/// Any byte stream a connection may run on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// What TLS a stream runs under, as operators see it.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// e.g. "TLSv1_3".
    pub version: String,
    /// e.g. "TLS13_AES_256_GCM_SHA384".
    pub cipher: String,
    /// The peer's certificate chain, end entity first (empty when none was shown).
    pub peer_chain: Vec<CertificateDer<'static>>,
}

impl TlsInfo {
    fn from_common(c: &rustls::CommonState) -> Self {
        TlsInfo {
            version: c
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher: c
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            peer_chain: c
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        }
    }
}

/// A connection being negotiated.
pub struct XmlConn {
    io: Box<dyn Io>,
    reader: StreamReader,
    buf: BytesMut,
    limits: Limits,
    pub peer: SocketAddr,
    pub tls: Option<TlsInfo>,
}

/// Why a negotiation step failed at the transport.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("write failed: {0}")]
    Write(std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("the peer closed the connection")]
    Closed,
}

impl XmlConn {
    pub fn new(io: Box<dyn Io>, peer: SocketAddr, limits: Limits) -> Self {
        Self {
            io,
            reader: StreamReader::new(limits),
            buf: BytesMut::with_capacity(8 * 1024),
            limits,
            peer,
            tls: None,
        }
    }

    pub async fn send(&mut self, data: &str) -> Result<(), IoError> {
        self.io
            .write_all(data.as_bytes())
            .await
            .map_err(IoError::Write)?;
        self.io.flush().await.map_err(IoError::Write)
    }

    /// The next frame; `Err(Closed)` at end of stream.
    pub async fn next(&mut self) -> Result<Frame, IoError> {
        loop {
            if let Some(frame) = self.reader.decode(&mut self.buf)? {
                return Ok(frame);
            }
            let n = self
                .io
                .read_buf(&mut self.buf)
                .await
                .map_err(|e| IoError::Read(e.into()))?;
            if n == 0 {
                return Err(IoError::Closed);
            }
        }
    }

    /// The next first-level element; a stream close or a second header is an error here.
    pub async fn next_stanza(&mut self) -> Result<Stanza, IoError> {
        match self.next().await? {
            Frame::Stanza(s) => Ok(s),
            Frame::Close => Err(IoError::Closed),
            Frame::Open(_) => Err(IoError::Read(
                crate::xmpp::StreamError::new(
                    crate::xmpp::StreamCondition::NotWellFormed,
                    "unexpected stream header",
                )
                .into(),
            )),
        }
    }

    /// Starts a new stream on the same transport (after TLS or SASL), forgetting the old one.
    pub fn restart(&mut self) {
        self.reader = StreamReader::new(self.limits);
        self.buf.clear();
    }

    /// Upgrades to TLS as the initiating side.
    pub async fn tls_connect(
        &mut self,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
        timeout: Duration,
    ) -> Result<(), IoError> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| IoError::Tls(std::io::Error::other(e)))?;
        let io = std::mem::replace(&mut self.io, placeholder());
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = tokio::time::timeout(timeout, connector.connect(name, io))
            .await
            .map_err(|_| IoError::Tls(std::io::ErrorKind::TimedOut.into()))?
            .map_err(IoError::Tls)?;
        self.tls = Some(TlsInfo::from_common(tls.get_ref().1));
        self.io = Box::new(tls);
        self.restart();
        Ok(())
    }

    /// Upgrades to TLS as the receiving side.
    pub async fn tls_accept(
        &mut self,
        config: std::sync::Arc<rustls::ServerConfig>,
        timeout: Duration,
    ) -> Result<(), IoError> {
        let io = std::mem::replace(&mut self.io, placeholder());
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let tls = tokio::time::timeout(timeout, acceptor.accept(io))
            .await
            .map_err(|_| IoError::Tls(std::io::ErrorKind::TimedOut.into()))?
            .map_err(IoError::Tls)?;
        self.tls = Some(TlsInfo::from_common(tls.get_ref().1));
        self.io = Box::new(tls);
        self.restart();
        Ok(())
    }

    /// Splits the negotiated connection into a stream of frames (starting with what was
    /// already read: a peer may pipeline stanzas right after negotiation) and an outbox.
    /// With a `checkpoint`, the outbox keeps what it writes until the peer
    /// confirms it and hands nothing back itself (see [`Outbox::spawn_acked`]).
    pub fn into_parts(
        self,
        queue_limit: usize,
        waits: Waits,
        checkpoint: Option<Checkpoint>,
        on_undelivered: impl FnOnce(Vec<Stanza>) + 'static,
    ) -> (
        impl Stream<Item = Result<Frame, ReadError>> + 'static,
        Outbox,
    ) {
        let (rd, wr) = tokio::io::split(self.io);
        let (outbox, _writer) = match checkpoint {
            Some(c) => Outbox::spawn_acked(wr, queue_limit, waits, c),
            None => Outbox::spawn(wr, queue_limit, waits, on_undelivered),
        };
        (frames(rd, self.reader, self.buf), outbox)
    }

    /// Sends `tail` (a stream error or close) and shuts the connection down, bounded in time.
    pub async fn close_with(mut self, tail: &str) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.io.write_all(tail.as_bytes()).await;
            let _ = self.io.shutdown().await;
        })
        .await;
    }
}

/// Read buffer of a quiet stream: enough for a whitespace keepalive or a small stanza.
const READ_SMALL: usize = 512;
/// Read buffer of a busy stream, reached by doubling while reads fill the buffer.
const READ_LARGE: usize = 16 * 1024;

/// Frames read from `rd`, decoding what `buf` already holds before reading more.
///
/// The buffer follows the traffic: it doubles while reads fill it and falls back to
/// [`READ_SMALL`] after a read smaller than that, so that thousands of idle streams do not each
/// sit on a buffer sized for the busiest moment they had.
fn frames<R: AsyncRead + Unpin + 'static>(
    rd: R,
    reader: StreamReader,
    buf: BytesMut,
) -> impl Stream<Item = Result<Frame, ReadError>> + 'static {
    futures_util::stream::unfold(Some((rd, reader, buf, READ_SMALL)), |state| async move {
        let (mut rd, mut reader, mut buf, mut want) = state?;
        loop {
            match reader.decode(&mut buf) {
                Ok(Some(frame)) => return Some((Ok(frame), Some((rd, reader, buf, want)))),
                Ok(None) => {}
                Err(e) => return Some((Err(e), None)),
            }
            if buf.is_empty() && buf.capacity() > want {
                buf = BytesMut::new();
            }
            buf.reserve(want);
            let room = buf.capacity() - buf.len();
            match rd.read_buf(&mut buf).await {
                Ok(0) => return None,
                Ok(n) if n >= room => want = (want * 2).min(READ_LARGE),
                Ok(n) if n < READ_SMALL => want = READ_SMALL,
                Ok(_) => {}
                Err(e) => return Some((Err(e.into()), None)),
            }
        }
    })
}

/// Stands in for the transport while it is moved into a TLS wrapper.
fn placeholder() -> Box<dyn Io> {
    Box::new(tokio::io::duplex(1).0)
}
