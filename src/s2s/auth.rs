//! The one place that decides whether a peer proven by a mechanism is trusted, given the
//! TLS it runs under and the node's `[federation]` settings.

use super::io::TlsInfo;
use super::tls::TlsContext;
use crate::config::SecurityMode;

/// How a domain pair was authenticated: part of what operators see of a stream, so it is
/// defined with the admin API's types.
pub use crate::model::Mechanism;

/// The trust settings, from `[federation]`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub security_mode: SecurityMode,
    pub require_client_certs: bool,
}

impl Policy {
    /// May a peer be trusted as `domain`, given the TLS under its stream? Rules:
    ///
    /// - `require_client_certs`: TLS, a chain that verifies against `[tls] ca` and passes the
    ///   CRLs, and `domain` in the certificate's subject alternative names;
    /// - otherwise, under `tls-required`: TLS and `domain` in the certificate's names (the
    ///   chain may be self-signed: dialback proves the rest);
    /// - otherwise (`tls-optional`, `no-tls`): dialback alone.
    pub fn trusts(
        &self,
        tls: &TlsContext,
        conn: Option<&TlsInfo>,
        domain: &str,
    ) -> Result<(), String> {
        let needs_cert =
            self.require_client_certs || self.security_mode == SecurityMode::TlsRequired;
        if !needs_cert {
            return Ok(());
        }
        let Some(conn) = conn else {
            return Err("the stream is not encrypted".into());
        };
        let verdict = tls.judge(&conn.peer_chain, domain);
        if conn.peer_chain.is_empty() {
            return Err(format!("no certificate was presented for {domain}"));
        }
        if !verdict.names_domain {
            return Err(format!(
                "the certificate does not name {domain} in its subject alternative names"
            ));
        }
        if self.require_client_certs {
            verdict
                .chain
                .map_err(|e| format!("certificate for {domain} not trusted: {e}"))?;
        }
        Ok(())
    }
}

impl Policy {
    /// SASL EXTERNAL (XEP-0178): the certificate alone proves `domain`, so its chain must
    /// verify against the trusted CAs and pass the CRLs, and name `domain` — whatever
    /// `require_client_certs` says.
    pub fn certificate_proves(
        &self,
        tls: &TlsContext,
        conn: Option<&TlsInfo>,
        domain: &str,
    ) -> Result<(), String> {
        let Some(conn) = conn else {
            return Err("the stream is not encrypted".into());
        };
        let verdict = tls.judge(&conn.peer_chain, domain);
        verdict
            .chain
            .map_err(|e| format!("certificate not trusted: {e}"))?;
        if !verdict.names_domain {
            return Err(format!(
                "the certificate does not name {domain} in its subject alternative names"
            ));
        }
        Ok(())
    }
}
