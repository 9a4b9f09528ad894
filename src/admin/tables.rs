//! What the `xfed` subcommands print: the admin API's JSON answers as text tables whose
//! columns are as wide as their longest cell, so every row lines up under its header
//! whatever the length of tenant names, domains or addresses.

use std::fmt::Write;

use serde_json::Value;

use super::table::{Align, Table};

/// `xfed status` as a table.
pub fn status_table(v: &Value) -> String {
    let mut s = String::new();
    let fed = &v["federation"];
    let _ = writeln!(
        s,
        "node {}, configuration version {}",
        str_of(&v["node"]),
        str_of(&v["config_version"])
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
                str_of(&st["applied"]),
                str_of(&st["latest"]),
                list(&st["pending"]).replace(", ", "; ")
            );
        }
    }
    use Align::{Left, Right};
    let mut table = Table::new(&[
        ("TENANT", Left),
        ("VERSION", Left),
        ("FEDERATE", Left),
        ("LINKS", Right),
        ("S2S IN", Right),
        ("S2S OUT", Right),
        ("PRIVACY", Left),
        ("DOMAINS", Left),
    ]);
    for t in v["tenants"].as_array().into_iter().flatten() {
        let links = t["links"].as_array().map_or(0, Vec::len);
        table.row(vec![
            str_of(&t["name"]),
            format!("{} {}", str_of(&t["version"]), str_of(&t["state"])),
            str_of(&t["federation"]["state"]),
            links.to_string(),
            str_of(&t["streams_in"]),
            str_of(&t["streams_out"]),
            str_of(&t["privacy"]),
            list(&t["domains"]),
        ]);
        if t["state"] == "stale" {
            table.note(format!(
                "stale: runs version {}, latest {}: {}",
                str_of(&t["version"]),
                str_of(&t["latest_version"]),
                list(&t["pending"]).replace(", ", "; ")
            ));
        }
        if t["federation"]["state"] != "active" {
            table.note(format!(
                "federation inactive: {}",
                str_of(&t["federation"]["why"])
            ));
        }
        for l in t["links"].as_array().into_iter().flatten() {
            table.note(format!(
                "link {} from {}",
                str_of(&l["id"]),
                str_of(&l["peer"])
            ));
        }
    }
    s.push_str(&table.render());
    s
}

/// `xfed connections` as a table.
pub fn connections_table(v: &Value) -> String {
    use Align::{Left, Right};
    let mut table = Table::new(&[
        ("ID", Right),
        ("DIR", Left),
        ("PEER", Left),
        ("LOCAL -> REMOTE (AUTH)", Left),
        ("TLS", Left),
        ("SINCE", Left),
        ("IDLE", Right),
        ("IN", Right),
        ("OUT", Right),
    ]);
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
        table.row(vec![
            str_of(&c["id"]),
            str_of(&c["direction"]),
            format!("{}:{}", str_of(&c["peer_ip"]), str_of(&c["peer_port"])),
            pairs.join(", "),
            c["tls_version"].as_str().unwrap_or("none").to_owned(),
            since.get(11..19).unwrap_or(&since).to_owned(),
            format!("{}s", str_of(&c["idle_secs"])),
            format!("{}/{}B", str_of(&c["stanzas_in"]), str_of(&c["bytes_in"])),
            format!("{}/{}B", str_of(&c["stanzas_out"]), str_of(&c["bytes_out"])),
        ]);
    }
    let mut s = table.render();
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
        let _ = writeln!(
            s,
            "configuration unchanged (version {})",
            str_of(&v["version"])
        );
        return s;
    }
    let state = if v["applied"] == true {
        "applied"
    } else {
        "staged until `xfed restart` or the schedule"
    };
    let _ = writeln!(
        s,
        "configuration version {}: {state}",
        str_of(&v["version"])
    );
    for c in changes {
        let _ = writeln!(
            s,
            "  {}: {} ({})",
            str_of(&c["instance"]),
            list(&c["what"]).replace(", ", "; "),
            str_of(&c["action"])
        );
    }
    for r in v["restarted"].as_array().into_iter().flatten() {
        let _ = writeln!(
            s,
            "  restarted {}: {} link(s), {} stream(s) dropped",
            str_of(&r["instance"]),
            str_of(&r["links"]),
            str_of(&r["streams"])
        );
    }
    s
}

/// `xfed restart` as a table.
pub fn restart_table(v: &Value) -> String {
    let rows = v["restarted"].as_array().map_or(&[][..], Vec::as_slice);
    if rows.is_empty() {
        return "nothing is stale\n".to_owned();
    }
    let verb = if v["dry_run"] == true {
        "WOULD DROP"
    } else {
        "DROPPED"
    };
    let mut table = Table::new(&[
        ("INSTANCE", Align::Left),
        (verb, Align::Left),
        ("ACTION", Align::Left),
        ("CHANGES", Align::Left),
    ]);
    for r in rows {
        table.row(vec![
            str_of(&r["instance"]),
            format!(
                "{} link(s), {} stream(s)",
                str_of(&r["links"]),
                str_of(&r["streams"])
            ),
            str_of(&r["action"]),
            list(&r["what"]).replace(", ", "; "),
        ]);
    }
    table.render()
}

