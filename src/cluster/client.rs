//! What the `xfed` commands need of a cluster without joining it: its etcd, its keys, its
//! configuration as a node runs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::etcd::Etcd;
use super::keys::Keys;
use super::push::{current, PushError};
use super::settings::Settings;
use super::snapshot::Snapshot;
use super::source::as_node_runs;
use crate::config::{check, endpoint, Config, ConfigErrors, Secret};

/// A connection to the cluster a node's own file names.
pub struct Client {
    pub etcd: Etcd,
    pub keys: Keys,
    pub settings: Settings,
    /// The node's own file.
    local: PathBuf,
}

impl Client {
    /// From the node's own file `local` (its `[cluster]`).
    pub async fn open(local: &Path) -> Result<Client, String> {
        let settings = Settings::read(local)?;
        let keys = Keys::new(&settings.prefix)
            .map_err(|e| format!("{}: cluster.prefix: {e}", local.display()))?;
        let etcd = Etcd::connect(&settings.etcd, settings.user.clone(), settings.tls.as_ref())
            .await
            .map_err(|e| format!("{e} (etcd at {})", settings.etcd.join(", ")))?;
        Ok(Client {
            etcd,
            keys,
            settings,
            local: local.to_path_buf(),
        })
    }

    /// The configuration pushed last, read whole.
    pub async fn snapshot(&self) -> Result<Snapshot, String> {
        let (snapshot, _) = current(&self.etcd, &self.keys)
            .await
            .map_err(|e: PushError| e.to_string())?;
        snapshot.ok_or_else(|| {
            format!(
                "nothing pushed to cluster {} yet (xfed config push --dir DIR)",
                self.keys.prefix()
            )
        })
    }

    /// The configuration as this node would run it, checked.
    pub async fn config(&self) -> Result<Result<Config, ConfigErrors>, String> {
        let snapshot = self.snapshot().await?;
        Ok(
            as_node_runs(&self.local, self.keys.prefix(), &snapshot.files)
                .and_then(|source| check(&source)),
        )
    }

    /// Where this node's admin API listens and the cluster's admin token.
    pub async fn admin_endpoint(&self) -> Result<(SocketAddr, Option<Secret>), String> {
        let snapshot = self.snapshot().await?;
        let source = as_node_runs(&self.local, self.keys.prefix(), &snapshot.files)
            .map_err(|e| e.to_string())?;
        endpoint(&source).map_err(|e| e.to_string())
    }
}
