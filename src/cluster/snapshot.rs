//! The cluster's configuration as one push left it: the manifest and every file, read at one
//! revision and checked whole against the manifest's digests before anything uses it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::etcd::Range;
use super::keys::Keys;

/// `P/config/version`: what a push wrote. The key's last change (etcd's revision of the
/// push's transaction) is the configuration's version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The version the push was based on (0: the first push).
    pub based_on: i64,
    /// When, RFC 3339 in UTC.
    pub pushed_at: String,
    /// `user@host` of whoever pushed.
    pub pushed_by: String,
    /// Every file of the configuration: its path in the pushed folder → SHA-256 (hex).
    pub files: BTreeMap<String, String>,
}

/// A configuration read whole from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Its version: the revision of the push that wrote it.
    pub version: i64,
    pub manifest: Manifest,
    /// Path in the pushed folder → contents; exactly the manifest's files.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Why a configuration read from etcd cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    #[error("{key}: the manifest is not readable ({reason})")]
    Manifest { key: String, reason: String },
    #[error("version {version}: {path} is missing from etcd")]
    Missing { version: i64, path: String },
    #[error("version {version}: {path} does not hold what the push wrote (SHA-256 differs)")]
    Altered { version: i64, path: String },
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

impl Snapshot {
    /// The configuration in `range` (a read of [`Keys::config`]): `None` when nothing was
    /// pushed yet; refused unless every file the manifest lists is there with its digest
    /// (files it does not list are left out: a push in the making never shows, since a
    /// push writes in one transaction, but keys added by hand might).
    pub fn read(keys: &Keys, range: &Range) -> Result<Option<Snapshot>, Incomplete> {
        let version_key = keys.version();
        let Some(head) = range.kvs.iter().find(|kv| kv.key == version_key) else {
            return Ok(None);
        };
        let manifest: Manifest =
            serde_json::from_slice(&head.value).map_err(|e| Incomplete::Manifest {
                key: version_key.clone(),
                reason: e.to_string(),
            })?;
        let version = head.mod_revision;
        let stored: BTreeMap<&str, &[u8]> = range
            .kvs
            .iter()
            .filter_map(|kv| Some((keys.file_path(&kv.key)?, kv.value.as_slice())))
            .collect();
        let mut files = BTreeMap::new();
        for (path, digest) in &manifest.files {
            let Some(bytes) = stored.get(path.as_str()) else {
                return Err(Incomplete::Missing {
                    version,
                    path: path.clone(),
                });
            };
            if sha256(bytes) != *digest {
                return Err(Incomplete::Altered {
                    version,
                    path: path.clone(),
                });
            }
            files.insert(path.clone(), bytes.to_vec());
        }
        Ok(Some(Snapshot {
            version,
            manifest,
            files,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::etcd::Kv;
    use super::*;

    fn kv(key: String, value: &[u8], rev: i64) -> Kv {
        Kv {
            key,
            value: value.to_vec(),
            mod_revision: rev,
            lease: 0,
        }
    }

    fn pushed(keys: &Keys, files: &[(&str, &[u8])]) -> Vec<Kv> {
        let manifest = Manifest {
            based_on: 0,
            pushed_at: "2026-12-02T08:00:00Z".into(),
            pushed_by: "ops@here".into(),
            files: files
                .iter()
                .map(|(p, b)| ((*p).to_owned(), sha256(b)))
                .collect(),
        };
        let mut kvs = vec![kv(
            keys.version(),
            &serde_json::to_vec(&manifest).unwrap(),
            7,
        )];
        kvs.extend(files.iter().map(|(p, b)| kv(keys.file(p), b, 7)));
        kvs
    }

    #[test]
    fn a_whole_push_reads_as_its_version() {
        let keys = Keys::new("/xfed/t").unwrap();
        let kvs = pushed(
            &keys,
            &[("config/router.toml", b"r"), ("tenants/a.toml", b"a")],
        );
        let s = Snapshot::read(&keys, &Range { revision: 9, kvs })
            .unwrap()
            .unwrap();
        assert_eq!(s.version, 7, "the push's revision, not the store's");
        assert_eq!(s.files["tenants/a.toml"], b"a");
        assert_eq!(s.files.len(), 2);
    }

    #[test]
    fn nothing_pushed_is_none_and_a_partial_push_is_refused() {
        let keys = Keys::new("/xfed/t").unwrap();
        let empty = Range {
            revision: 1,
            kvs: vec![],
        };
        assert_eq!(Snapshot::read(&keys, &empty), Ok(None));

        let mut kvs = pushed(
            &keys,
            &[("config/router.toml", b"r"), ("tenants/a.toml", b"a")],
        );
        kvs.pop();
        let err = Snapshot::read(&keys, &Range { revision: 9, kvs }).unwrap_err();
        assert!(matches!(err, Incomplete::Missing { ref path, .. } if path == "tenants/a.toml"));

        let mut kvs = pushed(&keys, &[("config/router.toml", b"r")]);
        kvs[1].value = b"edited by hand".to_vec();
        let err = Snapshot::read(&keys, &Range { revision: 9, kvs }).unwrap_err();
        assert!(matches!(err, Incomplete::Altered { .. }), "{err}");
    }
}
