//! The security matrix, xfed ↔ xfed: each pair of security modes and each kind of
//! certificate, with the outcome it must give — delivered, over TLS or not, authenticated by
//! which mechanism — or no federation at all. Never a silent downgrade.

mod common;

use std::path::Path;
use std::time::Duration;

use common::fed::*;
use common::*;
use xfed::s2s::auth::Mechanism;
use xfed::s2s::Direction;

/// What a message from acme (node A) to globex (node B) gives.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Delivered; A's outbound stream ran TLS or not, authenticated by the mechanism.
    Delivered { tls: bool, mechanism: Mechanism },
    /// Returned to the sender with this stanza error condition.
    Refused(String),
}

use Outcome::*;

struct Side {
    fed: String,
    tls: String,
}

fn side(fed: &str, tls: String) -> Side {
    Side {
        fed: fed.to_owned(),
        tls,
    }
}

/// Starts A and B with the given sides, sends one message A → B, and reports the outcome.
async fn outcome(a: Side, b: Side) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb, _) = write_pair(dir.path(), (&a.fed, &a.tls), (&b.fed, &b.tls));
    let a = start_node(&ra).await;
    let b = start_node(&rb).await;
    let mut acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    let mut globex = component(b.component_addr(), "globex.example", "globex-secret").await;
    wait_links(&b, "globex", 1).await;
    acme.send(
        "<message from='a@acme.example' to='b@globex.example' id='m'><body>hello</body></message>",
    )
    .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let result = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no outcome within 15 s"
        );
        let poll = Duration::from_millis(50);
        let _ = tokio::time::timeout(poll, globex.read_until(|r| r.contains("</message>"))).await;
        if globex.received.contains("<body>hello</body>") {
            let stream = a
                .s2s_streams()
                .into_iter()
                .find(|s| s.direction == Direction::Outgoing)
                .expect("outbound stream");
            break Delivered {
                tls: stream.tls_version.is_some(),
                mechanism: stream.pairs[0].mechanism,
            };
        }
        let _ = tokio::time::timeout(poll, acme.read_until(|r| r.contains("</message>"))).await;
        if acme.received.contains("type='error'") {
            let cond = acme
                .received
                .split("<error type='")
                .nth(1)
                .unwrap_or_default();
            let cond = cond.split('<').nth(1).unwrap_or_default();
            break Refused(cond.split([' ', '/']).next().unwrap_or_default().to_owned());
        }
    };
    a.shutdown().await;
    b.shutdown().await;
    result
}

async fn start_node(router: &Path) -> xfed::node::Node {
    let cfg = xfed::config::load(router).unwrap_or_else(|e| panic!("{e}"));
    xfed::node::Node::start(cfg).await.expect("node starts")
}

/// Certificates for the matrix, made once per test.
struct Certs {
    _dir: tempfile::TempDir,
    pki: Pki,
    a: (String, String),
    b: (String, String),
    b_serial: u64,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let (ac, ak, _) = pki.leaf("a", &["acme.example"]);
        let (bc, bk, b_serial) = pki.leaf("b", &["globex.example"]);
        let s = |p: std::path::PathBuf| p.display().to_string();
        Certs {
            a: (s(ac), s(ak)),
            b: (s(bc), s(bk)),
            _dir: dir,
            pki,
            b_serial,
        }
    }

    fn ca(&self) -> String {
        self.pki.ca_path().display().to_string()
    }

    /// `[tls]` lines: a certificate, and the test CA trusted (plus CRLs).
    fn tls(&self, cert: &(String, String), crls: &[String]) -> String {
        let crl: Vec<String> = crls.iter().map(|c| format!("\"{c}\"")).collect();
        format!(
            "cert = \"{}\"\nkey = \"{}\"\nca = [\"{}\"]\ncrl = [{}]",
            cert.0,
            cert.1,
            self.ca(),
            crl.join(", ")
        )
    }
}

const REQUIRED_STRICT: &str = "security_mode = \"tls-required\"\nrequire_client_certs = true";
const REQUIRED: &str = "security_mode = \"tls-required\"\nrequire_client_certs = false";
const OPTIONAL: &str = "security_mode = \"tls-optional\"\nrequire_client_certs = false";
const NO_TLS: &str = "security_mode = \"no-tls\"\nrequire_client_certs = false";

