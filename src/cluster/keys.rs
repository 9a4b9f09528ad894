//! Where everything lives in etcd, under the cluster's `[cluster] prefix` (several clusters
//! may share one etcd). docs/CLUSTER.md has the same table with who writes each key.
//!
//! | key | written by | lease |
//! |---|---|---|
//! | `P/config/version` | `xfed config push`, in the push's transaction | none |
//! | `P/config/files/<path>` | `xfed config push`, same transaction | none |
//! | `P/nodes/<name>` | the node called `name`, once at start (created only if absent) | the node's |
//! | `P/status/<name>` | the node called `name`, when what it runs changes | the node's |
//! | `P/members/<name>` | the node called `name`, at start | none: a gone node stays listed |
//! | `P/election/…` | every node, campaigning to run the schedule and rollouts (etcd's election API) | the node's |
//! | `P/rollout` | `xfed restart` on any node (created only if absent), or the leader at a time of the schedule; then the leader, step by step | none: a new leader resumes |
//! | `P/rollouts/last` | the leader, when a rollout ends | none |
//! | `P/asks/<name>/<id>` | a node asking node `name` (a restart, its connections, its events) | the asker's |
//! | `P/answers/<id>` | the node asked, its answer | the asker's |
//! | `P/links/<tenant>/<name>` | the node called `name` while it holds links of `tenant`: its inter-node address (`[cluster] advertise`) | the node's |
//! | `P/relay/key` | the first node to start (created only if absent): the key nodes prove to each other on inter-node links | none |

/// The keys of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `/xfed/<cluster>`, without a trailing `/`.
    prefix: String,
}

impl Keys {
    /// The keys under `prefix`: absolute (`/…`), no empty segment, no trailing `/`.
    pub fn new(prefix: &str) -> Result<Keys, String> {
        let Some(rest) = prefix.strip_prefix('/') else {
            return Err(format!("{prefix:?} must start with /"));
        };
        if rest.is_empty() || rest.split('/').any(str::is_empty) {
            return Err(format!(
                "{prefix:?} must name a cluster (like /xfed/prod), with no empty segment or trailing /"
            ));
        }
        Ok(Keys {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Everything a push writes: the manifest and the files (one range read is one revision).
    pub fn config(&self) -> String {
        format!("{}/config/", self.prefix)
    }

    /// The manifest of the configuration: its last change is the version (etcd's revision).
    pub fn version(&self) -> String {
        format!("{}/config/version", self.prefix)
    }

    /// Where the files of the configuration are, each under its path in the pushed folder.
    pub fn files(&self) -> String {
        format!("{}/config/files/", self.prefix)
    }

    /// The file at `path` (relative, `/`-separated) of the pushed folder.
    pub fn file(&self, path: &str) -> String {
        format!("{}{path}", self.files())
    }

    /// The path in the pushed folder of file key `key`, if it is one.
    pub fn file_path<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.files())
    }

    /// The live nodes' name claims.
    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    /// Node `name`'s claim on its name, under its lease.
    pub fn node(&self, name: &str) -> String {
        format!("{}{name}", self.nodes())
    }

    /// What the live nodes run.
    pub fn statuses(&self) -> String {
        format!("{}/status/", self.prefix)
    }

    /// What node `name` runs, under its lease.
    pub fn status(&self, name: &str) -> String {
        format!("{}{name}", self.statuses())
    }

    /// Every node that ever joined.
    pub fn members(&self) -> String {
        format!("{}/members/", self.prefix)
    }

    /// Node `name`'s lasting record (no lease).
    pub fn member(&self, name: &str) -> String {
        format!("{}{name}", self.members())
    }

    /// The election of the node that runs the schedule and rollouts.
    pub fn election(&self) -> String {
        format!("{}/election", self.prefix)
    }

    /// The rolling restart in progress.
    pub fn rollout(&self) -> String {
        format!("{}/rollout", self.prefix)
    }

    /// The last rolling restart that finished.
    pub fn last_rollout(&self) -> String {
        format!("{}/rollouts/last", self.prefix)
    }

    /// The questions waiting for node `name`.
    pub fn asks(&self, name: &str) -> String {
        format!("{}/asks/{name}/", self.prefix)
    }

    /// Question `id` for node `name`.
    pub fn ask(&self, name: &str, id: &str) -> String {
        format!("{}{id}", self.asks(name))
    }

    /// The answer to question `id`.
    pub fn answer(&self, id: &str) -> String {
        format!("{}/answers/{id}", self.prefix)
    }

    /// Which nodes hold links of which tenants.
    pub fn links(&self) -> String {
        format!("{}/links/", self.prefix)
    }

    /// Node `name` holds links of `tenant`, under its lease.
    pub fn link(&self, tenant: &str, name: &str) -> String {
        format!("{}{tenant}/{name}", self.links())
    }

    /// The cluster key of the inter-node links.
    pub fn relay_key(&self) -> String {
        format!("{}/relay/key", self.prefix)
    }

    /// The node name at the end of `key` under `folder` (one of the above).
    pub fn name_in<'k>(folder: &str, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(folder).filter(|n| !n.contains('/'))
    }
}

