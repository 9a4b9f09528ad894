//! Namespace names used on the wire (RFC 6120 §4.8, XEP-0114, XEP-0220).

/// The stream namespace (`xmlns:stream`), RFC 6120 §4.8.1.
pub const STREAMS: &str = "http://etherx.jabber.org/streams";
/// Content namespace of XEP-0114 component streams.
pub const COMPONENT_ACCEPT: &str = "jabber:component:accept";
/// Content namespace of server-to-server streams, RFC 6120 §4.8.3.
pub const SERVER: &str = "jabber:server";
/// Content namespace of client streams (only ever seen on a misdirected client).
pub const CLIENT: &str = "jabber:client";
/// Stream error conditions, RFC 6120 §4.9.3.
pub const XMPP_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions, RFC 6120 §8.3.3.
pub const XMPP_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// Server dialback, XEP-0220.
pub const DIALBACK: &str = "jabber:server:dialback";
