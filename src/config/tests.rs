//! Configuration as an operator meets it, one fixture folder per case under
//! `tests/fixtures/config/`: `good` and `defaults` load with exactly what they say, every
//! other folder holds one kind of mistake and must be refused naming the file, the key and
//! the reason. Refusals are in `tests_refusals.rs`, domain names in `tests_domains.rs`, the
//! same checks over a source held in memory in `tests_source.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

#[path = "tests_domains.rs"]
mod domains;
#[path = "tests_refusals.rs"]
mod refusals;
#[path = "tests_source.rs"]
mod source;

/// `tests/fixtures/config/`.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

/// The router file of fixture `case`.
fn fixture(case: &str) -> PathBuf {
    fixtures().join(case).join("router.toml")
}

fn loads(router: &Path) -> Config {
    load(router).unwrap_or_else(|e| panic!("{} refused:\n{e}", router.display()))
}

/// Every problem fixture `case` is refused with.
fn problems(case: &str) -> Vec<ConfigError> {
    match load(&fixture(case)) {
        Ok(_) => panic!("fixture {case} was accepted"),
        Err(ConfigErrors(errs)) => errs,
    }
}

/// The problem among `errs` in `file` (a path ending: `router.toml`, `tenants/acme.toml`)
/// at `key` whose reason contains `reason`.
fn find<'a>(errs: &'a [ConfigError], file: &str, key: &str, reason: &str) -> &'a ConfigError {
    errs.iter()
        .find(|e| e.file.ends_with(file) && e.key == key && e.reason.contains(reason))
        .unwrap_or_else(|| {
            panic!(
                "no problem ({file}, {key}, ..{reason}..) among:\n{}",
                ConfigErrors(errs.to_vec())
            )
        })
}

