//! Admission of new connections: how many that have not yet authenticated one source may
//! hold, and how many a listener holds in all.
//!
//! A connection takes a [`Permit`] when it is accepted and gives it back when it
//! authenticates (or closes), so authenticated streams and component links never count
//! against the caps and a flood of half-open connections cannot starve them. The excess is
//! refused at once with a stream error (RFC 6120 §4.9.1.1: our header, then the error),
//! counted in `xfed_connections_refused_total` and logged, folded like privacy denials.
//!
//! IPv6 sources are grouped by their /64: one host is commonly given a whole /64, so per
//! address would be no cap at all.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

pub use crate::config::Caps;
use crate::observe::{Event, Kind, Observer};
use crate::xmpp::StreamCondition;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source already holds `per_address` unauthenticated connections.
    PerAddress,
    /// The listener already holds `total` unauthenticated connections.
    Total,
}

impl Refusal {
    /// The stream error it is answered with (RFC 6120 §4.9.3): a cap per source is a local
    /// policy; the total cap is a lack of resources.
    pub fn condition(self) -> StreamCondition {
        match self {
            Refusal::PerAddress => StreamCondition::PolicyViolation,
            Refusal::Total => StreamCondition::ResourceConstraint,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per_address",
            Refusal::Total => "total",
        }
    }
}

/// The unauthenticated connections one listener holds.
pub struct Admission {
    /// Which listener, for metrics and the event log.
    listener: &'static str,
    caps: Caps,
    /// Unauthenticated connections per source key, and their sum.
    held: Mutex<Held>,
    /// Where refusals are counted and logged; none in unit tests.
    observer: Option<Arc<Observer>>,
}

#[derive(Default)]
struct Held {
    per_source: HashMap<IpAddr, usize>,
    total: usize,
}

impl Admission {
    pub fn new(listener: &'static str, caps: Caps, observer: Option<Arc<Observer>>) -> Arc<Self> {
        Arc::new(Self {
            listener,
            caps,
            held: Mutex::new(Held::default()),
            observer,
        })
    }

    pub fn listener(&self) -> &'static str {
        self.listener
    }

    /// A permit for a new connection from `ip`, or why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let source = source_key(ip);
        let refusal = {
            // Invariant: no code panics while holding this lock.
            let mut held = self.held.lock().expect("admission lock");
            let mine = held.per_source.get(&source).copied().unwrap_or(0);
            if mine >= self.caps.per_address {
                Some(Refusal::PerAddress)
            } else if held.total >= self.caps.total {
                Some(Refusal::Total)
            } else {
                held.total += 1;
                held.per_source.insert(source, mine + 1);
                None
            }
        };
        match refusal {
            None => Ok(Permit {
                gate: self.clone(),
                source,
            }),
            Some(r) => {
                self.refused(ip, r);
                Err(r)
            }
        }
    }

    fn refused(&self, ip: IpAddr, why: Refusal) {
        tracing::debug!(listener = self.listener, %ip, why = why.label(), "connection refused");
        let Some(o) = &self.observer else { return };
        o.metrics
            .counter(
                "xfed_connections_refused_total",
                &[("listener", self.listener), ("reason", why.label())],
            )
            .increment(1);
        let cap = match why {
            Refusal::PerAddress => self.caps.per_address,
            Refusal::Total => self.caps.total,
        };
        let reason = match why {
            Refusal::PerAddress => {
                format!("{ip} already holds {cap} connections that have not authenticated")
            }
            Refusal::Total => format!("{cap} connections have not authenticated yet"),
        };
        o.events.record_folded(
            &format!(
                "refused {} {} {}",
                self.listener,
                why.label(),
                source_key(ip)
            ),
            Event::new(Kind::ConnectionRefused)
                .field("listener", self.listener)
                .field("peer_ip", ip.to_string())
                .field("condition", why.condition().as_str())
                .field("reason", reason),
        );
    }

    /// Unauthenticated connections held now, from `ip`'s source and in all.
    pub fn held(&self, ip: IpAddr) -> (usize, usize) {
        let held = self.held.lock().expect("admission lock");
        let mine = held.per_source.get(&source_key(ip)).copied().unwrap_or(0);
        (mine, held.total)
    }
}

/// One unauthenticated connection's place; given back when dropped.
pub struct Permit {
    gate: Arc<Admission>,
    source: IpAddr,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Permit({} {})", self.gate.listener, self.source)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.gate.held.lock().expect("admission lock");
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                held.per_source.remove(&self.source);
            }
        }
    }
}

/// What one source is: an IPv4 address, or an IPv6 /64 (an IPv4-mapped IPv6 address is
/// its IPv4 address).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_per_source_and_in_total_and_permits_come_back() {
        let gate = Admission::new(
            "s2s",
            Caps {
                per_address: 2,
                total: 3,
            },
            None,
        );
        let a1 = gate.admit(ip("192.0.2.1")).unwrap();
        let _a2 = gate.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            gate.admit(ip("192.0.2.1")).unwrap_err(),
            Refusal::PerAddress
        );
        let _b1 = gate.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(gate.admit(ip("192.0.2.3")).unwrap_err(), Refusal::Total);
        drop(a1);
        assert_eq!(gate.held(ip("192.0.2.1")), (1, 2));
        let _c1 = gate.admit(ip("192.0.2.3")).unwrap();
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        let gate = Admission::new(
            "s2s",
            Caps {
                per_address: 1,
                total: 10,
            },
            None,
        );
        let _a = gate.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            gate.admit(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            Refusal::PerAddress
        );
        let _b = gate.admit(ip("2001:db8:1:3::1")).unwrap();
        let _c = gate.admit(ip("192.0.2.7")).unwrap();
        assert_eq!(
            gate.admit(ip("::ffff:192.0.2.7")).unwrap_err(),
            Refusal::PerAddress
        );
    }
}
