//! `xfed check-dns`: what DNS says about a domain's XMPP servers, in the order xfed would try
//! them, and whether each accepts a TCP connection.

use std::fmt::Write;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::config::RouteTarget;
use crate::s2s::resolve::{Resolver, Srv, Target};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What was found for one domain.
pub struct DomainReport {
    /// Human-readable lines.
    pub text: String,
    /// At least one target accepted a TCP connection.
    pub reachable: bool,
}

/// Checks `domain`: its SRV records, then each target xfed would try. With `routes` (a
/// tenant's static routes for the domain) those are the targets, as xfed uses them.
pub async fn check_domain(
    resolver: &Resolver,
    domain: &str,
    routes: Option<(&str, &[RouteTarget])>,
) -> DomainReport {
    let mut text = String::new();
    let _ = writeln!(text, "{domain}");
    if routes.is_none() {
        for service in ["_xmpps-server._tcp", "_xmpp-server._tcp"] {
            let name = format!("{service}.{domain}");
            let answer = match resolver.srv(&format!("{name}.")).await {
                Srv::Records(rs) if rs.is_empty() => "no records".to_owned(),
                Srv::Records(rs) => rs
                    .iter()
                    .map(|r| format!("{} {} {} {}", r.priority, r.weight, r.port, r.target))
                    .collect::<Vec<_>>()
                    .join("; "),
                Srv::NoService => "\".\": no service offered".to_owned(),
                Srv::None => "no records".to_owned(),
                Srv::Failed(e) => format!("lookup failed: {e}"),
            };
            let _ = writeln!(text, "  SRV {name}: {answer}");
        }
    }
    let targets = match resolver.targets(domain, routes.map(|(_, r)| r)).await {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(text, "  no server to try: {e}");
            return DomainReport {
                text,
                reachable: false,
            };
        }
    };
    match routes {
        Some((tenant, _)) => {
            let _ = writeln!(
                text,
                "  static routes of tenant {tenant} (no DNS), tried in turn:"
            );
        }
        None => {
            let _ = writeln!(
                text,
                "  xfed would try, in order (equal-priority records drawn by weight):"
            );
        }
    }
    let mut reachable = false;
    for (i, target) in targets.iter().enumerate() {
        let how = if target.direct_tls {
            "direct TLS"
        } else {
            "STARTTLS"
        };
        let _ = writeln!(text, "  {}. {}:{} ({how})", i + 1, target.host, target.port);
        for line in probe(resolver, target).await {
            reachable |= line.0;
            let _ = writeln!(text, "       {}", line.1);
        }
    }
    let _ = writeln!(
        text,
        "  {}",
        if reachable {
            "reachable"
        } else {
            "NOT REACHABLE: no target accepts a connection"
        }
    );
    DomainReport { text, reachable }
}

/// Tries a TCP connection to every address of `target`: (accepted, line) per address.
async fn probe(resolver: &Resolver, target: &Target) -> Vec<(bool, String)> {
    let ips = match resolver.addresses(&target.host).await {
        Ok(ips) if !ips.is_empty() => ips,
        Ok(_) => return vec![(false, format!("{}: no address", target.host))],
        Err(e) => return vec![(false, format!("no address: {e}"))],
    };
    let mut out = Vec::new();
    for ip in ips {
        let started = Instant::now();
        let result =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((ip, target.port))).await;
        out.push(match result {
            Ok(Ok(_)) => (
                true,
                format!(
                    "{ip} port {}: accepts connections ({} ms)",
                    target.port,
                    started.elapsed().as_millis()
                ),
            ),
            Ok(Err(e)) => (false, format!("{ip} port {}: {e}", target.port)),
            Err(_) => (
                false,
                format!(
                    "{ip} port {}: no answer within {}s (filtered?)",
                    target.port,
                    CONNECT_TIMEOUT.as_secs()
                ),
            ),
        });
    }
    out
}
