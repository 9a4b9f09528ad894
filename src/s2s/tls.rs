//! TLS for server-to-server streams.
//!
//! The TLS handshake accepts whatever certificate the peer shows; what it is worth is decided
//! afterwards, at the XMPP layer, by [`TlsContext::judge`]: does the chain verify against the
//! trusted CAs and pass the CRLs, and does it name the domain the peer claims? An inbound peer
//! presents its *server* certificate as a TLS client certificate, so chains are verified for
//! what they are — a server's identity (serverAuth) — not refused for lacking clientAuth.
//!
//! Certificates, keys, CAs and CRLs come from the bytes the configuration checked
//! ([`Config::files`]), never from a second read of their files: what runs is what was
//! checked, even if a file changes on disk before the next reload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::SignatureScheme;
use webpki::{CertRevocationList, KeyUsage, OwnedCertRevocationList, RevocationOptionsBuilder};

use super::anycert::AnyCert;
pub use super::certificate::{read_chain, NodeCertificate};
pub use super::devcert::dev_certificate;
use super::devcert::DevCerts;
use crate::config::{Config, Material};

/// Where Debian keeps the system's trusted CAs, used when `[tls] ca` is empty.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS configurations and the trust material to judge peers by.
pub struct TlsContext {
    /// Presents, by SNI, a tenant's own certificate for its domains, else the node's.
    pub server: Arc<rustls::ServerConfig>,
    /// The same for direct TLS (XEP-0368), with ALPN `xmpp-server`.
    pub server_direct: Arc<rustls::ServerConfig>,
    /// Presents the node's certificate.
    client: Arc<rustls::ClientConfig>,
    /// Present a tenant's own certificate on streams from its domains.
    tenant_clients: HashMap<String, Arc<rustls::ClientConfig>>,
    /// Without `[tls] cert`: each other tenant's development certificate, made on demand.
    dev: Option<Arc<DevCerts>>,
    provider: Arc<CryptoProvider>,
    anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
}

/// What a peer's certificate proves about one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `Ok` when the chain verifies against the trusted CAs and no CRL revokes it.
    pub chain: Result<(), String>,
    /// The certificate's subject alternative names cover the domain.
    pub names_domain: bool,
}

impl TlsContext {
    /// TLS for `config`, presenting `node_cert` where no tenant certificate applies.
    pub fn new(config: &Config, node_cert: &NodeCertificate) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = |chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>| {
            rustls::sign::CertifiedKey::from_der(chain, key, &provider)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        };
        let (chain, key) = node_cert.load()?;
        let node = certified(chain, key).map_err(|e| format!("node certificate: {e}"))?;
        let mut by_domain = HashMap::new();
        let mut tenant_keys = Vec::new();
        for t in &config.tenants {
            let Some(paths) = &t.tls else { continue };
            let (chain, key) = NodeCertificate::configured(config, paths)?.load()?;
            let ck = certified(chain, key).map_err(|e| format!("tenant {}: {e}", t.name))?;
            for d in t.all_domains() {
                by_domain.insert(d.to_owned(), ck.clone());
            }
            tenant_keys.push((t.all_domains().map(str::to_owned).collect::<Vec<_>>(), ck));
        }
        let dev = matches!(node_cert, NodeCertificate::SelfSigned { .. })
            .then(|| Arc::new(DevCerts::new(config, provider.clone())));
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(Arc::new(AnyCert(provider.clone())))
            .with_cert_resolver(Arc::new(BySni {
                by_domain,
                dev: dev.clone(),
                default: node.clone(),
            }));
        let client = client_config(&provider, node)?;
        let mut tenant_clients = HashMap::new();
        for (domains, ck) in tenant_keys {
            let config = client_config(&provider, ck)?;
            for d in domains {
                tenant_clients.insert(d, config.clone());
            }
        }

