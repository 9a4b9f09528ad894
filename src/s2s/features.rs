//! What a receiving server offers in `<stream:features/>` (RFC 6120 §4.3.2).

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::xmpp::acks::SM_NS;
use crate::xmpp::Stanza;

/// STARTTLS namespace, RFC 6120 §5.
pub const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// Dialback stream feature, XEP-0220 §2.4.
pub const DIALBACK_FEATURE_NS: &str = "urn:xmpp:features:dialback";
/// SASL, RFC 6120 §6.
pub const SASL_NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

/// The features we act on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Features {
    pub starttls: bool,
    pub starttls_required: bool,
    pub dialback: bool,
    /// SASL EXTERNAL (XEP-0178) is among the offered mechanisms.
    pub sasl_external: bool,
    /// Stream management (XEP-0198, version 3).
    pub sm: bool,
}

impl Features {
    pub fn parse(features: &Stanza) -> Self {
        let mut f = Features::default();
        let mut rd = Reader::from_reader(&features.bytes[..]);
        let mut depth = 0usize;
        let mut in_starttls = false;
        let mut in_mechanisms = false;
        let mut in_mechanism = false;
        loop {
            let (e, empty) = match rd.read_event() {
                Ok(Event::Start(e)) => (e, false),
                Ok(Event::Empty(e)) => (e, true),
                Ok(Event::End(_)) => {
                    depth = depth.saturating_sub(1);
                    if depth < 2 {
                        in_starttls = false;
                        in_mechanisms = false;
                    }
                    in_mechanism = false;
                    continue;
                }
                Ok(Event::Text(t)) if in_mechanism => {
                    if &*t == b"EXTERNAL" {
                        f.sasl_external = true;
                    }
                    continue;
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => continue,
            };
            let level = depth + 1;
            let local = e.local_name().as_ref().to_vec();
            let xmlns = e
                .attributes()
                .flatten()
                .find(|a| a.key.as_ref() == b"xmlns")
                .map(|a| a.value.into_owned());
            if level == 2 {
                match (local.as_slice(), xmlns.as_deref()) {
                    (b"starttls", Some(ns)) if ns == TLS_NS.as_bytes() => {
                        f.starttls = true;
                        in_starttls = !empty;
                    }
                    (b"dialback", Some(ns)) if ns == DIALBACK_FEATURE_NS.as_bytes() => {
                        f.dialback = true
                    }
                    (b"mechanisms", Some(ns)) if ns == SASL_NS.as_bytes() => {
                        in_mechanisms = !empty;
                    }
                    (b"sm", Some(ns)) if ns == SM_NS.as_bytes() => f.sm = true,
                    _ => {}
                }
            } else if level == 3 && in_starttls && local == b"required" {
                f.starttls_required = true;
            } else if level == 3 && in_mechanisms && local == b"mechanism" {
                in_mechanism = !empty;
            }
            if !empty {
                depth += 1;
            }
        }
        f
    }
}

/// Our features for a stream: STARTTLS unless the stream already runs TLS or the mode forbids
/// it, and dialback.
pub fn offer(
    tls_done: bool,
    offer_tls: bool,
    tls_required: bool,
    sasl_external: bool,
    sm: bool,
) -> String {
    let mut out = String::from("<stream:features>");
    if !tls_done && offer_tls {
        out.push_str("<starttls xmlns='");
        out.push_str(TLS_NS);
        out.push_str(if tls_required {
            "'><required/></starttls>"
        } else {
            "'/>"
        });
    }
    if sasl_external {
        out.push_str("<mechanisms xmlns='");
        out.push_str(SASL_NS);
        out.push_str("'><mechanism>EXTERNAL</mechanism></mechanisms>");
    }
    if sm {
        // XEP-0198 §3; enabled once a pair has authenticated.
        out.push_str("<sm xmlns='");
        out.push_str(SM_NS);
        out.push_str("'><optional/></sm>");
    }
    out.push_str("<dialback xmlns='");
    out.push_str(DIALBACK_FEATURE_NS);
    out.push_str("'><errors/></dialback></stream:features>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn stanza(xml: &str) -> Stanza {
        Stanza {
            bytes: Bytes::copy_from_slice(xml.as_bytes()),
            name: "stream:features".into(),
            kind: crate::xmpp::Kind::Other,
            to: None,
            from: None,
            id: None,
            type_: None,
            xmlns: None,
            resends: 0,
            credit: None,
            receipt: None,
            read_at: None,
        }
    }

    #[test]
    fn reads_what_prosody_offers() {
        let f = Features::parse(&stanza(
            "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>\
             <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
        ));
        assert_eq!(
            f,
            Features {
                starttls: true,
                starttls_required: true,
                dialback: true,
                sasl_external: false,
                sm: false,
            }
        );
    }

    /// What Prosody 0.12 offers after SASL EXTERNAL with `smacks_enabled_s2s`: both
    /// versions of XEP-0198; we take version 3.
    #[test]
    fn reads_stream_management() {
        let f = Features::parse(&stanza(
            "<stream:features><sm xmlns='urn:xmpp:sm:2'><optional/></sm>\
             <sm xmlns='urn:xmpp:sm:3'><optional/></sm></stream:features>",
        ));
        assert!(f.sm);
        let f = Features::parse(&stanza(
            "<stream:features><sm xmlns='urn:xmpp:sm:2'/></stream:features>",
        ));
        assert!(!f.sm, "version 2 only");
    }

    #[test]
    fn our_offer_parses_back() {
        for (done, offer_tls, req, ext, sm) in [
            (false, true, true, false, true),
            (false, true, false, false, false),
            (true, true, true, true, true),
            (false, false, false, false, false),
            (true, false, false, true, true),
        ] {
            let f = Features::parse(&stanza(&offer(done, offer_tls, req, ext, sm)));
            assert_eq!(f.sm, sm);
            assert_eq!(f.starttls, !done && offer_tls);
            assert_eq!(f.starttls_required, !done && offer_tls && req);
            assert_eq!(f.sasl_external, ext);
            assert!(f.dialback);
        }
    }

    #[test]
    fn sasl_external_among_other_mechanisms() {
        let f = Features::parse(&stanza(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-1</mechanism><mechanism>EXTERNAL</mechanism></mechanisms>\
             </stream:features>",
        ));
        assert!(f.sasl_external);
        let f = Features::parse(&stanza(
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
        ));
        assert!(!f.sasl_external);
    }

    #[test]
    fn required_elsewhere_is_not_starttls_required() {
        let f = Features::parse(&stanza(
            "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
             <other xmlns='x'><required/></other></stream:features>",
        ));
        assert!(f.starttls && !f.starttls_required && !f.dialback);
    }
}
