//! The one file that speaks to etcd (`etcd_client`): the handful of operations the cluster
//! needs, in its own words, with typed errors. Everything above it sees keys, values,
//! revisions and leases, never a gRPC type.
//!
//! Every request has a deadline ([`REQUEST_TIMEOUT`]): a node cut off from etcd must learn it
//! in seconds, not when TCP gives up.

use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, WatchOptions, WatchStream,
};

use crate::config::EtcdTls;

/// How long one request to etcd may take before the node counts etcd as unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long establishing a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why etcd did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No answer: every endpoint down, refused, or too slow.
    #[error("etcd unreachable ({0})")]
    Unreachable(String),
    /// etcd answered with an error (permission denied, request too large...).
    #[error("etcd refused: {0}")]
    Refused(String),
    /// The lease is gone: it expired while etcd could not be reached, or was revoked.
    #[error("lease {0:x} expired")]
    LeaseExpired(i64),
}

impl From<etcd_client::Error> for EtcdError {
    fn from(e: etcd_client::Error) -> Self {
        use etcd_client::Error as E;
        match e {
            E::GRpcStatus(s) => match i32::from(s.code()) {
                grpc::CANCELLED | grpc::UNKNOWN | grpc::DEADLINE_EXCEEDED | grpc::UNAVAILABLE => {
                    let causes = std::error::Error::source(&s).map(with_causes);
                    EtcdError::Unreachable(match causes {
                        Some(c) if !c.contains(s.message()) => format!("{}: {c}", s.message()),
                        Some(c) => c,
                        None => s.message().to_owned(),
                    })
                }
                _ => EtcdError::Refused(s.message().to_owned()),
            },
            E::TransportError(t) => EtcdError::Unreachable(with_causes(&t)),
            E::IoError(io) => EtcdError::Unreachable(io.to_string()),
            other => EtcdError::Refused(other.to_string()),
        }
    }
}

/// `e` and what caused it, outermost first: a transport error says only "transport error",
/// its causes say which (refused, a certificate not trusted, a handshake etcd cut off).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// The gRPC status codes that mean "no answer" rather than "no" (gRPC's `code.proto`).
mod grpc {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const UNAVAILABLE: i32 = 14;
}

/// One key as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision of its last change.
    pub mod_revision: i64,
    /// The lease it lives under, 0 for none.
    pub lease: i64,
}

/// Keys under a prefix, all read at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The store's revision when read.
    pub revision: i64,
    pub kvs: Vec<Kv>,
}

/// A guarded write: applied whole if `key`'s last change is at `mod_revision` (0: the key
/// is absent), else nothing is written.
#[derive(Debug, Clone, Default)]
pub struct Guarded {
    pub key: String,
    pub mod_revision: i64,
    pub puts: Vec<(String, Vec<u8>)>,
    pub deletes: Vec<String>,
}

/// What a guarded write came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Applied, at this revision.
    At(i64),
    /// Not applied: the guard key changed; its last change is at this revision (0: absent).
    Moved(i64),
}

/// A connection to an etcd cluster (cheap to clone; requests share one channel).
#[derive(Clone)]
pub struct Etcd {
    client: Client,
}

