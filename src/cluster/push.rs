//! (Past 400 lines by its tests alone.)
//!
//! `xfed config push`, `pull` and `diff`: a folder laid out like `config/` + `tenants/`,
//! checked exactly as `check-config` checks it, written to etcd in one transaction guarded by
//! the version it was based on; and back.
//!
//! A push carries exactly the files the check read (the router document, every tenant
//! document, the secrets, certificates, CAs and CRLs they name) less the machine's own
//! (`[tls] cert` and `key`, see [`super::machine`]); a file outside the folder is refused,
//! since another machine could not read it. Only files that changed are written, with the
//! manifest, in one transaction: etcd caps a transaction at 128 operations by default
//! (`--max-txn-ops`), so a first push of more than about 120 files needs that raised.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::etcd::{Etcd, EtcdError, Guarded, Range, Written};
use super::keys::Keys;
use super::snapshot::{sha256, Manifest, Snapshot};
use super::source::{Files, ROUTER};
use crate::config::{check, Config, ConfigErrors, Dir, Document, Source};
use crate::restart::plan::{plan, Change};

/// Beside a pulled or pushed folder: the version it holds, so the next push from it is
/// refused if the cluster moved on meanwhile.
pub const VERSION_FILE: &str = ".xfed-version";

/// A folder checked for a push.
#[derive(Debug)]
pub struct Gathered {
    pub config: Config,
    /// Path relative to the folder → contents: what the push writes.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The version the folder was pulled or last pushed at ([`VERSION_FILE`]).
    pub based_on: Option<i64>,
}

/// Why a push did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The folder's configuration is refused (one line per problem, as `check-config`).
    #[error("{0}")]
    Refused(ConfigErrors),
    #[error("{0}")]
    Folder(String),
    /// Someone else pushed in between.
    #[error("refused: this push is based on version {based_on}, but the cluster is at version {now}{by}; nothing was written (xfed config pull, redo the change, push again)")]
    Moved { based_on: i64, now: i64, by: String },
    #[error("the configuration in etcd cannot be read whole: {0}")]
    Incomplete(String),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

/// What a push did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The version it was based on (0: nothing pushed before).
    pub based_on: i64,
    /// The new version; `None` when nothing changed or in a dry run.
    pub version: Option<i64>,
    /// Files written or deleted: `+path`, `-path`, `~path`.
    pub files: Vec<String>,
    /// What each router instance would see change (node first, then tenants).
    pub changes: Vec<Change>,
}

