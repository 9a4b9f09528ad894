//! The configuration target: the input written as `router.toml` or as a tenant file next to
//! valid other files, then the loader run on the folder.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

pub const ROUTER: &str = "tenants_dir = \"tenants\"\n\
[node]\nname = \"fuzz-node\"\n\
[listen]\ns2s = \"127.0.0.1:0\"\ncomponent = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
[federation]\nsecurity_mode = \"no-tls\"\nrequire_client_certs = false\n\
dialback_secret_file = \"dialback.secret\"\n\
[admin]\ntoken_file = \"admin.token\"\n\
[restart]\ndelayed = true\nschedule = \"0 0 2 * * *\"\n\
[limits]\nmax_stanza_bytes = 524288\n";

pub const ACME: &str = "name = \"acme\"\nsecret_file = \"acme.secret\"\n\
domains = [\"acme.example\"]\nchat_node_aliases = [\"conference.acme.example\"]\n\
[privacy]\nmode = \"allow-list\"\nallow = [\"globex.example\"]\n\
[static_routes]\nenabled = true\nroutes = { \"globex.example\" = [\"127.0.0.1:5269\"] }\n";

pub const GLOBEX: &str = "name = \"globex\"\nsecret = \"globex-secret\"\n\
domains = [\"globex.example\"]\n[privacy]\nmode = \"deny-list\"\ndeny = [\"initech.example\"]\n";

/// A folder of this process with the secret files the fixed files name.
fn folder() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::create_dir(dir.path().join("tenants")).expect("tenants folder");
        for (name, text) in [
            ("dialback.secret", "fuzz-dialback-secret\n"),
            ("admin.token", "fuzz-admin-token\n"),
            ("tenants/acme.secret", "acme-secret\n"),
        ] {
            std::fs::write(dir.path().join(name), text).expect("a secret file");
        }
        dir
    })
    .path()
}

/// `data[0] % 3` chooses the file the rest becomes: `router.toml` (0), the tenant acme's
/// file (1), or a second tenant's file beside acme's (2); the other files are valid.
///
/// Checks: the loader returns a configuration or a refusal, never panics; a refusal names
/// at least one problem, each with a reason; an accepted
/// configuration has its tenants sorted by name and no domain claimed twice.
pub fn check(data: &[u8]) {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let dir = folder();
    let router = dir.join("router.toml");
    let (r, a, g): (&[u8], &[u8], &[u8]) = match mode % 3 {
        0 => (text, ACME.as_bytes(), GLOBEX.as_bytes()),
        1 => (ROUTER.as_bytes(), text, GLOBEX.as_bytes()),
        _ => (ROUTER.as_bytes(), ACME.as_bytes(), text),
    };
    std::fs::write(&router, r).expect("write router.toml");
    std::fs::write(dir.join("tenants/acme.toml"), a).expect("write acme.toml");
    std::fs::write(dir.join("tenants/globex.toml"), g).expect("write globex.toml");
    check_folder(&router);
}

/// The checks of [`check`] on a folder already written.
pub fn check_folder(router: &Path) {
    let _ = xfed::config::admin_endpoint(router);
    match xfed::config::load(router) {
        Ok(config) => {
            let names: Vec<&str> = config.tenants.iter().map(|t| t.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "tenants are not sorted by name");
            let mut claimed = BTreeSet::new();
            for t in &config.tenants {
                for d in t.domains.iter().chain(&t.chat_node_aliases) {
                    assert!(claimed.insert(d.clone()), "{d} is claimed twice");
                }
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refusal without a problem");
            for e in &errors.0 {
                assert!(
                    !e.reason.is_empty() || super::known("config-reason"),
                    "a problem without a reason: {e:?}"
                );
            }
            let _ = errors.to_string();
        }
    }
}
