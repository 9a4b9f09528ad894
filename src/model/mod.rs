//! The admin API's vocabulary: the serde types it answers with and the query parameters it
//! takes, shared by the server ([`crate::admin`]) and the `xfed` subcommands that read it
//! ([`crate::admin::client`] and its tables), and built in part by the layers that
//! own the facts (an s2s stream describes itself as a [`StreamRow`]).
//!
//! It sits at the bottom of the crate and uses only serde, serde_json (for the free-form
//! fields of an event) and chrono, so any layer may build these types.
//!
//! Every type serializes to the keys the API has always served. Reading is strict where it
//! matters: a key that is missing (or renamed on one side only) is an error, not a blank
//! cell — that holds for nullable fields too ([`required`]), which serde would otherwise take
//! as `null`. Keys the reader does not know are ignored, so a newer node can add one without
//! breaking an older `xfed`. A key that is absent by design (`restarted` before anything was
//! applied, `problems` of a refusal that is not about the configuration) says so on its field.
//!
//! - [`stream`]: s2s streams, their direction and domain pairs, failures per domain pair;
//! - [`status`]: `GET /api/status`;
//! - [`cluster`]: what a node of a cluster publishes in etcd, and the cluster in `status`;
//! - [`change`]: the outcomes of reloads and restarts, and refusals;
//! - [`drain`]: a node taken out of service;
//! - [`events`]: the event log and the log level;
//! - [`query`]: the query strings the API takes;
//! - [`rollout`]: a cluster's rolling restart;
//! - [`ask`]: what nodes ask each other, and what several nodes answer one question;
//! - [`time`]: how times are written.

pub mod ask;
pub mod change;
pub mod cluster;
pub mod drain;
pub mod events;
pub mod query;
pub mod rollout;
pub mod status;
pub mod stream;
pub mod time;

pub use change::{ChangeRow, Refusal, ReloadOutcome, RestartOutcome, RestartRow};
pub use cluster::ClusterView;
pub use drain::{DrainOutcome, DrainQuery};
pub use events::{EventRecord, Events, LogLevel};
pub use query::{ConnectionsQuery, EventsQuery, RestartQuery};
pub use status::{
    FederationState, LastRun, LinkRow, NodeFederation, Reach, RestartStatus, StaleInstance, Status,
    TenantStatus, VersionState,
};
pub use stream::{
    AuthedPair, Closed, ComponentRow, Connections, Direction, FailureRow, Mechanism, StreamRow,
};

use serde::{Deserialize, Deserializer};

/// Reads a nullable field that must be present: `null` is `None`, a missing key is an
/// error. (Without it serde reads a missing `Option` field as `None`, so a key renamed on
/// one side would show as "none" instead of failing.)
pub fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Round trips for the tests of every type family.

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    /// `value` written as JSON and read back.
    pub fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
        let text = serde_json::to_string(value).expect("serializes");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// `value` as JSON with `key` taken out of the object at `path` (a JSON pointer), read
    /// back: the error's message.
    pub fn without<T: Serialize + DeserializeOwned>(value: &T, path: &str, key: &str) -> String {
        let mut json = serde_json::to_value(value).expect("serializes");
        let object = json
            .pointer_mut(path)
            .and_then(|v| v.as_object_mut())
            .unwrap_or_else(|| panic!("no object at {path}"));
        assert!(object.remove(key).is_some(), "no key {key} at {path}");
        match serde_json::from_value::<T>(json) {
            Ok(_) => panic!("read without {path}/{key}"),
            Err(e) => e.to_string(),
        }
    }

    /// `value` as JSON with `key` at `path` renamed to `to`, read back: the error's message.
    pub fn renamed<T: Serialize + DeserializeOwned>(
        value: &T,
        path: &str,
        key: &str,
        to: &str,
    ) -> String {
        let mut json = serde_json::to_value(value).expect("serializes");
        let object = json
            .pointer_mut(path)
            .and_then(|v| v.as_object_mut())
            .unwrap_or_else(|| panic!("no object at {path}"));
        let v = object
            .remove(key)
            .unwrap_or_else(|| panic!("no key {key} at {path}"));
        object.insert(to.to_owned(), v);
        match serde_json::from_value::<T>(json) {
            Ok(_) => panic!("read with {path}/{key} renamed"),
            Err(e) => e.to_string(),
        }
    }
}
