//! What a change touches, from configurations as `check` makes them.

use super::*;

/// Loads a node with one tenant, after applying `edit` to (router, tenant) texts.
fn config(dir: &Path, edit: impl Fn(&mut String, &mut String)) -> Config {
    let mut router = "tenants_dir = \"t\"\n[listen]\ncomponent = \"127.0.0.1:7400\"\n\
                      [federation]\nsecurity_mode = \"tls-required\"\n"
        .to_owned();
    let mut tenant = "name = \"acme\"\nsecret = \"s\"\ndomains = [\"acme.example\"]\n\
                      [privacy]\nmode = \"allow-list\"\nallow = [\"p.example\"]\n"
        .to_owned();
    edit(&mut router, &mut tenant);
    std::fs::create_dir_all(dir.join("t")).unwrap();
    std::fs::write(dir.join("router.toml"), router).unwrap();
    std::fs::write(dir.join("t/acme.toml"), tenant).unwrap();
    crate::config::load(&dir.join("router.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn changes(edit: impl Fn(&mut String, &mut String)) -> Vec<(Instance, Action, Vec<String>)> {
    // One folder: paths (such as the event log's) stay the same.
    let dir = tempfile::tempdir().unwrap();
    let old = config(dir.path(), |_, _| {});
    let new = config(dir.path(), edit);
    plan(&old, &new)
        .into_iter()
        .map(|c| (c.instance, c.action, c.what))
        .collect()
}

fn acme() -> Instance {
    Instance::Tenant("acme".into())
}

#[test]
fn each_setting_maps_to_the_least_restart() {
    assert!(
        changes(|_, _| {}).is_empty(),
        "same settings, nothing to do"
    );
    assert_eq!(
        changes(|_, t| *t = t.replace("[\"acme.example\"]", "[\"acme.example\", \"acme.net\"]")),
        [(
            acme(),
            Action::RestartTenant,
            vec!["domains +acme.net".to_owned()]
        )]
    );
    assert_eq!(
        changes(|_, t| *t = t.replace("secret = \"s\"", "secret = \"t\"")),
        [(
            acme(),
            Action::RestartTenant,
            vec!["secret changed".to_owned()]
        )]
    );
    assert_eq!(
        changes(|_, t| *t = t.replace("[\"p.example\"]", "[\"q.example\"]")),
        [(
            acme(),
            Action::UpdateFederation,
            vec!["allow +q.example -p.example".to_owned()]
        )]
    );
    assert_eq!(
        changes(|_, t| t.push_str(
            "[static_routes]\nenabled = true\nroutes = { \"p.example\" = [\"192.0.2.1\"] }\n"
        )),
        [(
            acme(),
            Action::UpdateFederation,
            vec![
                "static routes enabled".to_owned(),
                "static route +p.example".to_owned()
            ]
        )]
    );
    assert_eq!(
        changes(|r, _| *r = r.replace("tls-required", "tls-optional")),
        [(
            Instance::Node,
            Action::RestartFederation,
            vec!["federation.security_mode changed".to_owned()]
        )]
    );
    assert_eq!(
        changes(|r, _| *r = r.replace("127.0.0.1:7400", "127.0.0.1:7401")),
        [(
            Instance::Node,
            Action::RestartNode,
            vec!["listen.component changed".to_owned()]
        )]
    );
}

#[test]
fn digests_follow_the_settings_of_their_own_instance() {
    let dir = tempfile::tempdir().unwrap();
    let old = config(dir.path(), |_, _| {});
    let new = config(dir.path(), |_, t| {
        *t = t.replace("secret = \"s\"", "secret = \"t\"")
    });
    assert_ne!(digest(&old, &acme()), digest(&new, &acme()));
    assert_eq!(digest(&old, &Instance::Node), digest(&new, &Instance::Node));
    assert_eq!(digest(&old, &Instance::Tenant("nobody".into())), None);
}
