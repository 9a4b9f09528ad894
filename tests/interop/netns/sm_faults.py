#!/usr/bin/env python3
"""Run inside the test namespace while the scenario kills Prosody (SIGKILL) mid-flow and
starts it again: a raw XEP-0114 component of tenant acme sends a steady stream of numbered
messages to a slixmpp user on Prosody, which logs in again whenever its server comes back.

Afterwards every message is accounted for: delivered to the user, or returned to the
component with an error — none vanishes. Prints the counts, then "N passed, M failed".
Arguments: HOST PORT SECRET USER_JID PASSWORD USER_HOST COUNT RATE FAULT (kill: the user's
server restarts, so the user must have logged in again; blackhole: it stays up).
"""

import asyncio
import hashlib
import logging
import re
import ssl
import sys
import time

import slixmpp


class User(slixmpp.ClientXMPP):
    """Records the ids of the messages it gets; logs in again after each disconnection."""

    def __init__(self, jid, password, host):
        super().__init__(jid, password)
        self.host = host
        self.enable_direct_tls = False
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.got = []
        self.online = asyncio.Event()
        self.sessions = 0
        self.add_event_handler("session_start", self.started)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("disconnected", self.on_disconnected)

    async def started(self, _):
        self.sessions += 1
        self.send_presence()
        self.online.set()

    def on_message(self, msg):
        m = re.match(r"n(\d+)$", msg["id"] or "")
        if m and msg["type"] != "error":
            self.got.append(int(m.group(1)))

    async def on_disconnected(self, _):
        self.online.clear()
        await asyncio.sleep(0.5)
        self.connect(host=self.host, port=5222)


async def component(host, port, secret):
    r, w = await asyncio.open_connection(host, port)
    w.write(b"<stream:stream xmlns='jabber:component:accept' "
            b"xmlns:stream='http://etherx.jabber.org/streams' to='acme.test'>")
    data = b""
    while not re.search(rb"id='([^']+)'[^>]*>", data):
        data += await r.read(4096)
    sid = re.search(rb"id='([^']+)'", data).group(1).decode()
    w.write(f"<handshake>{hashlib.sha1((sid + secret).encode()).hexdigest()}</handshake>".encode())
    while b"<handshake/>" not in data:
        data += await r.read(4096)
    return r, w


async def main():
    host, port, secret, user_jid, password, user_host = sys.argv[1:7]
    count, rate, fault = int(sys.argv[7]), float(sys.argv[8]), sys.argv[9]
    logging.basicConfig(level=logging.ERROR)
    user = User(user_jid, password, user_host)
    user.connect(host=user_host, port=5222)
    await asyncio.wait_for(user.online.wait(), 30)
    r, w = await component(host, int(port), secret)
    returned = {}

    async def read_errors():
        buf = ""
        while True:
            chunk = await r.read(65536)
            if not chunk:
                return
            buf += chunk.decode(errors="replace")
            for m in re.finditer(r"<message [^>]*id='n(\d+)' type='error'>.*?</message>", buf, re.S):
                cond = re.search(r"<([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", m.group(0))
                returned[int(m.group(1))] = cond.group(1) if cond else "?"
            buf = buf[buf.rfind("</message>") + 10:] if "</message>" in buf else buf

    reader = asyncio.create_task(read_errors())
    for i in range(count):
        w.write(f"<message from='c@acme.test' to='{user_jid}' id='n{i}'><body>{i}</body></message>".encode())
        await w.drain()
        print(f"sent {i}", flush=True)
        await asyncio.sleep(1 / rate)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        got = set(user.got)
        if all(i in got or i in returned for i in range(count)):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # late duplicates, if any
    reader.cancel()
    try:
        await reader
    except asyncio.CancelledError:
        pass
    got = set(user.got)
    vanished = [i for i in range(count) if i not in got and i not in returned]
    both = sorted(got & set(returned))
    dups = sorted({i for i in user.got if user.got.count(i) > 1})
    conditions = sorted(set(returned.values()))
    print(f"sent {count}, delivered {len(got)}, returned {len(returned)} ({', '.join(conditions)}), "
          f"delivered and returned {len(both)}, delivered twice {len(dups)}, vanished {len(vanished)}; "
          f"user sessions {user.sessions}")
    checks = [
        ("every message delivered or returned (none vanished)", not vanished, vanished[:20]),
        ("messages were delivered after the fault",
         any(i in got for i in range(count * 3 // 4, count)), sorted(got)[-5:]),
    ]
    if fault == "kill":
        checks.append(("the user logged in again after the restart", user.sessions >= 2,
                       user.sessions))
    failed = 0
    for name, ok, detail in checks:
        print(("ok: " if ok else "FAIL: ") + name + ("" if ok else f" ({detail})"))
        failed += not ok
    print(f"{len(checks) - failed} passed, {failed} failed")
    user.disconnect()
    w.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
