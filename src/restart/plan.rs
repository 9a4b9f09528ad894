//! What a configuration change touches: a pure comparison of two configurations into the
//! router instances that must restart, what changed in each, and the least action that is
//! still correct.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::{CertPaths, Config, TenantConfig};

/// A router instance: a piece of running state with its own applied version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instance {
    /// The node's federation connection manager: s2s listener, TLS, DNS, dialback, trust.
    Node,
    /// One tenant's router: its links, domains and federation settings.
    Tenant(String),
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Instance::Node => f.write_str("node"),
            Instance::Tenant(t) => write!(f, "tenant {t}"),
        }
    }
}

/// The least action that applies a change correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Privacy mode or lists, static routes: the tenant's new settings are published to
    /// routing; only s2s streams the change affects close. No link drops.
    UpdateFederation,
    /// Domains, aliases, secret or certificate: the tenant's links close (they reconnect)
    /// and its s2s streams for removed domains close.
    RestartTenant,
    /// A new tenant starts.
    StartTenant,
    /// A removed tenant stops: its links and s2s streams close.
    StopTenant,
    /// Server-to-server settings (security mode, trust, TLS, DNS, dialback, s2s listener,
    /// limits): every s2s stream closes and federation restarts; component links stay.
    RestartFederation,
    /// The component or admin listener, admin token, event log or node name: everything
    /// restarts, every link and stream drops.
    RestartNode,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::UpdateFederation => "update federation settings (affected s2s streams only)",
            Action::RestartTenant => "restart the tenant's router (its links reconnect)",
            Action::StartTenant => "start the tenant",
            Action::StopTenant => "stop the tenant",
            Action::RestartFederation => "restart federation (every s2s stream; links stay)",
            Action::RestartNode => "restart the whole node (every link and stream)",
        }
    }
}

/// What changed in one instance, and what applying it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub instance: Instance,
    pub action: Action,
    /// One line per changed setting, e.g. `domains +acme.net`.
    pub what: Vec<String>,
}

/// How a change names a tenant certificate replaced (same paths, new contents included).
const CERTIFICATE_CHANGED: &str = "certificate changed";

impl Change {
    /// Does the change give a tenant a new certificate (so every stream that presented the
    /// old one must go)?
    pub fn renews_certificate(&self) -> bool {
        self.what.iter().any(|w| w == CERTIFICATE_CHANGED)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.instance, self.what.join("; "))
    }
}