/// Asserts fixture `case` is refused with exactly one problem: in `file`, at `key`, with
/// `reason` in its text. Returns it for further checks (line, wording).
fn assert_refused(case: &str, file: &str, key: &str, reason: &str) -> ConfigError {
    let errs = problems(case);
    let found = find(&errs, file, key, reason).clone();
    assert_eq!(
        errs.len(),
        1,
        "{case}: expected one problem, got:\n{}",
        ConfigErrors(errs.clone())
    );
    found
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn target(host: &str, port: u16) -> RouteTarget {
    RouteTarget {
        host: host.into(),
        port,
    }
}

#[test]
fn good_configuration_loads_every_key_as_written() {
    let dir = fixtures().join("good");
    let c = loads(&fixture("good"));

    assert_eq!(c.node_name, "edge-test");
    assert_eq!(
        c.listen,
        Listen {
            s2s: addr("0.0.0.0:15269"),
            component: addr("127.0.0.1:17400"),
            admin: addr("127.0.0.1:17480"),
        }
    );
    assert_eq!(
        c.tls,
        Tls {
            cert: Some(CertPaths {
                cert: dir.join("tls/node.pem"),
                key: dir.join("tls/node.key"),
            }),
            ca: vec![dir.join("tls/ca.pem")],
            crl: vec![dir.join("tls/ca.crl")],
        }
    );
    assert_eq!(
        c.federation,
        Federation {
            security_mode: SecurityMode::TlsOptional,
            require_client_certs: false,
            sasl_external: false,
            stream_management: true,
            // Read from the file, trailing newline dropped.
            dialback_secret: Some(Secret::new("db-s3cret")),
            idle_timeout: Duration::from_secs(300),
        }
    );
    assert_eq!(
        c.dns_nameservers,
        [addr("127.0.0.53:53"), addr("[2001:db8::53]:5353")]
    );
    assert_eq!(c.admin_token, Some(Secret::new("t0ken")));
    assert!(c.restart.delayed);
    assert_eq!(c.restart.schedule_text, "0 30 3 * * Sun");
    assert_eq!(
        c.limits,
        Limits {
            max_stanza_bytes: 262_144,
            max_depth: 32,
            handshake_timeout: Duration::from_secs(20),
            queue_bytes_per_connection: 8_388_608,
            in_flight_bytes_per_connection: 1_048_576,
            stuck: Duration::from_secs(5),
            unauthenticated: Caps {
                per_address: 32,
                total: 4096,
            },
        }
    );
    assert_eq!(
        c.events,
        EventsConfig {
            file: None,
            max_file_bytes: 1_048_576,
            keep_files: 3,
            memory: 500,
        }
    );

    let tenants = dir.join("tenants");
    let acme = TenantConfig {
        name: "acme".into(),
        file: tenants.join("acme.toml"),
        secret: Secret::new("acme-s3cret"),
        // Normalized: lower case, no trailing dot.
        domains: vec!["acme.example".into(), "acme.net".into()],
        chat_node_aliases: vec!["conference.acme.example".into()],
        privacy: Privacy {
            mode: PrivacyMode::AllowList,
            allow: set(&["globex.example", "partner.example"]),
            deny: set(&[]),
        },
        static_routes: StaticRoutes {
            enabled: true,
            routes: [(
                "partner.example".to_owned(),
                vec![
                    target("192.0.2.10", 5269),
                    target("xmpp.partner.example", 5269),
                    target("2001:db8::1", 5270),
                ],
            )]
            .into(),
        },
        tls: None,
    };
    let globex = TenantConfig {
        name: "globex".into(),
        file: tenants.join("globex.toml"),
        secret: Secret::new("globex-inline-secret"),
        // An internationalized domain, in the ASCII form DNS and routing use.
        domains: vec!["globex.example".into(), "xn--bcher-kva.example".into()],
        chat_node_aliases: vec!["rooms.globex.example".into()],
        privacy: Privacy {
            mode: PrivacyMode::DenyList,
            allow: set(&[]),
            deny: set(&["spam.example"]),
        },
        static_routes: StaticRoutes::default(),
        tls: Some(CertPaths {
            cert: tenants.join("tls/globex.pem"),
            key: tenants.join("tls/globex.key"),
        }),
    };
    assert_eq!(c.tenants, [acme, globex]);
}

#[test]
fn every_key_left_out_takes_its_documented_default() {
    // The shipped layout: config/router.toml beside tenants/, found through the default
    // tenants_dir "../tenants".
    let root = fixtures().join("defaults");
    let c = loads(&root.join("config/router.toml"));

    assert_eq!(c.node_name, "xfed");
    assert_eq!(
        c.events,
        EventsConfig {
            file: Some(root.join("config/events.jsonl")),
            max_file_bytes: 10 * 1024 * 1024,
            keep_files: 5,
            memory: 10_000,
        }
    );
    assert_eq!(
        c.listen,
        Listen {
            s2s: addr("0.0.0.0:5269"),
            component: addr("127.0.0.1:7400"),
            admin: addr("127.0.0.1:7480"),
        }
    );
    assert_eq!(
        c.tls,
        Tls {
            cert: None,
            ca: vec![],
            crl: vec![],
        }
    );
    assert_eq!(
        c.federation,
        Federation {
            security_mode: SecurityMode::TlsRequired,
            require_client_certs: true,
            sasl_external: true,
            stream_management: true,
            dialback_secret: None,
            idle_timeout: Duration::from_secs(600),
        }
    );
    assert!(c.dns_nameservers.is_empty());
    assert_eq!(c.admin_token, None);
    assert!(!c.restart.delayed);
    assert_eq!(c.restart.schedule_text, "0 0 2 * * *");
    assert_eq!(
        c.limits,
        Limits {
            max_stanza_bytes: 524_288,
            max_depth: 64,
            handshake_timeout: Duration::from_secs(30),
            queue_bytes_per_connection: 16_777_216,
            in_flight_bytes_per_connection: 1_048_576,
            stuck: Duration::from_secs(5),
            unauthenticated: Caps {
                per_address: 32,
                total: 4096,
            },
        }
    );
    assert_eq!(
        c.tenants,
        [TenantConfig {
            name: "acme".into(),
            file: root.join("tenants/acme.toml"),
            secret: Secret::new("acme-secret"),
            domains: vec!["acme.example".into()],
            chat_node_aliases: vec![],
            privacy: Privacy {
                mode: PrivacyMode::AllowList,
                allow: set(&[]),
                deny: set(&[]),
            },
            static_routes: StaticRoutes::default(),
            tls: None,
        }]
    );
}

#[test]
fn shipped_configuration_loads_with_its_two_tenants() {
    let c = loads(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/router.toml"));
    let shape: Vec<(&str, &[String], &[String])> = c
        .tenants
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.domains.as_slice(),
                t.chat_node_aliases.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                "acme",
                &["acme.example".to_owned()][..],
                &["conference.acme.example".to_owned()][..]
            ),
            (
                "globex",
                &["globex.example".to_owned()][..],
                &["rooms.globex.example".to_owned()][..]
            ),
        ]
    );
    assert!(
        c.tls.cert.is_none(),
        "ships without a certificate: a development one is made at start"
    );
    assert!(c.federation.dialback_secret.is_some());
    assert!(c.admin_token.is_some());
}

