//! Opening an inter-node link: TLS, then each side proves it holds the cluster's key, bound
//! to this TLS session, before a stanza may pass.
//!
//! TLS gives the link privacy and integrity; its certificates are each node's own, made at
//! start, and name nobody. Who is at the other end is proved by the cluster key (32 random
//! bytes that the first node wrote to etcd; every node reads them at start): each side
//! sends an HMAC-SHA256 under that key over a value exported from this TLS session
//! (RFC 5705 / RFC 8446 §7.5) and the node names. A party without the key cannot make one;
//! one made for another session (a relay in the middle terminates TLS twice, so each of its
//! sessions exports another value) proves nothing on this one.
//!
//! On the wire, once TLS is up: the dialer sends `XFEDRLY1`, one byte of length and its
//! node name, and its 32-byte proof; the listener answers with its own name and proof over
//! both names. Then each side writes an XMPP stream (`jabber:server`) on the link.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

/// What the dialer sends first: the protocol and its version.
const MAGIC: &[u8; 8] = b"XFEDRLY1";
/// The label of the value exported from the TLS session.
const LABEL: &[u8] = b"EXPORTER-xfed-cluster-relay";
/// How long opening a link may take, TLS included.
pub const OPEN_WITHIN: Duration = Duration::from_secs(5);

/// Why a link was not opened.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("the link's opening: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an xfed inter-node link (it did not start with {MAGIC:?})")]
    NotRelay,
    #[error("the peer's proof of the cluster key is wrong: it is not a node of this cluster")]
    BadProof,
    #[error("the peer's node name is not valid")]
    BadName,
    #[error("took longer than {OPEN_WITHIN:?}")]
    TooSlow,
}

/// The cluster key and the TLS set-up of one node's links.
#[derive(Clone)]
pub struct Keys {
    key: Arc<Vec<u8>>,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// TLS with a certificate made now for `node`, and `key` to prove membership.
    pub fn new(node: &str, key: Vec<u8>) -> Result<Keys, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let made = rcgen::generate_simple_self_signed(vec![node.to_owned()])
            .map_err(|e| format!("cannot make the inter-node link's certificate: {e}"))?;
        let cert = made.cert.der().clone();
        let private = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(vec![cert], private)
            .map_err(|e| e.to_string())?;
        let client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::s2s::anycert::AnyCert(provider)))
            .with_no_client_auth();
        Ok(Keys {
            key: Arc::new(key),
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }

    fn proof(&self, role: &[u8], exported: &[u8], names: &[&str]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(role);
        mac.update(exported);
        for n in names {
            mac.update(&[n.len() as u8]);
            mac.update(n.as_bytes());
        }
        mac
    }

    /// Dials side: opens a link to the node listening at the other end of `tcp`, as
    /// `me`. Answers the link and the peer's name.
    pub async fn dial(
        &self,
        tcp: TcpStream,
        me: &str,
    ) -> Result<(client::TlsStream<TcpStream>, String), AuthError> {
        tokio::time::timeout(OPEN_WITHIN, self.dial_now(tcp, me))
            .await
            .map_err(|_| AuthError::TooSlow)?
    }

    async fn dial_now(
        &self,
        tcp: TcpStream,
        me: &str,
    ) -> Result<(client::TlsStream<TcpStream>, String), AuthError> {
        let name = rustls::pki_types::ServerName::try_from("xfed-node")
            .expect("a valid name")
            .to_owned();
        let mut tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(AuthError::Tls)?;
        let exported = export(tls.get_ref().1)?;
        let mut hello = MAGIC.to_vec();
        push_name(&mut hello, me)?;
        hello.extend(
            self.proof(b"client\0", &exported, &[me])
                .finalize()
                .into_bytes(),
        );
        tls.write_all(&hello).await?;
        tls.flush().await?;
        let peer = read_name(&mut tls).await?;
        let mut proof = [0u8; 32];
        tls.read_exact(&mut proof).await?;
        self.proof(b"server\0", &exported, &[me, &peer])
            .verify_slice(&proof)
            .map_err(|_| AuthError::BadProof)?;
        Ok((tls, peer))
    }

    /// Listening side: answers a node opening a link on `tcp`, as `me`. Answers the link
    /// and the peer's name; nothing is sent to a party that did not prove the key.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        me: &str,
    ) -> Result<(server::TlsStream<TcpStream>, String), AuthError> {
        tokio::time::timeout(OPEN_WITHIN, self.accept_now(tcp, me))
            .await
            .map_err(|_| AuthError::TooSlow)?
    }

    async fn accept_now(
        &self,
        tcp: TcpStream,
        me: &str,
    ) -> Result<(server::TlsStream<TcpStream>, String), AuthError> {
        let mut tls = self.acceptor.accept(tcp).await.map_err(AuthError::Tls)?;
        let exported = export(tls.get_ref().1)?;
        let mut magic = [0u8; 8];
        tls.read_exact(&mut magic).await?;
        if &magic != MAGIC {
            return Err(AuthError::NotRelay);
        }
        let peer = read_name(&mut tls).await?;
        let mut proof = [0u8; 32];
        tls.read_exact(&mut proof).await?;
        self.proof(b"client\0", &exported, &[&peer])
            .verify_slice(&proof)
            .map_err(|_| AuthError::BadProof)?;
        let mut answer = Vec::with_capacity(80);
        push_name(&mut answer, me)?;
        answer.extend(
            self.proof(b"server\0", &exported, &[&peer, me])
                .finalize()
                .into_bytes(),
        );
        tls.write_all(&answer).await?;
        tls.flush().await?;
        Ok((tls, peer))
    }
}

