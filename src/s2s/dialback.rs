//! Server dialback keys (XEP-0185, as adopted by XEP-0220 §2.1.1):
//!
//! ```text
//! key = hex(HMAC-SHA256(hex(SHA256(secret)), receiving ' ' originating ' ' stream-id))
//! ```
//!
//! The space separators keep one domain from posing as another by shifting characters
//! between fields (CVE-2016-0756 class); domains never contain spaces. Any node holding the
//! same secret computes the same key, so any node of a cluster can answer a verify.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// The dialback secret in the form XEP-0185 uses as the HMAC key.
#[derive(Clone)]
pub struct DialbackKey {
    /// hex(SHA256(secret)), as ASCII.
    hmac_key: String,
}

impl std::fmt::Debug for DialbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DialbackKey(***)")
    }
}

impl DialbackKey {
    pub fn new(secret: &Secret) -> Self {
        Self {
            hmac_key: hex(&Sha256::digest(secret.expose().as_bytes())),
        }
    }

    /// The key the originating server sends for a stream with `stream_id` from
    /// `originating` to `receiving`.
    pub fn generate(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        // Invariant: HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(self.hmac_key.as_bytes())
            .expect("HMAC takes any key length");
        mac.update(receiving.as_bytes());
        mac.update(b" ");
        mac.update(originating.as_bytes());
        mac.update(b" ");
        mac.update(stream_id.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Does `offered` match the key we would have generated? Constant time.
    pub fn verify(
        &self,
        receiving: &str,
        originating: &str,
        stream_id: &str,
        offered: &str,
    ) -> bool {
        let expected = self.generate(receiving, originating, stream_id);
        let offered = offered.trim().to_ascii_lowercase();
        expected.as_bytes().ct_eq(offered.as_bytes()).into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DialbackKey {
        DialbackKey::new(&Secret::new("s3cr3tf0rd14lb4ck"))
    }

    /// XEP-0185 §3: the hashed secret.
    #[test]
    fn xep0185_example_hashed_secret() {
        assert_eq!(
            key().hmac_key,
            "a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc"
        );
    }

    /// XEP-0185 §3, step 3: the key example.org sends to xmpp.example.com.
    #[test]
    fn xep0185_example_key() {
        assert_eq!(
            key().generate("xmpp.example.com", "example.org", "D60000229F"),
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
    }

    /// XEP-0185 §3, steps 8-9: the authoritative server verifies the same key.
    #[test]
    fn xep0185_example_verify() {
        let k = key();
        let offered = "\n    37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643\n";
        assert!(k.verify("xmpp.example.com", "example.org", "D60000229F", offered));
        assert!(!k.verify("xmpp.example.com", "example.org", "D60000229E", offered));
        assert!(!k.verify("example.org", "xmpp.example.com", "D60000229F", offered));
        assert!(!k.verify("xmpp.example.com", "example.org", "D60000229F", ""));
    }

    /// Shifting characters between fields changes the key (CVE-2016-0756 class).
    #[test]
    fn fields_cannot_be_shifted() {
        let k = key();
        assert_ne!(
            k.generate("example.info", "rm.example.org", "id"),
            k.generate("example.in", "form.example.org", "id")
        );
    }

    #[test]
    fn other_secret_other_key() {
        let other = DialbackKey::new(&Secret::new("another"));
        assert_ne!(
            key().generate("a.example", "b.example", "1"),
            other.generate("a.example", "b.example", "1")
        );
    }
}
