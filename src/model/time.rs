//! Times as the admin API writes them. chrono's own serde form for UTC ends in `Z`; the API
//! has always written `+00:00` (`to_rfc3339`), and the event log UTC with microseconds and
//! `Z`, so each keeps its form here. Reading takes any RFC 3339 time.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

fn parse<'de, D: Deserializer<'de>>(text: &str) -> Result<DateTime<Utc>, D::Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: not an RFC 3339 time: {e}")))
}

/// `2026-12-01T10:00:00.123+00:00`: [`DateTime::to_rfc3339`].
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        parse::<D>(&String::deserialize(d)?)
    }
}

/// [`rfc3339`] or `null`; the key must be there.
pub mod rfc3339_or_null {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.to_rfc3339()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| parse::<D>(&t))
            .transpose()
    }
}

/// `2026-12-01T10:00:00.123456Z`: UTC with microseconds, as the event log file has it.
pub mod micros {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        parse::<D>(&String::deserialize(d)?)
    }
}
