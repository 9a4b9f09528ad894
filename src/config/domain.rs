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

/// The lookup key of the domain of an XMPP address, checked as the `jid` crate checks a
/// whole address (RFC 6122's nodeprep, nameprep and resourceprep, IDNA).
///
/// Nearly every address on the wire is plain ASCII that those checks would pass unchanged;
/// for those the answer comes from one pass over the bytes, and anything else goes to
/// `jid::Jid::new`. The two agree on every input (tested side by side), the fast one is
/// only cheaper: it runs twice for each stanza routed.
pub fn address_domain(addr: &str) -> Result<Cow<'_, str>, jid::Error> {
    if let Some(domain) = plain_address_domain(addr) {
        return Ok(domain);
    }
    let jid = jid::Jid::new(addr)?;
    Ok(Cow::Owned(domain_key(jid.domain().as_str()).into_owned()))
}

/// [`address_domain`] of an address that may be missing: `None` when it is missing or
/// not a valid address.
pub fn domain_of(addr: Option<&str>) -> Option<String> {
    Some(address_domain(addr?).ok()?.into_owned())
}

/// The domain of `addr` when the address is plainly valid — ASCII, with a local part and
/// resource that the stringprep profiles leave as they are or only lower-case, and a domain
/// of LDH labels — else `None` (which says nothing about its validity).
pub(super) fn plain_address_domain(addr: &str) -> Option<Cow<'_, str>> {
    // Split where `jid::Jid::new` does: the local part ends at an `@` before any `/`; the
    // resource is everything after the first `/` that follows.
    let b = addr.as_bytes();
    let (local, rest) = match memchr::memchr2(b'@', b'/', b) {
        Some(at) if b[at] == b'@' => (Some(&b[..at]), at + 1),
        _ => (None, 0),
    };
    let (domain, resource) = match memchr::memchr2(b'@', b'/', &b[rest..]) {
        Some(i) if b[rest + i] == b'/' => (&addr[rest..rest + i], Some(&b[rest + i + 1..])),
        Some(_) => return None,
        None => (&addr[rest..], None),
    };
    let plain_local = |s: &[u8]| {
        (1..=1023).contains(&s.len())
            && s.iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'))
    };
    let plain_resource =
        |s: &[u8]| (1..=1023).contains(&s.len()) && s.iter().all(|c| (0x20..0x7f).contains(c));
    if !local.is_none_or(plain_local) || !resource.is_none_or(plain_resource) {
        return None;
    }
    plain_domain(domain)
}

/// `domain` in lower case without its one trailing dot, when it is made of LDH labels of
/// 1–63 bytes (no hyphen first, last or as the 3rd and 4th byte, so no `xn--`), at most
/// 253 bytes, with a last label that starts with a letter (so never an IP address).
fn plain_domain(domain: &str) -> Option<Cow<'_, str>> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let b = domain.as_bytes();
    if b.is_empty() || b.len() > 253 {
        return None;
    }
    let (mut start, mut last, mut upper) = (0, 0, false);
    for end in memchr::memchr_iter(b'.', b).chain([b.len()]) {
        let label = &b[start..end];
        let plain = (1..=63).contains(&label.len())
            && label[0] != b'-'
            && label[label.len() - 1] != b'-'
            && !(label.len() >= 4 && label[2] == b'-' && label[3] == b'-');
        if !plain {
            return None;
        }
        for &c in label {
            if !(c.is_ascii_alphanumeric() || c == b'-') {
                return None;
            }
            upper |= c.is_ascii_uppercase();
        }
        (last, start) = (start, end + 1);
    }
    // The last label starts with a letter, so the whole is never an IP address.
    if !b[last].is_ascii_alphabetic() {
        return None;
    }
    Some(if upper {
        Cow::Owned(domain.to_ascii_lowercase())
    } else {
        Cow::Borrowed(domain)
    })
}
