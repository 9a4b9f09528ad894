#!/usr/bin/env python3
"""Two tenants' components, driven by slixmpp (a library nobody on the xfed team wrote),
exchange messages through an xfed node's XEP-0114 listener.

Checks, each printed as "ok: ..." or "FAIL: ...":
  1. a -> b: --count messages arrive, in order, none lost, none doubled;
  2. b -> a: the same the other way;
  3. a message to an unreachable domain comes back as an error with
     remote-server-not-found;
  4. no unexpected error stanza arrived.
The last line is "N passed, M failed"; the exit status is 0 only when all passed. The whole
run is bounded by --timeout seconds.
"""

import argparse
import asyncio
import logging
import sys

import slixmpp

UNREACHABLE = "nobody-serves-this.invalid"


class Component(slixmpp.ComponentXMPP):
    """A component that records what it receives."""

    def __init__(self, domain, secret, host, port):
        # Stanza errors on a component stream are in jabber:component:accept, which slixmpp
        # parses only with fix_error_ns.
        super().__init__(domain, secret, host, port, fix_error_ns=True)
        self.bodies = []
        self.errors = []
        self.ready = asyncio.Event()
        self.add_event_handler("session_start", lambda _: self.ready.set())
        self.add_event_handler("message", self._on_message)
        # slixmpp raises "message" only for stanzas with a body; errors come separately.
        self.add_event_handler("message_error", self._on_message)

    def _on_message(self, msg):
        if msg["type"] == "error":
            self.errors.append((msg["from"].domain, msg["error"]["condition"], msg["id"]))
        else:
            self.bodies.append(msg["body"])


def in_order(bodies, prefix, count):
    """None when bodies are exactly prefix 0..count-1, else what is wrong."""
    expected = [f"{prefix} {i}" for i in range(count)]
    if bodies == expected:
        return None
    for i, (got, want) in enumerate(zip(bodies, expected)):
        if got != want:
            return f"{len(bodies)} received; first difference at {i}: {got!r} instead of {want!r}"
    return f"{len(bodies)} received of {count}"


async def wait_for(condition, deadline):
    """Polls `condition` until it holds or the loop's clock passes `deadline`."""
    loop = asyncio.get_running_loop()
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run(args):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    a = Component(args.a_domain, args.a_secret, args.host, args.port)
    b = Component(args.b_domain, args.b_secret, args.host, args.port)
    results = []
    try:
        a.connect()
        b.connect()
        await asyncio.wait_for(
            asyncio.gather(a.ready.wait(), b.ready.wait()), timeout=args.timeout
        )
        alice, bob = f"alice@{args.a_domain}/r", f"bob@{args.b_domain}/r"
        for i in range(args.count):
            a.send_message(mto=bob, mfrom=alice, mbody=f"a2b {i}", mtype="chat")
            b.send_message(mto=alice, mfrom=bob, mbody=f"b2a {i}", mtype="chat")
        await wait_for(
            lambda: len(a.bodies) >= args.count and len(b.bodies) >= args.count, deadline
        )
        for name, comp, prefix in (("a->b", b, "a2b"), ("b->a", a, "b2a")):
            problem = in_order(comp.bodies, prefix, args.count)
            results.append((problem is None, f"{name} {args.count} in order" if problem is None else f"{name}: {problem}"))

        probe = a.make_message(mto=f"carol@{UNREACHABLE}", mfrom=alice, mbody="anyone?")
        probe["id"] = "unreachable-1"
        probe.send()
        bounced = await wait_for(lambda: any(e[2] == "unreachable-1" for e in a.errors), deadline)
        error = next((e for e in a.errors if e[2] == "unreachable-1"), None)
        results.append((
            bounced and error[0] == UNREACHABLE and error[1] == "remote-server-not-found",
            f"unreachable domain bounced with {error[1] if error else 'nothing'}",
        ))
        others = [e for e in a.errors + b.errors if e[2] != "unreachable-1"]
        results.append((not others, f"unexpected errors: {others}" if others else "no unexpected errors"))
    except asyncio.TimeoutError:
        results.append((False, f"components not both connected within {args.timeout}s"))
    finally:
        for comp in (a, b):
            comp.disconnect()
        await asyncio.sleep(0.2)
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--a-domain", required=True)
    p.add_argument("--a-secret", required=True)
    p.add_argument("--b-domain", required=True)
    p.add_argument("--b-secret", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    results = asyncio.run(run(args))
    for passed, text in results:
        print(("ok: " if passed else "FAIL: ") + text)
    failed = sum(1 for passed, _ in results if not passed)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(0 if results and failed == 0 else 1)


if __name__ == "__main__":
    main()
