#!/usr/bin/env python3
"""Run inside the test namespace by cluster.py: tenant acme's slixmpp component, linked to
one node of an xfed cluster, and a slixmpp user on Prosody. The driver that started it
speaks with it in lines: it prints "linked" once both are connected and waits for "go";
after the first two checks it prints "pause" and waits for "resume" (the driver kills a
node meanwhile).

  1. the component sends --count messages to the Prosody user: all arrive, in order;
  2. the user answers each one: all answers reach the component, in order;
  3. after the pause, the user sends --after messages, one every 100 ms: each reaches the
     component or comes back to the user as an error, and at least one arrives.
Prints "ok: ..." or "FAIL: ..." per check as it goes; exit 0 only when all passed. Every
wait is bounded by --timeout.
"""

import argparse
import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parties import Component, User, ordered, until  # noqa: E402


def say(line):
    print(line, flush=True)


async def told(word, timeout):
    """Waits for `word` on stdin; False on timeout or end of input."""
    loop = asyncio.get_running_loop()
    try:
        line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), timeout)
    except asyncio.TimeoutError:
        return False
    return line.strip() == word


def check(results, ok, text):
    results.append(ok)
    say(("ok: " if ok else "FAIL: ") + text)


async def run(a):
    loop = asyncio.get_running_loop()
    comp = Component(a.component_jid, a.component_secret, a.component_host, a.component_port)
    sender = f"bob@{a.component_jid}/c"
    user = User(a.user_jid, a.user_password, sender)
    results = []
    try:
        comp.connect()
        user.connect(a.user_host, a.user_port)
        await asyncio.wait_for(asyncio.gather(comp.ready.wait(), user.ready.wait()), a.timeout)
        say("linked")
        if not await told("go", a.timeout):
            check(results, False, "the driver never said go")
            return results
        deadline = loop.time() + a.timeout
        to = f"{a.user_jid}/{user.boundjid.resource}"
        for i in range(a.count):
            comp.send_message(mto=to, mfrom=sender, mbody=f"m{i}", mtype="chat")
        expected = [f"m{i}" for i in range(a.count)]
        await until(lambda: len(user.bodies) >= a.count, deadline)
        problem = ordered(user.bodies, expected)
        check(results, problem is None, problem or f"component -> Prosody user: {a.count} in order")
        await until(lambda: len(comp.bodies) >= a.count, deadline)
        problem = ordered(comp.bodies, ["re: " + e for e in expected])
        check(results, problem is None, problem or f"Prosody user -> component: {a.count} answers in order")
        errors = comp.errors + user.errors
        check(results, not errors, f"errors: {errors}" if errors else "no error stanzas")

        say("pause")
        if not await told("resume", a.timeout):
            check(results, False, "the driver never said resume")
            return results
        deadline = loop.time() + a.timeout
        before = len(comp.bodies)
        for i in range(a.after):
            user.send_message(mto=sender, mbody=f"after {i}", mtype="chat")
            await asyncio.sleep(0.1)
        arrived = lambda: [b for b in comp.bodies[before:] if b.startswith("after ")]
        await until(lambda: len(arrived()) + len(user.errors) >= a.after, deadline)
        delivered, returned = len(arrived()), len(user.errors)
        check(results, delivered + returned == a.after and delivered > 0,
              f"after the kill: {a.after} sent, {delivered} delivered, {returned} returned"
              + (f" {user.errors[:3]}" if returned else ""))
    except asyncio.TimeoutError:
        check(results, False, f"not both connected within {a.timeout}s")
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
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--after", type=int, default=10)
    p.add_argument("--timeout", type=float, default=40)
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.CRITICAL)
    results = asyncio.run(run(a))
    sys.exit(0 if results and all(results) else 1)


if __name__ == "__main__":
    main()
