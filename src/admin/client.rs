//! The `xfed` subcommands that ask a running node: find its admin API and token, call it,
//! read the answer into its [`crate::model`] type; the tables re-exported here print it.

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use super::tables::{
    cluster_connections_table, cluster_events_table, connections_table, drain_table, events_table,
    reload_table, restart_table, status_table,
};

/// A running node's admin API.
pub struct AdminClient {
    base: String,
    token: String,
}

/// Why a call failed, in words for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Setup(String),
    #[error("cannot reach the admin API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the admin API answered {status}: {body}")]
    Refused { status: u16, body: String },
    /// The answer is JSON, but not of the shape this `xfed` knows (a key missing or
    /// renamed: a node of another version?).
    #[error("the admin API's answer does not read as expected: {0}")]
    Unreadable(String),
}

impl AdminClient {
    /// From the node's configuration: `[listen] admin` and `[admin] token_file`.
    pub fn from_config(path: &Path) -> Result<Self, ClientError> {
        let (mut addr, token) =
            crate::config::admin_endpoint(path).map_err(|e| ClientError::Setup(e.to_string()))?;
        let token = token.ok_or_else(|| {
            ClientError::Setup(format!(
                "{}: [admin] token_file is not set, so the admin API is off",
                path.display()
            ))
        })?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Ok(Self {
            base: format!("http://{addr}"),
            token: token.expose().to_owned(),
        })
    }

    /// From an address and token found elsewhere (a cluster's token is in etcd).
    pub fn new(mut addr: std::net::SocketAddr, token: &crate::config::Secret) -> Self {
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Self {
            base: format!("http://{addr}"),
            token: token.expose().to_owned(),
        }
    }

    /// From an explicit URL and token file.
    pub fn from_args(url: &str, token_file: &Path) -> Result<Self, ClientError> {
        let token = std::fs::read_to_string(token_file)
            .map_err(|e| ClientError::Setup(format!("{}: {e}", token_file.display())))?;
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
        })
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path)
    }

    pub fn post(&self, path: &str) -> Result<Value, ClientError> {
        self.call("POST", path)
    }

    /// A POST whose answer may take up to `within` (a drain waits for the node to be idle).
    pub fn post_waiting(&self, path: &str, within: Duration) -> Result<Value, ClientError> {
        self.call_within("POST", path, within)
    }

    fn call(&self, method: &str, path: &str) -> Result<Value, ClientError> {
        self.call_within(method, path, Duration::from_secs(10))
    }

    fn call_within(
        &self,
        method: &str,
        path: &str,
        within: Duration,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(within))
            .build()
            .into();
        let auth = format!("Bearer {}", self.token);
        let result = match method {
            "POST" => agent.post(&url).header("Authorization", &auth).send_empty(),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut response = result.map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Unreachable {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Refused { status, body });
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Refused {
            status,
            body: format!("not JSON ({e}): {body}"),
        })
    }
}

/// `path` with `query` as its query string, escaped; without one when `query` has nothing
/// to say.
pub fn with_query(path: &str, query: &impl Serialize) -> Result<String, ClientError> {
    let query = serde_urlencoded::to_string(query)
        .map_err(|e| ClientError::Setup(format!("{path}: query: {e}")))?;
    if query.is_empty() {
        return Ok(path.to_owned());
    }
    Ok(format!("{path}?{query}"))
}

/// An answer read as its model type: a key missing or renamed is an error naming where.
pub fn read<T: DeserializeOwned>(answer: Value) -> Result<T, ClientError> {
    serde_path_to_error::deserialize(answer).map_err(|e| {
        let at = e.path().to_string();
        ClientError::Unreadable(if at == "." {
            e.into_inner().to_string()
        } else {
            format!("{at}: {}", e.into_inner())
        })
    })
}

/// `--since` as operators write it: an RFC 3339 time, or an age like `30s`, `10m`, `2h`,
/// `1d` (that long before `now`). Answers the RFC 3339 time.
pub fn parse_since(text: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc).to_rfc3339());
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if seconds > 0 && n >= 0 => {
            Ok((now - chrono::Duration::seconds(n.saturating_mul(seconds))).to_rfc3339())
        }
        _ => Err(format!(
            "--since {text:?}: give an RFC 3339 time (2026-11-24T10:00:00Z) or an age (30s, 10m, 2h, 1d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConnectionsQuery, Status};

    #[test]
    fn since_takes_times_and_ages() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-24T10:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_since("10m", now).unwrap(),
            "2026-11-24T09:50:00+00:00"
        );
        assert_eq!(parse_since("1d", now).unwrap(), "2026-11-23T10:00:00+00:00");
        assert_eq!(
            parse_since("2026-11-24T11:00:00+01:00", now).unwrap(),
            "2026-11-24T10:00:00+00:00"
        );
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("m", now).is_err());
    }

    #[test]
    fn query_strings_are_escaped_and_left_off_when_empty() {
        let q = ConnectionsQuery {
            tenant: Some("a&b".into()),
            domain: None,
            cluster: false,
        };
        assert_eq!(
            with_query("/api/connections", &q).unwrap(),
            "/api/connections?tenant=a%26b"
        );
        assert_eq!(
            with_query("/api/connections", &ConnectionsQuery::default()).unwrap(),
            "/api/connections"
        );
    }

    #[test]
    fn an_answer_missing_a_key_is_an_error_that_says_where() {
        let answer = serde_json::json!({"node": "edge", "cluster": null, "config_version": 1,
            "restart": null,
            "federation": {"state": "active", "why": "ok"}, "tenants": []});
        let e = read::<Status>(answer).unwrap_err().to_string();
        assert!(
            e.contains("federation") && e.contains("security_mode"),
            "{e}"
        );
    }
}
