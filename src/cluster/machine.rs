//! Which settings of `router.toml` belong to one machine and which to the cluster.
//!
//! A node in a cluster runs the router document pushed to etcd with the machine's own keys
//! taken from its local file instead: where it listens, its TLS certificate and key (a
//! private key never leaves its machine), its event log, its name and how it reaches etcd.
//! Everything else — federation, DNS, limits, restart policy and schedule, the dialback
//! secret, the admin token, the tenants and the files they refer to — is the cluster's.
//! docs/CONFIG.md says the same per key.

use std::path::Path;

use toml::{Table, Value};

/// The machine's keys: whole tables, or `table.key`.
pub const MACHINE_KEYS: &[&str] = &["node", "listen", "tls.cert", "tls.key", "events", "cluster"];

/// Keys of the machine's that name a file, relative to the file they are written in.
const MACHINE_PATHS: &[(&str, &str)] = &[
    ("tls", "cert"),
    ("tls", "key"),
    ("events", "file"),
    ("cluster", "password_file"),
    ("cluster", "etcd_ca"),
    ("cluster", "etcd_cert"),
    ("cluster", "etcd_key"),
];

/// Why a node's own file cannot be merged with the cluster's document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Not TOML: the parser's message (with its line).
    #[error("{0}")]
    Syntax(String),
    /// Keys that are the cluster's, in a node's own file.
    #[error("{} {}: the cluster's, held in etcd (change them with xfed config push); a node's own file keeps only {}", if .0.len() == 1 { "key" } else { "keys" }, .0.join(", "), MACHINE_KEYS.join(", "))]
    ClusterKeys(Vec<String>),
}

/// Whether `key` (`table` or `table.key`) is the machine's.
pub fn is_machine(table: &str, key: Option<&str>) -> bool {
    MACHINE_KEYS.iter().any(|m| match m.split_once('.') {
        None => *m == table,
        Some((t, k)) => t == table && key == Some(k),
    })
}

/// The keys of a node's own file that are the cluster's.
pub fn cluster_keys(local: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for (name, value) in local {
        match value {
            Value::Table(t) if !is_machine(name, None) => {
                for k in t.keys() {
                    if !is_machine(name, Some(k)) {
                        out.push(format!("{name}.{k}"));
                    }
                }
                if t.is_empty() && !MACHINE_KEYS.iter().any(|m| m.starts_with(name.as_str())) {
                    out.push(name.clone());
                }
            }
            Value::Table(_) => {}
            _ => out.push(name.clone()),
        }
    }
    out
}

/// The router document a node in a cluster runs: `cluster` (the pushed router document)
/// without its machine keys, with the machine keys of `local` (the node's own file, in
/// `local_folder`), their relative paths made relative to where the node runs. The event
/// log, unless the local file says otherwise, is `events.jsonl` beside the local file.
pub fn merge(cluster: &str, local: &str, local_folder: &Path) -> Result<String, MergeError> {
    let mut doc: Table = cluster
        .parse()
        .map_err(|e: toml::de::Error| MergeError::Syntax(e.to_string()))?;
    let local = parse_local(local)?;
    // The pushed document's machine keys are some machine's, not this one's.
    doc.retain(|name, _| !is_machine(name, None));
    if let Some(Value::Table(tls)) = doc.get_mut("tls") {
        tls.retain(|k, _| !is_machine("tls", Some(k)));
    }
    for (name, value) in local {
        match (doc.get_mut(&name), value) {
            (Some(Value::Table(into)), Value::Table(from)) => into.extend(from),
            (_, value) => {
                doc.insert(name, value);
            }
        }
    }
    let events = doc
        .entry("events")
        .or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(events) = events {
        events
            .entry("file")
            .or_insert_with(|| Value::String("events.jsonl".into()));
    }
    for (table, key) in MACHINE_PATHS {
        let Some(Value::Table(t)) = doc.get_mut(*table) else {
            continue;
        };
        if let Some(Value::String(p)) = t.get_mut(*key) {
            if !p.is_empty() && Path::new(p.as_str()).is_relative() {
                *p = local_folder.join(p.as_str()).display().to_string();
            }
        }
    }
    Ok(toml::to_string(&doc).expect("a TOML table serializes"))
}

/// A node's own file, holding only the machine's keys.
pub fn parse_local(local: &str) -> Result<Table, MergeError> {
    let table: Table = local
        .parse()
        .map_err(|e: toml::de::Error| MergeError::Syntax(e.to_string()))?;
    let theirs = cluster_keys(&table);
    if !theirs.is_empty() {
        return Err(MergeError::ClusterKeys(theirs));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUSHED: &str = r#"
tenants_dir = "../tenants"
[node]
name = "whoever-pushed"
[listen]
admin = "127.0.0.1:1"
[tls]
cert = "their.pem"
key = "their.key"
ca = ["ca.pem"]
[federation]
dialback_secret_file = "dialback.secret"
"#;

    #[test]
    fn the_node_runs_the_cluster_document_with_its_own_machine_keys() {
        let local = r#"
[node]
name = "edge-2"
[listen]
component = "127.0.0.2:7400"
[tls]
cert = "tls/edge.pem"
key = "/etc/xfed/edge.key"
[cluster]
etcd = ["http://127.0.0.1:2379"]
prefix = "/xfed/t"
"#;
        let merged: Table = merge(PUSHED, local, Path::new("/etc/xfed"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(merged["node"]["name"].as_str(), Some("edge-2"));
        // The pushed listen section is someone else's: none of it stays.
        assert!(merged["listen"].get("admin").is_none());
        assert_eq!(
            merged["tls"]["cert"].as_str(),
            Some("/etc/xfed/tls/edge.pem")
        );
        assert_eq!(merged["tls"]["key"].as_str(), Some("/etc/xfed/edge.key"));
        // The cluster's trust and secrets stay, relative to the pushed document.
        assert_eq!(merged["tls"]["ca"][0].as_str(), Some("ca.pem"));
        assert_eq!(merged["tenants_dir"].as_str(), Some("../tenants"));
        assert_eq!(
            merged["events"]["file"].as_str(),
            Some("/etc/xfed/events.jsonl")
        );
        assert_eq!(merged["cluster"]["prefix"].as_str(), Some("/xfed/t"));
    }

    #[test]
    fn a_node_file_holding_the_clusters_keys_is_refused_naming_them() {
        let local = "tenants_dir = \"t\"\n[federation]\nsecurity_mode = \"no-tls\"\n[tls]\nca = []\ncert = \"c\"\n";
        let err = merge(PUSHED, local, Path::new(".")).unwrap_err();
        assert_eq!(
            err,
            MergeError::ClusterKeys(vec![
                "federation.security_mode".into(),
                "tenants_dir".into(),
                "tls.ca".into()
            ])
        );
        assert!(err.to_string().contains("xfed config push"), "{err}");
    }

    #[test]
    fn an_events_file_left_empty_stays_off() {
        let merged: Table = merge(PUSHED, "[events]\nfile = \"\"\n", Path::new("/n"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(merged["events"]["file"].as_str(), Some(""));
    }
}
