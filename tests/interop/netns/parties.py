#!/usr/bin/env python3
"""Run inside the test namespace: a slixmpp component of an xfed tenant and a slixmpp client
on Prosody talk across the federation.

  1. the component sends --count messages to the Prosody user: all arrive, in order;
  2. the user answers each one: all answers reach the component, in order;
  3. the component pings the Prosody server itself (iq) and gets a result;
  4. a presence from the user reaches the component;
  5. with --second-domain, a message from the user to that other domain of the tenant reaches
     the component (Prosody opens a second stream, which xfed checks with Prosody's
     authoritative server over the connection it already has for the first).
Last line: "N passed, M failed"; exit 0 only when all passed; bounded by --timeout.
"""

import argparse
import asyncio
import logging
import ssl
import sys

import slixmpp


class Component(slixmpp.ComponentXMPP):
    def __init__(self, jid, secret, host, port):
        super().__init__(jid, secret, host, port, fix_error_ns=True)
        self.bodies, self.errors, self.presences = [], [], []
        self.ready = asyncio.Event()
        self.register_plugin("xep_0199")  # ping, for the iq check
        self.add_event_handler("session_start", lambda _: self.ready.set())
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_message)
        self.add_event_handler("presence", lambda p: self.presences.append(str(p["from"])))

    def on_message(self, msg):
        if msg["type"] == "error":
            self.errors.append(f'{msg["from"]}: {msg["error"]["condition"]} {msg["error"]["text"]}')
        else:
            self.bodies.append(msg["body"])


class User(slixmpp.ClientXMPP):
    def __init__(self, jid, password, reply_to):
        super().__init__(jid, password)
        self.enable_direct_tls = False
        # The test CA is not in the system store: trust the connection for this test only.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.reply_to = reply_to
        self.bodies, self.errors = [], []
        self.ready = asyncio.Event()
        self.add_event_handler("session_start", self.started)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_message)

    async def started(self, _):
        self.send_presence()
        self.ready.set()

    def on_message(self, msg):
        if msg["type"] == "error":
            self.errors.append(f'{msg["from"]}: {msg["error"]["condition"]} {msg["error"]["text"]}')
            return
        self.bodies.append(msg["body"])
        self.send_message(mto=self.reply_to, mbody="re: " + msg["body"], mtype="chat")


async def until(cond, deadline):
    loop = asyncio.get_running_loop()
    while not cond() and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return cond()


def ordered(got, expected):
    if got == expected:
        return None
    return f"{len(got)} of {len(expected)} arrived; first: {got[:3]}"


async def run(a):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + a.timeout
    comp = Component(a.component_jid, a.component_secret, a.component_host, a.component_port)
    sender = f"bob@{a.component_jid}/c"
    user = User(a.user_jid, a.user_password, sender)
    results = []
    try:
        comp.connect()
        user.connect(a.user_host, a.user_port)
        await asyncio.wait_for(asyncio.gather(comp.ready.wait(), user.ready.wait()), a.timeout)
        to = f"{a.user_jid}/{user.boundjid.resource}"
        for i in range(a.count):
            comp.send_message(mto=to, mfrom=sender, mbody=f"m{i}", mtype="chat")
        expected = [f"m{i}" for i in range(a.count)]
        await until(lambda: len(user.bodies) >= a.count, deadline)
        problem = ordered(user.bodies, expected)
        results.append((problem is None, problem or f"xfed -> Prosody: {a.count} in order"))
        await until(lambda: len(comp.bodies) >= a.count, deadline)
        problem = ordered(comp.bodies, ["re: " + e for e in expected])
        results.append((problem is None, problem or f"Prosody -> xfed: {a.count} answers in order"))

        domain = a.user_jid.split("@", 1)[1]
        try:
            ping = comp.make_iq_get(ito=domain, ifrom=sender)
            ping.enable("ping")
            reply = await ping.send(timeout=max(1, deadline - loop.time()))
            results.append((reply["type"] == "result", f"iq ping to {domain}: {reply['type']}"))
        except Exception as e:  # an IqError or IqTimeout is a failed check, not a crash
            results.append((False, f"iq ping to {domain}: {type(e).__name__} {e}"))

        user.send_presence(pto=sender)
        arrived = await until(lambda: any(p.startswith(a.user_jid) for p in comp.presences), deadline)
        results.append((arrived, "presence from the Prosody user reached the component"))
        if a.second_domain:
            user.send_message(mto=f"bob@{a.second_domain}", mbody="to the second domain", mtype="chat")
            arrived = await until(lambda: "to the second domain" in comp.bodies, deadline)
            results.append((arrived, f"Prosody -> xfed: a message to {a.second_domain} arrived"))
        errors = comp.errors + user.errors
        results.append((not errors, f"errors: {errors}" if errors else "no error stanzas"))
    except asyncio.TimeoutError:
        results.append((False, f"not both connected within {a.timeout}s"))
    finally:
        comp.disconnect()
        user.disconnect()
        await asyncio.sleep(0.3)
    return results


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--component-jid", required=True)
    p.add_argument("--component-secret", required=True)
    p.add_argument("--component-host", required=True)
    p.add_argument("--component-port", type=int, required=True)
    p.add_argument("--user-jid", required=True)
    p.add_argument("--user-password", required=True)
    p.add_argument("--user-host", required=True)
    p.add_argument("--user-port", type=int, default=5222)
    p.add_argument("--second-domain", help="another domain of the component's tenant")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.CRITICAL)
    results = asyncio.run(run(a))
    for ok, text in results:
        print(("ok: " if ok else "FAIL: ") + text)
    failed = sum(1 for ok, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(0 if results and not failed else 1)


if __name__ == "__main__":
    main()
