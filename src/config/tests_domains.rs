//! Domain names: which ones are refused and why, one owner per domain, and the canonical
//! form every accepted one is kept in.

use super::*;

#[test]
fn invalid_domains_are_refused_each_at_its_index() {
    let errs = problems("bad_domains");
    let file = "tenants/acme.toml";
    // domains[0], "acme.example", is fine.
    let cases = [
        ("domains[1]", "\"acme example\" is not a valid domain name"),
        ("domains[2]", "\"192.0.2.1\" is an IP address"),
        ("domains[3]", "\"a..b\" is not a valid domain name"),
        (
            "domains[4]",
            "\"user@acme.example\" is an address, not a domain",
        ),
        // A 64-character label: DNS allows 63.
        ("domains[5]", "is not a valid domain name"),
        ("domains[6]", "\"192.0.2.1.\" is an IP address"),
    ];
    for (key, reason) in cases {
        find(&errs, file, key, reason);
    }
    assert_eq!(errs.len(), cases.len(), "{}", ConfigErrors(errs.clone()));
}

#[test]
fn invalid_domains_are_refused_in_aliases_privacy_lists_and_routes_too() {
    let errs = problems("bad_domains_elsewhere");
    let file = "tenants/acme.toml";
    find(
        &errs,
        file,
        "chat_node_aliases[0]",
        "\"conference..acme.example\" is not a valid domain name",
    );
    find(
        &errs,
        file,
        "privacy.allow[1]",
        "\"bob@partner.example\" is an address",
    );
    find(
        &errs,
        file,
        "static_routes.routes.\"partner example\"",
        "not a valid domain name",
    );
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn a_domain_claimed_by_two_tenants_names_both() {
    // globex wrote "ACME.example.": the clash is found on the normalized name.
    let e = assert_refused(
        "domain_claimed_twice",
        "tenants/globex.toml",
        "domains",
        "acme.example is already claimed by tenant acme",
    );
    let acme_file = fixtures().join("domain_claimed_twice/tenants/acme.toml");
    assert!(e.reason.contains(&acme_file.display().to_string()), "{e}");
}

#[test]
fn an_alias_that_is_another_tenants_domain() {
    let e = assert_refused(
        "alias_is_other_domain",
        "tenants/globex.toml",
        "chat_node_aliases",
        "acme.example is already claimed by tenant acme",
    );
    let acme_file = fixtures().join("alias_is_other_domain/tenants/acme.toml");
    assert!(e.reason.contains(&acme_file.display().to_string()), "{e}");
}

#[test]
fn two_tenant_files_with_one_name() {
    // Files are read in name order: acme-old.toml first, so acme.toml is the second claim.
    let e = assert_refused(
        "duplicate_tenant_name",
        "tenants/acme.toml",
        "name",
        "tenant name \"acme\" is already used by",
    );
    let first = fixtures().join("duplicate_tenant_name/tenants/acme-old.toml");
    assert!(e.reason.contains(&first.display().to_string()), "{e}");
}

#[test]
fn upper_case_becomes_lower_case() {
    assert_eq!(
        normalize_domain("Example.COM").as_deref(),
        Ok("example.com")
    );
}

#[test]
fn a_unicode_domain_becomes_its_xn_form() {
    assert_eq!(
        normalize_domain("bücher.example").as_deref(),
        Ok("xn--bcher-kva.example")
    );
    assert_eq!(
        normalize_domain("BÜCHER.example").as_deref(),
        Ok("xn--bcher-kva.example")
    );
}

#[test]
fn the_trailing_dot_is_dropped() {
    assert_eq!(
        normalize_domain("example.com.").as_deref(),
        Ok("example.com")
    );
    assert_eq!(
        normalize_domain("Bücher.example.").as_deref(),
        Ok("xn--bcher-kva.example")
    );
}

#[test]
fn normalizing_twice_changes_nothing() {
    for raw in ["Example.COM.", "bücher.example", "xn--bcher-kva.example"] {
        let once = normalize_domain(raw).unwrap();
        assert_eq!(normalize_domain(&once).as_deref(), Ok(once.as_str()));
    }
}

#[test]
fn lookup_keys_match_the_configured_form() {
    // What routing does with a domain from the wire must find what configuration stored.
    for wire in ["Example.COM.", "bücher.example", "BÜCHER.example."] {
        assert_eq!(domain_key(wire), normalize_domain(wire).unwrap(), "{wire}");
    }
}

#[test]
fn empty_and_bracketed_addresses_are_not_domains() {
    assert_eq!(normalize_domain(""), Err("empty domain name".into()));
    assert_eq!(normalize_domain("  "), Err("empty domain name".into()));
    for ip in ["[::1]", "2001:db8::1", "１９２.０.２.１"] {
        let reason = normalize_domain(ip).unwrap_err();
        assert!(reason.contains("IP address"), "{ip}: {reason}");
    }
}

/// `address_domain` against `jid::Jid::new` followed by `domain_key`, side by side: the
/// same answer — the same domain, or refused both — on addresses made of the characters
/// where the stringprep profiles, IDNA and the splitting on `@` and `/` differ, and on
/// everyday ones.
#[test]
fn the_plain_address_path_agrees_with_the_jid_crate() {
    use rand::{Rng, SeedableRng};
    let reference = |a: &str| {
        jid::Jid::new(a)
            .map(|j| domain_key(j.domain().as_str()).into_owned())
            .ok()
    };
    let fixed = [
        "user@example.com/res",
        "User@Example.COM/Res ource",
        "example.com",
        "example.com.",
        "example.com..",
        ".example.com",
        "a@b@c",
        "a/b@c",
        "a@b/c@d/e",
        "@example.com",
        "example.com/",
        "1.2.3.4",
        "u@192.0.2.1/r",
        "[::1]",
        "xn--bcher-kva.example",
        "ab--cd.example",
        "-a.example",
        "a-.example",
        "a.123",
        "a.1b",
        "b\u{fc}cher.example",
        "u\u{e9}@example.com",
        "u@example.com/r\u{e9}",
        "u@example.com/\u{7f}",
        "u\"x@example.com",
        "u x@example.com",
        "u:x@example.com",
        "u@exa_mple.com",
        &format!("{}.example", "a".repeat(63)),
        &format!("{}.example", "a".repeat(64)),
        &format!("{}.com", vec!["a".repeat(60); 4].join(".")),
        &format!("u@example.com/{}", "r".repeat(1023)),
        &format!("u@example.com/{}", "r".repeat(1024)),
        &format!("{}@example.com", "u".repeat(1024)),
    ];
    for a in fixed {
        assert_eq!(
            address_domain(a).ok().map(|d| d.into_owned()),
            reference(a),
            "{a:?}"
        );
    }
    let alphabet: Vec<char> = "aAzZ09.-_+@/ \"&':<>\t\u{7f}xn\u{e9}\u{fc}\u{ad}\u{fe0f}!~"
        .chars()
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x000a_11ce);
    let (mut agreed_ok, mut fast) = (0, 0);
    for _ in 0..100_000 {
        let len = rng.random_range(0..24);
        let a: String = (0..len)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let got = address_domain(&a).ok().map(|d| d.into_owned());
        assert_eq!(got, reference(&a), "{a:?}");
        agreed_ok += usize::from(got.is_some());
        fast += usize::from(super::domain::plain_address_domain(&a).is_some());
    }
    // The draw reaches both paths and both answers.
    assert!(
        agreed_ok > 1_000 && fast > 1_000,
        "{agreed_ok} valid, {fast} plain"
    );
}
