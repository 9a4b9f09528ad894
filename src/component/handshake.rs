//! The XEP-0114 handshake: hex(SHA-1(stream id ‖ secret)), compared in constant time.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// The digest a component must send for `stream_id` and `secret` (XEP-0114 §3), lower-case hex.
pub fn digest(stream_id: &str, secret: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Does `offered` (the text of the component's `<handshake/>`) prove knowledge of `secret`?
/// Hex case is ignored; the comparison takes the same time wherever the strings differ.
pub fn verify(stream_id: &str, secret: &str, offered: &str) -> bool {
    let expected = digest(stream_id, secret);
    let offered = offered.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(offered.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value coreutils gives: `printf 3BF96D32sabbagh | sha1sum` (stream id of XEP-0114
    /// §3 Example 2, an arbitrary secret).
    #[test]
    fn digest_is_sha1_of_id_then_secret() {
        assert_eq!(
            digest("3BF96D32", "sabbagh"),
            "ea82378230dfd3321e4235f07e91d0ddb63e24e1"
        );
    }

    #[test]
    fn verify_accepts_upper_case_and_refuses_others() {
        let d = digest("abc", "s3cret");
        assert!(verify("abc", "s3cret", &d));
        assert!(verify("abc", "s3cret", &d.to_uppercase()));
        assert!(!verify("abc", "other", &d));
        assert!(!verify("abd", "s3cret", &d));
        assert!(!verify("abc", "s3cret", ""));
        assert!(!verify("abc", "s3cret", &d[..39]));
    }
}