/// The changes from `old` to `new`, node first, then tenants by name.
pub fn plan(old: &Config, new: &Config) -> Vec<Change> {
    let mut out = Vec::new();
    let (of, nf) = (&old.federation, &new.federation);
    let mut node_all = changed(&[
        ("node.name", old.node_name != new.node_name),
        (
            "listen.component",
            old.listen.component != new.listen.component,
        ),
        ("listen.admin", old.listen.admin != new.listen.admin),
        ("admin.token_file", old.admin_token != new.admin_token),
        ("events", old.events != new.events),
    ]);
    let node_fed = changed(&[
        ("listen.s2s", old.listen.s2s != new.listen.s2s),
        ("tls", tls_digest(old) != tls_digest(new)),
        (
            "federation.security_mode",
            of.security_mode != nf.security_mode,
        ),
        (
            "federation.require_client_certs",
            of.require_client_certs != nf.require_client_certs,
        ),
        (
            "federation.sasl_external",
            of.sasl_external != nf.sasl_external,
        ),
        (
            "federation.dialback_secret",
            of.dialback_secret != nf.dialback_secret,
        ),
        (
            "federation.idle_timeout_secs",
            of.idle_timeout != nf.idle_timeout,
        ),
        (
            "dns.nameservers",
            old.dns_nameservers != new.dns_nameservers,
        ),
        ("limits", old.limits != new.limits),
    ]);
    if !node_all.is_empty() {
        node_all.extend(node_fed);
        out.push(Change {
            instance: Instance::Node,
            action: Action::RestartNode,
            what: node_all,
        });
    } else if !node_fed.is_empty() {
        out.push(Change {
            instance: Instance::Node,
            action: Action::RestartFederation,
            what: node_fed,
        });
    }

    let names: BTreeSet<&str> = old
        .tenants
        .iter()
        .chain(&new.tenants)
        .map(|t| t.name.as_str())
        .collect();
    for name in names {
        let instance = Instance::Tenant(name.to_owned());
        match (old.tenant(name), new.tenant(name)) {
            (None, Some(t)) => out.push(Change {
                instance,
                action: Action::StartTenant,
                what: vec![format!(
                    "new tenant: {}",
                    t.all_domains().collect::<Vec<_>>().join(", ")
                )],
            }),
            (Some(_), None) => out.push(Change {
                instance,
                action: Action::StopTenant,
                what: vec!["tenant removed".into()],
            }),
            (Some(a), Some(b)) => {
                if let Some(change) = tenant_change(instance, (old, a), (new, b)) {
                    out.push(change);
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// `"<key> changed"` for each key whose flag is set.
fn changed(keys: &[(&str, bool)]) -> Vec<String> {
    keys.iter()
        .filter(|(_, c)| *c)
        .map(|(k, _)| format!("{k} changed"))
        .collect()
}

fn tenant_change(
    instance: Instance,
    (old, a): (&Config, &TenantConfig),
    (new, b): (&Config, &TenantConfig),
) -> Option<Change> {
    let mut router = Vec::new();
    list_diff(&mut router, "domains", &a.domains, &b.domains);
    list_diff(
        &mut router,
        "chat_node_aliases",
        &a.chat_node_aliases,
        &b.chat_node_aliases,
    );
    if a.secret != b.secret {
        router.push("secret changed".into());
    }
    if cert_digest(old, a.tls.as_ref()) != cert_digest(new, b.tls.as_ref()) {
        router.push(CERTIFICATE_CHANGED.into());
    }
    let mut fed = Vec::new();
    if a.privacy.mode != b.privacy.mode {
        fed.push(format!(
            "privacy mode {} -> {}",
            a.privacy.mode.as_str(),
            b.privacy.mode.as_str()
        ));
    }
    set_diff(&mut fed, "allow", &a.privacy.allow, &b.privacy.allow);
    set_diff(&mut fed, "deny", &a.privacy.deny, &b.privacy.deny);
    if a.static_routes.enabled != b.static_routes.enabled {
        fed.push(format!(
            "static routes {}",
            if b.static_routes.enabled {
                "enabled"
            } else {
                "disabled"
            }
        ));
    }
    let routed: BTreeSet<&String> = a
        .static_routes
        .routes
        .keys()
        .chain(b.static_routes.routes.keys())
        .collect();
    for d in routed {
        match (a.static_routes.routes.get(d), b.static_routes.routes.get(d)) {
            (None, Some(_)) => fed.push(format!("static route +{d}")),
            (Some(_), None) => fed.push(format!("static route -{d}")),
            (Some(x), Some(y)) if x != y => fed.push(format!("static route {d} changed")),
            _ => {}
        }
    }
    let (action, mut what) = match (router.is_empty(), fed.is_empty()) {
        (true, true) => return None,
        (true, false) => (Action::UpdateFederation, Vec::new()),
        (false, _) => (Action::RestartTenant, router),
    };
    what.extend(fed);
    Some(Change {
        instance,
        action,
        what,
    })
}

fn list_diff(out: &mut Vec<String>, key: &str, a: &[String], b: &[String]) {
    let a: BTreeSet<&String> = a.iter().collect();
    let b: BTreeSet<&String> = b.iter().collect();
    set_diff(out, key, &a, &b);
}

fn set_diff<T: Ord + fmt::Display>(
    out: &mut Vec<String>,
    key: &str,
    a: &BTreeSet<T>,
    b: &BTreeSet<T>,
) {
    let added: Vec<String> = b.difference(a).map(|d| format!("+{d}")).collect();
    let removed: Vec<String> = a.difference(b).map(|d| format!("-{d}")).collect();
    if !added.is_empty() || !removed.is_empty() {
        out.push(format!("{key} {}", [added, removed].concat().join(" ")));
    }
}

/// The digest of a file's contents as the configuration read it, so a certificate renewed
/// in place counts as a change.
fn file_digest<'a>(c: &'a Config, path: &Path) -> &'a str {
    c.files.get(path).map_or("unread", |m| m.digest())
}

fn cert_digest(c: &Config, paths: Option<&CertPaths>) -> Option<(String, String)> {
    paths.map(|p| {
        (
            format!("{}:{}", p.cert.display(), file_digest(c, &p.cert)),
            format!("{}:{}", p.key.display(), file_digest(c, &p.key)),
        )
    })
}

fn tls_digest(c: &Config) -> String {
    let mut h = Sha256::new();
    if let Some((cert, key)) = cert_digest(c, c.tls.cert.as_ref()) {
        h.update(cert);
        h.update(key);
    }
    for p in c.tls.ca.iter().chain(&c.tls.crl) {
        h.update(p.as_os_str().as_encoded_bytes());
        h.update(file_digest(c, p));
    }
    format!("{:x}", h.finalize())
}

/// The digest of one instance's configuration: equal digests, nothing to restart.
pub fn digest(config: &Config, instance: &Instance) -> Option<String> {
    let mut h = Sha256::new();
    match instance {
        Instance::Node => {
            let f = &config.federation;
            h.update(format!(
                "{}|{:?}|{}|{:?}|{}|{}|{}|{:?}|{:?}|{:?}|{:?}",
                config.node_name,
                config.listen,
                f.security_mode.as_str(),
                (f.require_client_certs, f.sasl_external, f.idle_timeout),
                f.dialback_secret.as_ref().map_or("", |s| s.expose()),
                config.admin_token.as_ref().map_or("", |s| s.expose()),
                tls_digest(config),
                config.dns_nameservers,
                config.limits,
                config.events,
                config.tls.cert,
            ));
        }
        Instance::Tenant(name) => {
            let t = config.tenant(name)?;
            h.update(format!(
                "{}|{:?}|{:?}|{:?}|{:?}|{:?}",
                t.secret.expose(),
                t.domains,
                t.chat_node_aliases,
                t.privacy,
                t.static_routes,
                cert_digest(config, t.tls.as_ref()),
            ));
        }
    }
    Some(format!("{:x}", h.finalize())[..16].to_owned())
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
