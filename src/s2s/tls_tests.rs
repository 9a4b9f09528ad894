//! TLS is built from what the configuration checked, not from the files as they are later.

use std::path::Path;

use super::*;

/// A CA that signs leaves and revokes them.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for `name` with serial `serial`: its PEM certificate and key.
    fn leaf(&self, name: &str, serial: u64) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A PEM CRL revoking `serial`.
    fn crl(&self, serial: u64) -> String {
        let now = rcgen::date_time_ymd(2025, 1, 1);
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(serial),
                revocation_time: now,
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.cert, &self.key)
            .unwrap()
            .pem()
            .unwrap()
    }
}

fn der(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn files_replaced_after_the_check_change_nothing_until_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("tenants")).unwrap();
    let ca = Ca::new();
    let (node_cert, node_key) = ca.leaf("edge.example", 1);
    let (acme_cert, acme_key) = ca.leaf("acme.example", 2);
    write(d, "ca.pem", &ca.cert.pem());
    write(d, "ca.crl", &ca.crl(4));
    write(d, "node.pem", &node_cert);
    write(d, "node.key", &node_key);
    write(d, "tenants/acme.pem", &acme_cert);
    write(d, "tenants/acme.key", &acme_key);
    write(
        d,
        "router.toml",
        "tenants_dir = \"tenants\"\n[node]\nname = \"edge.example\"\n\
         [tls]\ncert = \"node.pem\"\nkey = \"node.key\"\nca = [\"ca.pem\"]\ncrl = [\"ca.crl\"]\n",
    );
    write(
        d,
        "tenants/acme.toml",
        "name = \"acme\"\nsecret = \"s\"\ndomains = [\"acme.example\"]\n\
         [tls]\ncert = \"acme.pem\"\nkey = \"acme.key\"\n",
    );
    let config = crate::config::load(&d.join("router.toml")).unwrap_or_else(|e| panic!("{e}"));

    // Every file replaced after the check: unreadable ones, and another CA.
    for name in [
        "ca.crl",
        "node.pem",
        "node.key",
        "tenants/acme.pem",
        "tenants/acme.key",
    ] {
        write(d, name, "not PEM any more");
    }
    let other = Ca::new();
    write(d, "ca.pem", &other.cert.pem());

    let paths = config.tls.cert.as_ref().expect("a node certificate");
    let node = NodeCertificate::configured(&config, paths).expect("checked bytes");
    let tls = TlsContext::new(&config, &node).expect("built from the checked bytes");
    let (presented, _) = node.load().unwrap();
    assert_eq!(presented, der(&node_cert));

    // Trust is the checked CA and CRL, not the files now on disk.
    let (peer, _) = ca.leaf("peer.example", 3);
    assert_eq!(tls.judge(&der(&peer), "peer.example").chain, Ok(()));
    let (revoked, _) = ca.leaf("peer.example", 4);
    assert_eq!(
        tls.judge(&der(&revoked), "peer.example").chain,
        Err("certificate revoked by a configured CRL".to_owned())
    );
    let (stranger, _) = other.leaf("peer.example", 5);
    assert!(tls.judge(&der(&stranger), "peer.example").chain.is_err());
}

#[test]
fn a_configuration_missing_a_file_it_names_is_an_error_not_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("tenants")).unwrap();
    write(d, "router.toml", "tenants_dir = \"tenants\"\n");
    let mut config = crate::config::load(&d.join("router.toml")).unwrap_or_else(|e| panic!("{e}"));
    // Named, present on disk, but not among what was checked.
    write(d, "ca.pem", &Ca::new().cert.pem());
    config.tls.ca.push(d.join("ca.pem"));
    let node = dev_certificate(&config).unwrap();
    let err = TlsContext::new(&config, &node).err().expect("refused");
    assert!(
        err.contains("not among the files checked with the configuration"),
        "{err}"
    );
}

// Development certificates (`devcert`), as the TLS context presents them.

/// `count` tenants of three names each, without certificates.
fn tenants(dir: &std::path::Path, count: usize) -> Config {
    let tenants = dir.join("tenants");
    std::fs::create_dir_all(&tenants).unwrap();
    std::fs::write(
        dir.join("router.toml"),
        "tenants_dir = \"tenants\"\n[node]\nname = \"edge.example\"\n",
    )
    .unwrap();
    for i in 0..count {
        std::fs::write(
            tenants.join(format!("t{i}.toml")),
            format!(
                "name = \"t{i}\"\nsecret = \"s\"\ndomains = [\"t{i}.example\", \"t{i}.example.net\"]\nchat_node_aliases = [\"conference.t{i}.example\"]\n"
            ),
        )
        .unwrap();
    }
    crate::config::load(&dir.join("router.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn names(ck: &rustls::sign::CertifiedKey) -> Vec<String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(&ck.cert[0]).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn ten_thousand_tenants_get_valid_certificates_each_naming_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let config = tenants(dir.path(), 10_000);
    let node = dev_certificate(&config).unwrap();
    let tls = TlsContext::new(&config, &node).expect("TLS starts with 10,000 tenants");
    let dev = tls.dev_certs().expect("development certificates in use");
    let ck = dev.for_domain("conference.t9999.example").unwrap();
    assert_eq!(
        names(&ck),
        [
            "t9999.example",
            "t9999.example.net",
            "conference.t9999.example"
        ]
    );
    // The same tenant's other name gets the same certificate, made once.
    let again = dev.for_domain("t9999.example").unwrap();
    assert!(Arc::ptr_eq(&ck, &again));
    assert!(dev.for_domain("not-hosted.example").is_none());
    let verdict = tls.judge(&ck.cert, "t9999.example.net");
    assert!(verdict.names_domain, "{verdict:?}");
}

#[test]
fn the_node_certificate_names_the_node_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = tenants(dir.path(), 3);
    let node = dev_certificate(&config).unwrap();
    let (chain, _) = node.load().unwrap();
    let tls = TlsContext::new(&config, &node).unwrap();
    assert!(tls.judge(&chain, "edge.example").names_domain);
    assert!(!tls.judge(&chain, "t1.example").names_domain);
}