/// Checks the folder `dir` (`dir/config/router.toml`, the tenants it names) as
/// `check-config` does, keeping what was read.
pub fn gather(dir: &Path) -> Result<Gathered, PushError> {
    let recording = Recording {
        inner: Dir::new(dir.join(ROUTER)),
        read: RefCell::new(BTreeMap::new()),
    };
    let config = check(&recording).map_err(PushError::Refused)?;
    let mut machine: Vec<PathBuf> = Vec::new();
    if let Some(c) = &config.tls.cert {
        machine.extend([c.cert.clone(), c.key.clone()]);
    }
    let mut files = BTreeMap::new();
    let mut outside = Vec::new();
    for (path, bytes) in recording.read.into_inner() {
        if machine.contains(&path) {
            continue;
        }
        match relative(dir, &path) {
            Some(rel) => {
                files.insert(rel, bytes);
            }
            None => outside.push(path.display().to_string()),
        }
    }
    if !outside.is_empty() {
        return Err(PushError::Folder(format!(
            "outside {}: {} (a cluster's configuration holds only files under the pushed folder; copy them in)",
            dir.display(),
            outside.join(", ")
        )));
    }
    let based_on = match std::fs::read_to_string(dir.join(VERSION_FILE)) {
        Ok(t) => Some(t.trim().parse().map_err(|_| {
            PushError::Folder(format!(
                "{}: not a version number",
                dir.join(VERSION_FILE).display()
            ))
        })?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(PushError::Folder(e.to_string())),
    };
    Ok(Gathered {
        config,
        files,
        based_on,
    })
}

/// `path` relative to `dir`, `/`-separated, if it is inside (both as the check names
/// them: lexically, without `.`).
fn relative(dir: &Path, path: &Path) -> Option<String> {
    let lexical = |p: &Path| -> PathBuf {
        p.components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect()
    };
    let path = lexical(path);
    let rel = path.strip_prefix(lexical(dir)).ok()?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The cluster's configuration now: the snapshot (if any was pushed), and the raw read.
pub async fn current(etcd: &Etcd, keys: &Keys) -> Result<(Option<Snapshot>, Range), PushError> {
    let range = etcd.range(&keys.config()).await?;
    let snapshot =
        Snapshot::read(keys, &range).map_err(|e| PushError::Incomplete(e.to_string()))?;
    Ok((snapshot, range))
}

/// Pushes `gathered` (from folder `dir`), or with `dry_run` says what it would change.
pub async fn push(
    etcd: &Etcd,
    keys: &Keys,
    dir: &Path,
    gathered: &Gathered,
    dry_run: bool,
) -> Result<Pushed, PushError> {
    let range = etcd.range(&keys.config()).await?;
    // A damaged configuration in etcd can be replaced: the push rewrites every file.
    let snapshot = Snapshot::read(keys, &range).ok().flatten();
    let head = range.kvs.iter().find(|kv| kv.key == keys.version());
    let now = head.map_or(0, |kv| kv.mod_revision);
    let based_on = gathered.based_on.unwrap_or(now);
    if based_on != now {
        return Err(moved(based_on, now, snapshot.as_ref()));
    }
    let stored: BTreeMap<&str, &[u8]> = range
        .kvs
        .iter()
        .filter_map(|kv| Some((keys.file_path(&kv.key)?, kv.value.as_slice())))
        .collect();
    let mut files = Vec::new();
    let mut puts = Vec::new();
    for (path, bytes) in &gathered.files {
        match stored.get(path.as_str()) {
            Some(old) if *old == bytes.as_slice() => {}
            old => {
                files.push(format!("{}{path}", if old.is_some() { "~" } else { "+" }));
                puts.push((keys.file(path), bytes.clone()));
            }
        }
    }
    let deletes: Vec<String> = stored
        .keys()
        .filter(|p| !gathered.files.contains_key(**p))
        .map(|p| {
            files.push(format!("-{p}"));
            keys.file(p)
        })
        .collect();
    let changes = match &snapshot {
        Some(s) => match check(&Files::new(dir, &s.files)) {
            Ok(old) => plan(&old, &gathered.config),
            Err(_) => Vec::new(),
        },
        None => plan_from_nothing(&gathered.config),
    };
    let mut out = Pushed {
        based_on,
        version: None,
        files,
        changes,
    };
    let unchanged = out.files.is_empty() && head.is_some();
    if dry_run || unchanged {
        return Ok(out);
    }
    let manifest = Manifest {
        based_on,
        pushed_at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        pushed_by: whoami(),
        files: gathered
            .files
            .iter()
            .map(|(p, b)| (p.clone(), sha256(b)))
            .collect(),
    };
    puts.push((
        keys.version(),
        serde_json::to_vec(&manifest).expect("a manifest serializes"),
    ));
    let write = Guarded {
        key: keys.version(),
        mod_revision: based_on,
        puts,
        deletes,
    };
    match etcd.guarded(write).await? {
        Written::At(version) => {
            out.version = Some(version);
            remember(dir, version);
            Ok(out)
        }
        Written::Moved(now) => {
            let (snapshot, _) = current(etcd, keys).await.unwrap_or((None, range));
            Err(moved(based_on, now, snapshot.as_ref()))
        }
    }
}

fn moved(based_on: i64, now: i64, snapshot: Option<&Snapshot>) -> PushError {
    let by = snapshot
        .filter(|s| s.version == now)
        .map(|s| {
            format!(
                " (pushed by {} at {})",
                s.manifest.pushed_by, s.manifest.pushed_at
            )
        })
        .unwrap_or_default();
    PushError::Moved { based_on, now, by }
}

/// Every instance of `config` as new.
fn plan_from_nothing(config: &Config) -> Vec<Change> {
    let mut empty = config.clone();
    empty.tenants.clear();
    plan(&empty, config)
}

/// Writes the version a folder now holds beside it; a folder that cannot take it is told
/// on stderr (the push itself happened).
fn remember(dir: &Path, version: i64) {
    if let Err(e) = std::fs::write(dir.join(VERSION_FILE), format!("{version}\n")) {
        eprintln!(
            "note: cannot write {}: {e}",
            dir.join(VERSION_FILE).display()
        );
    }
}

/// Writes the cluster's configuration into `out` as files: the pushed folder as it was.
/// Secrets, keys and tokens are readable by their owner only.
pub fn pull(snapshot: &Snapshot, out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, bytes) in &snapshot.files {
        let path = out.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
        let public = path
            .extension()
            .is_some_and(|x| x == "toml" || x == "pem" || x == "crt" || x == "crl");
        set_mode(&path, if public { 0o644 } else { 0o600 })?;
        written.push(path);
    }
    std::fs::write(out.join(VERSION_FILE), format!("{}\n", snapshot.version))?;
    Ok(written)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// `user@host` for the manifest.
fn whoami() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{host}")
}

/// A source that keeps what it hands out, so a push writes exactly what was checked.
struct Recording {
    inner: Dir,
    /// Path → bytes of every file and document read.
    read: RefCell<BTreeMap<PathBuf, Vec<u8>>>,
}

impl Recording {
    fn keep(&self, path: &Path, bytes: &[u8]) {
        self.read
            .borrow_mut()
            .insert(path.to_path_buf(), bytes.to_vec());
    }
}

impl Source for Recording {
    fn name(&self) -> &Path {
        self.inner.name()
    }

    fn router(&self) -> io::Result<String> {
        let text = self.inner.router()?;
        self.keep(self.inner.name(), text.as_bytes());
        Ok(text)
    }

    fn tenants(&self, folder: &Path) -> io::Result<Vec<Document>> {
        let docs = self.inner.tenants(folder)?;
        for d in &docs {
            if let Ok(t) = &d.text {
                self.keep(&d.name, t.as_bytes());
            }
        }
        Ok(docs)
    }

    fn file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let bytes = self.inner.file(path)?;
        self.keep(path, &bytes);
        Ok(bytes)
    }

    fn is_folder(&self, path: &Path) -> bool {
        self.inner.is_folder(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn a_push_carries_what_the_check_read() {
        let g = gather(repo()).unwrap();
        let names: Vec<&str> = g.files.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "config/admin.token",
                "config/dialback.secret",
                "config/router.toml",
                "tenants/acme.secret",
                "tenants/acme.toml",
                "tenants/globex.secret",
                "tenants/globex.toml"
            ]
        );
    }

    #[test]
    fn a_refused_folder_lists_its_problems_as_check_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::create_dir_all(dir.path().join("tenants")).unwrap();
        std::fs::write(dir.path().join(ROUTER), "[federation]\nsecurity_mode = 1\n").unwrap();
        let Err(PushError::Refused(errs)) = gather(dir.path()) else {
            panic!("refused")
        };
        assert!(
            errs.to_string().contains("federation.security_mode"),
            "{errs}"
        );
    }

    #[test]
    fn paths_inside_the_folder_only() {
        let d = Path::new("/srv/cfg");
        assert_eq!(
            relative(d, Path::new("/srv/cfg/tenants/a.toml")).as_deref(),
            Some("tenants/a.toml")
        );
        assert_eq!(relative(d, Path::new("/etc/ssl/ca.pem")), None);
        assert_eq!(relative(d, Path::new("/srv/cfg")), None);
        assert_eq!(
            relative(Path::new("."), Path::new("config/router.toml")).as_deref(),
            Some("config/router.toml")
        );
        assert_eq!(relative(Path::new("."), Path::new("../x")), None);
    }
}
