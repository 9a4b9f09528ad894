//! Server-to-server streams as operators see them: `GET /api/connections`, the stream
//! counts of `GET /api/status`, and the direction and authentication labels of events and
//! metrics.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{required, time};

/// Which side opened a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A remote server opened it to us.
    Incoming,
    /// We opened it to a remote server.
    Outgoing,
}

impl Direction {
    /// The name in the API, events and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a domain pair was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    /// Server dialback, XEP-0220.
    #[serde(rename = "dialback")]
    Dialback,
    /// SASL EXTERNAL with a certificate, XEP-0178.
    #[serde(rename = "SASL EXTERNAL")]
    SaslExternal,
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mechanism::Dialback => "dialback",
            Mechanism::SaslExternal => "SASL EXTERNAL",
        })
    }
}

impl Mechanism {
    /// The name in metrics labels.
    pub fn label(self) -> &'static str {
        match self {
            Mechanism::Dialback => "dialback",
            Mechanism::SaslExternal => "sasl_external",
        }
    }
}

/// A (local, remote) domain pair authenticated on a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthedPair {
    /// Our domain (a tenant's domain or chat node alias).
    pub local: String,
    /// The remote server's domain.
    pub remote: String,
    #[serde(rename = "auth")]
    pub mechanism: Mechanism,
}

/// One live s2s stream: built by the stream registry (`s2s::StreamEntry::row`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRow {
    /// Unique in the node's process; `xfed close-connection` takes it.
    pub id: u64,
    pub peer_ip: IpAddr,
    pub peer_port: u16,
    pub direction: Direction,
    /// Domain pairs authenticated on the stream, in the order they were.
    pub pairs: Vec<AuthedPair>,
    /// `TLSv1_3`, ...; `null` without TLS.
    #[serde(deserialize_with = "required")]
    pub tls_version: Option<String>,
    /// The cipher suite; `null` without TLS.
    #[serde(deserialize_with = "required")]
    pub tls_cipher: Option<String>,
    #[serde(with = "time::rfc3339")]
    pub connected_since: DateTime<Utc>,
    /// Seconds since a stanza last went either way (or since the stream started).
    pub idle_secs: u64,
    pub stanzas_in: u64,
    pub stanzas_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Written to the stream's queue and not yet to its socket.
    pub queued_bytes: usize,
    /// Stream management (XEP-0198) is on, in either direction.
    pub stream_management: bool,
    /// Stanzas written and not yet confirmed by the peer.
    pub unacked: usize,
}

/// The last failure of a domain pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRow {
    pub local: String,
    pub remote: String,
    /// The stanza error condition stanzas to that domain were returned with.
    pub condition: String,
    pub reason: String,
    #[serde(with = "time::rfc3339")]
    pub at: DateTime<Utc>,
}

/// `GET /api/connections`: every stream (of a tenant, or carrying a domain), by id, and the
/// last failure of every domain pair that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connections {
    pub connections: Vec<StreamRow>,
    pub failures: Vec<FailureRow>,
    /// The tenants' component links up on this node (absent from older nodes: none).
    #[serde(default)]
    pub links: Vec<ComponentRow>,
}

/// A tenant's component link, listed beside the s2s streams (in a cluster, under the node
/// that holds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRow {
    pub tenant: String,
    pub id: u64,
    pub peer: std::net::SocketAddr,
    /// Stanzas written to it since it came up.
    pub stanzas_out: u64,
    /// Written to its queue, not yet to its socket.
    pub queued_bytes: usize,
}

/// `POST /api/connections/{id}/close`: the stream told to close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub closed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{renamed, round_trip, without};

    fn row() -> StreamRow {
        StreamRow {
            id: 7,
            peer_ip: "2001:db8::1".parse().unwrap(),
            peer_port: 5269,
            direction: Direction::Outgoing,
            pairs: vec![AuthedPair {
                local: "acme.example".into(),
                remote: "globex.example".into(),
                mechanism: Mechanism::SaslExternal,
            }],
            tls_version: Some("TLSv1_3".into()),
            tls_cipher: None,
            connected_since: DateTime::parse_from_rfc3339("2026-12-01T10:00:00.5Z")
                .unwrap()
                .with_timezone(&Utc),
            idle_secs: 3,
            stanzas_in: 1,
            stanzas_out: 2,
            bytes_in: 10,
            bytes_out: 20,
            queued_bytes: 0,
            stream_management: true,
            unacked: 1,
        }
    }

    fn connections() -> Connections {
        Connections {
            connections: vec![row()],
            failures: vec![FailureRow {
                local: "acme.example".into(),
                remote: "down.example".into(),
                condition: "remote-server-not-found".into(),
                reason: "no such domain".into(),
                at: DateTime::parse_from_rfc3339("2026-12-01T10:00:01Z")
                    .unwrap()
                    .with_timezone(&Utc),
            }],
            links: vec![ComponentRow {
                tenant: "acme".into(),
                id: 4,
                peer: "10.0.0.7:40001".parse().unwrap(),
                stanzas_out: 12,
                queued_bytes: 0,
            }],
        }
    }

    #[test]
    fn connections_round_trip_with_the_keys_the_api_has_always_served() {
        let c = connections();
        assert_eq!(round_trip(&c), c);
        let json = serde_json::to_value(&c).unwrap();
        let r = &json["connections"][0];
        assert_eq!(r["direction"], "outgoing");
        assert_eq!(r["peer_ip"], "2001:db8::1");
        assert_eq!(r["pairs"][0]["auth"], "SASL EXTERNAL");
        assert_eq!(r["tls_cipher"], serde_json::Value::Null);
        assert_eq!(r["connected_since"], "2026-12-01T10:00:00.500+00:00");
        assert_eq!(json["failures"][0]["at"], "2026-12-01T10:00:01+00:00");
        assert_eq!(json["links"][0]["peer"], "10.0.0.7:40001");
        let mut older = json.clone();
        older.as_object_mut().unwrap().remove("links");
        let read: Connections = serde_json::from_value(older).unwrap();
        assert!(read.links.is_empty(), "an older node's answer has no links");
        assert_eq!(round_trip(&Closed { closed: 7 }), Closed { closed: 7 });
    }

    #[test]
    fn a_missing_or_renamed_stream_key_is_an_error() {
        let c = connections();
        assert!(without(&c, "/connections/0", "idle_secs").contains("idle_secs"));
        // Nullable, yet required.
        assert!(without(&c, "/connections/0", "tls_cipher").contains("tls_cipher"));
        assert!(renamed(&c, "/connections/0/pairs/0", "auth", "mechanism").contains("auth"));
        assert!(without(&c, "/failures/0", "at").contains("at"));
    }

    #[test]
    fn direction_and_mechanism_keep_their_names() {
        assert_eq!(Direction::Incoming.to_string(), "incoming");
        assert_eq!(
            serde_json::to_value(Direction::Outgoing).unwrap(),
            "outgoing"
        );
        assert_eq!(Mechanism::SaslExternal.to_string(), "SASL EXTERNAL");
        assert_eq!(Mechanism::SaslExternal.label(), "sasl_external");
        assert!(serde_json::from_value::<Direction>("out".into()).is_err());
    }
}