fn export<D>(conn: &rustls::ConnectionCommon<D>) -> Result<[u8; 32], AuthError> {
    conn.export_keying_material([0u8; 32], LABEL, None)
        .map_err(|e| AuthError::Tls(std::io::Error::other(e)))
}

fn push_name(out: &mut Vec<u8>, name: &str) -> Result<(), AuthError> {
    let len = u8::try_from(name.len()).map_err(|_| AuthError::BadName)?;
    out.push(len);
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

async fn read_name(rd: &mut (impl AsyncRead + Unpin)) -> Result<String, AuthError> {
    let len = rd.read_u8().await? as usize;
    let mut name = vec![0u8; len];
    rd.read_exact(&mut name).await?;
    let name = String::from_utf8(name).map_err(|_| AuthError::BadName)?;
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
        return Err(AuthError::BadName);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (dialed.unwrap(), accepted.unwrap().0)
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Two nodes holding the cluster key open a link and learn each other's names.
    #[test]
    fn nodes_with_the_key_open_a_link() {
        run(async {
            let a = Keys::new("edge-1", b"the cluster key".to_vec()).unwrap();
            let b = Keys::new("edge-2", b"the cluster key".to_vec()).unwrap();
            let (d, l) = pair().await;
            let (dialed, accepted) = tokio::join!(a.dial(d, "edge-1"), b.accept(l, "edge-2"));
            assert_eq!(dialed.expect("dialed").1, "edge-2");
            assert_eq!(accepted.expect("accepted").1, "edge-1");
        });
    }

    /// A party with another key is refused on both sides: the listener does not answer a
    /// wrong proof, and a dialer does not trust a listener that cannot make one.
    #[test]
    fn a_party_without_the_key_is_refused() {
        run(async {
            let node = Keys::new("edge-1", b"the cluster key".to_vec()).unwrap();
            let stranger = Keys::new("edge-9", b"a guess".to_vec()).unwrap();
            let (d, l) = pair().await;
            let (dialed, accepted) =
                tokio::join!(stranger.dial(d, "edge-9"), node.accept(l, "edge-1"));
            assert!(matches!(accepted, Err(AuthError::BadProof)), "{accepted:?}");
            assert!(dialed.is_err(), "the stranger got no answer");

            let (d, l) = pair().await;
            let (dialed, accepted) =
                tokio::join!(node.dial(d, "edge-1"), stranger.accept(l, "edge-9"));
            assert!(matches!(accepted, Err(AuthError::BadProof)), "{accepted:?}");
            assert!(dialed.is_err());
        });
    }
}
