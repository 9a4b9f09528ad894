//! What the `xfed` subcommands print: the admin API's answers, read into the types of
//! [`crate::model`], as text tables whose columns are as wide as their longest cell, so every
//! row lines up under its header whatever the length of tenant names, domains or addresses.

use std::fmt::Write;

use crate::model::{Connections, Events, FederationState, Status, VersionState};

use super::table::{Align, Table};

mod changes;
mod cluster;

pub use changes::{drain_table, reload_table, restart_table};
pub use cluster::{cluster_connections_table, cluster_events_table};

/// `xfed status` as a table.
pub fn status_table(v: &Status) -> String {
    let mut s = String::new();
    let fed = &v.federation;
    let _ = writeln!(
        s,
        "node {}, configuration version {}",
        v.node, v.config_version
    );
    let _ = writeln!(
        s,
        "federation: {} ({}), {}",
        fed.reach.state.as_str(),
        fed.security_mode,
        fed.reach.why
    );
    if let Some(r) = &v.restart {
        let _ = writeln!(
            s,
            "restart: {}, schedule \"{}\" (UTC), next run {}, last run {}",
            if r.delayed { "delayed" } else { "immediate" },
            r.schedule,
            r.next_run.map_or("none".to_owned(), |t| t.to_rfc3339()),
            r.last_run.as_ref().map_or("never".to_owned(), |l| format!(
                "{}: {}",
                l.at.to_rfc3339(),
                l.outcome
            ))
        );
        for st in &r.stale {
            let _ = writeln!(
                s,
                "stale: {} (runs version {}, latest {}): {}",
                st.instance,
                st.applied,
                st.latest,
                semicolons(&st.pending)
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
    for t in &v.tenants {
        table.row(vec![
            t.name.clone(),
            format!("{} {}", t.version, t.state.as_str()),
            t.federation.state.as_str().to_owned(),
            t.links.len().to_string(),
            t.streams_in.to_string(),
            t.streams_out.to_string(),
            t.privacy.clone(),
            t.domains.join(", "),
        ]);
        if t.state == VersionState::Stale {
            table.note(format!(
                "stale: runs version {}, latest {}: {}",
                t.version,
                t.latest_version,
                semicolons(&t.pending)
            ));
        }
        if t.federation.state != FederationState::Active {
            table.note(format!("federation inactive: {}", t.federation.why));
        }
        for l in &t.links {
            let since = l.since.map_or(String::new(), |t| {
                format!(
                    ", up since {}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            });
            table.note(format!(
                "link {} from {}{since}, {} stanza(s) out",
                l.id, l.peer, l.stanzas_out
            ));
        }
    }
    s.push_str(&table.render());
    if let Some(view) = &v.cluster {
        s.push_str(&cluster::cluster_table(view));
    }
    s
}

/// `xfed connections` as a table.
pub fn connections_table(v: &Connections) -> String {
    connections_of(&[(None, v)])
}

/// Connections as a table, each set with the node it is from (a NODE column when any is
/// named), then the last failures.
pub(super) fn connections_of(sets: &[(Option<&str>, &Connections)]) -> String {
    use Align::{Left, Right};
    let named = sets.iter().any(|(n, _)| n.is_some());
    let mut columns = vec![];
    if named {
        columns.push(("NODE", Left));
    }
    columns.extend([
        ("ID", Right),
        ("DIR", Left),
        ("PEER", Left),
        ("LOCAL -> REMOTE (AUTH)", Left),
        ("TLS", Left),
        ("SINCE", Left),
        ("IDLE", Right),
        ("IN", Right),
        ("OUT", Right),
        ("SM (UNACKED)", Left),
    ]);
    let mut table = Table::new(&columns);
    for (node, c) in sets
        .iter()
        .flat_map(|(n, v)| v.connections.iter().map(move |c| (n, c)))
    {
        let pairs: Vec<String> = c
            .pairs
            .iter()
            .map(|p| format!("{} -> {} ({})", p.local, p.remote, p.mechanism))
            .collect();
        let mut row: Vec<String> = node.iter().map(|n| n.to_string()).collect();
        row.extend([
            c.id.to_string(),
            c.direction.to_string(),
            format!("{}:{}", c.peer_ip, c.peer_port),
            pairs.join(", "),
            c.tls_version.clone().unwrap_or_else(|| "none".to_owned()),
            c.connected_since.format("%H:%M:%S").to_string(),
            format!("{}s", c.idle_secs),
            format!("{}/{}B", c.stanzas_in, c.bytes_in),
            format!("{}/{}B", c.stanzas_out, c.bytes_out),
            if c.stream_management {
                format!("on ({})", c.unacked)
            } else {
                "off".to_owned()
            },
        ]);
        table.row(row);
    }
    let mut s = table.render();
    s.push_str(&component_links(sets, named));
    let failures: Vec<_> = sets
        .iter()
        .flat_map(|(n, v)| v.failures.iter().map(move |f| (n, f)))
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(s, "\nlast failures:");
        for (node, f) in failures {
            let on = node.map(|n| format!("[{n}] ")).unwrap_or_default();
            let _ = writeln!(
                s,
                "  {on}{} -> {}: {} at {}: {}",
                f.local,
                f.remote,
                f.condition,
                f.at.to_rfc3339(),
                f.reason
            );
        }
    }
    s
}

/// The tenants' component links, after the streams (with the NODE column when named).
fn component_links(sets: &[(Option<&str>, &Connections)], named: bool) -> String {
    use Align::{Left, Right};
    let links: Vec<_> = sets
        .iter()
        .flat_map(|(n, v)| v.links.iter().map(move |l| (n, l)))
        .collect();
    if links.is_empty() {
        return String::new();
    }
    let mut columns = vec![];
    if named {
        columns.push(("NODE", Left));
    }
    columns.extend([
        ("LINK", Right),
        ("TENANT", Left),
        ("PEER", Left),
        ("OUT", Right),
        ("QUEUED", Right),
    ]);
    let mut table = Table::new(&columns);
    for (node, l) in links {
        let mut row: Vec<String> = node.iter().map(|n| n.to_string()).collect();
        row.extend([
            l.id.to_string(),
            l.tenant.clone(),
            l.peer.to_string(),
            l.stanzas_out.to_string(),
            format!("{}B", l.queued_bytes),
        ]);
        table.row(row);
    }
    format!("\ncomponent links:\n{}", table.render())
}

/// `xfed events` as lines: time, event, tenant, domains, then the other fields.
pub fn events_table(v: &Events) -> String {
    let events: Vec<_> = v.events.iter().map(|e| (None, e)).collect();
    events_of(&events)
}

/// Events as lines, each with the node it is from when named (then that comes first).
pub(super) fn events_of(events: &[(Option<&str>, &crate::model::EventRecord)]) -> String {
    let named = events.iter().any(|(n, _)| n.is_some());
    let columns = if named { 6 } else { 5 };
    let mut table = Table::new(&vec![("", Align::Left); columns]);
    for (node, e) in events {
        let details: Vec<String> = e
            .details
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v.as_str() {
                Some(text) => format!("{k}={text}"),
                None => format!("{k}={v}"),
            })
            .collect();
        let mut row: Vec<String> = node.iter().map(|n| n.to_string()).collect();
        row.extend([
            e.time.format("%Y-%m-%d %H:%M:%S").to_string(),
            e.event.clone(),
            e.tenant.clone().unwrap_or_else(|| "-".to_owned()),
            e.domains.join(", "),
            details.join(" "),
        ]);
        table.row(row);
    }
    table.render()
}

/// A list of changes on one line, `; ` apart. A `, ` inside an item becomes `; ` too (a new
/// tenant's domains), as these lines have always read.
fn semicolons(items: &[String]) -> String {
    items.join(", ").replace(", ", "; ")
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

    /// A test answer, written as the API serves it, read as `xfed` reads it.
    fn read<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("reads as the model")
    }

    #[test]
    fn status_rows_line_up_with_long_tenant_names() {
        let long = "a-tenant-with-a-rather-long-name-of-forty";
        let tenant = |name: &str, version: u64, links, streams_in, privacy: &str, domain: &str| {
            json!({"name": name, "version": version, "latest_version": version, "digest": "d",
                   "state": "current", "pending": [], "federation": {"state": "active", "why": "ok"},
                   "links": links, "streams_in": streams_in, "streams_out": 5,
                   "privacy": privacy, "domains": [domain], "chat_node_aliases": []})
        };
        let v = json!({
            "node": "edge", "cluster": null, "config_version": 3, "restart": null,
            "federation": {"state": "active", "security_mode": "tls-required", "why": "ok"},
            "tenants": [
                tenant(long, 12, json!([]), 1234, "allow-list", "x.example"),
                tenant("b", 1, json!([{"id": 7, "peer": "127.0.0.1:1", "queued_bytes": 0}]), 0, "off", "b.example"),
            ]
        });
        let text = status_table(&read(v));
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
                   "tls_version": "TLSv1_3", "tls_cipher": null, "connected_since": "2026-12-01T10:00:00Z",
                   "idle_secs": 12345, "stanzas_in": 1, "bytes_in": 10, "stanzas_out": 2, "bytes_out": 20,
                   "queued_bytes": 0, "stream_management": false, "unacked": 0})
        };
        let text = connections_table(&read(
            json!({"connections": [c(1, "127.0.0.1"), c(123456, "2001:db8::1")], "failures": []}),
        ));
        assert_aligned(&text, 2);
        assert!(text.contains(" 10:00:00 "), "{text}");

        let r = |name: &str| json!({"instance": name, "links": 1, "streams": 22, "action": "restart tenant", "what": ["domains"]});
        let text = restart_table(&read(
            json!({"dry_run": true, "restarted": [r("tenant a-really-long-tenant-name-here"), r("node")]}),
        ));
        assert_aligned(&text, 2);

        let e = |tenant: &str| json!({"seq": 1, "module": "XMPPFederation", "time": "2026-12-01T10:00:00.123Z", "event": "link_up", "tenant": tenant, "domains": ["d.example"], "id": 1});
        let text = events_table(&read(
            json!({"events": [e("a-really-long-tenant-name-here"), e("b")]}),
        ));
        let lines: Vec<Vec<(usize, usize)>> = text.lines().map(cells).collect();
        let starts = |l: &[(usize, usize)]| l.iter().map(|c| c.0).collect::<Vec<_>>();
        assert_eq!(starts(&lines[0]), starts(&lines[1]), "{text}");
        assert!(text.starts_with("2026-12-01 10:00:00  link_up"), "{text}");
        assert!(text.contains(" id=1"), "{text}");
    }

    #[test]
    fn changes_read_as_they_always_have() {
        let v = json!({"version": 4, "applied": true, "staged": false,
            "changes": [{"instance": "tenant newco", "action": "start the tenant", "what": ["new tenant: a.example, b.example"]}],
            "restarted": [{"instance": "tenant newco", "action": "start the tenant", "what": [], "links": 0, "streams": 0}]});
        assert_eq!(
            reload_table(&read(v)),
            "configuration version 4: applied\n  tenant newco: new tenant: a.example; b.example (start the tenant)\n  restarted tenant newco: 0 link(s), 0 stream(s) dropped\n"
        );
        let v = json!({"version": 4, "applied": false, "staged": false, "changes": []});
        assert_eq!(
            reload_table(&read(v)),
            "configuration unchanged (version 4)\n"
        );
        let v = json!({"dry_run": false, "restarted": []});
        assert_eq!(restart_table(&read(v)), "nothing is stale\n");
    }
}