        // The system's CAs belong to the machine, not to the configuration: read here, and
        // only when `[tls] ca` names none.
        let system = if config.tls.ca.is_empty() && Path::new(SYSTEM_CA_BUNDLE).exists() {
            let bytes = std::fs::read(SYSTEM_CA_BUNDLE)
                .map_err(|e| format!("{SYSTEM_CA_BUNDLE}: {}", pem::Error::Io(e)))?;
            Some(bytes)
        } else {
            None
        };
        let mut ca_files: Vec<(&Path, &[u8])> = Vec::new();
        for path in &config.tls.ca {
            let m = config.material(path)?;
            ca_files.push((m.path(), m.bytes()));
        }
        if let Some(bytes) = &system {
            ca_files.push((Path::new(SYSTEM_CA_BUNDLE), bytes));
        }
        let mut anchors = Vec::new();
        for (file, bytes) in ca_files {
            for der in CertificateDer::pem_slice_iter(bytes) {
                let der = der.map_err(|e| format!("{}: {e}", file.display()))?;
                if let Ok(anchor) = webpki::anchor_from_trusted_cert(&der) {
                    anchors.push(anchor.to_owned());
                }
            }
        }
        let mut crls = Vec::new();
        for path in &config.tls.crl {
            crls.extend(load_crls(config.material(path)?)?);
        }
        // XEP-0368 §3: a direct TLS stream names its protocol by ALPN. Offered on direct TLS
        // only: a STARTTLS handshake from a peer that sends some other protocol still works.
        let mut server_direct = server.clone();
        server_direct.alpn_protocols = vec![b"xmpp-server".to_vec()];
        Ok(Self {
            server: Arc::new(server),
            server_direct: Arc::new(server_direct),
            client,
            tenant_clients,
            dev,
            provider,
            anchors,
            crls,
        })
    }

    /// The development certificates, when the node runs on them.
    #[cfg(test)]
    pub(crate) fn dev_certs(&self) -> Option<&DevCerts> {
        self.dev.as_deref()
    }

    /// The client configuration for streams from the hosted domain `local`: its tenant's own
    /// certificate when it has one, else (without `[tls] cert`) its tenant's development
    /// certificate, else the node's.
    pub fn client_for(&self, local: &str) -> Arc<rustls::ClientConfig> {
        if let Some(own) = self.tenant_clients.get(local) {
            return own.clone();
        }
        self.dev
            .as_ref()
            .and_then(|dev| dev.client_for(local, |ck| client_config(&self.provider, ck)))
            .unwrap_or_else(|| self.client.clone())
    }

    /// Judges `chain` (end entity first) for `domain`.
    pub fn judge(&self, chain: &[CertificateDer<'_>], domain: &str) -> Verdict {
        let Some(first) = chain.first() else {
            return Verdict {
                chain: Err("no certificate presented".into()),
                names_domain: false,
            };
        };
        let ee = match webpki::EndEntityCert::try_from(first) {
            Ok(ee) => ee,
            Err(e) => {
                return Verdict {
                    chain: Err(format!("unparsable certificate: {e:?}")),
                    names_domain: false,
                }
            }
        };
        let names_domain = ServerName::try_from(domain)
            .map(|name| ee.verify_is_valid_for_subject_name(&name).is_ok())
            .unwrap_or(false);
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                .build()
        });
        let chain_result = if self.anchors.is_empty() {
            Err("no trusted CAs configured ([tls] ca)".to_owned())
        } else {
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &self.anchors,
                &chain[1..],
                UnixTime::now(),
                KeyUsage::server_auth(),
                revocation,
                None,
            )
            .map(|_| ())
            .map_err(|e| describe(&e))
        };
        Verdict {
            chain: chain_result,
            names_domain,
        }
    }
}

/// A client configuration presenting `ck`, accepting any server certificate for the XMPP
/// layer to judge.
fn client_config(
    provider: &Arc<CryptoProvider>,
    ck: Arc<rustls::sign::CertifiedKey>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider.clone())))
        .with_client_cert_resolver(Arc::new(Fixed(ck)));
    Ok(Arc::new(config))
}

fn describe(e: &webpki::Error) -> String {
    match e {
        webpki::Error::CertRevoked => "certificate revoked by a configured CRL".into(),
        webpki::Error::UnknownIssuer => "issuer is not a trusted CA".into(),
        webpki::Error::CertExpired { .. } => "certificate expired".into(),
        webpki::Error::CertNotValidYet { .. } => "certificate not valid yet".into(),
        other => format!("chain does not verify: {other:?}"),
    }
}

/// The CRLs in a CRL file, PEM or DER.
fn load_crls(crl: &Material) -> Result<Vec<CertRevocationList<'static>>, String> {
    let (file, bytes) = (crl.path(), crl.bytes());
    let ders: Vec<Vec<u8>> = if bytes.starts_with(b"-----BEGIN") {
        CertificateRevocationListDer::pem_slice_iter(bytes)
            .map(|r| r.map(|d| d.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", file.display()))?
    } else {
        vec![bytes.to_vec()]
    };
    ders.iter()
        .map(|der| {
            OwnedCertRevocationList::from_der(der)
                .map(CertRevocationList::Owned)
                .map_err(|e| format!("{}: not a CRL: {e:?}", file.display()))
        })
        .collect()
}

/// Picks the server certificate by SNI: a tenant's own for its domains, else its
/// development certificate (without `[tls] cert`), else the node's.
#[derive(Debug)]
struct BySni {
    by_domain: HashMap<String, Arc<rustls::sign::CertifiedKey>>,
    dev: Option<Arc<DevCerts>>,
    default: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for BySni {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let Some(name) = hello.server_name().map(str::to_ascii_lowercase) else {
            return Some(self.default.clone());
        };
        if let Some(own) = self.by_domain.get(&name) {
            return Some(own.clone());
        }
        let dev = self.dev.as_ref().and_then(|d| d.for_domain(&name));
        Some(dev.unwrap_or_else(|| self.default.clone()))
    }
}

/// Always presents the same client certificate.
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
