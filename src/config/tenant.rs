//! One tenant document's rules: its name, component secret, domains and aliases, privacy
//! lists, static routes and certificate. What only the whole set of tenants can show is in
//! `tenants.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::file::{PrivacyMode, TenantFile};
use super::reader::{check_cert_pair, Reader};
use super::source::clean;
use super::{
    normalize_domain, CertPaths, ConfigError, Privacy, RouteTarget, Secret, StaticRoutes,
    TenantConfig,
};

/// Checks the tenant document `path` (parsed into `raw`), reading the files it names
/// through `reader`; `None` when it has a problem (each goes to `errs`).
pub(super) fn tenant(
    path: &Path,
    raw: TenantFile,
    reader: &mut Reader<'_>,
    errs: &mut Vec<ConfigError>,
) -> Option<TenantConfig> {
    let before = errs.len();
    let base = path.parent().unwrap_or(Path::new("."));
    let base = &clean(base);
    let mut err = |key: &str, reason: String| errs.push(ConfigError::new(path, key, reason));

    let name = raw.name.trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        err(
            "name",
            format!("{name:?} must be letters, digits, '-' or '_'"),
        );
    }

    let secret = match (&raw.secret, &raw.secret_file) {
        (Some(s), None) if !s.trim().is_empty() => Some(Secret::new(s.trim())),
        (Some(_), None) => {
            err("secret", "must not be empty".into());
            None
        }
        (None, Some(p)) => reader
            .secret(&base.join(p), "secret_file")
            .map_err(|r| err("secret_file", r))
            .ok(),
        (Some(_), Some(_)) => {
            err(
                "secret",
                "set either secret or secret_file, not both".into(),
            );
            None
        }
        (None, None) => {
            err(
                "secret",
                "missing: the component secret (secret or secret_file) is required".into(),
            );
            None
        }
    };

    if raw.domains.is_empty() {
        err("domains", "a tenant needs at least one domain".into());
    }
    let mut domain_list = |key: &str, list: &[String]| -> Vec<String> {
        let mut out = Vec::new();
        for (i, d) in list.iter().enumerate() {
            match normalize_domain(d) {
                Ok(d) => out.push(d),
                Err(reason) => err(&format!("{key}[{i}]"), reason),
            }
        }
        out
    };
    let domains = domain_list("domains", &raw.domains);
    let chat_node_aliases = domain_list("chat_node_aliases", &raw.chat_node_aliases);
    let allow: BTreeSet<String> = domain_list("privacy.allow", &raw.privacy.allow)
        .into_iter()
        .collect();
    let deny: BTreeSet<String> = domain_list("privacy.deny", &raw.privacy.deny)
        .into_iter()
        .collect();

    match raw.privacy.mode {
        PrivacyMode::DenyList if !allow.is_empty() => err(
            "privacy.allow",
            "mode is \"deny-list\": an allow list does not apply (use mode \"allow-list\")".into(),
        ),
        PrivacyMode::AllowList if !deny.is_empty() => err(
            "privacy.deny",
            "mode is \"allow-list\": a deny list does not apply (use mode \"deny-list\")".into(),
        ),
        PrivacyMode::Off if !allow.is_empty() && !deny.is_empty() => err(
            "privacy",
            "allow and deny lists are mutually exclusive".into(),
        ),
        _ => {}
    }

    let mut routes = BTreeMap::new();
    for (domain, targets) in &raw.static_routes.routes {
        let key = format!("static_routes.routes.{domain:?}");
        let domain = match normalize_domain(domain) {
            Ok(d) => d,
            Err(reason) => {
                err(&key, reason);
                continue;
            }
        };
        if targets.is_empty() {
            err(&key, "needs at least one host[:port] target".into());
        }
        let parsed: Vec<RouteTarget> = targets
            .iter()
            .filter_map(|t| parse_target(t).map_err(|r| err(&key, r)).ok())
            .collect();
        routes.insert(domain, parsed);
    }

    let tls = raw.tls.as_ref().map(|t| CertPaths {
        cert: base.join(&t.cert),
        key: base.join(&t.key),
    });
    if let Some(paths) = &tls {
        check_cert_pair(reader, paths, "tls", &mut |k, r| err(k, r));
    }

    if errs.len() > before {
        return None;
    }
    Some(TenantConfig {
        name,
        file: path.to_path_buf(),
        secret: secret?,
        domains,
        chat_node_aliases,
        privacy: Privacy {
            mode: raw.privacy.mode,
            allow,
            deny,
        },
        static_routes: StaticRoutes {
            enabled: raw.static_routes.enabled,
            routes,
        },
        tls,
    })
}

/// Parses `host`, `host:port`, `ip:port` or `[v6]:port`; the port defaults to 5269.
fn parse_target(raw: &str) -> Result<RouteTarget, String> {
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("{raw:?}: port \"0\" is not a port number"));
        }
        return Ok(RouteTarget {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    if let Ok(ip) = raw.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(RouteTarget {
            host: ip.to_string(),
            port: 5269,
        });
    }
    let (host, port) = match raw.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{raw:?}: port {p:?} is not a port number"))?,
        ),
        None => (raw, 5269),
    };
    let host = normalize_domain(host).map_err(|r| format!("{raw:?}: {r}"))?;
    Ok(RouteTarget { host, port })
}
