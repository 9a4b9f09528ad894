//! The query strings the API takes: read by the server, written by `xfed` (with
//! `serde_urlencoded`, which escapes what needs escaping and leaves out what is `None`).

use serde::{Deserialize, Serialize};

/// `GET /api/connections`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionsQuery {
    /// Only the streams of this tenant's domains.
    pub tenant: Option<String>,
    /// Only the streams carrying this domain, local or remote.
    pub domain: Option<String>,
    /// Every live node of the cluster, not only the one asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

/// `GET /api/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsQuery {
    /// Only events at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only this tenant's events.
    pub tenant: Option<String>,
    /// At most this many, the newest.
    pub limit: Option<usize>,
    /// Every live node of the cluster, not only the one asked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

/// `POST /api/restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartQuery {
    /// Only this tenant's router.
    pub tenant: Option<String>,
    /// In a cluster: only this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Only say what would restart and what it would drop.
    #[serde(default)]
    pub dry_run: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_escape_what_needs_it_and_leave_out_what_is_not_given() {
        let q = EventsQuery {
            since: Some("2026-11-24T10:00:00+00:00".into()),
            tenant: Some("a&b=c d".into()),
            limit: None,
            cluster: false,
        };
        let text = serde_urlencoded::to_string(&q).unwrap();
        assert_eq!(
            text,
            "since=2026-11-24T10%3A00%3A00%2B00%3A00&tenant=a%26b%3Dc+d"
        );
        assert_eq!(serde_urlencoded::from_str::<EventsQuery>(&text).unwrap(), q);
        assert_eq!(
            serde_urlencoded::to_string(ConnectionsQuery::default()).unwrap(),
            ""
        );
        let r = RestartQuery {
            tenant: None,
            node: None,
            dry_run: true,
        };
        assert_eq!(serde_urlencoded::to_string(&r).unwrap(), "dry_run=true");
        let on = RestartQuery {
            node: Some("edge-2".into()),
            ..r
        };
        assert_eq!(
            serde_urlencoded::to_string(&on).unwrap(),
            "node=edge-2&dry_run=true"
        );
        let all = EventsQuery {
            cluster: true,
            ..EventsQuery::default()
        };
        assert_eq!(serde_urlencoded::to_string(&all).unwrap(), "cluster=true");
        assert_eq!(
            serde_urlencoded::from_str::<EventsQuery>("cluster=true").unwrap(),
            all
        );
        assert_eq!(
            serde_urlencoded::from_str::<RestartQuery>("").unwrap(),
            RestartQuery::default()
        );
    }
}
