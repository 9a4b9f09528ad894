//! What a stream is for (its [`Role`]: we opened it, or the peer did) and whom an outbound
//! stream reports to (its [`Owner`]).

use std::collections::HashSet;
use std::sync::Weak;

use super::S2sStream;
use crate::admission::Permit;
use crate::s2s::auth::Mechanism;
use crate::xmpp::{Outbox, Stanza};

/// Whoever opened an outbound stream (the federation manager), as the stream sees it. The
/// stream names no concrete owner, so the manager and its streams do not import each other.
pub trait Owner: Send + Sync {
    /// `local` → `remote` is authenticated on `stream`: its stanzas go into `outbox`;
    /// `joinable` is the stream's actor when more local domains may join it.
    fn ready(
        &self,
        local: &str,
        remote: &str,
        stream: u64,
        outbox: Outbox,
        joinable: Option<actix::Addr<S2sStream>>,
    );
    /// `local` could not join the stream to `remote`: it needs a stream of its own.
    fn multiplex_failed(&self, local: &str, remote: &str);
    /// The stream `stream` that carried `local` → `remote` ended.
    fn stream_closed(&self, local: &str, remote: &str, stream: u64);
    /// Stanzas the stream cannot vouch for, to go out again ahead of anything newer.
    fn hand_back(&self, stanzas: Vec<Stanza>);
}

/// What the stream is for.
pub enum Role {
    /// We opened it to deliver stanzas from `local` to `remote`.
    Outbound {
        local: String,
        remote: String,
        mechanism: Mechanism,
        /// Told when pairs become ready or fail to join, when the stream ends (so the next
        /// stanza opens a new one), and handed what the peer did not confirm.
        owner: Weak<dyn Owner>,
        /// The id the receiving server gave the stream: dialback keys for more local
        /// domains on it cover this id.
        stream_id: String,
        /// Further local domains authenticated on the stream (multiplexing).
        extra: Vec<String>,
        /// Local domains whose dialback result on this stream awaits the verdict.
        pending: HashSet<String>,
    },
    /// The peer opened it.
    Inbound {
        /// Our id for it: the dialback keys the peer sends cover it.
        stream_id: String,
        /// (local, remote) pairs authenticated on this stream.
        authed: HashSet<(String, String)>,
        /// Pairs whose key is being verified with the authoritative server.
        pending: HashSet<(String, String)>,
        /// We offered dialback errors (XEP-0220 §2.4, in our stream features), so a request
        /// we cannot take is answered with `<db:result type='error'/>`, not a stream error.
        dialback_errors: bool,
        /// The stream's place among the listener's unauthenticated connections, given back
        /// when its first pair authenticates.
        admission: Option<Permit>,
    },
}

impl Role {
    pub fn inbound(stream_id: String, dialback_errors: bool) -> Self {
        Role::Inbound {
            stream_id,
            authed: HashSet::new(),
            pending: HashSet::new(),
            dialback_errors,
            admission: None,
        }
    }
}
