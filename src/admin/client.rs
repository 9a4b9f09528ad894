//! The `xfed` subcommands that ask a running node: find its admin API and token, call it,
//! print tables (or the JSON as received).

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

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

    fn call(&self, method: &str, path: &str) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
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

/// `xfed status` as a table.
pub fn status_table(v: &Value) -> String {
    let mut s = String::new();
    let fed = &v["federation"];
    let _ = writeln!(
        s,
        "node {}, configuration version {}",
        str_of(&v["node"]),
        v["config_version"]
    );
    let _ = writeln!(
        s,
        "federation: {} ({}), {}",
        str_of(&fed["state"]),
        str_of(&fed["security_mode"]),
        str_of(&fed["why"])
    );
    let r = &v["restart"];
    if r.is_object() {
        let _ = writeln!(
            s,
            "restart: {}, schedule \"{}\" (UTC), next run {}, last run {}",
            if r["delayed"] == true {
                "delayed"
            } else {
                "immediate"
            },
            str_of(&r["schedule"]),
            r["next_run"].as_str().unwrap_or("none"),
            r["last_run"]
                .as_object()
                .map_or("never".to_owned(), |l| format!(
                    "{}: {}",
                    str_of(&l["at"]),
                    str_of(&l["outcome"])
                ))
        );
        for st in r["stale"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "stale: {} (runs version {}, latest {}): {}",
                str_of(&st["instance"]),
                st["applied"],
                st["latest"],
                list(&st["pending"]).replace(", ", "; ")
            );
        }
    }
    let _ = writeln!(
        s,
        "{:<16} {:<8} {:<9} {:<6} {:<8} {:<8} {:<12} domains",
        "TENANT", "VERSION", "FEDERATE", "LINKS", "S2S IN", "S2S OUT", "PRIVACY"
    );
    for t in v["tenants"].as_array().into_iter().flatten() {
        let links = t["links"].as_array().map_or(0, Vec::len);
        let _ = writeln!(
            s,
            "{:<16} {:<8} {:<9} {:<6} {:<8} {:<8} {:<12} {}",
            str_of(&t["name"]),
            format!("{} {}", t["version"], str_of(&t["state"])),
            str_of(&t["federation"]["state"]),
            links,
            t["streams_in"],
            t["streams_out"],
            str_of(&t["privacy"]),
            list(&t["domains"])
        );
        if t["state"] == "stale" {
            let _ = writeln!(
                s,
                "    stale: runs version {}, latest {}: {}",
                t["version"],
                t["latest_version"],
                list(&t["pending"]).replace(", ", "; ")
            );
        }
        if t["federation"]["state"] != "active" {
            let _ = writeln!(
                s,
                "    federation inactive: {}",
                str_of(&t["federation"]["why"])
            );
        }
        for l in t["links"].as_array().into_iter().flatten() {
            let _ = writeln!(s, "    link {} from {}", l["id"], str_of(&l["peer"]));
        }
    }
    s
}

/// `xfed connections` as a table.
pub fn connections_table(v: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<5} {:<9} {:<22} {:<44} {:<14} {:<9} {:>6} {:>16} {:>16}",
        "ID", "DIR", "PEER", "LOCAL -> REMOTE (AUTH)", "TLS", "SINCE", "IDLE", "IN", "OUT"
    );
    for c in v["connections"].as_array().into_iter().flatten() {
        let pairs: Vec<String> = c["pairs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{} -> {} ({})",
                    str_of(&p["local"]),
                    str_of(&p["remote"]),
                    str_of(&p["auth"])
                )
            })
            .collect();
        let since = str_of(&c["connected_since"]);
        let _ = writeln!(
            s,
            "{:<5} {:<9} {:<22} {:<44} {:<14} {:<9} {:>5}s {:>16} {:>16}",
            c["id"],
            str_of(&c["direction"]),
            format!("{}:{}", str_of(&c["peer_ip"]), c["peer_port"]),
            pairs.join(", "),
            c["tls_version"].as_str().unwrap_or("none"),
            since.get(11..19).unwrap_or(&since),
            c["idle_secs"],
            format!("{}/{}B", c["stanzas_in"], c["bytes_in"]),
            format!("{}/{}B", c["stanzas_out"], c["bytes_out"]),
        );
    }
    let failures = v["failures"].as_array().map_or(&[][..], Vec::as_slice);
    if !failures.is_empty() {
        let _ = writeln!(s, "\nlast failures:");
        for f in failures {
            let _ = writeln!(
                s,
                "  {} -> {}: {} at {}: {}",
                str_of(&f["local"]),
                str_of(&f["remote"]),
                str_of(&f["condition"]),
                str_of(&f["at"]),
                str_of(&f["reason"])
            );
        }
    }
    s
}

/// `xfed reload` as text.
pub fn reload_table(v: &Value) -> String {
    let mut s = String::new();
    let changes = v["changes"].as_array().map_or(&[][..], Vec::as_slice);
    if changes.is_empty() {
        let _ = writeln!(s, "configuration unchanged (version {})", v["version"]);
        return s;
    }
    let state = if v["applied"] == true {
        "applied"
    } else {
        "staged until `xfed restart` or the schedule"
    };
    let _ = writeln!(s, "configuration version {}: {state}", v["version"]);
    for c in changes {
        let _ = writeln!(
            s,
            "  {}: {} ({})",
            str_of(&c["instance"]),
            list(&c["what"]).replace(", ", "; "),
            str_of(&c["action"])
        );
    }
    if let Some(done) = v["restarted"].as_array() {
        for r in done {
            let _ = writeln!(
                s,
                "  restarted {}: {} link(s), {} stream(s) dropped",
                str_of(&r["instance"]),
                r["links"],
                r["streams"]
            );
        }
    }
    s
}

/// `xfed restart` as a table.
pub fn restart_table(v: &Value) -> String {
    let mut s = String::new();
    let rows = v["restarted"].as_array().map_or(&[][..], Vec::as_slice);
    if rows.is_empty() {
        let _ = writeln!(s, "nothing is stale");
        return s;
    }
    let verb = if v["dry_run"] == true {
        "WOULD DROP"
    } else {
        "DROPPED"
    };
    let _ = writeln!(
        s,
        "{:<18} {:<24} {:<40} CHANGES",
        "INSTANCE", verb, "ACTION"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<18} {:<24} {:<40} {}",
            str_of(&r["instance"]),
            format!("{} link(s), {} stream(s)", r["links"], r["streams"]),
            str_of(&r["action"]),
            list(&r["what"]).replace(", ", "; ")
        );
    }
    s
}

/// `xfed events` as lines: time, event, tenant, domains, then the other fields.
pub fn events_table(v: &Value) -> String {
    const SHOWN: &[&str] = &["seq", "time", "module", "event", "tenant", "domains"];
    let mut s = String::new();
    for e in v["events"].as_array().into_iter().flatten() {
        let time = str_of(&e["time"]);
        let details: Vec<String> = e
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| !SHOWN.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| format!("{k}={}", str_of(v)))
            .collect();
        let _ = writeln!(
            s,
            "{:<20} {:<21} {:<12} {:<40} {}",
            time.get(..19).unwrap_or(&time).replace('T', " "),
            str_of(&e["event"]),
            e["tenant"].as_str().unwrap_or("-"),
            list(&e["domains"]),
            details.join(" ")
        );
    }
    s
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

fn str_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(str_of).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
