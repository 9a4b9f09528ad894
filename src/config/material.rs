//! The bytes of a certificate, key, CA or CRL file as the configuration checked them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// A file the configuration refers to, as read once when it was checked: TLS is built from
/// these bytes, never from a second read, and the digest is of these same bytes (so a file
/// replaced in place is a change at the next reload, see [`super::Config::files`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Material {
    /// Where it was read from, for messages.
    path: PathBuf,
    /// Shared: every configuration version and TLS context holding it points to one copy.
    bytes: Arc<[u8]>,
    /// SHA-256 of `bytes`, lower-case hex.
    digest: String,
}

impl Material {
    /// `bytes`, read from `path`.
    pub fn new(path: impl Into<PathBuf>, bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes = bytes.into();
        Self {
            path: path.into(),
            digest: format!("{:x}", Sha256::digest(&bytes)),
            bytes,
        }
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What it held when checked.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of [`Material::bytes`], lower-case hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// The path and digest only: the bytes may be a private key.
impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("sha256", &self.digest)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_of_the_bytes_held_and_debug_shows_no_bytes() {
        let m = Material::new("tls/node.key", b"PRIVATE".to_vec());
        assert_eq!(m.bytes(), b"PRIVATE");
        assert_eq!(m.digest(), format!("{:x}", Sha256::digest(b"PRIVATE")));
        let shown = format!("{m:?}");
        assert!(
            shown.contains("tls/node.key") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
