//! Reading and checking a configuration from disk.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::file::{PrivacyMode, RouterFile, TenantFile};
use super::parse::{one_line, parse, parse_salvaging};
use super::{
    normalize_domain, Caps, CertPaths, Config, ConfigError, ConfigErrors, EventsConfig, Federation,
    Limits, Listen, Privacy, Restart, RouteTarget, Secret, StaticRoutes, TenantConfig, Tls,
};

/// RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes.
const MIN_STANZA_BYTES: usize = 10_000;

/// Only where a node's admin API listens and its token, from the router file alone: the
/// commands that talk to a running node must reach it even while a tenant file is broken
/// (to be told that a reload is refused, for one).
pub fn admin_endpoint(router_path: &Path) -> Result<(SocketAddr, Option<Secret>), ConfigError> {
    let file: RouterFile = parse(router_path)?;
    let base = folder_of(router_path);
    let token = match &file.admin.token_file {
        Some(p) => Some(
            read_secret(&clean(&base.join(p)), "admin.token_file")
                .map_err(|r| ConfigError::new(router_path, "admin.token_file", r))?,
        ),
        None => None,
    };
    Ok((file.listen.admin, token))
}

/// Reads `router_path` and every tenant file, and checks them as a whole.
pub fn load(router_path: &Path) -> Result<Config, ConfigErrors> {
    // Past a bad value: it is reported, its default stands in, and the checking goes on.
    let (file, mut errs) = parse_salvaging::<RouterFile>(router_path);
    let Some(file) = file else {
        return Err(ConfigErrors(errs));
    };
    let base = folder_of(router_path);
    let at = |p: &Path| clean(&base.join(p));
    let e = |key: &str, reason: String| ConfigError::new(router_path, key, reason);

    let node_name = file.node.name.trim().to_owned();
    if node_name.is_empty() {
        errs.push(e("node.name", "must not be empty".into()));
    }

    let listen = Listen {
        s2s: file.listen.s2s,
        component: file.listen.component,
        admin: file.listen.admin,
    };
    let named = [
        ("listen.s2s", listen.s2s),
        ("listen.component", listen.component),
        ("listen.admin", listen.admin),
    ];
    for (i, (key, addr)) in named.iter().enumerate() {
        for (other, addr2) in &named[..i] {
            if addr == addr2 && addr.port() != 0 {
                errs.push(e(key, format!("{addr} is already used by {other}")));
            }
        }
    }

    let cert = match (&file.tls.cert, &file.tls.key) {
        (Some(c), Some(k)) => {
            let paths = CertPaths {
                cert: at(c),
                key: at(k),
            };
            check_cert_pair(&paths, "tls", &mut |k, r| errs.push(e(k, r)));
            Some(paths)
        }
        (None, None) => None,
        (Some(_), None) => {
            errs.push(e("tls.key", "tls.cert is set but tls.key is not".into()));
            None
        }
        (None, Some(_)) => {
            errs.push(e("tls.cert", "tls.key is set but tls.cert is not".into()));
            None
        }
    };
    let ca: Vec<PathBuf> = file.tls.ca.iter().map(|p| at(p)).collect();
    for (i, p) in ca.iter().enumerate() {
        check_readable(p, &format!("tls.ca[{i}]"), &mut |k, r| errs.push(e(k, r)));
    }
    let crl: Vec<PathBuf> = file.tls.crl.iter().map(|p| at(p)).collect();
    for (i, p) in crl.iter().enumerate() {
        check_readable(p, &format!("tls.crl[{i}]"), &mut |k, r| errs.push(e(k, r)));
    }

    let dialback_secret = file.federation.dialback_secret_file.as_ref().and_then(|p| {
        read_secret(&at(p), "federation.dialback_secret_file")
            .map_err(|r| errs.push(e("federation.dialback_secret_file", r)))
            .ok()
    });
    if file.federation.idle_timeout_secs == 0 {
        errs.push(e(
            "federation.idle_timeout_secs",
            "must be at least 1 second".into(),
        ));
    }
    let admin_token = file.admin.token_file.as_ref().and_then(|p| {
        read_secret(&at(p), "admin.token_file")
            .map_err(|r| errs.push(e("admin.token_file", r)))
            .ok()
    });

    let schedule = match cron::Schedule::from_str(&file.restart.schedule) {
        Ok(s) => Some(s),
        Err(err) => {
            // cron's message repeats the expression and points into it with a caret, on
            // lines of their own; keep its explanation only, so the problem stays one line.
            let text = file.restart.schedule.trim();
            let why = one_line(
                &err.to_string()
                    .lines()
                    .filter(|l| l.trim() != text && l.trim() != "^")
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            let mut reason = format!(
                "{:?} is not a cron expression (sec min hour day month weekday [year])",
                file.restart.schedule
            );
            if !why.is_empty() {
                reason = format!("{reason}: {why}");
            }
            errs.push(e("restart.schedule", reason));
            None
        }
    };

    let l = &file.limits;
    if l.max_stanza_bytes < MIN_STANZA_BYTES {
        errs.push(e(
            "limits.max_stanza_bytes",
            format!("must be at least {MIN_STANZA_BYTES} (RFC 6120 §13.12)"),
        ));
    }
    if l.max_depth == 0 {
        errs.push(e("limits.max_depth", "must be at least 1".into()));
    }
    if l.handshake_timeout_secs == 0 {
        errs.push(e(
            "limits.handshake_timeout_secs",
            "must be at least 1 second".into(),
        ));
    }
    for (key, value) in [
        (
            "limits.unauthenticated_per_address",
            l.unauthenticated_per_address,
        ),
        ("limits.unauthenticated_total", l.unauthenticated_total),
    ] {
        if value == 0 {
            errs.push(e(key, "must be at least 1".into()));
        }
    }
    if l.queue_bytes_per_connection < l.max_stanza_bytes {
        errs.push(e(
            "limits.queue_bytes_per_connection",
            "must hold at least one stanza of limits.max_stanza_bytes".into(),
        ));
    }

    let ev = &file.events;
    let events = EventsConfig {
        file: (!ev.file.as_os_str().is_empty()).then(|| at(&ev.file)),
        max_file_bytes: ev.max_file_bytes,
        keep_files: ev.keep_files,
        memory: ev.memory,
    };
    if ev.memory == 0 {
        errs.push(e("events.memory", "must be at least 1".into()));
    }
    if ev.max_file_bytes < 4096 {
        errs.push(e("events.max_file_bytes", "must be at least 4096".into()));
    }
    if let Some(dir) = events.file.as_deref().map(folder_of) {
        if !dir.is_dir() {
            errs.push(e(
                "events.file",
                format!("folder {} does not exist", dir.display()),
            ));
        }
    }

    let tenants = load_tenants(&at(&file.tenants_dir), router_path, &mut errs);

    match schedule {
        Some(schedule) if errs.is_empty() => Ok(with_file_digests(Config {
            path: router_path.to_path_buf(),
            node_name,
            listen,
            tls: Tls { cert, ca, crl },
            federation: Federation {
                security_mode: file.federation.security_mode,
                require_client_certs: file.federation.require_client_certs,
                sasl_external: file.federation.sasl_external,
                stream_management: file.federation.stream_management,
                dialback_secret,
                idle_timeout: Duration::from_secs(file.federation.idle_timeout_secs),
            },
            dns_nameservers: file.dns.nameservers,
            admin_token,
            restart: Restart {
                delayed: file.restart.delayed,
                schedule_text: file.restart.schedule,
                schedule,
            },
            limits: Limits {
                max_stanza_bytes: l.max_stanza_bytes,
                max_depth: l.max_depth,
                handshake_timeout: Duration::from_secs(l.handshake_timeout_secs),
                queue_bytes_per_connection: l.queue_bytes_per_connection,
                unauthenticated: Caps {
                    per_address: l.unauthenticated_per_address,
                    total: l.unauthenticated_total,
                },
            },
            events,
            tenants,
            files: BTreeMap::new(),
        })),
        _ => Err(ConfigErrors(errs)),
    }
}

/// Records what the TLS files hold now (see [`Config::files`]).
fn with_file_digests(mut c: Config) -> Config {
    use sha2::{Digest, Sha256};
    let mut paths: Vec<PathBuf> = c.tls.ca.iter().chain(&c.tls.crl).cloned().collect();
    for cert in c
        .tls
        .cert
        .iter()
        .chain(c.tenants.iter().filter_map(|t| t.tls.as_ref()))
    {
        paths.push(cert.cert.clone());
        paths.push(cert.key.clone());
    }
    for p in paths {
        let digest = std::fs::read(&p).map_or_else(
            |_| "unreadable".to_owned(),
            |b| format!("{:x}", Sha256::digest(&b)),
        );
        c.files.insert(p, digest);
    }
    c
}

/// Reads every `*.toml` in `dir`, then checks what only the whole set can show: unique
/// names, and no domain or alias claimed twice.
fn load_tenants(dir: &Path, router_path: &Path, errs: &mut Vec<ConfigError>) -> Vec<TenantConfig> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            errs.push(ConfigError::new(
                router_path,
                "tenants_dir",
                format!("cannot read {}: {err}", dir.display()),
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();

    let mut tenants: Vec<TenantConfig> = files
        .iter()
        .filter_map(|path| match parse::<TenantFile>(path) {
            Ok(raw) => tenant(path, raw, errs),
            Err(err) => {
                errs.push(err);
                None
            }
        })
        .collect();

    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut owners: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    for t in &tenants {
        if let Some(first) = names.insert(t.name.clone(), t.file.clone()) {
            errs.push(ConfigError::new(
                &t.file,
                "name",
                format!(
                    "tenant name {:?} is already used by {}",
                    t.name,
                    first.display()
                ),
            ));
        }
        for (key, list) in [
            ("domains", &t.domains),
            ("chat_node_aliases", &t.chat_node_aliases),
        ] {
            for d in list {
                match owners.get(d) {
                    Some((owner, file)) if owner != &t.name => errs.push(ConfigError::new(
                        &t.file,
                        key,
                        format!(
                            "{d} is already claimed by tenant {owner} ({})",
                            file.display()
                        ),
                    )),
                    Some(_) => errs.push(ConfigError::new(
                        &t.file,
                        key,
                        format!("{d} is listed twice"),
                    )),
                    None => {
                        owners.insert(d.clone(), (t.name.clone(), t.file.clone()));
                    }
                }
            }
        }
    }
    tenants.sort_by(|a, b| a.name.cmp(&b.name));
    tenants
}

fn tenant(path: &Path, raw: TenantFile, errs: &mut Vec<ConfigError>) -> Option<TenantConfig> {
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
        (None, Some(p)) => read_secret(&base.join(p), "secret_file")
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
        check_cert_pair(paths, "tls", &mut |k, r| err(k, r));
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
    if let Ok(ip) = raw.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
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

fn check_readable(path: &Path, key: &str, err: &mut dyn FnMut(&str, String)) {
    if let Err(e) = std::fs::metadata(path).and_then(|_| std::fs::File::open(path)) {
        err(key, format!("cannot read {}: {e}", path.display()));
    }
}

fn check_cert_pair(paths: &CertPaths, section: &str, err: &mut dyn FnMut(&str, String)) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_key = format!("{section}.cert");
    match CertificateDer::pem_file_iter(&paths.cert) {
        Ok(certs) => match certs.collect::<Result<Vec<_>, _>>() {
            Ok(certs) if certs.is_empty() => err(
                &cert_key,
                format!("{}: no PEM certificate in it", paths.cert.display()),
            ),
            Ok(_) => {}
            Err(e) => err(&cert_key, format!("{}: {e}", paths.cert.display())),
        },
        Err(e) => err(
            &cert_key,
            format!("cannot read {}: {e}", paths.cert.display()),
        ),
    }
    if let Err(e) = PrivateKeyDer::from_pem_file(&paths.key) {
        err(
            &format!("{section}.key"),
            format!("{}: no usable PEM private key ({e})", paths.key.display()),
        );
    }
}

fn read_secret(path: &Path, what: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{what}: {} is empty", path.display()));
    }
    Ok(Secret::new(secret))
}

/// The folder `path` is in; `.` for a bare file name (whose parent is the empty path).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `a/b/../c` → `a/c`, lexically, so paths in messages read the way operators wrote them.
fn clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