/// `xfed events` as lines: time, event, tenant, domains, then the other fields.
pub fn events_table(v: &Value) -> String {
    const SHOWN: &[&str] = &["seq", "time", "module", "event", "tenant", "domains"];
    let mut table = Table::new(&[("", Align::Left); 5]);
    for e in v["events"].as_array().into_iter().flatten() {
        let time = str_of(&e["time"]);
        let details: Vec<String> = e
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| !SHOWN.contains(&k.as_str()) && !v.is_null())
            .map(|(k, v)| format!("{k}={}", str_of(v)))
            .collect();
        table.row(vec![
            time.get(..19).unwrap_or(&time).replace('T', " "),
            str_of(&e["event"]),
            e["tenant"].as_str().unwrap_or("-").to_owned(),
            list(&e["domains"]),
            details.join(" "),
        ]);
    }
    table.render()
}

/// A JSON value as text: strings without their quotes.
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
    use serde_json::json;

    /// The cells of a line: (start, end) of each run of text; cells are two or more spaces
    /// apart, a single space belongs to the cell.
    fn cells(line: &str) -> Vec<(usize, usize)> {
        let b = line.as_bytes();
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (i, &c) in b.iter().enumerate() {
            if c == b' ' {
                continue;
            }
            match out.last_mut() {
                Some((_, end)) if i - *end < 2 => *end = i + 1,
                _ => out.push((i, i + 1)),
            }
        }
        out
    }

    /// Every column's cells start where its header does (left-aligned) or end where it
    /// does (right-aligned), in the header and the first `rows` rows after it.
    fn assert_aligned(text: &str, rows: usize) {
        let lines: Vec<Vec<(usize, usize)>> = text
            .lines()
            .filter(|l| !l.starts_with("    "))
            .take(rows + 1)
            .map(cells)
            .collect();
        for row in &lines {
            assert_eq!(row.len(), lines[0].len(), "cells missing or split:\n{text}");
        }
        for (j, &(start, end)) in lines[0].iter().enumerate() {
            let left = lines.iter().all(|r| r[j].0 == start);
            let right = lines.iter().all(|r| r[j].1 == end);
            assert!(left || right, "column {j} misaligned:\n{text}");
        }
    }

    #[test]
    fn status_rows_line_up_with_long_tenant_names() {
        let long = "a-tenant-with-a-rather-long-name-of-forty";
        let v = json!({
            "node": "edge", "config_version": 3,
            "federation": {"state": "active", "security_mode": "tls-required", "why": "ok"},
            "tenants": [
                {"name": long, "version": 12, "state": "current", "federation": {"state": "active"},
                 "links": [], "streams_in": 1234, "streams_out": 5, "privacy": "allow-list",
                 "domains": ["x.example"]},
                {"name": "b", "version": 1, "state": "current", "federation": {"state": "active"},
                 "links": [{"id": 7, "peer": "127.0.0.1:1"}], "streams_in": 0, "streams_out": 0,
                 "privacy": "off", "domains": ["b.example"]}
            ]
        });
        let text = status_table(&v);
        let table: String = text.lines().skip(2).map(|l| format!("{l}\n")).collect();
        assert_aligned(&table, 2);
        assert!(
            table.contains(&format!("{long}  12 current  active")),
            "{text}"
        );
        assert!(!text.contains('"'), "JSON quotes in the table:\n{text}");
    }

    #[test]
    fn connections_restart_and_events_line_up() {
        let c = |id: u64, peer: &str| {
            json!({"id": id, "direction": "outgoing", "peer_ip": peer, "peer_port": 5269,
                   "pairs": [{"local": "a-very-long-tenant-domain.example", "remote": "r.example", "auth": "dialback"}],
                   "tls_version": "TLSv1_3", "connected_since": "2026-12-01T10:00:00Z",
                   "idle_secs": 12345, "stanzas_in": 1, "bytes_in": 10, "stanzas_out": 2, "bytes_out": 20})
        };
        let text = connections_table(
            &json!({"connections": [c(1, "127.0.0.1"), c(123456, "2001:db8::1")]}),
        );
        assert_aligned(&text, 2);

        let r = |name: &str| json!({"instance": name, "links": 1, "streams": 22, "action": "restart tenant", "what": ["domains"]});
        let text = restart_table(
            &json!({"dry_run": true, "restarted": [r("tenant a-really-long-tenant-name-here"), r("node")]}),
        );
        assert_aligned(&text, 2);

        let e = |tenant: &str| json!({"time": "2026-12-01T10:00:00.123Z", "event": "link_up", "tenant": tenant, "domains": ["d.example"], "id": 1});
        let text = events_table(&json!({"events": [e("a-really-long-tenant-name-here"), e("b")]}));
        let lines: Vec<Vec<(usize, usize)>> = text.lines().map(cells).collect();
        let starts = |l: &[(usize, usize)]| l.iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(starts(&lines[0]), starts(&lines[1]), "{text}");
    }
}
