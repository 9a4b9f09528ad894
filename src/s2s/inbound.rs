//! Streams peers open to us: the stream header ('to' must be hosted), features, STARTTLS,
//! SASL EXTERNAL; then the established stream's actor takes over (dialback, verify,
//! stanzas).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use quick_xml::escape::escape;
use tokio::net::TcpStream;

use super::auth::Mechanism;
use super::features::{self, SASL_NS, TLS_NS};
use super::io::{IoError, XmlConn};
use super::outbound::tune;
use super::stream::{Role, S2sStream};
use super::{Direction, FailureReport, S2sShared};
use crate::admission::Permit;
use crate::config::{domain_key, SecurityMode};
use crate::xmpp::stanza::stream_error;
use crate::xmpp::{ns, Frame, ReadError, Stanza, StreamCondition as C, StreamError};

/// Negotiates a new inbound connection, then starts its stream actor on this worker. The
/// admission `permit` stays with the connection until a domain pair authenticates on it.
pub async fn accept(tcp: TcpStream, peer: SocketAddr, shared: Arc<S2sShared>, permit: Permit) {
    tracing::debug!(%peer, "inbound s2s connection");
    tune(&tcp, shared.dead_peer_timeout);
    let deadline = tokio::time::Instant::now() + shared.negotiate_timeout;
    let direct_tls = starts_with_tls(&tcp, deadline).await;
    let mut conn = XmlConn::new(Box::new(tcp), peer, shared.reader_limits());
    let mut header_sent = false;
    let mut names = Names::default();
    let result = tokio::time::timeout_at(
        deadline,
        negotiate(&shared, &mut conn, direct_tls, &mut header_sent, &mut names),
    )
    .await;
    let error = match result {
        Ok(Ok(Some(done))) => {
            let tls = conn.tls.clone();
            let mut role = Role::inbound(done.stream_id, done.features_sent);
            if let Role::Inbound {
                authed, admission, ..
            } = &mut role
            {
                match done.sasl {
                    Some(pair) => {
                        authed.insert(pair);
                    }
                    None => *admission = Some(permit),
                }
            }
            S2sStream::start(shared.clone(), conn, role, tls, done.first, None);
            return;
        }
        Ok(Ok(None)) => return conn.close_with(crate::xmpp::stanza::STREAM_CLOSE).await,
        Ok(Err(e)) => e,
        Err(_) => StreamError::new(
            C::ConnectionTimeout,
            format!(
                "stream not negotiated within {}s",
                shared.negotiate_timeout.as_secs()
            ),
        ),
    };
    tracing::info!(%peer, condition = %error.condition, reason = %error.text, "inbound s2s stream refused");
    shared.report_failure(FailureReport {
        direction: Direction::Incoming,
        peer: Some(peer),
        local: names.local.as_deref(),
        remote: names.remote.as_deref(),
        condition: error.condition.as_str(),
        reason: &error.text,
    });
    let mut tail = String::new();
    if !header_sent {
        tail.push_str(&header(None, None, &new_id()));
    }
    tail.push_str(&stream_error(&error));
    conn.close_with(&tail).await;
}

/// The domains a stream header named, once known: for the event log when it fails.
#[derive(Default)]
struct Names {
    local: Option<String>,
    remote: Option<String>,
}

/// Whether the peer opened with a TLS handshake (XEP-0368 direct TLS) rather than XML: a
/// TLS record starts with the handshake content type, 22, where XML starts with `<`,
/// whitespace or a byte order mark.
async fn starts_with_tls(tcp: &TcpStream, deadline: tokio::time::Instant) -> bool {
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await,
        Ok(Ok(1))
    ) && first[0] == TLS_HANDSHAKE_RECORD
}

/// What negotiation hands to the stream actor.
struct Negotiated {
    /// Our id for the stream: dialback keys from the peer cover it.
    stream_id: String,
    /// Whether we sent stream features (so the peer knows we take dialback errors).
    features_sent: bool,
    /// The first element after negotiation (none after SASL: the peer may stay quiet).
    first: Option<Stanza>,
    /// The (local, remote) pair SASL EXTERNAL authenticated, if it did.
    sasl: Option<(String, String)>,
}