#[actix_rt::test]
async fn trusted_certificates_give_sasl_external_or_dialback_when_switched_off() {
    let c = Certs::new();
    let got = outcome(
        side(REQUIRED_STRICT, c.tls(&c.a, &[])),
        side(REQUIRED_STRICT, c.tls(&c.b, &[])),
    )
    .await;
    assert_eq!(
        got,
        Delivered {
            tls: true,
            mechanism: Mechanism::SaslExternal
        }
    );
    let off = format!("{REQUIRED_STRICT}\nsasl_external = false");
    let got = outcome(side(&off, c.tls(&c.a, &[])), side(&off, c.tls(&c.b, &[]))).await;
    assert_eq!(
        got,
        Delivered {
            tls: true,
            mechanism: Mechanism::Dialback
        }
    );
}

#[actix_rt::test]
async fn self_signed_certificates_need_require_client_certs_off() {
    // Development certificates name the tenant domains but no CA vouches for them.
    let got = outcome(side(REQUIRED, String::new()), side(REQUIRED, String::new())).await;
    assert_eq!(
        got,
        Delivered {
            tls: true,
            mechanism: Mechanism::Dialback
        }
    );
    let c = Certs::new();
    let got = outcome(
        side(REQUIRED_STRICT, c.tls(&c.a, &[])),
        side(REQUIRED_STRICT, String::new()),
    )
    .await;
    assert_eq!(got, Refused("remote-server-not-found".into()));
}

#[actix_rt::test]
async fn a_certificate_naming_another_domain_is_refused_whatever_the_setting() {
    let c = Certs::new();
    let (wc, wk, _) = c.pki.leaf("wrong", &["other.example"]);
    let wrong = (wc.display().to_string(), wk.display().to_string());
    let got = outcome(
        side(REQUIRED, c.tls(&c.a, &[])),
        side(REQUIRED, c.tls(&wrong, &[])),
    )
    .await;
    assert_eq!(got, Refused("remote-server-not-found".into()));
}

#[actix_rt::test]
async fn a_revoked_certificate_is_refused_only_where_the_crl_is_configured() {
    let c = Certs::new();
    let crl = c.pki.crl("revoked", &[c.b_serial]).display().to_string();
    let got = outcome(
        side(REQUIRED_STRICT, c.tls(&c.a, &[crl])),
        side(REQUIRED_STRICT, c.tls(&c.b, &[])),
    )
    .await;
    assert_eq!(got, Refused("remote-server-not-found".into()));
    let got = outcome(
        side(REQUIRED_STRICT, c.tls(&c.a, &[])),
        side(REQUIRED_STRICT, c.tls(&c.b, &[])),
    )
    .await;
    assert!(matches!(got, Delivered { tls: true, .. }), "{got:?}");
}

#[actix_rt::test]
async fn required_certificates_without_the_ca_are_refused() {
    let c = Certs::new();
    // A trusts only the system CAs, which do not include the test CA.
    let a_tls = format!("cert = \"{}\"\nkey = \"{}\"", c.a.0, c.a.1);
    let got = outcome(
        side(REQUIRED_STRICT, a_tls),
        side(REQUIRED_STRICT, c.tls(&c.b, &[])),
    )
    .await;
    assert_eq!(got, Refused("remote-server-not-found".into()));
}

#[actix_rt::test]
async fn tls_required_never_downgrades_to_plain() {
    let got = outcome(side(REQUIRED, String::new()), side(NO_TLS, String::new())).await;
    assert_eq!(got, Refused("remote-server-not-found".into()));
    let got = outcome(side(NO_TLS, String::new()), side(REQUIRED, String::new())).await;
    assert_eq!(got, Refused("remote-server-not-found".into()));
}

#[actix_rt::test]
async fn tls_optional_uses_tls_when_both_can_and_plain_with_no_tls() {
    let got = outcome(side(OPTIONAL, String::new()), side(OPTIONAL, String::new())).await;
    assert_eq!(
        got,
        Delivered {
            tls: true,
            mechanism: Mechanism::Dialback
        }
    );
    let got = outcome(side(OPTIONAL, String::new()), side(NO_TLS, String::new())).await;
    assert_eq!(
        got,
        Delivered {
            tls: false,
            mechanism: Mechanism::Dialback
        }
    );
    let got = outcome(side(NO_TLS, String::new()), side(NO_TLS, String::new())).await;
    assert_eq!(
        got,
        Delivered {
            tls: false,
            mechanism: Mechanism::Dialback
        }
    );
}
