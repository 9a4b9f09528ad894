//! `xfed csr`: a certificate signing request for the node, its subject alternative names
//! holding the node's name, any further names given (cluster names), and every federation
//! domain and chat node alias of the tenants it is for, in DNS form, ready for a CA.

use std::path::Path;

use rcgen::{CertificateParams, DnType, KeyPair};

use crate::config::{normalize_domain, Config};

/// The names a CSR for `config` carries: the node's name (when it is a DNS name), `extra`,
/// then every domain and alias of the tenants selected (all when `tenant` is `None`), each
/// once, in that order.
pub fn csr_names(
    config: &Config,
    extra: &[String],
    tenant: Option<&str>,
) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !names.contains(&n) {
            names.push(n);
        }
    };
    // A bare node name ("edge-1") is no DNS name a peer would look for.
    if tenant.is_none() && config.node_name.contains('.') {
        if let Ok(n) = normalize_domain(&config.node_name) {
            add(n);
        }
    }
    for e in extra {
        add(normalize_domain(e).map_err(|why| format!("--name {e}: {why}"))?);
    }
    let mut found = tenant.is_none();
    for t in &config.tenants {
        if tenant.is_some_and(|name| name != t.name) {
            continue;
        }
        found = true;
        for d in t.all_domains() {
            add(d.to_owned());
        }
    }
    if !found {
        return Err(format!("no tenant {}", tenant.unwrap_or_default()));
    }
    if names.is_empty() {
        return Err("no name to put in the request: no tenant domains and no --name".into());
    }
    Ok(names)
}

/// A PEM certificate signing request for `names`, signed with the PEM private key at `key`.
pub fn make_csr(key: &Path, names: &[String]) -> Result<String, String> {
    let pem = std::fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let key_pair = KeyPair::from_pem(&pem)
        .map_err(|e| format!("{}: not a usable private key: {e}", key.display()))?;
    let mut params = CertificateParams::new(names.to_vec())
        .map_err(|e| format!("subject alternative names: {e}"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, names[0].clone());
    let csr = params
        .serialize_request(&key_pair)
        .map_err(|e| format!("cannot sign the request: {e}"))?;
    csr.pem().map_err(|e| e.to_string())
}
