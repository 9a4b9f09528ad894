//! Configuration fixtures (`tests/fixtures/configs/<case>/`): the good one loads with what
//! it says; each broken one is refused naming the file, the key and the reason.

use std::path::{Path, PathBuf};

use super::*;

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/configs")
        .join(case)
        .join("router.toml")
}

/// Loads a broken fixture and returns its problems.
fn refused(case: &str) -> Vec<ConfigError> {
    match load(&fixture(case)) {
        Ok(_) => panic!("fixture {case} was accepted"),
        Err(ConfigErrors(errs)) => errs,
    }
}

/// Asserts `case` is refused with a problem in `file` (ending), at `key`, whose reason
/// contains `reason`.
fn assert_refused(case: &str, file: &str, key: &str, reason: &str) {
    let errs = refused(case);
    assert!(
        errs.iter()
            .any(|e| e.file.ends_with(file) && e.key == key && e.reason.contains(reason)),
        "{case}: no problem ({file}, {key}, ..{reason}..) among:\n{}",
        ConfigErrors(errs.clone())
    );
}

#[test]
fn good_fixture_loads_with_what_it_says() {
    let c = load(&fixture("good")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.node_name, "edge-test");
    assert_eq!(c.federation.security_mode, SecurityMode::TlsOptional);
    assert!(!c.federation.require_client_certs);
    assert_eq!(c.federation.idle_timeout.as_secs(), 300);
    assert_eq!(
        c.federation.dialback_secret.as_ref().map(Secret::expose),
        Some("s3cret")
    );
    assert_eq!(c.admin_token.as_ref().map(Secret::expose), Some("t0ken"));
    assert!(c.restart.delayed);
    assert_eq!(c.limits.max_stanza_bytes, 262_144);
    assert_eq!(c.dns_nameservers, vec!["127.0.0.53:53".parse().unwrap()]);
    let names: Vec<&str> = c.tenants.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["acme", "globex"]);
    let acme = &c.tenants[0];
    assert_eq!(acme.secret.expose(), "acme-s3cret");
    // Normalized: lower case, no trailing dot.
    assert_eq!(acme.domains, ["acme.example", "acme.net"]);
    assert_eq!(acme.chat_node_aliases, ["conference.acme.example"]);
    assert!(acme.privacy.allow.contains("partner.example"));
    let routes = acme.static_routes.for_domain("partner.example").unwrap();
    let shown: Vec<String> = routes.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "192.0.2.10:5269",
            "xmpp.partner.example:5269",
            "[2001:db8::1]:5270"
        ]
    );
    let globex = &c.tenants[1];
    assert_eq!(globex.secret.expose(), "inline-secret");
    // An internationalized domain, in the ASCII form DNS and routing use.
    assert_eq!(globex.domains, ["xn--bcher-kva.example"]);
    assert_eq!(globex.privacy.mode, PrivacyMode::DenyList);
}

#[test]
fn shipped_configuration_loads() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/router.toml");
    let c = load(&shipped).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = c.tenants.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["acme", "globex"]);
    assert!(
        c.tls.cert.is_none(),
        "ships without a certificate: a dev one is made"
    );
}

#[test]
fn unknown_keys_are_refused_where_they_are() {
    assert_refused("unknown_key_top", "router.toml", "colour", "unknown field");
    assert_refused(
        "unknown_key_section",
        "router.toml",
        "federation.securty_mode",
        "unknown field",
    );
    assert_refused("unknown_key_tenant", "acme.toml", "domain", "unknown field");
}

#[test]
fn bad_values_are_refused() {
    assert_refused(
        "bad_enum",
        "router.toml",
        "federation.security_mode",
        "unknown variant",
    );
    assert_refused(
        "bad_cron",
        "router.toml",
        "restart.schedule",
        "not a cron expression",
    );
    assert_refused(
        "small_stanza_limit",
        "router.toml",
        "limits.max_stanza_bytes",
        "at least 10000",
    );
    assert_refused(
        "missing_tenants_dir",
        "router.toml",
        "tenants_dir",
        "cannot read",
    );
    assert_refused(
        "bad_route_port",
        "acme.toml",
        "static_routes.routes.\"partner.example\"",
        "not a port number",
    );
}

#[test]
fn invalid_domain_names_are_refused_one_by_one() {
    let cases = [
        ("domains[0]", "not a valid domain name"),
        ("domains[1]", "IP address"),
        ("domains[2]", "not a valid domain name"),
        ("domains[3]", "an address, not a domain"),
        ("domains[4]", "not a valid domain name"),
    ];
    for (key, reason) in cases {
        assert_refused("bad_domains", "acme.toml", key, reason);
    }
}

#[test]
fn a_domain_or_alias_claimed_twice_names_both_tenants() {
    assert_refused(
        "domain_claimed_twice",
        "globex.toml",
        "domains",
        "already claimed by tenant acme",
    );
    assert_refused(
        "alias_is_other_domain",
        "globex.toml",
        "chat_node_aliases",
        "already claimed by tenant acme",
    );
    assert_refused(
        "duplicate_tenant_name",
        "globex.toml",
        "name",
        "already used by",
    );
}

#[test]
fn allow_and_deny_lists_follow_the_mode() {
    assert_refused(
        "allow_with_deny_list",
        "globex.toml",
        "privacy.allow",
        "deny-list",
    );
    assert_refused(
        "deny_with_allow_list",
        "acme.toml",
        "privacy.deny",
        "allow-list",
    );
}

#[test]
fn secrets_must_be_there_once() {
    assert_refused("missing_secret", "globex.toml", "secret", "missing");
    assert_refused(
        "missing_secret_file",
        "acme.toml",
        "secret_file",
        "cannot read",
    );
    assert_refused("both_secrets", "globex.toml", "secret", "not both");
}

#[test]
fn tls_files_are_checked() {
    assert_refused(
        "cert_without_key",
        "router.toml",
        "tls.key",
        "tls.cert is set",
    );
    assert_refused(
        "cert_not_pem",
        "router.toml",
        "tls.cert",
        "no PEM certificate",
    );
    assert_refused(
        "cert_not_pem",
        "router.toml",
        "tls.key",
        "no usable PEM private key",
    );
}

#[test]
fn toml_syntax_error_names_the_line() {
    let errs = refused("toml_syntax");
    let e = errs
        .iter()
        .find(|e| e.file.ends_with("acme.toml"))
        .expect("acme.toml refused");
    // Line 7 holds the unterminated string.
    assert_eq!(e.line, Some(7), "{e}");
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let errs = refused("many_problems");
    let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
    for wanted in ["restart.schedule", "domains[0]", "secret"] {
        assert!(keys.contains(&wanted), "{wanted} missing from {keys:?}");
    }
}

#[test]
fn normalize_domain_cases() {
    assert_eq!(normalize_domain("Example.COM").unwrap(), "example.com");
    assert_eq!(normalize_domain("example.com.").unwrap(), "example.com");
    assert_eq!(
        normalize_domain("bücher.example").unwrap(),
        "xn--bcher-kva.example"
    );
    assert!(normalize_domain("").is_err());
    assert!(normalize_domain("[::1]").is_err());
}