#[test]
fn check_config_summary_lists_the_tenants_and_their_domains() {
    let s = loads(&fixture("good")).summary();
    assert!(s.starts_with("configuration OK: "), "{s}");
    assert!(s.contains("tenants: 2"), "{s}");
    assert!(
        s.contains("domains: globex.example, xn--bcher-kva.example"),
        "{s}"
    );
    assert!(s.contains("privacy: deny-list (1 denied)"), "{s}");
}

#[test]
fn several_problems_in_three_files_are_all_reported() {
    let errs = problems("many_problems");
    find(
        &errs,
        "router.toml",
        "restart.schedule",
        "not a cron expression",
    );
    find(
        &errs,
        "router.toml",
        "limits.max_stanza_bytes",
        "at least 10000",
    );
    find(&errs, "tenants/acme.toml", "domains[0]", "\"acme example\"");
    find(&errs, "tenants/acme.toml", "privacy.deny", "allow-list");
    find(&errs, "tenants/globex.toml", "secret", "missing");
    find(
        &errs,
        "router.toml",
        "limits.in_flight_bytes_per_connection",
        "at least 1",
    );
    find(&errs, "router.toml", "limits.stuck_secs", "1 to 20 seconds");
    assert_eq!(errs.len(), 7, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn every_broken_fixture_is_refused_one_line_per_problem() {
    let mut cases = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures folder") {
        let case = entry
            .expect("fixture")
            .file_name()
            .into_string()
            .expect("UTF-8");
        if case == "good" || case == "defaults" {
            continue;
        }
        for e in problems(&case) {
            assert!(!e.to_string().contains('\n'), "{case}: {e}");
        }
        cases += 1;
    }
    assert!(cases >= 20, "only {cases} broken fixtures found");
}

#[test]
fn a_problem_reads_file_line_key_reason() {
    let e = assert_refused(
        "unknown_key_section",
        "router.toml",
        "federation.securty_mode",
        "unknown field",
    );
    let file = fixture("unknown_key_section").display().to_string();
    assert!(
        e.to_string()
            .starts_with(&format!("{file}:4: federation.securty_mode: unknown field")),
        "{e}"
    );

    let no_line = ConfigError::new(Path::new("tenants/acme.toml"), "secret", "missing");
    assert_eq!(no_line.to_string(), "tenants/acme.toml: secret: missing");
    let no_key = ConfigError::new(Path::new("router.toml"), "", "cannot read");
    assert_eq!(no_key.to_string(), "router.toml: cannot read");
}