/// Whether `name` can be a node's name in a cluster: one key segment.
pub fn valid_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
        return Err(format!(
            "{name:?}: a node in a cluster needs a name without / or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_under_a_prefix() {
        let k = Keys::new("/xfed/prod").unwrap();
        assert_eq!(k.version(), "/xfed/prod/config/version");
        assert!(k.version().starts_with(&k.config()));
        assert_eq!(
            k.file("tenants/acme.toml"),
            "/xfed/prod/config/files/tenants/acme.toml"
        );
        assert!(k.files().starts_with(&k.config()));
        assert_eq!(
            k.file_path(&k.file("config/router.toml")),
            Some("config/router.toml")
        );
        assert_eq!(k.file_path(&k.version()), None);
        assert_eq!(k.node("edge-1"), "/xfed/prod/nodes/edge-1");
        assert_eq!(k.status("edge-1"), "/xfed/prod/status/edge-1");
        assert_eq!(k.member("edge-1"), "/xfed/prod/members/edge-1");
        assert_eq!(Keys::name_in(&k.nodes(), &k.node("edge-1")), Some("edge-1"));
        assert_eq!(k.ask("edge-2", "q7"), "/xfed/prod/asks/edge-2/q7");
        assert_eq!(
            Keys::name_in(&k.asks("edge-2"), &k.ask("edge-2", "q7")),
            Some("q7")
        );
        assert!(!k.ask("edge-22", "q").starts_with(&k.asks("edge-2")));
        assert_eq!(k.answer("q7"), "/xfed/prod/answers/q7");
        assert_eq!(k.rollout(), "/xfed/prod/rollout");
        assert_eq!(k.link("acme", "edge-1"), "/xfed/prod/links/acme/edge-1");
        assert!(k.link("acme", "edge-1").starts_with(&k.links()));
    }

    #[test]
    fn two_clusters_on_one_etcd_do_not_overlap() {
        // `/xfed/a` is a string prefix of `/xfed/ab`: every range ends in `/`.
        let a = Keys::new("/xfed/a").unwrap();
        let ab = Keys::new("/xfed/ab").unwrap();
        assert!(!ab.version().starts_with(&a.config()));
        assert!(!ab.node("n").starts_with(&a.nodes()));
    }

    #[test]
    fn prefixes_and_names_refused() {
        for bad in ["xfed/prod", "/", "/xfed/", "/xfed//prod", ""] {
            assert!(Keys::new(bad).is_err(), "{bad}");
        }
        assert!(valid_node_name("edge-1").is_ok());
        for bad in ["", "a/b", "a\nb"] {
            assert!(valid_node_name(bad).is_err(), "{bad:?}");
        }
    }
}
