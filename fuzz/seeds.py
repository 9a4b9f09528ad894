#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/<target>/: examples from RFC 6120, XEP-0220 and
XEP-0114, the configuration files of the repository, and the streams captured from Prosody and
slixmpp in fuzz/captures/ (see docs/FUZZING.md for how they were captured).

Run from the repository root: `python3 fuzz/seeds.py`. Files are named by the SHA-1 of their
content, as libFuzzer names the inputs it adds, so running it again changes nothing.
"""
import hashlib
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

S2S = ("<?xml version='1.0'?><stream:stream from='example.net' to='im.example.com' version='1.0' "
       "xml:lang='en' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
       "xmlns:db='jabber:server:dialback'>")
COMPONENT = ("<stream:stream xmlns='jabber:component:accept' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='plays.shakespeare.lit'>")
CLOSE = "</stream:stream>"

# First-level elements: RFC 6120 §4-§9 examples, XEP-0220 and XEP-0114.
ELEMENTS = [
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>",
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    "<mechanism>EXTERNAL</mechanism></mechanisms></stream:features>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>aW0uZXhhbXBsZS5jb20=</auth>",
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>",
    "<db:result from='example.net' to='im.example.com'>"
    "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>",
    "<db:verify from='im.example.com' id='417GAF25' to='example.net'>"
    "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:verify>",
    "<db:result from='im.example.com' to='example.net' type='valid'/>",
    "<db:result from='im.example.com' to='example.net' type='invalid'/>",
    "<db:result from='im.example.com' to='example.net' type='error'><error type='cancel'>"
    "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>",
    "<db:verify from='example.net' id='417GAF25' to='im.example.com' type='valid'/>",
    "<message from='juliet@im.example.com/balcony' id='ju2ba41c' to='romeo@example.net/orchard' "
    "type='chat' xml:lang='en'><body>Art thou not Romeo, and a Montague?</body></message>",
    "<message from='romeo@example.net/orchard' id='ju2ba41c' to='juliet@im.example.com/balcony' "
    "type='error'><error type='cancel'><service-unavailable "
    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    "<iq from='juliet@im.example.com/balcony' id='rg1' type='get'><query xmlns='jabber:iq:roster'/></iq>",
    "<iq from='im.example.com' id='ping1' to='example.net' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<iq from='example.net' id='ping1' to='im.example.com' type='result'/>",
    "<presence from='juliet@im.example.com/balcony' to='romeo@example.net' type='subscribe'/>",
    "<presence from='romeo@example.net/orchard' xml:lang='en'><show>dnd</show>"
    "<status>Wooing Juliet</status><status xml:lang='cs'>Dvo&#x0159;&#x00ED;m se Julii</status></presence>",
    "<message to='a@b.example' from='c@d.example'><body>1 &gt; 0 &amp;&amp; &lt;ok&gt;</body>"
    "<x a='p&gt;q' b=\"&quot;\"><![CDATA[<not-a-tag/> ]]></x></message>",
    "<message xmlns='jabber:component:accept' from='a@plays.shakespeare.lit' to='b@example.net'>"
    "<body>hi</body></message>",
    "<r xmlns='urn:xmpp:sm:3'/>",
    "<a xmlns='urn:xmpp:sm:3' h='3'/>",
    "<handshake>aaee83c26aeeafcbabeabfcbcd50df997e0a2a1e</handshake>",
    "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
    "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
    "<stanza-too-big xmlns='urn:xmpp:errors'/></stream:error>",
    " \n\t ",
]

# Inputs of the class issue 18 reports (a malformed start tag that waits for more input).
MALFORMED = ["<'/>", "<a b='x/>", "<message to='a@b.example' id='1'><body>x</body><'/>",
             "<?xml version='1.1'?>", "<message to='a"]

# s2s states (see fuzz/src/s2s.rs): 0 before TLS, 1 after features, 2 authenticated.
S2S_PAYLOADS = [
    "<db:result from='globex.example' to='acme.example'>0123456789abcdef</db:result>",
    "<db:result from='globex.example' to='not-hosted.example'>0123456789abcdef</db:result>",
    "<db:result from='evil.example' to='acme.example' type='valid'/>",
    "<db:verify from='globex.example' to='acme.example' id='abc'>0123</db:verify>",
    "<message from='x@globex.example' to='a@acme.example' id='m1'><body>hi</body></message>",
    "<message from='x@evil.example' to='a@acme.example'/>",
    "<iq from='globex.example' to='acme.example' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
    "<presence from='x@globex.example' to='a@acme.example'/>",
    "</stream:stream>",
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
    "to='acme.example' version='1.0'>",
]


def write(target, data, kind="corpus"):
    d = os.path.join(ROOT, "fuzz", kind, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def reader_seed(mode, payload, seed=0x0123456789ABCDEF):
    return bytes([mode]) + struct.pack("<Q", seed) + payload.encode() if isinstance(payload, str) \
        else bytes([mode]) + struct.pack("<Q", seed) + payload


def captures():
    """The streams of fuzz/captures/: one file per direction of a connection."""
    d = os.path.join(ROOT, "fuzz", "captures")
    if not os.path.isdir(d):
        return []
    out = []
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out.append((name, f.read()))
    return out


def main():
    # reader: whole streams raw (mode 0 + chunk size in the top bits), fragments after a header.
    for i, e in enumerate(ELEMENTS):
        write("reader", reader_seed(1 | (i % 8) << 5, e))
        write("reader", reader_seed(2 | (i % 8) << 5, e))
    # The defect class of issue 18, known before fuzzing: kept as regressions.
    for i, e in enumerate(MALFORMED):
        write("reader", reader_seed(1 | (i % 8) << 5, e), "regressions")
        write("reader", reader_seed(2 | (i % 8) << 5, e), "regressions")
    write("reader", reader_seed(0, S2S + "".join(ELEMENTS) + CLOSE))
    write("reader", reader_seed(0 | 3 << 5, COMPONENT + "".join(ELEMENTS[14:24]) + CLOSE))
    # stanza: a framing/condition byte, the element, 0xFF, an error text.
    for i, e in enumerate(ELEMENTS):
        write("stanza", bytes([i % 18]) + e.encode() + b"\xff" + "no route to <host> & 'back'".encode())
    # differential: whole well-formed streams.
    write("differential", (S2S + "".join(ELEMENTS) + CLOSE).encode())
    write("differential", (COMPONENT + "".join(ELEMENTS[14:24]) + CLOSE).encode())
    write("differential", (S2S + "<!-- no -->" + CLOSE).encode())
    # s2s: a state byte, then the input.
    for state in range(3):
        for p in S2S_PAYLOADS:
            write("s2s", bytes([state]) + p.encode())
    # config: a file-choice byte, then the file.
    files = [("config/router.toml", 0), ("tenants/acme.toml", 1), ("tenants/globex.toml", 2)]
    fixtures = os.path.join(ROOT, "tests", "fixtures", "config")
    for dirpath, _, names in os.walk(fixtures):
        for n in sorted(names):
            if n.endswith(".toml"):
                rel = os.path.relpath(os.path.join(dirpath, n), ROOT)
                files.append((rel, 0 if n.startswith("router") else 1))
    for rel, mode in files:
        with open(os.path.join(ROOT, rel), "rb") as f:
            write("config", bytes([mode]) + f.read())
    # captured traffic: whole streams for the reader and the differential target; the
    # elements a peer sent after its header for the s2s target.
    for name, data in captures():
        write("reader", reader_seed(0 | 4 << 5, data))
        closed = data if data.rstrip().endswith(b"</stream:stream>") else data + b"</stream:stream>"
        write("differential", closed)
        if ".s2s-in." in name:
            at = data.find(b">", data.find(b"<stream:stream"))
            body = data[at + 1:]
            for state in (1, 2):
                write("s2s", bytes([state]) + body[:4096])


if __name__ == "__main__":
    sys.exit(main())
