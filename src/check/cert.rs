//! `xfed check-cert`: for the node's certificate and each tenant's own, the validity dates,
//! whether the chain verifies against the trust the node is configured with, and whether the
//! subject alternative names cover every domain and chat node alias the certificate is
//! presented for — naming exactly what is missing.

use std::fmt::Write;
use std::path::Path;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::Config;
use crate::s2s::tls::{read_chain, NodeCertificate, TlsContext};

/// A certificate expiring sooner than this is reported.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// The verdict on one certificate.
pub struct CertReport {
    /// "node" or "tenant NAME".
    pub owner: String,
    pub text: String,
    /// What an operator must fix; empty when the certificate is fine.
    pub problems: Vec<String>,
}

/// Checks every certificate `config` presents.
pub fn check_certificates(config: &Config) -> Vec<CertReport> {
    // Trust as the node applies it to peers: [tls] ca (or the system CAs) and the CRLs.
    let trust = config.tls.cert.as_ref().map(|paths| {
        NodeCertificate::configured(config, paths).and_then(|node| TlsContext::new(config, &node))
    });
    let mut reports = Vec::new();
    let node_domains: Vec<&str> = config
        .tenants
        .iter()
        .filter(|t| t.tls.is_none())
        .flat_map(|t| t.all_domains())
        .collect();
    match (&config.tls.cert, &trust) {
        (None, _) => reports.push(CertReport {
            owner: "node".into(),
            text: "node: no [tls] cert configured\n".into(),
            problems: vec![
                "no [tls] cert/key: the node presents self-signed development certificates (its own, and one per tenant made when first needed), which no remote server trusts".into(),
            ],
        }),
        (Some(paths), Some(Ok(ctx))) => {
            reports.push(check_one("node", config, &paths.cert, &node_domains, Some(ctx)))
        }
        (Some(paths), Some(Err(e))) => {
            let mut r = check_one("node", config, &paths.cert, &node_domains, None);
            r.problems.push(format!("the node cannot use it: {e}"));
            reports.push(r);
        }
        (Some(_), None) => {}
    }
    let ctx = trust.as_ref().and_then(|t| t.as_ref().ok());
    for t in &config.tenants {
        if let Some(paths) = &t.tls {
            let domains: Vec<&str> = t.all_domains().collect();
            reports.push(check_one(
                &format!("tenant {}", t.name),
                config,
                &paths.cert,
                &domains,
                ctx,
            ));
        }
    }
    reports
}

/// The report on certificate file `cert` of `config` (as checked), presented for `domains`
/// and judged by `ctx` when the node's TLS could be built.
fn check_one(
    owner: &str,
    config: &Config,
    cert: &Path,
    domains: &[&str],
    ctx: Option<&TlsContext>,
) -> CertReport {
    let mut text = String::new();
    let mut problems = Vec::new();
    let _ = writeln!(text, "{owner}: {}", cert.display());
    let chain = match config.material(cert).and_then(read_chain) {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            problems.push(format!("{}: no certificate in it", cert.display()));
            return CertReport {
                owner: owner.into(),
                text,
                problems,
            };
        }
        Err(e) => {
            problems.push(e);
            return CertReport {
                owner: owner.into(),
                text,
                problems,
            };
        }
    };
    let parsed = match X509Certificate::from_der(&chain[0]) {
        Ok((_, c)) => c,
        Err(e) => {
            problems.push(format!("{}: not an X.509 certificate: {e}", cert.display()));
            return CertReport {
                owner: owner.into(),
                text,
                problems,
            };
        }
    };
    let _ = writeln!(text, "  subject:  {}", parsed.subject());
    let _ = writeln!(text, "  issuer:   {}", parsed.issuer());
    let validity = parsed.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    let now = chrono::Utc::now().timestamp();
    let days_left = (not_after - now).div_euclid(86_400);
    let _ = writeln!(
        text,
        "  valid:    {} to {} ({})",
        validity.not_before,
        validity.not_after,
        if not_after < now {
            "EXPIRED".to_owned()
        } else {
            format!("{days_left} days left")
        }
    );
    if now < not_before {
        problems.push(format!("not valid before {}", validity.not_before));
    }
    if not_after < now {
        problems.push(format!("expired on {}", validity.not_after));
    } else if days_left < EXPIRY_WARNING_DAYS {
        problems.push(format!(
            "expires in {days_left} days ({})",
            validity.not_after
        ));
    }
    let sans = dns_names(&parsed);
    let _ = writeln!(
        text,
        "  SANs:     {}",
        if sans.is_empty() {
            "(none)".into()
        } else {
            sans.join(", ")
        }
    );
    let _ = writeln!(text, "  chain:    {} certificate(s)", chain.len());
    if let Some(ctx) = ctx {
        let verdict = ctx.judge(&chain, domains.first().copied().unwrap_or("invalid."));
        match verdict.chain {
            Ok(()) => {
                let _ = writeln!(
                    text,
                    "  trust:    verifies against the configured CAs and CRLs"
                );
            }
            Err(e) => {
                let _ = writeln!(text, "  trust:    does not verify: {e}");
                problems.push(format!("chain does not verify against [tls] ca: {e}"));
            }
        }
    }
    let missing: Vec<&str> = domains
        .iter()
        .copied()
        .filter(|d| !covers(&sans, d))
        .collect();
    if domains.is_empty() {
        let _ = writeln!(text, "  covers:   no domain is presented with it");
    } else if missing.is_empty() {
        let _ = writeln!(
            text,
            "  covers:   all {} domain(s) and alias(es)",
            domains.len()
        );
    } else {
        let _ = writeln!(text, "  MISSING:  {}", missing.join(", "));
        problems.push(format!(
            "its subject alternative names do not cover: {}",
            missing.join(", ")
        ));
    }
    CertReport {
        owner: owner.into(),
        text,
        problems,
    }
}

/// The DNS names among the certificate's subject alternative names, lower case.
fn dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Does a SAN list cover `domain`: an exact name, or `*.parent` for one label (RFC 6125).
fn covers(sans: &[String], domain: &str) -> bool {
    sans.iter().any(|s| match s.strip_prefix("*.") {
        Some(parent) => domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => s == domain,
    })
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn wildcards_cover_one_label_only() {
        let sans = vec!["*.acme.example".to_owned(), "acme.example".to_owned()];
        assert!(covers(&sans, "acme.example"));
        assert!(covers(&sans, "conference.acme.example"));
        assert!(!covers(&sans, "a.b.acme.example"));
        assert!(!covers(&sans, "globex.example"));
    }
}
