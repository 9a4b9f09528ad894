//! The router document's rules: listeners, TLS files, federation, restart schedule, limits
//! and event log; everything a node is but its tenants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::etcd::etcd_access;
use super::file::{ClusterSection, RouterFile};
use super::parse::one_line;
use super::reader::{check_cert_pair, check_readable, Reader};
use super::source::{clean, folder_of};
use super::{
    Caps, CertPaths, Cluster, Config, ConfigError, EventsConfig, Federation, Limits, Listen,
    Restart, Tls,
};

/// RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes.
const MIN_STANZA_BYTES: usize = 10_000;

/// What the router document says, checked.
pub(super) struct Node {
    /// The configuration without its tenants and files (`check` adds them); `None` when a
    /// problem leaves nothing to build it from (the restart schedule).
    pub(super) config: Option<Config>,
    /// Where the tenant documents are.
    pub(super) tenants_dir: PathBuf,
}

/// Checks the router document `name` (parsed into `file`), reading the files it names
/// through `reader`; every problem goes to `errs`.
pub(super) fn node(
    name: &Path,
    file: RouterFile,
    reader: &mut Reader<'_>,
    errs: &mut Vec<ConfigError>,
) -> Node {
    let base = folder_of(name);
    let at = |p: &Path| clean(&base.join(p));
    let e = |key: &str, reason: String| ConfigError::new(name, key, reason);

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
            check_cert_pair(reader, &paths, "tls", &mut |k, r| errs.push(e(k, r)));
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
        check_readable(reader, p, &format!("tls.ca[{i}]"), &mut |k, r| {
            errs.push(e(k, r))
        });
    }
    let crl: Vec<PathBuf> = file.tls.crl.iter().map(|p| at(p)).collect();
    for (i, p) in crl.iter().enumerate() {
        check_readable(reader, p, &format!("tls.crl[{i}]"), &mut |k, r| {
            errs.push(e(k, r))
        });
    }

    let dialback_secret = file.federation.dialback_secret_file.as_ref().and_then(|p| {
        reader
            .secret(&at(p), "federation.dialback_secret_file")
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
        reader
            .secret(&at(p), "admin.token_file")
            .map_err(|r| errs.push(e("admin.token_file", r)))
            .ok()
    });

    let schedule = cron::Schedule::from_str(&file.restart.schedule)
        .map_err(|err| {
            errs.push(e(
                "restart.schedule",
                not_cron(&file.restart.schedule, &err),
            ))
        })
        .ok();

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
    if l.in_flight_bytes_per_connection == 0
        || l.in_flight_bytes_per_connection > l.queue_bytes_per_connection
    {
        errs.push(e(
            "limits.in_flight_bytes_per_connection",
            "must be at least 1 and at most limits.queue_bytes_per_connection (a reader pauses before one queue could overflow)".into(),
        ));
    }
    if !(1..=20).contains(&l.stuck_secs) {
        errs.push(e(
            "limits.stuck_secs",
            "must be 1 to 20 seconds (a stuck destination is given up at 20 s or 30 s anyway)"
                .into(),
        ));
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
        if !reader.is_folder(dir) {
            errs.push(e(
                "events.file",
                format!("folder {} does not exist", dir.display()),
            ));
        }
    }

    let cluster = file
        .cluster
        .map(|c| cluster(c, &node_name, &at, reader, &mut |k, r| errs.push(e(k, r))));

    let tenants_dir = at(&file.tenants_dir);
    let config = schedule.map(|schedule| Config {
        path: name.to_path_buf(),
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
            in_flight_bytes_per_connection: l.in_flight_bytes_per_connection,
            stuck: Duration::from_secs(l.stuck_secs),
            unauthenticated: Caps {
                per_address: l.unauthenticated_per_address,
                total: l.unauthenticated_total,
            },
        },
        events,
        cluster,
        tenants: Vec::new(),
        files: BTreeMap::new(),
    });
    Node {
        config,
        tenants_dir,
    }
}

