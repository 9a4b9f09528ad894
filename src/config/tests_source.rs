//! [`check`] over a source that is not a folder: a snapshot kept in memory, as one from
//! etcd would be, gives the same configuration and the same refusals as the folder it was
//! taken from.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use super::*;
use crate::config::source::clean;

/// A configuration held in memory: file contents and folders, by path.
struct Memory {
    router: PathBuf,
    files: BTreeMap<PathBuf, Vec<u8>>,
    folders: BTreeSet<PathBuf>,
}

impl Memory {
    /// Everything under `root`, read now; the router document is `router`.
    fn snapshot(root: &Path, router: PathBuf) -> Memory {
        let mut memory = Memory {
            router,
            files: BTreeMap::new(),
            folders: BTreeSet::new(),
        };
        let mut todo = vec![root.to_path_buf()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).expect("a fixture folder") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    let bytes = std::fs::read(&path).expect("a fixture file");
                    memory.files.insert(path, bytes);
                }
            }
            memory.folders.insert(dir);
        }
        memory
    }

    fn text(&self, path: &Path) -> io::Result<String> {
        String::from_utf8(self.file(path)?).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    }
}

/// Answers as the disk would, errors included (`ENOENT`, `EISDIR`), so messages compare.
impl Source for Memory {
    fn name(&self) -> &Path {
        &self.router
    }

    fn router(&self) -> io::Result<String> {
        self.text(&self.router)
    }

    fn tenants(&self, folder: &Path) -> io::Result<Vec<Document>> {
        let folder = clean(folder);
        if !self.folders.contains(&folder) {
            return Err(io::Error::from_raw_os_error(2));
        }
        Ok(self
            .files
            .keys()
            .filter(|p| p.parent() == Some(&folder))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| Document {
                name: p.clone(),
                text: self.text(p),
            })
            .collect())
    }

    fn file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let path = clean(path);
        if self.folders.contains(&path) {
            return Err(io::Error::from_raw_os_error(21));
        }
        self.files
            .get(&path)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(2))
    }

    fn is_folder(&self, path: &Path) -> bool {
        self.folders.contains(&clean(path))
    }
}

#[test]
fn every_fixture_checks_the_same_from_memory_as_from_its_folder() {
    let mut cases = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures folder") {
        let root = entry.expect("fixture").path();
        let router = if root.ends_with("defaults") {
            root.join("config/router.toml")
        } else {
            root.join("router.toml")
        };
        let memory = Memory::snapshot(&root, router.clone());
        match (load(&router), check(&memory)) {
            (Ok(disk), Ok(held)) => assert_eq!(
                format!("{disk:?}"),
                format!("{held:?}"),
                "{}",
                root.display()
            ),
            (Err(disk), Err(held)) => assert_eq!(disk, held, "{}", root.display()),
            (disk, held) => panic!("{}: {disk:?} but {held:?}", root.display()),
        }
        cases += 1;
    }
    assert!(cases >= 20, "only {cases} fixtures found");
}

#[test]
fn a_snapshot_needs_no_disk_and_carries_its_certificate_bytes() {
    let good = fixtures().join("good");
    let mut memory = Memory::snapshot(&good, good.join("router.toml"));
    // Moved to names no disk has: only the source is read.
    let at = Path::new("/snapshot/xfed");
    memory.router = at.join("router.toml");
    memory.files = std::mem::take(&mut memory.files)
        .into_iter()
        .map(|(p, b)| (at.join(p.strip_prefix(&good).unwrap()), b))
        .collect();
    memory.folders = [at.to_path_buf(), at.join("tenants"), at.join("tls")].into();
    let c = check(&memory).unwrap_or_else(|e| panic!("refused:\n{e}"));
    assert_eq!(c.path, at.join("router.toml"));
    assert_eq!(c.tenants[1].file, at.join("tenants/globex.toml"));
    let cert = at.join("tls/node.pem");
    let held = c.material(&cert).expect("the node certificate was checked");
    assert_eq!(held.bytes(), memory.files[&cert].as_slice());
    assert_eq!(
        c.files.keys().collect::<Vec<_>>(),
        [
            &at.join("tenants/tls/globex.key"),
            &at.join("tenants/tls/globex.pem"),
            &at.join("tls/ca.crl"),
            &at.join("tls/ca.pem"),
            &at.join("tls/node.key"),
            &cert,
        ],
        "certificates, keys, CAs and CRLs; no secrets"
    );
}
