//! The event log as the API serves it (`GET /api/events`), and the federation log level
//! (`GET /api/log-level`, `POST /api/log-level/{level}`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{required, time};

/// `GET /api/events`: oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Events {
    pub events: Vec<EventRecord>,
}

/// One event: what every event has, and its own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its number in the node's log, from 1.
    pub seq: u64,
    #[serde(with = "time::micros")]
    pub time: DateTime<Utc>,
    /// `XMPPFederation`.
    pub module: String,
    /// What happened: `stream_authenticated`, `link_up`, `restart`...
    pub event: String,
    /// The tenant it concerns; `null` for the node.
    #[serde(deserialize_with = "required")]
    pub tenant: Option<String>,
    /// The domains it concerns.
    pub domains: Vec<String>,
    /// Everything else, by event (`direction`, `peer`, `reason`...), in key order.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

/// The federation log's level and the whole filter in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevel {
    /// The log target of federation (`xfed::s2s`).
    pub target: String,
    /// Its level, or `default` (as the filter the node started with says).
    pub federation: String,
    pub filter: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{renamed, round_trip, without};

    #[test]
    fn events_round_trip_as_the_log_writes_them() {
        let line = r#"{"auth":"dialback","direction":"outgoing","domains":["acme.example","globex.example"],"event":"stream_authenticated","module":"XMPPFederation","seq":4,"stream":12,"tenant":"acme","time":"2026-12-01T10:00:00.123456Z","tls":null}"#;
        let e: EventRecord = serde_json::from_str(line).unwrap();
        assert_eq!(e.seq, 4);
        assert_eq!(e.tenant.as_deref(), Some("acme"));
        assert_eq!(e.details["direction"], "outgoing");
        assert!(e.details["tls"].is_null());
        assert!(!e.details.contains_key("seq"), "{:?}", e.details);
        // The same JSON object, time to the microsecond.
        let again: Value = serde_json::to_value(&e).unwrap();
        assert_eq!(again, serde_json::from_str::<Value>(line).unwrap());
        let all = Events { events: vec![e] };
        assert_eq!(round_trip(&all), all);

        let level = LogLevel {
            target: "xfed::s2s".into(),
            federation: "default".into(),
            filter: "info".into(),
        };
        assert_eq!(round_trip(&level), level);
    }

    #[test]
    fn a_missing_or_renamed_event_key_is_an_error() {
        let line = r#"{"domains":[],"event":"config_loaded","module":"XMPPFederation","seq":1,"tenant":null,"time":"2026-12-01T10:00:00.000001Z"}"#;
        let all = Events {
            events: vec![serde_json::from_str(line).unwrap()],
        };
        assert!(without(&all, "/events/0", "tenant").contains("tenant"));
        assert!(without(&all, "/events/0", "time").contains("time"));
        let level = LogLevel {
            target: "xfed::s2s".into(),
            federation: "debug".into(),
            filter: "info,xfed::s2s=debug".into(),
        };
        assert!(renamed(&level, "", "federation", "level").contains("federation"));
    }
}
