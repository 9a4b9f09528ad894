//! The cluster's configuration as a [`config::Source`](crate::config::Source): the files of
//! one snapshot, laid out under a root as they were in the pushed folder, checked by the same
//! [`config::check`](crate::config::check) as a folder on disk.
//!
//! On a node the root is `etcd:<prefix>` (so messages name `etcd:/xfed/prod/tenants/a.toml`)
//! and the router document is the pushed one merged with the node's own machine keys
//! ([`super::machine::merge`]); paths outside the root (the node's certificate, its event
//! log's folder) are the node's own disk. `xfed config diff` lays a snapshot under the
//! folder it compares with, so both configurations name their files alike.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::machine;
use crate::config::{ConfigError, ConfigErrors, Document, Source};

/// Where a pushed folder's router document is.
pub const ROUTER: &str = "config/router.toml";

/// A snapshot's files under a root.
#[derive(Debug, Clone)]
pub struct Files {
    root: PathBuf,
    /// `root/config/router.toml`.
    router: PathBuf,
    /// The router document's text, when not the snapshot's own (a node's merged one).
    router_text: Option<String>,
    /// Absolute name under `root` → contents.
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Files {
    /// `files` (paths relative to the pushed folder) laid under `root`.
    pub fn new(root: impl Into<PathBuf>, files: &BTreeMap<String, Vec<u8>>) -> Self {
        let root = root.into();
        Self {
            router: root.join(ROUTER),
            files: files
                .iter()
                .map(|(p, b)| (root.join(p), b.clone()))
                .collect(),
            root,
            router_text: None,
        }
    }

    /// The same files with another router document (a node's merged one).
    pub fn with_router(mut self, text: String) -> Self {
        self.router_text = Some(text);
        self
    }

    /// The root for the snapshots of the cluster at `prefix`, as messages show it.
    pub fn etcd_root(prefix: &str) -> PathBuf {
        PathBuf::from(format!("etcd:{prefix}"))
    }

    fn inside(&self, path: &Path) -> bool {
        path.starts_with(&self.root)
    }

    fn not_there(path: &Path) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} is not in the cluster's configuration (push it with the folder)",
                path.display()
            ),
        )
    }
}

/// The cluster's configuration `files` (of the cluster at `prefix`) as the node whose own
/// file is `local` runs it: the pushed router document with that file's machine keys.
pub fn as_node_runs(
    local: &Path,
    prefix: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Files, ConfigErrors> {
    let root = Files::etcd_root(prefix);
    let refuse =
        |file: &Path, reason: String| ConfigErrors(vec![ConfigError::new(file, "", reason)]);
    let own =
        std::fs::read_to_string(local).map_err(|e| refuse(local, format!("cannot read: {e}")))?;
    let pushed = files
        .get(ROUTER)
        .and_then(|b| String::from_utf8(b.clone()).ok())
        .ok_or_else(|| refuse(&root.join(ROUTER), "missing or not UTF-8".into()))?;
    // Absolute: a relative path in the merged document would be taken as inside etcd.
    let folder = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let folder = std::path::absolute(folder)
        .map_err(|e| refuse(local, format!("cannot tell its folder: {e}")))?;
    let merged =
        machine::merge(&pushed, &own, &folder).map_err(|e| refuse(local, e.to_string()))?;
    Ok(Files::new(root, files).with_router(merged))
}

impl Source for Files {
    fn name(&self) -> &Path {
        &self.router
    }

    fn router(&self) -> io::Result<String> {
        if let Some(t) = &self.router_text {
            return Ok(t.clone());
        }
        let bytes = self
            .files
            .get(&self.router)
            .ok_or_else(|| Self::not_there(&self.router))?;
        String::from_utf8(bytes.clone())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
    }

    fn tenants(&self, folder: &Path) -> io::Result<Vec<Document>> {
        if !self.inside(folder) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}: the tenants of a cluster are in its pushed folder",
                    folder.display()
                ),
            ));
        }
        Ok(self
            .files
            .iter()
            .filter(|(p, _)| p.parent() == Some(folder))
            .filter(|(p, _)| p.extension().is_some_and(|x| x == "toml"))
            .map(|(p, b)| Document {
                name: p.clone(),
                text: String::from_utf8(b.clone())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8")),
            })
            .collect())
    }

    fn file(&self, path: &Path) -> io::Result<Vec<u8>> {
        if self.inside(path) {
            return self
                .files
                .get(path)
                .cloned()
                .ok_or_else(|| Self::not_there(path));
        }
        std::fs::read(path)
    }

    fn is_folder(&self, path: &Path) -> bool {
        if self.inside(path) {
            return self.files.keys().any(|p| p.starts_with(path) && p != path);
        }
        path.is_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check;

    fn shipped() -> BTreeMap<String, Vec<u8>> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = BTreeMap::new();
        for rel in [
            "config/router.toml",
            "config/dialback.secret",
            "config/admin.token",
            "tenants/acme.toml",
            "tenants/acme.secret",
            "tenants/globex.toml",
            "tenants/globex.secret",
        ] {
            files.insert(rel.to_owned(), std::fs::read(repo.join(rel)).unwrap());
        }
        files
    }

    #[test]
    fn a_snapshot_checks_like_the_folder_it_was_pushed_from() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let from_disk = crate::config::load(&repo.join(ROUTER)).unwrap();
        let from_snapshot = check(&Files::new(repo, &shipped())).unwrap();
        assert!(crate::restart::plan::plan(&from_disk, &from_snapshot).is_empty());
        assert_eq!(from_snapshot.tenants.len(), 2);
    }

    #[test]
    fn messages_name_the_file_in_etcd() {
        let mut files = shipped();
        files.insert("tenants/acme.toml".into(), b"name = 3\n".to_vec());
        let root = Files::etcd_root("/xfed/t");
        let errs = check(&Files::new(root, &files)).unwrap_err();
        let shown = errs.to_string();
        assert!(shown.contains("etcd:/xfed/t/tenants/acme.toml"), "{shown}");
    }

    #[test]
    fn a_file_left_out_of_the_push_is_missing_not_read_from_disk() {
        let mut files = shipped();
        files.remove("tenants/acme.secret");
        let root = Files::etcd_root("/xfed/t");
        let shown = check(&Files::new(root, &files)).unwrap_err().to_string();
        assert!(
            shown.contains("acme.secret is not in the cluster's configuration"),
            "{shown}"
        );
    }
}
