//! The stream reader on Namespaces in XML (`namespaces`): what it refuses, what it reads
//! as before, and the stanza that leans on its stream header's prefixes.

use super::cases::{feed, whole, HEADER};
use super::*;
use crate::xmpp::error::StreamCondition;

/// Namespaces in XML 1.0, as a class: a prefix used and not declared, one undeclared, the
/// reserved names out of place, and attributes that collide once resolved are each
/// `not-well-formed`, on any element and however the network splits them.
#[test]
fn namespace_constraints_are_refused_as_not_well_formed() {
    let cases = [
        // Prefix Declared (§5): on an element, an attribute, at any depth; a declaration
        // is in scope only inside its element, an empty one's included.
        "<message><p:b/></message>",
        "<p:message/>",
        "<message p:a='1'/>",
        "<message><b><c p:a='1'/></b></message>",
        "<message><a xmlns:p='urn:a'><p:b/></a><p:c/></message>",
        "<message><a xmlns:p='urn:a'/><p:b/></message>",
        "<message xmlns:p='urn:a'/><message><p:b/></message>",
        // No Prefix Undeclaring (§5).
        "<message xmlns:p=''/>",
        "<message><b xmlns:p='urn:a'><c xmlns:p=''/></b></message>",
        // The reserved names (§3): `xml` with its own namespace only, the `xmlns`
        // namespace never declared, neither one the default; also when escaped.
        "<message xmlns:xml='urn:x'/>",
        "<message xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
        "<message xmlns:p='http://www.w3.org/2000/xmlns/'/>",
        "<message><b xmlns='http://www.w3.org/2000/xmlns/'/></message>",
        "<message xmlns='http://www.w3.org/XML/1998/namespace'/>",
        "<message xmlns:p='&#x68;ttp://www.w3.org/2000/xmlns/'/>",
        // Attributes Unique (§6.3): two prefixes, one namespace, one local name.
        "<message xmlns:p='urn:a' xmlns:q='urn:a' p:x='1' q:x='2'/>",
        "<message xmlns:p='urn:a'><b xmlns:q='urn:a' p:x='1' q:x='2'/></message>",
        "<message xmlns:p='http://www.w3.org/XML/1998/namespace' xml:lang='en' p:lang='de'/>",
    ];
    for input in cases {
        let stream = format!("{HEADER}{input}");
        let dribbled: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
        assert_eq!(
            whole(&stream),
            Err(StreamCondition::NotWellFormed),
            "{input}"
        );
        assert_eq!(
            feed(&dribbled, Limits::default()),
            Err(StreamCondition::NotWellFormed),
            "{input}, a byte at a time"
        );
    }
}

/// What Namespaces in XML allows is read as before: declarations in scope below their
/// element and shadowed by nearer ones, `xml:` without a declaration, prefixed names, and
/// the header's prefixes on the stream's own elements.
#[test]
fn namespace_declarations_in_scope_are_read() {
    let cases = [
        "<message xml:lang='en'><body xml:lang='de'>x</body></message>",
        "<message xmlns:xml='http://www.w3.org/XML/1998/namespace' xml:lang='en'/>",
        "<message xmlns:p='urn:a'><p:b p:c='1'><p:d/></p:b></message>",
        "<message><a xmlns:p='urn:a'><b xmlns:p='urn:b' p:x='1'><p:c/></b><p:d/></a></message>",
        "<message xmlns:p='urn:a' xmlns:q='urn:b' p:x='1' q:x='2'/>",
        "<x:message xmlns:x='jabber:server'/>",
        "<message><b xmlns=''/></message>",
        "<db:result from='b.example' to='acme.example'>k</db:result>",
        "<stream:features><stream:x/></stream:features>",
    ];
    for input in cases {
        let frames = whole(&format!("{HEADER}{input}"));
        assert_eq!(frames.map(|f| f.len()), Ok(2), "{input}");
    }
}

/// A stanza is forwarded on its own, on a stream whose header does not carry the sender's
/// declarations: one that uses a prefix declared only on the stream header is refused with
/// `bad-namespace-prefix`, not forwarded for its receiver to fail on.
#[test]
fn a_stanza_leaning_on_the_headers_prefixes_is_refused() {
    let cases = [
        "<message><db:b/></message>",
        "<message db:a='1'/>",
        "<iq type='get' id='1'><query xmlns='jabber:iq:version'><stream:x/></query></iq>",
        "<handshake stream:a='1'>x</handshake>",
    ];
    for input in cases {
        assert_eq!(
            whole(&format!("{HEADER}{input}")),
            Err(StreamCondition::BadNamespacePrefix),
            "{input}"
        );
    }
}

/// Prefixes declared in scope at once are bounded, in a stanza and on the stream header:
/// each prefixed name is looked up among them, so thousands would make every lookup
/// long (`policy-violation`; a real stanza declares a handful).
#[test]
fn too_many_prefixes_in_scope_are_a_policy_violation() {
    let declare = |from: usize, n: usize| -> String {
        (from..from + n)
            .map(|i| format!(" xmlns:p{i}='urn:{i}'"))
            .collect()
    };
    let stream = "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'";
    for input in [
        format!("{HEADER}<message{}/>", declare(0, 65)),
        format!(
            "{HEADER}<message{}><a{}><b{}/></a></message>",
            declare(0, 30),
            declare(30, 30),
            declare(60, 5)
        ),
        format!("{stream}{}>", declare(0, 65)),
    ] {
        assert_eq!(
            whole(&input),
            Err(StreamCondition::PolicyViolation),
            "{}",
            &input[..input.len().min(160)]
        );
    }
    // Declarations leave scope with their element: siblings of 60 each are fine.
    let siblings = format!(
        "{HEADER}<message><a{}/><b{}/><c{}><p1:d/></c></message>",
        declare(0, 60),
        declare(0, 60),
        declare(0, 64)
    );
    assert_eq!(whole(&siblings).map(|f| f.len()), Ok(2));
}
