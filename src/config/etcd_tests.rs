use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use super::{etcd_access, EtcdTls};
use crate::config::file::ClusterSection;
use crate::config::Material;

/// A CA certificate, a client certificate and its key, PEM.
fn pki() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["edge-1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), leaf.pem(), key.serialize_pem())
}

/// `[cluster]` from `toml` (the prefix added), checked against `files` (under /n/): the
/// TLS settings, and every (key, reason) refused.
fn access(toml: &str, files: &[(&str, &str)]) -> (Option<EtcdTls>, Vec<(String, String)>) {
    let text = format!("prefix = \"/xfed/t\"\n{toml}");
    let c: ClusterSection = toml::from_str(&text).unwrap();
    let files: HashMap<PathBuf, Vec<u8>> = files
        .iter()
        .map(|(n, b)| (Path::new("/n").join(n), b.as_bytes().to_vec()))
        .collect();
    let mut errs = Vec::new();
    let tls = etcd_access(
        &c,
        &|p| Path::new("/n").join(p),
        &mut |p| {
            let bytes = files.get(p).ok_or(io::ErrorKind::NotFound)?;
            Ok(Material::new(p, bytes.clone()))
        },
        &mut |k, r| errs.push((k.to_owned(), r)),
    );
    (tls, errs)
}

/// Files by name, and their text.
type Files<'a> = &'a [(&'a str, &'a str)];

fn keys(errs: &[(String, String)]) -> Vec<&str> {
    errs.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn plain_http_needs_no_files() {
    let (tls, errs) = access(
        r#"etcd = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]"#,
        &[],
    );
    assert_eq!(errs, vec![]);
    assert_eq!(tls, None);
}

#[test]
fn https_with_a_ca_and_a_client_certificate_is_taken_as_read() {
    let (ca, cert, key) = pki();
    let files = [
        ("ca.pem", ca.as_str()),
        ("c.pem", cert.as_str()),
        ("k.pem", key.as_str()),
    ];
    let (tls, errs) = access(
        r#"etcd = ["https://10.0.0.1:2379"]
etcd_ca = "ca.pem""#,
        &files,
    );
    assert_eq!(errs, vec![]);
    let tls = tls.expect("TLS settings");
    assert_eq!(tls.ca.bytes(), ca.as_bytes());
    assert_eq!(tls.client, None);

    let (tls, errs) = access(
        r#"etcd = ["https://10.0.0.1:2379", "https://etcd-2.example:2379"]
etcd_ca = "ca.pem"
etcd_cert = "c.pem"
etcd_key = "k.pem""#,
        &files,
    );
    assert_eq!(errs, vec![]);
    let (c, k) = tls.and_then(|t| t.client).expect("a client certificate");
    assert_eq!((c.bytes(), k.bytes()), (cert.as_bytes(), key.as_bytes()));
    assert_eq!(c.path(), Path::new("/n/c.pem"));
}

#[test]
fn each_inconsistent_setting_is_refused_at_its_key() {
    let (ca, cert, key) = pki();
    let files = [
        ("ca.pem", ca.as_str()),
        ("c.pem", cert.as_str()),
        ("k.pem", key.as_str()),
    ];
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"etcd = ["https://e:2379"]"#,
            "cluster.etcd_ca",
            "name the CA file",
        ),
        (
            r#"etcd = ["https://e:2379", "http://f:2379"]
etcd_ca = "ca.pem""#,
            "cluster.etcd",
            "mixes http:// and https://",
        ),
        (
            r#"etcd = ["http://e:2379"]
etcd_ca = "ca.pem""#,
            "cluster.etcd_ca",
            "the endpoints are http://",
        ),
        (
            r#"etcd = ["http://e:2379"]
etcd_cert = "c.pem"
etcd_key = "k.pem""#,
            "cluster.etcd_cert",
            "for https:// endpoints",
        ),
        (
            r#"etcd = ["https://e:2379"]
etcd_ca = "ca.pem"
etcd_cert = "c.pem""#,
            "cluster.etcd_key",
            "not its key",
        ),
        (
            r#"etcd = ["https://e:2379"]
etcd_ca = "ca.pem"
etcd_key = "k.pem""#,
            "cluster.etcd_cert",
            "not its certificate",
        ),
        (
            r#"etcd = ["https://e:2379/v3"]"#,
            "cluster.etcd[0]",
            "https://host:port",
        ),
        (
            r#"etcd = ["grpc://e:2379"]"#,
            "cluster.etcd[0]",
            "http://host:port",
        ),
        (r#"etcd = []"#, "cluster.etcd", "at least one endpoint"),
    ];
    for (toml, key, reason) in cases {
        let (tls, errs) = access(toml, &files);
        assert_eq!(tls, None, "{toml}");
        assert!(
            errs.iter().any(|(k, r)| k == key && r.contains(reason)),
            "{toml}: expected {key}: …{reason}…, got {errs:?}"
        );
    }
}

#[test]
fn files_that_are_missing_or_not_what_their_key_says_are_refused_with_their_name() {
    let (ca, cert, key) = pki();
    let https = r#"etcd = ["https://e:2379"]
etcd_ca = "ca.pem"
etcd_cert = "c.pem"
etcd_key = "k.pem""#;
    // (the files present, the keys refused, what every reason says)
    let cases: &[(Files<'_>, &[&str], &str)] = &[
        // The CA file missing: named, with the reason.
        (
            &[("c.pem", &cert), ("k.pem", &key)],
            &["cluster.etcd_ca"],
            "cannot read /n/ca.pem",
        ),
        // A key where the CA should be.
        (
            &[("ca.pem", &key), ("c.pem", &cert), ("k.pem", &key)],
            &["cluster.etcd_ca"],
            "/n/ca.pem: no PEM certificate",
        ),
        // Certificate and key swapped.
        (
            &[("ca.pem", &ca), ("c.pem", &key), ("k.pem", &cert)],
            &["cluster.etcd_cert", "cluster.etcd_key"],
            "/n/",
        ),
        // A CA certificate that is not DER inside its PEM armour.
        (
            &[
                (
                    "ca.pem",
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                ),
                ("c.pem", &cert),
                ("k.pem", &key),
            ],
            &["cluster.etcd_ca"],
            "cannot be a trust anchor",
        ),
    ];
    for (files, want, reason) in cases {
        let (tls, errs) = access(https, files);
        assert_eq!(tls, None);
        assert_eq!(keys(&errs), *want, "{errs:?}");
        assert!(errs.iter().all(|(_, r)| r.contains(reason)), "{errs:?}");
    }
}
