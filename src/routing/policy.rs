//! Whom a tenant federates with: a pure function of its privacy settings and static routes.

use crate::config::{Privacy, PrivacyMode, StaticRoutes};

/// Does a tenant with `privacy` and `routes` exchange stanzas with `remote` (a normalized
/// domain)? Matching is exact: `partner.example` does not cover `muc.partner.example`.
///
/// Precedence, first match wins:
/// 1. mode `off`: every domain is allowed;
/// 2. mode `deny-list`: a listed domain is refused, any other allowed (a static route does
///    not lift a deny entry);
/// 3. mode `allow-list`: a listed domain is allowed, and so is a domain the tenant has an
///    enabled static route for; any other is refused.
pub fn permits(privacy: &Privacy, routes: &StaticRoutes, remote: &str) -> bool {
    match privacy.mode {
        PrivacyMode::Off => true,
        PrivacyMode::DenyList => !privacy.deny.contains(remote),
        PrivacyMode::AllowList => {
            privacy.allow.contains(remote) || routes.for_domain(remote).is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteTarget;

    fn privacy(mode: PrivacyMode, allow: &[&str], deny: &[&str]) -> Privacy {
        Privacy {
            mode,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn routes(enabled: bool, domains: &[&str]) -> StaticRoutes {
        StaticRoutes {
            enabled,
            routes: domains
                .iter()
                .map(|d| {
                    let target = RouteTarget {
                        host: "192.0.2.1".into(),
                        port: 5269,
                    };
                    (d.to_string(), vec![target])
                })
                .collect(),
        }
    }

    #[test]
    fn precedence_table() {
        use PrivacyMode::*;
        let cases = [
            // (mode, allow, deny, routes enabled, routed domains, remote, expected)
            (Off, vec![], vec![], false, vec![], "any.example", true),
            (
                AllowList,
                vec![],
                vec![],
                false,
                vec![],
                "any.example",
                false,
            ),
            (
                AllowList,
                vec!["p.example"],
                vec![],
                false,
                vec![],
                "p.example",
                true,
            ),
            (
                AllowList,
                vec!["p.example"],
                vec![],
                false,
                vec![],
                "muc.p.example",
                false,
            ),
            (
                AllowList,
                vec!["p.example"],
                vec![],
                false,
                vec![],
                "q.example",
                false,
            ),
            (
                AllowList,
                vec![],
                vec![],
                true,
                vec!["r.example"],
                "r.example",
                true,
            ),
            (
                AllowList,
                vec![],
                vec![],
                false,
                vec!["r.example"],
                "r.example",
                false,
            ),
            (
                DenyList,
                vec![],
                vec!["bad.example"],
                false,
                vec![],
                "bad.example",
                false,
            ),
            (
                DenyList,
                vec![],
                vec!["bad.example"],
                false,
                vec![],
                "good.example",
                true,
            ),
            (
                DenyList,
                vec![],
                vec!["bad.example"],
                true,
                vec!["bad.example"],
                "bad.example",
                false,
            ),
        ];
        for (i, (mode, allow, deny, on, routed, remote, expected)) in cases.into_iter().enumerate()
        {
            let got = permits(&privacy(mode, &allow, &deny), &routes(on, &routed), remote);
            assert_eq!(got, expected, "case {i}: {mode:?} {remote}");
        }
    }
}
