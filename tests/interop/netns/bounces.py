#!/usr/bin/env python3
"""Run inside the test namespace: a raw XEP-0114 component of tenant acme sends one message
to each given domain and checks that each comes back as an error with the expected condition
and a reason. Arguments: HOST PORT SECRET DOMAIN=CONDITION... Last line "N passed, M failed".
"""

import hashlib
import re
import socket
import sys
import time


def main():
    host, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    cases = dict(arg.split("=", 1) for arg in sys.argv[4:])
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(b"<stream:stream xmlns='jabber:component:accept' "
              b"xmlns:stream='http://etherx.jabber.org/streams' to='acme.test'>")
    data = b""
    while not re.search(rb"id='([^']+)'[^>]*>", data):
        data += s.recv(4096)
    sid = re.search(rb"id='([^']+)'", data).group(1).decode()
    s.sendall(f"<handshake>{hashlib.sha1((sid + secret).encode()).hexdigest()}</handshake>".encode())
    data = b""
    while b"<handshake/>" not in data:
        data += s.recv(4096)
    for i, domain in enumerate(cases):
        s.sendall(f"<message from='bob@acme.test' to='u@{domain}' id='q{i}'><body>x</body></message>".encode())
    got, deadline = "", time.monotonic() + 40
    while time.monotonic() < deadline and got.count("type='error'") < len(cases):
        try:
            got += s.recv(65536).decode()
        except socket.timeout:
            break
    results = []
    for i, (domain, condition) in enumerate(cases.items()):
        m = re.search(rf"<message from='u@{re.escape(domain)}'[^>]*id='q{i}' type='error'>(.*?)</message>", got)
        if not m:
            results.append((False, f"{domain}: no error reply"))
            continue
        cond = re.search(r"<([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", m.group(1))
        text = re.search(r"<text[^>]*>(.*?)</text>", m.group(1))
        ok = cond is not None and cond.group(1) == condition and text is not None
        results.append((ok, f"{domain}: {cond.group(1) if cond else '?'} ({text.group(1) if text else 'no reason'})"))
    s.sendall(b"</stream:stream>")
    for ok, line in results:
        print(("ok: " if ok else "FAIL: ") + line)
    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
