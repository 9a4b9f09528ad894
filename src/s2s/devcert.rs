//! Development certificates: what the node presents when `[tls] cert` is not configured.
//!
//! The node's own names the node only. Each tenant without a certificate of its own gets one
//! naming its domains and chat node aliases, made the first time a stream needs it (by SNI
//! on an inbound stream, by the local domain on an outbound one) and kept while the TLS
//! configuration lasts. One certificate naming every hosted domain would not do: certificate
//! parsers refuse encodings past 64 KiB, which is about 2,000 names, and a node may host
//! 10,000 tenants; nor would making them all at start, which would cost seconds for names
//! most of which are never asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::sign::CertifiedKey;

use super::certificate::NodeCertificate;
use crate::config::Config;

/// Per-tenant development certificates, made on demand.
#[derive(Debug)]
pub struct DevCerts {
    /// Hosted domain or alias → its tenant's name and all its names (shared per tenant).
    names_of: HashMap<String, (Arc<str>, Arc<[String]>)>,
    /// Certificates made so far, by tenant name; the lock is held while one is made (well
    /// under a millisecond), so each is made once.
    made: Mutex<HashMap<Arc<str>, Arc<CertifiedKey>>>,
    /// Client configurations made so far, by tenant name (outbound streams).
    clients: Mutex<HashMap<Arc<str>, Arc<rustls::ClientConfig>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl DevCerts {
    /// For the tenants of `config` that have no certificate of their own.
    pub fn new(config: &Config, provider: Arc<rustls::crypto::CryptoProvider>) -> Self {
        let mut names_of = HashMap::new();
        for t in config.tenants.iter().filter(|t| t.tls.is_none()) {
            let tenant: Arc<str> = t.name.as_str().into();
            let names: Arc<[String]> = t.all_domains().map(str::to_owned).collect();
            for n in names.iter() {
                names_of.insert(n.clone(), (tenant.clone(), names.clone()));
            }
        }
        Self {
            names_of,
            made: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            provider,
        }
    }

    /// The certificate of the tenant hosting `domain`, made now if it is the first time;
    /// `None` when no tenant here hosts it without a certificate of its own, or when it
    /// cannot be made (logged; the node's certificate is presented instead).
    pub fn for_domain(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let (tenant, names) = self.names_of.get(domain)?;
        // A poisoned lock only means another thread panicked while inserting: the map holds
        // whole entries, so it is still sound to use.
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ck) = made.get(tenant) {
            return Some(ck.clone());
        }
        match self.make(names) {
            Ok(ck) => {
                made.insert(tenant.clone(), ck.clone());
                Some(ck)
            }
            Err(e) => {
                tracing::warn!(tenant = %tenant, "development certificate: {e}; presenting the node's");
                None
            }
        }
    }

    /// The client configuration presenting the certificate of the tenant hosting `local`,
    /// made with `build` the first time.
    pub fn client_for(
        &self,
        local: &str,
        build: impl FnOnce(Arc<CertifiedKey>) -> Result<Arc<rustls::ClientConfig>, String>,
    ) -> Option<Arc<rustls::ClientConfig>> {
        let (tenant, _) = self.names_of.get(local)?;
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return Some(c.clone());
        }
        let config = build(self.for_domain(local)?)
            .map_err(|e| tracing::warn!(tenant = %tenant, "development certificate: {e}"))
            .ok()?;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.clone(), config.clone());
        Some(config)
    }

    fn make(&self, names: &[String]) -> Result<Arc<CertifiedKey>, String> {
        let made = rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| e.to_string())?;
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
        CertifiedKey::from_der(vec![made.cert.der().clone()], key, &self.provider)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }
}

/// Makes the node's development certificate (naming the node only) and says, once, that the
/// node runs on development certificates.
pub fn dev_certificate(config: &Config) -> Result<NodeCertificate, String> {
    let made = rcgen::generate_simple_self_signed(vec![config.node_name.clone()])
        .map_err(|e| format!("cannot make the development certificate: {e}"))?;
    let tenants = config.tenants.iter().filter(|t| t.tls.is_none());
    let names: usize = tenants.clone().map(|t| t.all_domains().count()).sum();
    tracing::warn!(
        node = %config.node_name,
        tenants = tenants.count(),
        names,
        "NO TLS CERTIFICATE CONFIGURED ([tls] cert/key): presenting self-signed development certificates, the node's and one per tenant for its domains and aliases, made when first needed. Remote servers will not trust them; configure a real certificate for production."
    );
    Ok(NodeCertificate::SelfSigned {
        cert_pem: made.cert.pem(),
        key_pem: made.key_pair.serialize_pem(),
    })
}
