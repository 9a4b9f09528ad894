//! Domain names as XMPP and DNS both accept them, in one canonical form for lookups.

use std::borrow::Cow;
use std::net::IpAddr;

/// Checks a federation domain written in configuration and returns its canonical form:
/// nameprep'd by the `jid` crate (RFC 7622 rules via UTS #46 and stringprep), then as the
/// ASCII (A-label) form DNS uses, lower case, without a trailing dot.
pub fn normalize_domain(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Err("empty domain name".into());
    }
    if raw.contains(['@', '/']) {
        return Err(format!(
            "{raw:?} is an address, not a domain (no '@' or '/' here)"
        ));
    }
    let bare = raw.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "{raw:?} is an IP address; federation needs a domain name"
        ));
    }
    let part = jid::DomainPart::new(raw)
        .map_err(|e| format!("{raw:?} is not a valid domain name ({e})"))?;
    let ascii = idna::domain_to_ascii(part.as_str())
        .map_err(|_| format!("{raw:?} is not a valid internationalized domain name"))?;
    if ascii.split('.').any(str::is_empty) {
        return Err(format!("{raw:?} has an empty label"));
    }
    // Again on the canonical form: `192.0.2.1.` or full-width digits become an address only
    // once the trailing dot is gone and nameprep has mapped them.
    if ascii.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "{raw:?} is an IP address; federation needs a domain name"
        ));
    }
    Ok(ascii)
}

/// The lookup key of a domain already accepted by the `jid` crate: its ASCII form. ASCII
/// domains (the common case) are only lower-cased.
pub fn domain_key(domain: &str) -> Cow<'_, str> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_ascii() {
        if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(domain.to_ascii_lowercase())
        } else {
            Cow::Borrowed(domain)
        }
    } else {
        match idna::domain_to_ascii(domain) {
            Ok(ascii) => Cow::Owned(ascii),
            Err(_) => Cow::Borrowed(domain),
        }
    }
}
