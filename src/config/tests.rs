use std::path::Path;
fn probe_one(name: &str, router: &str, tenants: &[(&str, &str)]) {
    let dir = Path::new("/tmp/xfed-probe").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tenants")).unwrap();
    std::fs::write(dir.join("router.toml"), router).unwrap();
    for (f, t) in tenants {
        std::fs::write(dir.join("tenants").join(f), t).unwrap();
    }
    match super::load(&dir.join("router.toml")) {
        Ok(c) => eprintln!(
            "{name}: OK {:?}",
            c.tenants
                .iter()
                .map(|t| (&t.domains, &t.static_routes))
                .collect::<Vec<_>>()
        ),
        Err(e) => {
            for x in e.0 {
                eprintln!("{name}: {:?} | {x}", x.key)
            }
        }
    }
}
const T: &str = "name = \"acme\"\nsecret = \"s\"\ndomains = [\"acme.example\"]\n";
#[test]
fn probe() {
    probe_one(
        "missing_domains",
        "tenants_dir = \"tenants\"\n",
        &[("a.toml", "name = \"acme\"\nsecret = \"s\"\n")],
    );
    probe_one(
        "missing_name",
        "tenants_dir = \"tenants\"\n",
        &[("a.toml", "secret = \"s\"\ndomains=[\"a.example\"]\n")],
    );
    probe_one(
        "wrong_type",
        "tenants_dir = \"tenants\"\n\n[limits]\nmax_stanza_bytes = \"big\"\n",
        &[("a.toml", T)],
    );
    probe_one(
        "bad_addr",
        "tenants_dir = \"tenants\"\n\n[listen]\ns2s = \"nope\"\n",
        &[("a.toml", T)],
    );
    probe_one(
        "unknown_line",
        "tenants_dir = \"tenants\"\n\n[federation]\n\nsecurty_mode = \"no-tls\"\n",
        &[("a.toml", T)],
    );
    probe_one(
        "unknown_top",
        "tenants_dir = \"tenants\"\ncolour = 1\n",
        &[("a.toml", T)],
    );
    probe_one(
        "enum_line",
        "tenants_dir = \"tenants\"\n[federation]\n\nsecurity_mode = \"maybe\"\n",
        &[("a.toml", T)],
    );
    probe_one(
        "dup_key",
        "tenants_dir = \"tenants\"\ntenants_dir = \"x\"\n",
        &[("a.toml", T)],
    );
    probe_one(
        "syntax_router",
        "tenants_dir = \"tenants\"\n\n\n[limits\n",
        &[("a.toml", T)],
    );
    probe_one("port0", "tenants_dir = \"tenants\"\n", &[("a.toml", &format!("{T}[static_routes]\nenabled=true\nroutes = {{ \"p.example\" = [\"192.0.2.1:0\", \"h.example:0\", \"h.example:99999\", \"h.example:x\", \"2001:db8::1:5270\", \"1.2.3.4.\"] }}\n"))]);
    probe_one(
        "ip_dot",
        "tenants_dir = \"tenants\"\n",
        &[(
            "a.toml",
            "name = \"acme\"\nsecret = \"s\"\ndomains = [\"1.2.3.4.\", \"１.２.３.４\"]\n",
        )],
    );
    probe_one("empty_tenants", "tenants_dir = \"tenants\"\n", &[]);
    probe_one("two_claims", "tenants_dir = \"tenants\"\n", &[("a.toml", T), ("b.toml", "name = \"globex\"\nsecret = \"s\"\ndomains = [\"ACME.example.\"]\nchat_node_aliases=[\"acme.example\"]\n"), ("c.toml", "name = \"acme\"\nsecret = \"s\"\ndomains = [\"c.example\"]\n")]);
    probe_one(
        "off_allow",
        "tenants_dir = \"tenants\"\n",
        &[(
            "a.toml",
            &format!("{T}[privacy]\nmode=\"off\"\nallow=[\"x.example\"]\n"),
        )],
    );
    probe_one(
        "inline_secret_ws",
        "tenants_dir = \"tenants\"\n",
        &[(
            "a.toml",
            "name = \"acme\"\nsecret = \"  s  \"\ndomains = [\"acme.example\"]\n",
        )],
    );
    probe_one(
        "tenant_tls_missing",
        "tenants_dir = \"tenants\"\n",
        &[(
            "a.toml",
            &format!("{T}[tls]\ncert=\"x.pem\"\nkey=\"x.key\"\n"),
        )],
    );
    probe_one(
        "tenant_tls_nokey",
        "tenants_dir = \"tenants\"\n",
        &[("a.toml", &format!("{T}[tls]\ncert=\"x.pem\"\n"))],
    );
    probe_one(
        "listen_dup",
        "tenants_dir = \"tenants\"\n[listen]\ns2s=\"127.0.0.1:7400\"\n",
        &[("a.toml", T)],
    );
    probe_one("queue", "tenants_dir = \"tenants\"\n[limits]\nmax_stanza_bytes = 5000\nqueue_bytes_per_connection = 100\nmax_depth = 0\nhandshake_timeout_secs = 0\n[federation]\nidle_timeout_secs = 0\n", &[("a.toml", T)]);
    probe_one("dbfile_missing", "tenants_dir = \"tenants\"\n[federation]\ndialback_secret_file = \"nope\"\n[admin]\ntoken_file=\"nope2\"\n[tls]\nca=[\"ca.pem\"]\ncrl=[\"x.crl\"]\n", &[("a.toml", T)]);
    probe_one("routes_empty", "tenants_dir = \"tenants\"\n", &[("a.toml", &format!("{T}[static_routes]\nroutes = {{ \"p.example\" = [], \"bad host\" = [\"x.example\"] }}\n"))]);
}
