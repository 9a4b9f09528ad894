//! The certificate the node presents on server-to-server streams: configured (`[tls] cert`
//! and `key`, as the configuration checked their bytes) or made at start for development.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertPaths, Config, Material};

/// The node's TLS identity, as configured or made at start.
pub enum NodeCertificate {
    /// From `[tls] cert` and `key`, as the configuration checked them.
    Configured { cert: Material, key: Material },
    /// Made at start because none is configured: PEM certificate and key.
    SelfSigned { cert_pem: String, key_pem: String },
}

impl NodeCertificate {
    /// The certificate and key at `paths`, as `config` checked them.
    pub fn configured(config: &Config, paths: &CertPaths) -> Result<Self, String> {
        Ok(NodeCertificate::Configured {
            cert: config.material(&paths.cert)?.clone(),
            key: config.material(&paths.key)?.clone(),
        })
    }

    /// The certificate chain and key to present.
    pub fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        match self {
            NodeCertificate::Configured { cert, key } => {
                let chain = read_chain(cert)?;
                let key = PrivateKeyDer::from_pem_slice(key.bytes())
                    .map_err(|e| format!("{}: {e}", key.path().display()))?;
                Ok((chain, key))
            }
            NodeCertificate::SelfSigned { cert_pem, key_pem } => {
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let key =
                    PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
                Ok((chain, key))
            }
        }
    }
}

/// The PEM certificate chain in `cert`, end entity first.
pub fn read_chain(cert: &Material) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(cert.bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.path().display()))
}
