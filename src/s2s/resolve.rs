//! Where a remote domain's servers are: a tenant's static routes, else DNS SRV
//! (`_xmpps-server._tcp` for direct TLS per XEP-0368, `_xmpp-server._tcp` for STARTTLS) in
//! RFC 2782 order, else the domain's own A/AAAA records on port 5269.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use rand::Rng;

use crate::config::RouteTarget;
use crate::xmpp::StanzaCondition;

/// The default s2s port (RFC 6120 §14.7).
pub const DEFAULT_PORT: u16 = 5269;

/// One place to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address.
    pub host: String,
    pub port: u16,
    /// TLS from the first byte (XEP-0368) instead of STARTTLS.
    pub direct_tls: bool,
}

/// Why no target could be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{0} does not exist in DNS")]
    NoSuchDomain(String),
    #[error("{0} publishes that it offers no XMPP server-to-server service (SRV target \".\")")]
    NoService(String),
    #[error("DNS lookup for {0} failed: {1}")]
    Failed(String, String),
    #[error("DNS lookup for {0} timed out: no nameserver answered")]
    TimedOut(String),
}

impl ResolveError {
    /// The stanza error a stanza for the domain returns with (RFC 6120 §8.3.3.16-17): a
    /// lookup nobody answered is a timeout; a domain DNS says has no server is not found.
    pub fn condition(&self) -> StanzaCondition {
        match self {
            ResolveError::TimedOut(_) => StanzaCondition::RemoteServerTimeout,
            _ => StanzaCondition::RemoteServerNotFound,
        }
    }

    fn from_lookup(domain: &str, e: &hickory_resolver::ResolveError) -> Self {
        if is_timeout(e) {
            ResolveError::TimedOut(domain.to_owned())
        } else {
            ResolveError::Failed(domain.to_owned(), e.to_string())
        }
    }
}

/// Whether a lookup failed because no nameserver answered in time.
fn is_timeout(e: &hickory_resolver::ResolveError) -> bool {
    use hickory_resolver::proto::ProtoErrorKind;
    match e.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::Timeout) => true,
        Some(ProtoErrorKind::Io(io)) => io.kind() == std::io::ErrorKind::TimedOut,
        _ => false,
    }
}

/// Looks up remote servers, with the configured nameservers or the system's.
pub struct Resolver {
    dns: TokioResolver,
}

impl Resolver {
    pub fn new(nameservers: &[SocketAddr]) -> Result<Self, String> {
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("system resolver: {e}"))?
        } else {
            let mut config = ResolverConfig::new();
            for ns in nameservers {
                config.add_name_server(NameServerConfig::new(*ns, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(*ns, Protocol::Tcp));
            }
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
        };
        let opts = builder.options_mut();
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 2;
        Ok(Self {
            dns: builder.build(),
        })
    }

    /// The targets for `domain` in the order to try them. Static routes, when given, are the
    /// only targets (no DNS fallback).
    pub async fn targets(
        &self,
        domain: &str,
        static_routes: Option<&[RouteTarget]>,
    ) -> Result<Vec<Target>, ResolveError> {
        if let Some(routes) = static_routes {
            return Ok(routes
                .iter()
                .map(|r| Target {
                    host: r.host.clone(),
                    port: r.port,
                    direct_tls: false,
                })
                .collect());
        }
        let direct = self.srv(&format!("_xmpps-server._tcp.{domain}.")).await;
        let starttls = self.srv(&format!("_xmpp-server._tcp.{domain}.")).await;
        let mut found = Vec::new();
        let mut no_service = false;
        for (answer, direct_tls) in [(direct, true), (starttls, false)] {
            match answer {
                Srv::Records(records) => found.extend(records.into_iter().map(|r| (r, direct_tls))),
                Srv::NoService => no_service = true,
                Srv::None => {}
                Srv::Failed(e) => return Err(ResolveError::from_lookup(domain, &e)),
            }
        }
        if !found.is_empty() {
            return Ok(order(found));
        }
        if no_service {
            return Err(ResolveError::NoService(domain.to_owned()));
        }
        // No SRV at all: the domain itself on the default port, if it has an address.
        match self.dns.lookup_ip(format!("{domain}.")).await {
            Ok(ips) if ips.iter().next().is_some() => Ok(vec![Target {
                host: domain.to_owned(),
                port: DEFAULT_PORT,
                direct_tls: false,
            }]),
            Ok(_) => Err(ResolveError::NoSuchDomain(domain.to_owned())),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                Err(ResolveError::NoSuchDomain(domain.to_owned()))
            }
            Err(e) => Err(ResolveError::from_lookup(domain, &e)),
        }
    }

    /// The addresses of a target host.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let ips = self
            .dns
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        Ok(ips.iter().collect())
    }

    /// The SRV records at `name`, as published (for `xfed check-dns`).
    pub async fn srv(&self, name: &str) -> Srv {
        match self.dns.srv_lookup(name).await {
            Ok(lookup) => {
                let records: Vec<SrvRecord> = lookup
                    .iter()
                    .map(|r| SrvRecord {
                        priority: r.priority(),
                        weight: r.weight(),
                        port: r.port(),
                        target: r.target().to_utf8().trim_end_matches('.').to_owned(),
                    })
                    .collect();
                if records.len() == 1 && records[0].target.is_empty() {
                    Srv::NoService
                } else {
                    Srv::Records(
                        records
                            .into_iter()
                            .filter(|r| !r.target.is_empty())
                            .collect(),
                    )
                }
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Srv::None,
            Err(e) => Srv::Failed(e),
        }
    }
}