async fn negotiate(
    shared: &S2sShared,
    conn: &mut XmlConn,
    direct_tls: bool,
    header_sent: &mut bool,
    names: &mut Names,
) -> Result<Option<Negotiated>, StreamError> {
    let mode = shared.policy.security_mode;
    let router = shared
        .router
        .upgrade()
        .ok_or_else(|| StreamError::new(C::SystemShutdown, "the node is shutting down"))?;
    if direct_tls {
        if mode == SecurityMode::NoTls {
            return Err(StreamError::new(
                C::PolicyViolation,
                "direct TLS, but security_mode is no-tls",
            ));
        }
        // XEP-0368: TLS first, then the same stream negotiation as after STARTTLS (SNI
        // picks the tenant's certificate, the same checks of the peer's).
        conn.tls_accept(
            shared.tls.load().server_direct.clone(),
            shared.negotiate_timeout,
        )
        .await
        .map_err(|e| StreamError::new(C::UndefinedCondition, e.to_string()))?;
        tracing::info!(peer = %conn.peer, "inbound s2s stream over direct TLS (XEP-0368)");
    }
    let mut sasl = None;
    'stream: loop {
        let h = match next(conn).await? {
            Some(Frame::Open(h)) => h,
            Some(_) => {
                return Err(StreamError::new(
                    C::NotWellFormed,
                    "expected a stream header",
                ))
            }
            None => return Ok(None),
        };
        if h.default_ns.as_deref() != Some(ns::SERVER) {
            return Err(StreamError::new(
                C::InvalidNamespace,
                format!("this port speaks {} (server-to-server)", ns::SERVER),
            ));
        }
        let to =
            h.to.as_deref()
                .and_then(|t| jid::DomainPart::new(t).ok())
                .map(|d| domain_key(d.as_str()).into_owned())
                .filter(|d| router.is_hosted(d))
                .ok_or_else(|| {
                    let to = h.to.as_deref().unwrap_or("");
                    StreamError::new(
                        C::HostUnknown,
                        format!("{to:?} is not a domain hosted here"),
                    )
                })?;
        let id = new_id();
        let peer_from = h
            .from
            .as_deref()
            .filter(|f| jid::DomainPart::new(f).is_ok());
        names.local = Some(to.clone());
        names.remote = peer_from.map(|f| domain_key(f).into_owned());
        conn.send(&header(Some(&to), peer_from, &id))
            .await
            .map_err(io_error)?;
        *header_sent = true;
        let features_sent = h.version.as_deref() == Some("1.0");
        if features_sent {
            let offer_sasl = shared.sasl_external
                && sasl.is_none()
                && conn
                    .tls
                    .as_ref()
                    .is_some_and(|t| shared.tls.load().judge(&t.peer_chain, "").chain.is_ok());
            let offer = features::offer(
                conn.tls.is_some(),
                mode != SecurityMode::NoTls,
                mode == SecurityMode::TlsRequired,
                offer_sasl,
                shared.stream_management,
            );
            conn.send(&offer).await.map_err(io_error)?;
        }
        if sasl.is_some() {
            return Ok(Some(Negotiated {
                stream_id: id,
                features_sent,
                first: None,
                sasl,
            }));
        }
        loop {
            let first = match next(conn).await? {
                Some(Frame::Stanza(s)) => s,
                Some(Frame::Open(_)) => {
                    return Err(StreamError::new(C::NotWellFormed, "second stream header"))
                }
                Some(Frame::Close) | None => return Ok(None),
            };
            if first.name == "starttls" && first.xmlns.as_deref() == Some(TLS_NS) {
                if conn.tls.is_some() || mode == SecurityMode::NoTls {
                    let _ = conn.send(&format!("<failure xmlns='{TLS_NS}'/>")).await;
                    return Ok(None);
                }
                conn.send(&format!("<proceed xmlns='{TLS_NS}'/>"))
                    .await
                    .map_err(io_error)?;
                conn.tls_accept(shared.tls.load().server.clone(), shared.negotiate_timeout)
                    .await
                    .map_err(|e| StreamError::new(C::UndefinedCondition, e.to_string()))?;
                *header_sent = false;
                continue 'stream;
            }
            if mode == SecurityMode::TlsRequired && conn.tls.is_none() {
                return Err(StreamError::new(
                    C::PolicyViolation,
                    "TLS is required: <starttls/> must come first",
                ));
            }
            if first.name == "auth" && first.xmlns.as_deref() == Some(SASL_NS) {
                match sasl_external(shared, conn, &first, &to, h.from.as_deref()) {
                    Ok(pair) => {
                        conn.send(&format!("<success xmlns='{SASL_NS}'/>"))
                            .await
                            .map_err(io_error)?;
                        tracing::info!(peer = %conn.peer, local = %pair.0, remote = %pair.1, mechanism = %Mechanism::SaslExternal, "inbound s2s pair authenticated");
                        conn.restart();
                        *header_sent = false;
                        sasl = Some(pair);
                        continue 'stream;
                    }
                    Err(reason) => {
                        tracing::info!(peer = %conn.peer, %reason, "SASL EXTERNAL refused");
                        shared.report_failure(FailureReport {
                            direction: Direction::Incoming,
                            peer: Some(conn.peer),
                            local: Some(&to),
                            remote: h.from.as_deref(),
                            condition: "not-authorized",
                            reason: &format!("SASL EXTERNAL refused: {reason}"),
                        });
                        conn.send(&format!(
                            "<failure xmlns='{SASL_NS}'><not-authorized/><text>{}</text></failure>",
                            escape(&reason)
                        ))
                        .await
                        .map_err(io_error)?;
                        continue;
                    }
                }
            }
            return Ok(Some(Negotiated {
                stream_id: id,
                features_sent,
                first: Some(first),
                sasl: None,
            }));
        }
    }
}

