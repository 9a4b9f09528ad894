//! How a node reaches its cluster's etcd: the endpoints of `[cluster] etcd`, all `http://`
//! or all `https://`, and for `https://` the CA that signs etcd's certificate and, when etcd
//! asks for one (`--client-cert-auth`), the node's client certificate and key.
//!
//! The one set of rules for both readers of `[cluster]`: the check of a whole configuration
//! (`xfed check`, a reload) and a node's own file read before it joins (`cluster::Settings`).

use std::io;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;

use super::file::ClusterSection;
use super::material::Material;
use super::reader::{pem_certs, read_cert_pair, read_file};
use super::CertPaths;

/// TLS to etcd: the bytes of the files as checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// PEM CA certificates trusted for etcd's server certificate (and nothing else).
    pub ca: Material,
    /// The node's client certificate chain and private key, PEM.
    pub client: Option<(Material, Material)>,
}

/// Checks the endpoints and TLS files of `c`; file names are resolved by `at` and read by
/// `read`. Every problem goes to `err` (key, reason); `None` when plain `http://` or when
/// something is wrong.
pub fn etcd_access(
    c: &ClusterSection,
    at: &dyn Fn(&Path) -> PathBuf,
    read: &mut dyn FnMut(&Path) -> io::Result<Material>,
    err: &mut dyn FnMut(&str, String),
) -> Option<EtcdTls> {
    if c.etcd.is_empty() {
        err("cluster.etcd", "needs at least one endpoint".into());
    }
    let mut schemes = Vec::new();
    for (i, url) in c.etcd.iter().enumerate() {
        let split = ["http://", "https://"]
            .into_iter()
            .find_map(|s| url.strip_prefix(s).map(|rest| (s, rest)));
        match split {
            Some((scheme, rest)) if !rest.is_empty() && !rest.contains('/') => schemes.push(scheme),
            _ => err(
                &format!("cluster.etcd[{i}]"),
                format!("{url:?}: an endpoint is http://host:port or https://host:port"),
            ),
        }
    }
    if schemes.windows(2).any(|w| w[0] != w[1]) {
        err(
            "cluster.etcd",
            "mixes http:// and https:// endpoints: etcd's clients take one or the other".into(),
        );
        return None;
    }
    let https = schemes.first() == Some(&"https://");
    let Some(ca) = &c.etcd_ca else {
        if https {
            err(
                "cluster.etcd_ca",
                "the endpoints are https://: name the CA file that signs etcd's certificate".into(),
            );
        } else if c.etcd_cert.is_some() || c.etcd_key.is_some() {
            err(
                "cluster.etcd_cert",
                "a client certificate is for https:// endpoints, with cluster.etcd_ca".into(),
            );
        }
        return None;
    };
    if !https && !schemes.is_empty() {
        err(
            "cluster.etcd_ca",
            "set, but the endpoints are http://: etcd over TLS is https://host:port".into(),
        );
        return None;
    }
    let ca = check_ca(&at(ca), read).map_err(|r| err("cluster.etcd_ca", r));
    let client = match (&c.etcd_cert, &c.etcd_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let paths = CertPaths {
                cert: at(cert),
                key: at(key),
            };
            let (cert, key) = read_cert_pair(read, &paths);
            let cert = cert.map_err(|r| err("cluster.etcd_cert", r));
            let key = key.map_err(|r| err("cluster.etcd_key", r));
            cert.and_then(|c| key.map(|k| Some((c, k))))
        }
        (Some(_), None) => {
            err(
                "cluster.etcd_key",
                "cluster.etcd_cert is set but not its key".into(),
            );
            Err(())
        }
        (None, Some(_)) => {
            err(
                "cluster.etcd_cert",
                "cluster.etcd_key is set but not its certificate".into(),
            );
            Err(())
        }
    };
    Some(EtcdTls {
        ca: ca.ok()?,
        client: client.ok()?,
    })
}

/// `path` holds CA certificates a TLS client can trust, every one of them.
fn check_ca(
    path: &Path,
    read: &mut dyn FnMut(&Path) -> io::Result<Material>,
) -> Result<Material, String> {
    let m = read_file(read, path)?;
    let certs = pem_certs(&m)?;
    let (_, ignored) = RootCertStore::empty().add_parsable_certificates(certs);
    if ignored > 0 {
        return Err(format!(
            "{}: {ignored} of its certificates cannot be a trust anchor",
            path.display()
        ));
    }
    Ok(m)
}

#[cfg(test)]
#[path = "etcd_tests.rs"]
mod tests;
