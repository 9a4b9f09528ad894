//! What `check-config` refuses, one fixture each: the problem is named by file, key and
//! reason, and nothing else is reported.

use super::*;

#[test]
fn unknown_key_at_top_level() {
    let e = assert_refused(
        "unknown_key_top",
        "router.toml",
        "colour",
        "unknown field `colour`",
    );
    assert_eq!(e.line, Some(2));
}

#[test]
fn unknown_key_in_a_section_names_the_keys_it_could_be() {
    let e = assert_refused(
        "unknown_key_section",
        "router.toml",
        "federation.securty_mode",
        "unknown field `securty_mode`",
    );
    assert!(e.reason.contains("`security_mode`"), "{e}");
    assert_eq!(e.line, Some(4));
}

#[test]
fn unknown_key_in_a_tenant_file() {
    let e = assert_refused(
        "unknown_key_tenant",
        "tenants/acme.toml",
        "chat_node_alias",
        "unknown field `chat_node_alias`",
    );
    assert_eq!(e.line, Some(4));
}

#[test]
fn security_mode_must_be_one_of_three() {
    let e = assert_refused(
        "bad_enum",
        "router.toml",
        "federation.security_mode",
        "unknown variant `maybe`",
    );
    assert!(e
        .reason
        .contains("`tls-required`, `tls-optional`, `no-tls`"));
    assert_eq!(e.line, Some(4));
}

#[test]
fn restart_schedule_must_be_a_cron_expression() {
    let e = assert_refused(
        "bad_cron",
        "router.toml",
        "restart.schedule",
        "\"every night at 2\" is not a cron expression",
    );
    // The cron crate's explanation, without its caret diagram.
    assert!(e.reason.ends_with("'every' specified."), "{e}");
}

#[test]
fn tenants_dir_must_exist() {
    let e = assert_refused(
        "missing_tenants_dir",
        "router.toml",
        "tenants_dir",
        "cannot read",
    );
    assert!(e.reason.contains("tenant.d"), "{e}");
}

#[test]
fn tls_cert_needs_its_key() {
    assert_refused(
        "cert_without_key",
        "router.toml",
        "tls.key",
        "tls.cert is set but tls.key is not",
    );
}

#[test]
fn tls_cert_must_hold_a_pem_certificate() {
    let e = assert_refused(
        "cert_not_pem",
        "router.toml",
        "tls.cert",
        "no PEM certificate",
    );
    assert!(e.reason.contains("tls/node.pem"), "{e}");
}

#[test]
fn stanza_limit_is_at_least_what_rfc_6120_asks() {
    assert_refused(
        "small_stanza_limit",
        "router.toml",
        "limits.max_stanza_bytes",
        "at least 10000",
    );
}

#[test]
fn toml_syntax_error_in_the_router_file_names_its_line() {
    let e = assert_refused(
        "toml_syntax_router",
        "router.toml",
        "",
        "invalid table header; expected",
    );
    assert_eq!(e.line, Some(6), "{e}");
}

#[test]
fn toml_syntax_error_in_a_tenant_file_names_its_line() {
    let e = assert_refused("toml_syntax_tenant", "tenants/acme.toml", "", "string");
    assert_eq!(e.line, Some(6), "{e}");
}

#[test]
fn tenant_without_domains() {
    assert_refused(
        "missing_domains",
        "tenants/acme.toml",
        "domains",
        "missing field `domains`",
    );
}

#[test]
fn component_secret_is_required() {
    assert_refused(
        "missing_secret",
        "tenants/acme.toml",
        "secret",
        "missing: the component secret (secret or secret_file) is required",
    );
}

#[test]
fn secret_file_must_exist() {
    let e = assert_refused(
        "missing_secret_file",
        "tenants/acme.toml",
        "secret_file",
        "cannot read",
    );
    assert!(e.reason.contains("tenants/acme.secret"), "{e}");
}

#[test]
fn secret_and_secret_file_together() {
    assert_refused(
        "both_secrets",
        "tenants/acme.toml",
        "secret",
        "either secret or secret_file, not both",
    );
}

#[test]
fn allow_list_under_deny_list_mode() {
    assert_refused(
        "allow_with_deny_list",
        "tenants/acme.toml",
        "privacy.allow",
        "mode is \"deny-list\"",
    );
}

#[test]
fn deny_list_under_allow_list_mode() {
    assert_refused(
        "deny_with_allow_list",
        "tenants/acme.toml",
        "privacy.deny",
        "mode is \"allow-list\"",
    );
}

#[test]
fn static_route_targets_need_a_real_port() {
    let errs = problems("bad_route_port");
    let key = "static_routes.routes.\"partner.example\"";
    let file = "tenants/acme.toml";
    find(
        &errs,
        file,
        key,
        "\"xmpp.partner.example:526900\": port \"526900\" is not a port number",
    );
    find(
        &errs,
        file,
        key,
        "\"192.0.2.10:0\": port \"0\" is not a port number",
    );
    // "[2001:db8::1]:5270" is fine.
    assert_eq!(errs.len(), 2, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn a_cluster_section_is_checked_and_refused_by_a_build_without_clusters() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tenants")).unwrap();
    let router = dir.path().join("router.toml");
    std::fs::write(
        &router,
        "tenants_dir = \"tenants\"\n[cluster]\netcd = [\"https://e:2379/v3\"]\nprefix = \"xfed\"\nlease_secs = 1\n",
    )
    .unwrap();
    let shown = crate::config::load(&router).unwrap_err().to_string();
    if cfg!(feature = "cluster") {
        for key in ["cluster.etcd[0]", "cluster.prefix", "cluster.lease_secs"] {
            assert!(shown.contains(key), "{key}: {shown}");
        }
        assert!(!shown.contains("without cluster support"), "{shown}");
    } else {
        assert!(
            shown.contains("cluster: this xfed was built without cluster support"),
            "{shown}"
        );
    }
}