/// An SRV answer.
pub enum Srv {
    Records(Vec<SrvRecord>),
    /// A single record with target "." (RFC 2782: the service is decidedly not available).
    NoService,
    None,
    Failed(hickory_resolver::ResolveError),
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// RFC 2782 order: lowest priority first; within a priority, a weighted random draw, records
/// of weight 0 having a small chance. At equal priority, direct TLS comes before STARTTLS.
fn order(mut records: Vec<(SrvRecord, bool)>) -> Vec<Target> {
    records.sort_by_key(|(r, direct)| (r.priority, !*direct));
    let mut out = Vec::with_capacity(records.len());
    let mut rng = rand::rng();
    while !records.is_empty() {
        let (prio, direct) = (records[0].0.priority, records[0].1);
        let mut group: Vec<(SrvRecord, bool)> = Vec::new();
        while records
            .first()
            .is_some_and(|(r, d)| r.priority == prio && *d == direct)
        {
            group.push(records.remove(0));
        }
        while !group.is_empty() {
            let total: u32 = group.iter().map(|(r, _)| u32::from(r.weight)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut n = rng.random_range(0..=total);
                group
                    .iter()
                    .position(|(r, _)| {
                        let w = u32::from(r.weight);
                        if n <= w {
                            true
                        } else {
                            n -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            let (r, direct_tls) = group.remove(pick);
            out.push(Target {
                host: r.target,
                port: r.port,
                direct_tls,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5269,
            target: target.into(),
        }
    }

    #[test]
    fn rfc2782_lower_priority_first() {
        let got = order(vec![
            (rec(20, 0, "backup"), false),
            (rec(10, 0, "primary"), false),
        ]);
        let hosts: Vec<&str> = got.iter().map(|t| t.host.as_str()).collect();
        assert_eq!(hosts, ["primary", "backup"]);
    }

    #[test]
    fn direct_tls_first_at_equal_priority() {
        let got = order(vec![
            (rec(10, 0, "plain"), false),
            (rec(10, 0, "tls"), true),
        ]);
        assert!(got[0].direct_tls && got[0].host == "tls");
        assert!(!got[1].direct_tls);
    }

    #[test]
    fn rfc2782_weights_share_the_first_place() {
        // 90/10 weights: over 2000 draws the heavy record comes first far more often, and
        // the light one sometimes.
        let mut heavy_first = 0;
        for _ in 0..2000 {
            let got = order(vec![
                (rec(10, 90, "heavy"), false),
                (rec(10, 10, "light"), false),
            ]);
            assert_eq!(got.len(), 2);
            if got[0].host == "heavy" {
                heavy_first += 1;
            }
        }
        assert!((1600..2000).contains(&heavy_first), "{heavy_first}");
    }
}
