//! Streams we open: to deliver (originating server, XEP-0220 §2.1) or to ask a remote
//! authoritative server whether a key is valid (receiving server, XEP-0220 §2.3).

use std::time::Duration;

use tokio::net::TcpStream;

use base64::Engine;

use super::auth::Mechanism;
use super::features::{Features, SASL_NS, TLS_NS};
use super::io::{IoError, XmlConn};
use super::resolve::ResolveError;
use super::resolve::Target;
use super::S2sShared;
use crate::config::SecurityMode;
use crate::xmpp::acks::SM_NS;
use crate::xmpp::{ns, Frame, Stanza, StanzaCondition};

/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream opened, secured as configured, and judged; not yet authenticated.
pub struct Dialed {
    pub conn: XmlConn,
    /// The id the receiving server gave the (last) stream: the dialback key covers it.
    pub stream_id: String,
    /// Set when SASL EXTERNAL already authenticated the pair (no dialback needed).
    pub mechanism: Option<Mechanism>,
    /// The receiving server offered stream management (XEP-0198) on the stream.
    pub sm_offered: bool,
    /// Stream management is on: the peer answered our `<enable/>` with `<enabled/>`.
    pub sm: bool,
}

/// Why a stream to a remote server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    #[error("{0} did not answer in time")]
    Timeout(String),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Dns(#[from] ResolveError),
}

impl DialError {
    /// The stanza error its stanzas are returned with (RFC 6120 §8.3.3.16-17).
    pub fn condition(&self) -> StanzaCondition {
        match self {
            DialError::Timeout(_) => StanzaCondition::RemoteServerTimeout,
            DialError::Dns(e) => e.condition(),
            _ => StanzaCondition::RemoteServerNotFound,
        }
    }
}

/// Our stream header towards a remote server.
pub fn header(from: &str, to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns:stream='{}' xmlns='{}' xmlns:db='{}' from='{from}' to='{to}' version='1.0'>",
        ns::STREAMS,
        ns::SERVER,
        ns::DIALBACK
    )
}

/// Is `s` the dialback element `name` (`result` or `verify`)?
pub fn is_dialback(s: &Stanza, name: &str) -> bool {
    s.name.strip_prefix("db:") == Some(name)
        || (s.name == name && s.xmlns.as_deref() == Some(ns::DIALBACK))
}

/// Sets what every s2s socket needs: no Nagle delay, and a dead peer noticed in seconds
/// (TCP_USER_TIMEOUT) rather than after the 15 minutes of default TCP retries.
pub fn tune(tcp: &TcpStream, dead_after: Duration) {
    let _ = tcp.set_nodelay(true);
    let sock = socket2::SockRef::from(tcp);
    let _ = sock.set_tcp_user_timeout(Some(dead_after));
}

/// Connects to `target` for the pair (`local`, `remote`) and negotiates TLS as the security
/// mode asks; the remote's certificate is judged before anything is sent in its name.
pub async fn open(
    shared: &S2sShared,
    local: &str,
    remote: &str,
    target: &Target,
) -> Result<Dialed, DialError> {
    let where_ = format!("{}:{}", target.host, target.port);
    let addrs = shared
        .resolver
        .addresses(&target.host)
        .await
        .map_err(|e| DialError::Connect(where_.clone(), e))?;
    let mut last = String::from("no address");
    let mut tcp = None;
    for ip in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((ip, target.port))).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "connect timed out".into(),
        }
    }
    let tcp = tcp.ok_or_else(|| DialError::Connect(where_.clone(), last))?;
    tune(&tcp, shared.dead_peer_timeout);
    let peer = tcp
        .peer_addr()
        .map_err(|e| DialError::Connect(where_.clone(), e.to_string()))?;
    let mut conn = XmlConn::new(Box::new(tcp), peer, shared.reader_limits());
    let (stream_id, mechanism, sm_offered) = tokio::time::timeout(
        shared.negotiate_timeout,
        negotiate(shared, &mut conn, local, remote, target.direct_tls),
    )
    .await
    .map_err(|_| DialError::Timeout(where_))??;
    Ok(Dialed {
        conn,
        stream_id,
        mechanism,
        sm_offered,
        sm: false,
    })
}

/// XEP-0198 §3 as the initiating server, once the pair is authenticated: asks for stream
/// management when the peer offered it. `<failed/>` leaves the stream without it.
pub async fn enable_sm(
    shared: &S2sShared,
    dialed: &mut Dialed,
    remote: &str,
) -> Result<(), DialError> {
    if !(shared.stream_management && dialed.sm_offered) {
        return Ok(());
    }
    dialed
        .conn
        .send(&format!("<enable xmlns='{SM_NS}'/>"))
        .await?;
    let answer = async {
        loop {
            let s = dialed.conn.next_stanza().await?;
            if s.xmlns.as_deref() == Some(SM_NS) && (s.name == "enabled" || s.name == "failed") {
                return Ok::<_, DialError>(s.name == "enabled");
            }
            if s.name.ends_with(":error") {
                return Err(DialError::Refused(format!(
                    "stream error from {remote}: {}",
                    s.text()
                )));
            }
        }
    };
    dialed.sm = tokio::time::timeout(shared.negotiate_timeout, answer)
        .await
        .map_err(|_| DialError::Timeout(format!("stream management with {remote}")))??;
    tracing::debug!(%remote, sm = dialed.sm, "stream management requested");
    Ok(())
}

