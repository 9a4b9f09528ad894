//! The one-screen summary `xfed check-config` prints for a valid configuration.

use std::fmt::Write;

use chrono::Utc;

use super::{Config, PrivacyMode};

impl Config {
    /// What this configuration runs: listeners, federation, restart policy, tenants.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "configuration OK: {} (node {})",
            self.path.display(),
            self.node_name
        );
        let _ = writeln!(
            s,
            "listeners: s2s {}, component {}, admin {}",
            self.listen.s2s, self.listen.component, self.listen.admin
        );
        let f = &self.federation;
        let _ = writeln!(
            s,
            "federation: {}, client certificates {}, SASL EXTERNAL {}, dialback secret {}, idle timeout {}s",
            f.security_mode.as_str(),
            if f.require_client_certs { "required" } else { "optional" },
            if f.sasl_external { "on" } else { "off" },
            if f.dialback_secret.is_some() { "from file" } else { "random per start (single node only)" },
            f.idle_timeout.as_secs(),
        );
        let _ = writeln!(
            s,
            "tls: {}",
            match &self.tls.cert {
                Some(c) => format!("certificate {}", c.cert.display()),
                None => "no certificate configured: self-signed development certificates (the node's, one per tenant)".into(),
            }
        );
        let next = self
            .restart
            .schedule
            .upcoming(Utc)
            .next()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "never".into());
        let _ = writeln!(
            s,
            "restart: {}, schedule {:?} (UTC, next {next})",
            if self.restart.delayed {
                "delayed (changes are staged)"
            } else {
                "immediate"
            },
            self.restart.schedule_text
        );
        let _ = writeln!(s, "tenants: {}", self.tenants.len());
        for t in &self.tenants {
            let privacy = match t.privacy.mode {
                PrivacyMode::Off => "off".to_owned(),
                PrivacyMode::AllowList => format!("allow-list ({} allowed)", t.privacy.allow.len()),
                PrivacyMode::DenyList => format!("deny-list ({} denied)", t.privacy.deny.len()),
            };
            let _ = writeln!(s, "  {}  ({})", t.name, t.file.display());
            let _ = writeln!(s, "    domains: {}", t.domains.join(", "));
            if !t.chat_node_aliases.is_empty() {
                let _ = writeln!(
                    s,
                    "    chat node aliases: {}",
                    t.chat_node_aliases.join(", ")
                );
            }
            let routes = if t.static_routes.enabled {
                format!("{} domains", t.static_routes.routes.len())
            } else {
                "off".to_owned()
            };
            let _ = writeln!(s, "    privacy: {privacy}; static routes: {routes}");
        }
        s
    }
}
