//! The source as the rules read it, and the rules about referenced files: a certificate and
//! its key hold PEM, a CA or CRL file can be read, a secret file holds a secret.
//!
//! Every certificate, key, CA and CRL file is read once, however often it is named; its
//! bytes become [`super::Config::files`], so what TLS is built from is what was checked.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::material::Material;
use super::source::{Document, Source};
use super::{CertPaths, Secret};

/// A source being checked, and the files read from it so far.
pub(super) struct Reader<'s> {
    source: &'s dyn Source,
    /// Path → what it held when first read; secrets are not kept here.
    read: BTreeMap<PathBuf, Material>,
}

impl<'s> Reader<'s> {
    pub(super) fn new(source: &'s dyn Source) -> Self {
        Self {
            source,
            read: BTreeMap::new(),
        }
    }

    /// The router document.
    pub(super) fn router(&self) -> Document {
        Document {
            name: self.source.name().to_path_buf(),
            text: self.source.router(),
        }
    }

    /// The tenant documents in `folder`, sorted by name.
    pub(super) fn tenants(&self, folder: &Path) -> io::Result<Vec<Document>> {
        self.source.tenants(folder)
    }

    /// Whether `path` is a folder on this node.
    pub(super) fn is_folder(&self, path: &Path) -> bool {
        self.source.is_folder(path)
    }

    /// The bytes of certificate, key, CA or CRL file `path`, read the first time it is asked
    /// for and kept.
    pub(super) fn material(&mut self, path: &Path) -> io::Result<Material> {
        if let Some(m) = self.read.get(path) {
            return Ok(m.clone());
        }
        let m = Material::new(path, self.source.file(path)?);
        self.read.insert(path.to_path_buf(), m.clone());
        Ok(m)
    }

    /// The secret in file `path` (trimmed; `what` names the key in the message when it is
    /// empty). Not kept among the files: its digest would be a way to guess it.
    pub(super) fn secret(&self, path: &Path, what: &str) -> Result<Secret, String> {
        let cannot = |e: io::Error| format!("cannot read {}: {e}", path.display());
        let bytes = self.source.file(path).map_err(cannot)?;
        // As `read_to_string` words it.
        let text = String::from_utf8(bytes).map_err(|_| {
            cannot(io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            ))
        })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(format!("{what}: {} is empty", path.display()));
        }
        Ok(Secret::new(secret))
    }

    /// Every certificate, key, CA and CRL file read, by path.
    pub(super) fn into_files(self) -> BTreeMap<PathBuf, Material> {
        self.read
    }
}

/// `path` (a CA or CRL file, at `key`) can be read.
pub(super) fn check_readable(
    reader: &mut Reader<'_>,
    path: &Path,
    key: &str,
    err: &mut dyn FnMut(&str, String),
) {
    if let Err(e) = reader.material(path) {
        err(key, format!("cannot read {}: {e}", path.display()));
    }
}

/// `paths` hold at least one PEM certificate and a PEM private key (`section.cert`,
/// `section.key`).
pub(super) fn check_cert_pair(
    reader: &mut Reader<'_>,
    paths: &CertPaths,
    section: &str,
    err: &mut dyn FnMut(&str, String),
) {
    let (cert, key) = read_cert_pair(&mut |p| reader.material(p), paths);
    if let Err(e) = cert {
        err(&format!("{section}.cert"), e);
    }
    if let Err(e) = key {
        err(&format!("{section}.key"), e);
    }
}

/// The certificate chain and private key at `paths`, read by `read`, each checked as PEM;
/// else why not, naming the file.
pub(super) fn read_cert_pair(
    read: &mut dyn FnMut(&Path) -> io::Result<Material>,
    paths: &CertPaths,
) -> (Result<Material, String>, Result<Material, String>) {
    let cert = read_file(read, &paths.cert).and_then(|m| pem_certs(&m).map(|_| m));
    let key = read_file(read, &paths.key).and_then(|m| pem_key(&m).map(|()| m));
    (cert, key)
}

/// File `path`, read by `read`; else why not, naming it.
pub(super) fn read_file(
    read: &mut dyn FnMut(&Path) -> io::Result<Material>,
    path: &Path,
) -> Result<Material, String> {
    read(path).map_err(|e| format!("cannot read {}: {}", path.display(), pem::Error::Io(e)))
}

/// The PEM certificates in `m`, at least one; else why not, naming its file.
pub(super) fn pem_certs(m: &Material) -> Result<Vec<CertificateDer<'static>>, String> {
    match CertificateDer::pem_slice_iter(m.bytes()).collect::<Result<Vec<_>, _>>() {
        Ok(certs) if certs.is_empty() => {
            Err(format!("{}: no PEM certificate in it", m.path().display()))
        }
        Ok(certs) => Ok(certs),
        Err(e) => Err(format!("{}: {e}", m.path().display())),
    }
}

/// `m` holds a PEM private key; else why not, naming its file.
pub(super) fn pem_key(m: &Material) -> Result<(), String> {
    PrivateKeyDer::from_pem_slice(m.bytes())
        .map(drop)
        .map_err(|e| format!("{}: no usable PEM private key ({e})", m.path().display()))
}
