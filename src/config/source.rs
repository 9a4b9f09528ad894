//! Where a configuration is read from, kept apart from the rules that check it.
//!
//! A [`Source`] hands out documents and files by name and knows no rule; [`super::check`]
//! holds every rule and reads only through a source. [`Dir`] is the source of a
//! configuration on disk: `router.toml`, the tenants folder it names, and the files they
//! refer to. A snapshot kept elsewhere (etcd, a test's map) implements the same trait,
//! mapping its keys to the same names.
//!
//! Names are paths: the router document's name is its path as given, a name written in a
//! document is resolved against that document's folder ([`folder_of`], [`clean`]), lexically,
//! so messages show paths the way operators wrote them.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Everything a configuration is read from.
pub trait Source {
    /// The router document's name: the path of `router.toml`, as messages show it.
    fn name(&self) -> &Path;

    /// The router document's text.
    fn router(&self) -> io::Result<String>;

    /// The tenant documents (`*.toml`) in `folder`, the tenants folder the router document
    /// names, sorted by name. An error when the folder itself cannot be listed; a document
    /// that cannot be read is listed with its error.
    fn tenants(&self, folder: &Path) -> io::Result<Vec<Document>>;

    /// The bytes of a file a document refers to: a certificate, key, CA, CRL, secret or
    /// token file.
    fn file(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Whether `path` is a folder on this node: where the node will write (the event log),
    /// not something read from the source; a source kept elsewhere answers for the node's
    /// own disk.
    fn is_folder(&self, path: &Path) -> bool;
}

/// One TOML document of a configuration.
#[derive(Debug)]
pub struct Document {
    /// Its name in messages (and [`super::TenantConfig::file`]): a path.
    pub name: PathBuf,
    /// Its text, or why it could not be read.
    pub text: io::Result<String>,
}

/// A configuration in a folder on disk, found from the path of its `router.toml`.
#[derive(Debug, Clone)]
pub struct Dir {
    router: PathBuf,
}

impl Dir {
    /// The configuration whose router document is at `router` (the tenants folder and the
    /// other files are wherever it says, relative to its folder).
    pub fn new(router: impl Into<PathBuf>) -> Self {
        Self {
            router: router.into(),
        }
    }
}

impl Source for Dir {
    fn name(&self) -> &Path {
        &self.router
    }

    fn router(&self) -> io::Result<String> {
        std::fs::read_to_string(&self.router)
    }

    fn tenants(&self, folder: &Path) -> io::Result<Vec<Document>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| Document {
                text: std::fs::read_to_string(&name),
                name,
            })
            .collect())
    }

    fn file(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn is_folder(&self, path: &Path) -> bool {
        path.is_dir()
    }
}

/// The folder `path` is in; `.` for a bare file name (whose parent is the empty path).
pub(super) fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `a/b/../c` → `a/c`, lexically, so paths in messages read the way operators wrote them.
pub(super) fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_lists_its_tenant_documents_sorted_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let tenants = dir.path().join("tenants");
        std::fs::create_dir(&tenants).unwrap();
        for (name, text) in [("b.toml", "b"), ("a.toml", "a"), ("a.secret", "s")] {
            std::fs::write(tenants.join(name), text).unwrap();
        }
        let source = Dir::new(dir.path().join("router.toml"));
        let listed: Vec<(PathBuf, String)> = source
            .tenants(&tenants)
            .unwrap()
            .into_iter()
            .map(|d| (d.name, d.text.unwrap()))
            .collect();
        assert_eq!(
            listed,
            [
                (tenants.join("a.toml"), "a".to_owned()),
                (tenants.join("b.toml"), "b".to_owned())
            ]
        );
        assert!(source.tenants(&dir.path().join("nowhere")).is_err());
    }

    #[test]
    fn names_resolve_lexically_against_their_folder() {
        assert_eq!(folder_of(Path::new("router.toml")), Path::new("."));
        assert_eq!(
            clean(&folder_of(Path::new("etc/xfed/router.toml")).join("../tenants")),
            Path::new("etc/tenants")
        );
        assert_eq!(clean(Path::new("./")), Path::new("."));
    }
}
