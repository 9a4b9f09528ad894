//! Whom a tenant federates with: a pure function of its privacy settings and static routes.

use crate::config::{Privacy, PrivacyMode, StaticRoutes, TenantConfig};

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

/// Whether a tenant federates with anyone at all, and why, in an operator's words.
pub fn reach(privacy: &Privacy, routes: &StaticRoutes) -> (bool, String) {
    match privacy.mode {
        PrivacyMode::Off => (true, "privacy off: federates with every domain".into()),
        PrivacyMode::DenyList => (
            true,
            format!(
                "deny list: federates with every domain but {} denied",
                privacy.deny.len()
            ),
        ),
        PrivacyMode::AllowList => {
            let routed = if routes.enabled {
                routes
                    .routes
                    .keys()
                    .filter(|d| !privacy.allow.contains(*d))
                    .count()
            } else {
                0
            };
            if privacy.allow.is_empty() && routed == 0 {
                (
                    false,
                    "allow list is empty and no static route is enabled: federates with nobody"
                        .into(),
                )
            } else {
                (
                    true,
                    format!(
                        "allow list: federates with {} listed and {routed} statically routed domain(s)",
                        privacy.allow.len()
                    ),
                )
            }
        }
    }
}

/// Whether a node with these tenants federates at all, and why (not).
pub fn node_reach<'a>(tenants: impl IntoIterator<Item = &'a TenantConfig>) -> (bool, String) {
    let (mut all, mut reaching) = (0, 0);
    for t in tenants {
        all += 1;
        reaching += usize::from(reach(&t.privacy, &t.static_routes).0);
    }
    match (all, reaching) {
        (0, _) => (false, "no tenant is configured".into()),
        (_, 0) => (
            false,
            "no tenant federates with anyone: every allow list is empty and no static route is enabled"
                .into(),
        ),
        _ => (true, format!("{reaching} of {all} tenant(s) federate")),
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
    fn reach_says_when_a_tenant_federates_with_nobody() {
        use PrivacyMode::*;
        let none = reach(&privacy(AllowList, &[], &[]), &routes(false, &[]));
        assert!(!none.0, "{}", none.1);
        assert!(none.1.contains("nobody"));
        // A disabled static route reaches nobody either.
        assert!(
            !reach(
                &privacy(AllowList, &[], &[]),
                &routes(false, &["p.example"])
            )
            .0
        );
        let routed = reach(&privacy(AllowList, &[], &[]), &routes(true, &["p.example"]));
        assert!(
            routed.0 && routed.1.contains("1 statically routed"),
            "{}",
            routed.1
        );
        assert!(
            reach(
                &privacy(AllowList, &["p.example"], &[]),
                &routes(false, &[])
            )
            .0
        );
        assert!(reach(&privacy(Off, &[], &[]), &routes(false, &[])).0);
        assert!(reach(&privacy(DenyList, &[], &["x.example"]), &routes(false, &[])).0);
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