/// Checks `[cluster]`. A build without the `cluster` feature refuses it.
fn cluster(
    c: ClusterSection,
    node_name: &str,
    at: &dyn Fn(&Path) -> PathBuf,
    reader: &mut Reader<'_>,
    err: &mut dyn FnMut(&str, String),
) -> Cluster {
    if !cfg!(feature = "cluster") {
        err(
            "cluster",
            "this xfed was built without cluster support (cargo build --features cluster)".into(),
        );
    }
    let tls = etcd_access(&c, at, &mut |p| reader.material(p), err);
    let segments = c.prefix.strip_prefix('/').map(|p| p.split('/'));
    if segments.is_none_or(|mut s| s.any(str::is_empty)) {
        err(
            "cluster.prefix",
            format!("{:?}: must look like /xfed/<cluster name>", c.prefix),
        );
    }
    if !(2..=300).contains(&c.lease_secs) {
        err("cluster.lease_secs", "must be 2 to 300 seconds".into());
    }
    if !(1..=3600).contains(&c.rollout_step_secs) {
        err(
            "cluster.rollout_step_secs",
            "must be 1 to 3600 seconds".into(),
        );
    }
    if node_name.contains('/') || node_name.chars().any(char::is_control) {
        err(
            "node.name",
            "a node in a cluster needs a name without / or control characters".into(),
        );
    }
    let user = match (c.user, &c.password_file) {
        (Some(user), Some(p)) => reader
            .secret(&at(p), "cluster.password_file")
            .map_err(|r| err("cluster.password_file", r))
            .ok()
            .map(|password| (user, password)),
        (None, None) => None,
        (Some(_), None) => {
            err(
                "cluster.password_file",
                "cluster.user is set but not its password_file".into(),
            );
            None
        }
        (None, Some(_)) => {
            err(
                "cluster.user",
                "cluster.password_file is set but not cluster.user".into(),
            );
            None
        }
    };
    let relay = relay_addresses(c.listen, c.advertise)
        .map_err(|(k, r)| err(k, r))
        .ok()
        .flatten();
    Cluster {
        etcd: c.etcd,
        prefix: c.prefix,
        lease: Duration::from_secs(c.lease_secs),
        rollout_step: Duration::from_secs(c.rollout_step_secs),
        user,
        tls,
        relay,
    }
}

/// `[cluster] listen` and `advertise`: where inter-node links are taken, and the address
/// the other nodes dial (`listen` itself unless it is a wildcard).
pub fn relay_addresses(
    listen: Option<std::net::SocketAddr>,
    advertise: Option<std::net::SocketAddr>,
) -> Result<Option<(std::net::SocketAddr, std::net::SocketAddr)>, (&'static str, String)> {
    match (listen, advertise) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err((
            "cluster.advertise",
            "is set but not cluster.listen, where the links it advertises would be taken".into(),
        )),
        (Some(l), None) if l.ip().is_unspecified() => Err((
            "cluster.advertise",
            format!("needed: cluster.listen is {l}, an address other nodes cannot dial"),
        )),
        (Some(_), Some(a)) if a.ip().is_unspecified() || a.port() == 0 => Err((
            "cluster.advertise",
            format!("{a}: other nodes must be able to dial it (a host and a port)"),
        )),
        (Some(l), a) => Ok(Some((l, a.unwrap_or(l)))),
    }
}

/// Why `text` is not a restart schedule, on one line.
fn not_cron(text: &str, err: &cron::error::Error) -> String {
    // cron's message repeats the expression and points into it with a caret, on lines of
    // their own; keep its explanation only, so the problem stays one line.
    let trimmed = text.trim();
    let why = one_line(
        &err.to_string()
            .lines()
            .filter(|l| l.trim() != trimmed && l.trim() != "^")
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let reason =
        format!("{text:?} is not a cron expression (sec min hour day month weekday [year])");
    if why.is_empty() {
        reason
    } else {
        format!("{reason}: {why}")
    }
}