async fn negotiate(
    shared: &S2sShared,
    conn: &mut XmlConn,
    local: &str,
    remote: &str,
    direct_tls: bool,
) -> Result<(String, Option<Mechanism>, bool), DialError> {
    let mode = shared.policy.security_mode;
    if direct_tls {
        if mode == SecurityMode::NoTls {
            return Err(DialError::Refused(
                "the target is direct TLS only, and security_mode is no-tls".into(),
            ));
        }
        conn.tls_connect(
            shared.tls.load().client_for(local),
            remote,
            shared.negotiate_timeout,
        )
        .await?;
        tracing::info!(peer = %conn.peer, %local, %remote, "outbound s2s stream over direct TLS (XEP-0368)");
    }
    loop {
        conn.send(&header(local, remote)).await?;
        let h = match conn.next().await? {
            Frame::Open(h) => h,
            _ => return Err(DialError::Refused("the peer sent no stream header".into())),
        };
        if h.default_ns.as_deref() != Some(ns::SERVER) {
            return Err(DialError::Refused(format!(
                "the peer's stream is not {} but {:?}",
                ns::SERVER,
                h.default_ns
            )));
        }
        let id =
            h.id.ok_or_else(|| DialError::Refused("the peer's stream header has no id".into()))?;
        let features = if h.version.as_deref() == Some("1.0") {
            let s = conn.next_stanza().await?;
            if s.name.ends_with(":error") {
                return Err(DialError::Refused(format!(
                    "stream error from {remote}: {}",
                    s.text()
                )));
            }
            Features::parse(&s)
        } else {
            Features::default()
        };
        if conn.tls.is_none() {
            if features.starttls && mode != SecurityMode::NoTls {
                conn.send(&format!("<starttls xmlns='{TLS_NS}'/>")).await?;
                let answer = conn.next_stanza().await?;
                if answer.name != "proceed" {
                    return Err(DialError::Refused(format!("{remote} refused STARTTLS")));
                }
                conn.tls_connect(
                    shared.tls.load().client_for(local),
                    remote,
                    shared.negotiate_timeout,
                )
                .await?;
                continue;
            }
            if mode == SecurityMode::TlsRequired {
                return Err(DialError::Refused(format!(
                    "{remote} does not offer STARTTLS, and security_mode is tls-required"
                )));
            }
            if features.starttls_required {
                return Err(DialError::Refused(format!(
                    "{remote} requires TLS, and security_mode is no-tls"
                )));
            }
        }
        shared
            .policy
            .trusts(&shared.tls.load(), conn.tls.as_ref(), remote)
            .map_err(|e| DialError::Refused(format!("{remote} not trusted: {e}")))?;
        if shared.sasl_external && conn.tls.is_some() && features.sasl_external {
            if let Some((id, sm)) = sasl_external(conn, local, remote).await? {
                return Ok((id, Some(Mechanism::SaslExternal), sm));
            }
        }
        return Ok((id, None, features.sm));
    }
}

/// SASL EXTERNAL as the initiating server (XEP-0178 §3): on success the stream restarts and
/// its new id is returned, with whether its new features offer stream management; on
/// failure, `None` and dialback is next.
async fn sasl_external(
    conn: &mut XmlConn,
    local: &str,
    remote: &str,
) -> Result<Option<(String, bool)>, DialError> {
    let authzid = base64::engine::general_purpose::STANDARD.encode(local);
    conn.send(&format!(
        "<auth xmlns='{SASL_NS}' mechanism='EXTERNAL'>{authzid}</auth>"
    ))
    .await?;
    let answer = conn.next_stanza().await?;
    if answer.name != "success" {
        tracing::info!(%local, %remote, "SASL EXTERNAL refused; trying dialback");
        return Ok(None);
    }
    conn.restart();
    conn.send(&header(local, remote)).await?;
    let h = match conn.next().await? {
        Frame::Open(h) => h,
        _ => return Err(DialError::Refused("no stream header after SASL".into())),
    };
    let sm = if h.version.as_deref() == Some("1.0") {
        Features::parse(&conn.next_stanza().await?).sm
    } else {
        false
    };
    Ok(Some((h.id.unwrap_or_default(), sm)))
}

/// Dialback as the originating server: send our key for (`local`, `remote`) and wait for the
/// receiving server's verdict.
pub async fn authenticate(
    shared: &S2sShared,
    dialed: &mut Dialed,
    local: &str,
    remote: &str,
) -> Result<(), DialError> {
    let key = shared.dialback.generate(remote, local, &dialed.stream_id);
    dialed
        .conn
        .send(&format!(
            "<db:result from='{local}' to='{remote}'>{key}</db:result>"
        ))
        .await?;
    let wait = async {
        loop {
            let s = dialed.conn.next_stanza().await?;
            if s.name.ends_with(":error") {
                return Err(DialError::Refused(format!(
                    "stream error from {remote}: {}",
                    s.text()
                )));
            }
            if !is_dialback(&s, "result")
                || s.from.as_deref() != Some(remote)
                || s.to.as_deref() != Some(local)
            {
                continue;
            }
            return match s.type_.as_deref() {
                Some("valid") => Ok(()),
                Some("invalid") => Err(DialError::Refused(format!(
                    "{remote} did not accept our dialback key"
                ))),
                _ => Err(DialError::Refused(format!(
                    "{remote} answered dialback with an error: {}",
                    s.text()
                ))),
            };
        }
    };
    tokio::time::timeout(shared.negotiate_timeout, wait)
        .await
        .map_err(|_| DialError::Timeout(format!("dialback with {remote}")))?
}