/// Checks a SASL EXTERNAL `<auth/>` (XEP-0178 §3): the authorization identity (or, when it
/// is empty, the stream's 'from') must be proven by the certificate. Returns (local, remote).
fn sasl_external(
    shared: &S2sShared,
    conn: &XmlConn,
    auth: &Stanza,
    local: &str,
    header_from: Option<&str>,
) -> Result<(String, String), String> {
    if !shared.sasl_external {
        return Err("SASL EXTERNAL is not enabled here".into());
    }
    if auth.attr("mechanism").as_deref() != Some("EXTERNAL") {
        return Err("only the EXTERNAL mechanism is offered".into());
    }
    let text = auth.text();
    let text = text.trim();
    let claimed = if text.is_empty() || text == "=" {
        header_from.unwrap_or_default().to_owned()
    } else {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "the authorization identity is not base64".to_owned())?;
        String::from_utf8(bytes)
            .map_err(|_| "the authorization identity is not UTF-8".to_owned())?
    };
    let remote = jid::DomainPart::new(&claimed)
        .map(|d| domain_key(d.as_str()).into_owned())
        .map_err(|_| format!("{claimed:?} is not a domain"))?;
    shared
        .policy
        .certificate_proves(&shared.tls.load(), conn.tls.as_ref(), &remote)?;
    Ok((local.to_owned(), remote))
}

async fn next(conn: &mut XmlConn) -> Result<Option<Frame>, StreamError> {
    match conn.next().await {
        Ok(f) => Ok(Some(f)),
        Err(IoError::Read(ReadError::Stream(e))) => Err(e),
        Err(_) => Ok(None),
    }
}

fn io_error(e: IoError) -> StreamError {
    StreamError::new(C::UndefinedCondition, e.to_string())
}

fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Our header answering a peer's stream.
fn header(from: Option<&str>, to: Option<&str>, id: &str) -> String {
    let mut h = format!(
        "<?xml version='1.0'?><stream:stream xmlns:stream='{}' xmlns='{}' xmlns:db='{}' id='{id}' version='1.0'",
        ns::STREAMS,
        ns::SERVER,
        ns::DIALBACK
    );
    for (name, value) in [("from", from), ("to", to)] {
        if let Some(v) = value {
            h.push_str(&format!(" {name}='{}'", escape(v)));
        }
    }
    h.push('>');
    h
}