impl Etcd {
    /// Connects lazily to `endpoints` (`http://host:port`, or `https://host:port` with
    /// `tls`); `user` authenticates when set.
    pub async fn connect(
        endpoints: &[String],
        user: Option<(String, String)>,
        tls: Option<&EtcdTls>,
    ) -> Result<Etcd, EtcdError> {
        let mut options = ConnectOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), REQUEST_TIMEOUT);
        if let Some((name, password)) = user {
            options = options.with_user(name, password);
        }
        if let Some(tls) = tls {
            // Only the configured CA: etcd's certificate is not one the public roots sign.
            let mut config =
                TlsOptions::new().ca_certificate(Certificate::from_pem(tls.ca.bytes()));
            if let Some((cert, key)) = &tls.client {
                config = config.identity(Identity::from_pem(cert.bytes(), key.bytes()));
            }
            options = options.with_tls(config);
        }
        let client = Client::connect(endpoints, Some(options)).await?;
        Ok(Etcd { client })
    }

    /// Every key under `prefix`, in one read (so at one revision).
    pub async fn range(&self, prefix: &str) -> Result<Range, EtcdError> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let kvs = resp.kvs().iter().map(kv_of).collect::<Result<_, _>>()?;
        Ok(Range { revision, kvs })
    }

    /// One key, if present.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let mut kv = self.client.kv_client();
        let resp = kv.get(key, None).await?;
        resp.kvs().first().map(kv_of).transpose()
    }

    /// Writes `key` (under `lease` when not 0).
    pub async fn put(&self, key: &str, value: Vec<u8>, lease: i64) -> Result<(), EtcdError> {
        let mut kv = self.client.kv_client();
        let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        kv.put(key, value, options).await?;
        Ok(())
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        let mut kv = self.client.kv_client();
        kv.delete(key, None).await?;
        Ok(())
    }

    /// Creates `key` under `lease` if it is absent: `Ok(None)` when created, else the key
    /// as it is (who holds it).
    pub async fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<Option<Kv>, EtcdError> {
        let mut kv = self.client.kv_client();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = kv.txn(txn).await?;
        if resp.succeeded() {
            return Ok(None);
        }
        for r in resp.op_responses() {
            if let etcd_client::TxnOpResponse::Get(g) = r {
                if let Some(kv) = g.kvs().first() {
                    return Ok(Some(kv_of(kv)?));
                }
            }
        }
        // Deleted between the compare and the get cannot happen inside one transaction;
        // an empty answer would be etcd's bug. Say it was held by nobody known.
        Err(EtcdError::Refused(format!(
            "{key}: held, but etcd did not show by whom"
        )))
    }

    /// Applies `write` in one transaction if its guard holds.
    pub async fn guarded(&self, write: Guarded) -> Result<Written, EtcdError> {
        let mut kv = self.client.kv_client();
        let mut ops: Vec<TxnOp> = write
            .deletes
            .iter()
            .map(|k| TxnOp::delete(k.as_str(), None))
            .collect();
        ops.extend(write.puts.into_iter().map(|(k, v)| TxnOp::put(k, v, None)));
        let txn = Txn::new()
            .when([Compare::mod_revision(
                write.key.as_str(),
                CompareOp::Equal,
                write.mod_revision,
            )])
            .and_then(ops)
            .or_else([TxnOp::get(write.key.as_str(), None)]);
        let resp = kv.txn(txn).await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        if resp.succeeded() {
            return Ok(Written::At(revision));
        }
        let now = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                etcd_client::TxnOpResponse::Get(g) => {
                    Some(g.kvs().first().map_or(0, |kv| kv.mod_revision()))
                }
                _ => None,
            })
            .unwrap_or(0);
        Ok(Written::Moved(now))
    }

    /// A new lease of `ttl` seconds.
    pub async fn grant(&self, ttl: u64) -> Result<i64, EtcdError> {
        let mut lease = self.client.lease_client();
        let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
        Ok(lease.grant(ttl, None).await?.id())
    }

    /// Renews `lease` once: its time to live in seconds now.
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, EtcdError> {
        let mut client = self.client.lease_client();
        // The first answer comes with the stream; an expired lease is an error there.
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.keep_alive(lease)).await;
        match answer {
            Err(_) => Err(EtcdError::Unreachable("lease renewal timed out".into())),
            Ok(Ok(_)) => Ok(1),
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(_))) => {
                Err(EtcdError::LeaseExpired(lease))
            }
            Ok(Err(e)) => Err(e.into()),
        }
    }

    /// Gives `lease` back: its keys go at once.
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        let mut client = self.client.lease_client();
        client.revoke(lease).await?;
        Ok(())
    }

    /// Campaigns in election `name` with `value` under `lease` (etcd's election API): the
    /// key that holds the leadership once elected. Waits at most [`REQUEST_TIMEOUT`];
    /// campaigning again with the same lease keeps the candidate's place in line.
    pub async fn campaign(&self, name: &str, value: &str, lease: i64) -> Result<String, EtcdError> {
        let mut client = self.client.election_client();
        let resp = client.campaign(name, value, lease).await?;
        let key = resp
            .leader()
            .map(|l| String::from_utf8_lossy(l.key()).into_owned())
            .ok_or_else(|| EtcdError::Refused("etcd elected no key".into()))?;
        Ok(key)
    }

    /// The value of election `name`'s leader, if one is elected.
    pub async fn leader(&self, name: &str) -> Result<Option<String>, EtcdError> {
        let mut client = self.client.election_client();
        match client.leader(name).await {
            Ok(resp) => Ok(resp
                .kv()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())),
            // etcd answers "election: no leader" as an error.
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("no leader") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Watches `key` from revision `from`: every change after it, in order.
    pub async fn watch(&self, key: &str, from: i64) -> Result<Watch, EtcdError> {
        let mut client = self.client.watch_client();
        let stream = client
            .watch(key, Some(WatchOptions::new().with_start_revision(from)))
            .await?;
        Ok(Watch { stream })
    }
}

/// Changes to one key, as they happen.
pub struct Watch {
    stream: WatchStream,
}

/// One batch of changes seen by a [`Watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The key was written (at this revision) or deleted (`None`).
    Changed(Option<i64>),
    /// The revisions asked for were compacted away: read afresh.
    Compacted,
    /// Nothing to say (the watch was set up, a progress report).
    Nothing,
}

impl Watch {
    /// The next batch; `Ok(None)` when etcd closed the watch.
    pub async fn next(&mut self) -> Result<Option<Seen>, EtcdError> {
        let Some(resp) = self.stream.message().await? else {
            return Ok(None);
        };
        if resp.compact_revision() != 0 {
            return Ok(Some(Seen::Compacted));
        }
        if resp.canceled() {
            return Ok(None);
        }
        let last = resp.events().last().map(|e| match e.event_type() {
            EventType::Put => e.kv().map(|kv| kv.mod_revision()),
            EventType::Delete => None,
        });
        Ok(Some(last.map_or(Seen::Nothing, Seen::Changed)))
    }
}

fn kv_of(kv: &etcd_client::KeyValue) -> Result<Kv, EtcdError> {
    Ok(Kv {
        key: kv
            .key_str()
            .map_err(|e| EtcdError::Refused(format!("a key that is not UTF-8: {e}")))?
            .to_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    })
}
