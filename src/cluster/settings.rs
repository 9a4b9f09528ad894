//! A node's own settings for its cluster, from its own file alone: how to reach etcd
//! (`[cluster]`), its name and where its admin API listens. Read before anything else, since
//! the rest of its configuration is in etcd.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Table;

use super::keys::valid_node_name;
use super::machine::parse_local;
use crate::config::file::{ClusterSection, ListenSection, NodeSection};
use crate::config::{etcd_access, EtcdTls, Material};

/// What a node needs to join its cluster.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[node] name`.
    pub name: String,
    /// `[listen] admin`, as its claim shows it.
    pub admin: String,
    pub etcd: Vec<String>,
    pub prefix: String,
    pub lease: Duration,
    /// How long a node's turn in a rolling restart may take.
    pub rollout_step: Duration,
    /// etcd's user and password, when its authentication is on.
    pub user: Option<(String, String)>,
    /// For `https://` endpoints: whom to trust, and the node's client certificate.
    pub tls: Option<EtcdTls>,
    /// `[cluster] listen` and the address other nodes dial for it (`advertise`).
    pub relay: Option<(SocketAddr, SocketAddr)>,
}

impl Settings {
    /// From the node's own file `local`; an error when it has no `[cluster]` or holds keys
    /// that are the cluster's.
    pub fn read(local: &Path) -> Result<Settings, String> {
        Self::maybe(local)?.ok_or_else(|| {
            format!(
                "{}: no [cluster] section: this node is not in a cluster",
                local.display()
            )
        })
    }

    /// `None` when the file has no `[cluster]` section (a node on its own).
    pub fn maybe(local: &Path) -> Result<Option<Settings>, String> {
        let at = |e: String| format!("{}: {e}", local.display());
        let text = std::fs::read_to_string(local).map_err(|e| at(format!("cannot read: {e}")))?;
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| at(e.to_string()))?;
        if !table.contains_key("cluster") {
            return Ok(None);
        }
        let table = parse_local(&text).map_err(|e| at(e.to_string()))?;
        let section = |name: &str| table.get(name).cloned().unwrap_or(Table::new().into());
        let cluster: ClusterSection = section("cluster")
            .try_into()
            .map_err(|e: toml::de::Error| at(format!("cluster: {}", e.message())))?;
        let node: NodeSection = section("node")
            .try_into()
            .map_err(|e: toml::de::Error| at(format!("node: {}", e.message())))?;
        let listen: ListenSection = section("listen")
            .try_into()
            .map_err(|e: toml::de::Error| at(format!("listen: {}", e.message())))?;
        let name = node.name.trim().to_owned();
        valid_node_name(&name).map_err(|e| at(format!("node.name: {e}")))?;
        let folder = local.parent().unwrap_or(Path::new(""));
        let mut problems = Vec::new();
        let tls = etcd_access(
            &cluster,
            &|p| folder.join(p),
            &mut |p| std::fs::read(p).map(|bytes| Material::new(p, bytes)),
            &mut |key, reason| problems.push(format!("{key}: {reason}")),
        );
        if !problems.is_empty() {
            return Err(at(problems.join("; ")));
        }
        let user = match (cluster.user, cluster.password_file) {
            (Some(user), Some(file)) => {
                let path = folder.join(file);
                let password = std::fs::read_to_string(&path).map_err(|e| {
                    at(format!(
                        "cluster.password_file: cannot read {}: {e}",
                        path.display()
                    ))
                })?;
                Some((user, password.trim().to_owned()))
            }
            _ => None,
        };
        let relay = crate::config::relay_addresses(cluster.listen, cluster.advertise)
            .map_err(|(key, reason)| at(format!("{key}: {reason}")))?;
        Ok(Some(Settings {
            name,
            admin: listen.admin.to_string(),
            etcd: cluster.etcd,
            prefix: cluster.prefix,
            lease: Duration::from_secs(cluster.lease_secs.max(1)),
            rollout_step: Duration::from_secs(cluster.rollout_step_secs.max(1)),
            user,
            tls,
            relay,
        }))
    }
}
