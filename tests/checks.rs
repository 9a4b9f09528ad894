//! Troubleshooting without a running node, through the real binary: `xfed check-cert` on
//! certificates made here (rcgen) reports dates, trust and the missing names by name; `xfed
//! csr` makes a request whose names, parsed back with x509-parser, are the node's, the
//! cluster's and every tenant domain and alias.

mod common;

use std::path::Path;

use common::fed::Pki;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

fn xfed(args: &[&str]) -> (i32, String, String) {
    common::fed::xfed_blocking(args)
}

/// A node (acme with a chat alias, on the node certificate) and tenant globex with its own
/// certificate.
fn write_config(dir: &Path, node: (&Path, &Path), globex: (&Path, &Path), ca: &Path) -> String {
    std::fs::create_dir_all(dir.join("tenants")).unwrap();
    let router = dir.join("router.toml");
    std::fs::write(
        &router,
        format!(
            "tenants_dir = \"tenants\"\n[node]\nname = \"edge-1.xfed.example\"\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\nca = [\"{}\"]\n",
            node.0.display(),
            node.1.display(),
            ca.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("tenants/acme.toml"),
        "name = \"acme\"\nsecret = \"s\"\ndomains = [\"acme.example\"]\n\
         chat_node_aliases = [\"conference.acme.example\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("tenants/globex.toml"),
        format!(
            "name = \"globex\"\nsecret = \"s\"\ndomains = [\"globex.example\", \"globex.net\"]\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            globex.0.display(),
            globex.1.display()
        ),
    )
    .unwrap();
    router.display().to_string()
}

#[test]
fn check_cert_names_what_is_missing_expired_or_untrusted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // The node certificate lacks the chat alias; globex's expired and misses globex.net.
    let (node_cert, node_key, _) = pki.leaf("node", &["acme.example"]);
    let (gx_cert, gx_key) = pki.expired("globex", &["globex.example"]);
    let router = write_config(
        dir.path(),
        (&node_cert, &node_key),
        (&gx_cert, &gx_key),
        &pki.ca_path(),
    );
    let (code, out, err) = xfed(&["check-cert", "--config", &router]);
    assert_eq!(code, 1, "{out}{err}");
    let node = out.split("tenant globex").next().unwrap();
    assert!(
        node.contains("trust:    verifies against the configured CAs"),
        "{out}"
    );
    assert!(
        node.contains(
            "PROBLEM: its subject alternative names do not cover: conference.acme.example"
        ),
        "{out}"
    );
    assert!(!node.contains("cover: acme.example"), "{out}");
    let globex = out.split("tenant globex").nth(1).expect("globex checked");
    assert!(globex.contains("EXPIRED"), "{out}");
    assert!(globex.contains("PROBLEM: expired on"), "{out}");
    assert!(globex.contains("do not cover: globex.net"), "{out}");
    assert!(
        globex.contains("certificate expired"),
        "the chain check says why: {out}"
    );

    // Fixed: the node certificate covers everything, globex's is current and complete.
    let (node_cert, node_key, _) = pki.leaf("node2", &["acme.example", "*.acme.example"]);
    let (gx_cert, gx_key, _) = pki.leaf("globex2", &["globex.example", "globex.net"]);
    let router = write_config(
        dir.path(),
        (&node_cert, &node_key),
        (&gx_cert, &gx_key),
        &pki.ca_path(),
    );
    let (code, out, err) = xfed(&["check-cert", "--config", &router]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("covers:   all 2 domain(s)"), "{out}");
    assert!(out.trim_end().ends_with("certificates OK"), "{out}");
}

#[test]
fn check_cert_refuses_a_self_signed_untrusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (node_cert, node_key) =
        pki.self_signed("node", &["acme.example", "conference.acme.example"]);
    let (gx_cert, gx_key, _) = pki.leaf("globex", &["globex.example", "globex.net"]);
    let router = write_config(
        dir.path(),
        (&node_cert, &node_key),
        (&gx_cert, &gx_key),
        &pki.ca_path(),
    );
    let (code, out, _) = xfed(&["check-cert", "--config", &router]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("PROBLEM: chain does not verify against [tls] ca: issuer is not a trusted CA"),
        "{out}"
    );
}

#[test]
fn csr_names_node_cluster_and_every_tenant_domain() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (node_cert, node_key, _) = pki.leaf("node", &["acme.example"]);
    let (gx_cert, gx_key, _) = pki.leaf("globex", &["globex.example"]);
    let router = write_config(
        dir.path(),
        (&node_cert, &node_key),
        (&gx_cert, &gx_key),
        &pki.ca_path(),
    );
    let key = dir.path().join("new.key");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let key = key.display().to_string();

    let (code, out, err) = xfed(&[
        "csr",
        "--key",
        &key,
        "--config",
        &router,
        "--name",
        "xmpp.provider.example",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, pem) = x509_parser::pem::parse_x509_pem(out.as_bytes()).expect("PEM");
    assert_eq!(pem.label, "CERTIFICATE REQUEST");
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents).expect("a CSR");
    let mut sans = Vec::new();
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                if let GeneralName::DNSName(d) = name {
                    sans.push(d.to_string());
                }
            }
        }
    }
    assert_eq!(
        sans,
        [
            "edge-1.xfed.example",
            "xmpp.provider.example",
            "acme.example",
            "conference.acme.example",
            "globex.example",
            "globex.net"
        ]
    );
    let cn = csr.certification_request_info.subject.to_string();
    assert_eq!(cn, "CN=edge-1.xfed.example");

    // One tenant's names, written to a file.
    let out_file = dir.path().join("globex.csr");
    let (code, _, err) = xfed(&[
        "csr",
        "--key",
        &key,
        "--config",
        &router,
        "--tenant",
        "globex",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("names: globex.example, globex.net"), "{err}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));

    let (code, _, err) = xfed(&[
        "csr", "--key", &key, "--config", &router, "--tenant", "nobody",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no tenant nobody"), "{err}");
    let (code, _, err) = xfed(&["csr", "--key", &router, "--config", &router]);
    assert_eq!(code, 1);
    assert!(err.contains("not a usable private key"), "{err}");
}
