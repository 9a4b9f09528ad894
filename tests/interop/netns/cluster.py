#!/usr/bin/env python3
"""Interop scenario: a three-node xfed cluster (edge-1/2/3, one etcd, one pushed
configuration: tenant acme, acme.example) federating with a real Prosody (peer.test) inside a
network namespace, dnsmasq serving the SRV and A records.

acme.example's SRV records list all three nodes, edge-2 first (priority 10), then edge-3
(20), then edge-1 (30); acme's component is linked to edge-1 only.

  1. component -> Prosody user: the messages enter edge-1, which dials Prosody; Prosody
     checks edge-1's dialback key with acme.example's authoritative server as SRV gives it,
     edge-2, a node that did not open the stream (the key is stateless, XEP-0185). Proven
     from both sides: Prosody's log has one check, answered valid, and one connection it
     opened, to edge-2; edge-2's events have that connection (same port) and edge-1's the
     only stream to peer.test;
  2. Prosody user -> component: the answers come on that stream to edge-2, which has no
     acme link and forwards them over the inter-node link to edge-1 (its metrics);
  3. edge-2 is killed with kill -9: Prosody tries it again and goes on to edge-3 by SRV,
     which forwards to edge-1; every message sent then is delivered or returned.

Prints each check and "N passed, M failed" last; exit 0 only when all passed. Must run as root (network
namespaces); slixmpp must be importable by the interpreter running it.
"""

import argparse
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world import World  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROSODY_IP, ETCD_IP = "127.0.0.2", "127.0.0.100"
EDGE = {n: f"127.0.0.1{n}" for n in (1, 2, 3)}
# Which node Prosody should reach first for acme.example: edge-2, then edge-3, then edge-1.
PRIORITY = {2: 10, 3: 20, 1: 30}
PREFIX = "/xfed/interop"
SECRET = "acme-component-secret"
FORWARDED = "xfed_cluster_forwarded_stanzas_total"


class Checks:
    """Counts and prints each check: check(ok, text[, detail shown when it failed])."""

    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, ok, text, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(("ok: " if ok else "FAIL: ") + text + ("" if ok or not detail else f"\n{detail}"), flush=True)
        return ok


def cluster_files(w):
    """The pushed folder (config/ + tenants/) and one file per node: (folder, node files)."""
    pushed = w.path("pushed")
    os.makedirs(os.path.join(pushed, "config"), exist_ok=True)
    os.makedirs(os.path.join(pushed, "tenants"), exist_ok=True)
    files = {
        "config/dialback.secret": "interop-cluster-dialback-secret\n",
        "config/admin.token": "interop-admin-token\n",
        # Prosody's certificate is self-signed, so it cannot authenticate: dialback.
        "config/router.toml": '''tenants_dir = "../tenants"
[federation]
security_mode = "tls-required"
require_client_certs = false
dialback_secret_file = "dialback.secret"
[dns]
nameservers = ["127.0.0.53:53"]
[admin]
token_file = "admin.token"
[restart]
delayed = false
[limits]
handshake_timeout_secs = 15
''',
        "tenants/acme.secret": SECRET + "\n",
        "tenants/acme.toml": '''name = "acme"
secret_file = "acme.secret"
domains = ["acme.example"]
[privacy]
mode = "allow-list"
allow = ["peer.test"]
''',
    }
    for name, text in files.items():
        with open(os.path.join(pushed, name), "w") as f:
            f.write(text)
    nodes = {}
    for n, ip in EDGE.items():
        nodes[n] = w.path(f"node{n}.toml")
        with open(nodes[n], "w") as f:
            f.write(f'''[node]
name = "edge-{n}"
[listen]
s2s = "{ip}:5269"
component = "{ip}:7400"
admin = "{ip}:7480"
[events]
file = "{w.path(f"edge-{n}-events.jsonl")}"
[cluster]
etcd = ["http://{ETCD_IP}:2379"]
prefix = "{PREFIX}"
lease_secs = 3
listen = "{ip}:7500"
''')
    return pushed, nodes


def start_cluster(w, xfed):
    """etcd, the push, three nodes listening: the node files."""
    url, peer = f"http://{ETCD_IP}:2379", f"http://{ETCD_IP}:2380"
    w.spawn("etcd", ["etcd", "--name", "interop", "--data-dir", w.path("etcd"),
                     "--listen-client-urls", url, "--advertise-client-urls", url,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", f"interop={peer}"])
    w.wait_listening(ETCD_IP, 2379)
    pushed, nodes = cluster_files(w)
    r = w.run([xfed, "config", "push", "--dir", pushed, "--config", nodes[1]], timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"push refused:\n{r.stdout}{r.stderr}")
    for n in EDGE:
        w.spawn(f"edge-{n}", [xfed, "run", "--config", nodes[n]])
    for n, ip in EDGE.items():
        for port in (5269, 7400, 7480, 7500):
            w.wait_listening(ip, port, timeout=30)
    return nodes


def events(w, xfed, node_file, kind):
    """The node's events of `kind` (`xfed events --json`)."""
    r = w.run([xfed, "events", "--json", "--config", node_file], timeout=20)
    try:
        rows = json.loads(r.stdout)["events"]
    except (ValueError, KeyError):
        return []
    return [e for e in rows if e.get("event") == kind]


def connections(w, xfed, node_file):
    """The node's s2s streams (`xfed connections --json`)."""
    r = w.run([xfed, "connections", "--json", "--config", node_file], timeout=20)
    try:
        return json.loads(r.stdout)["connections"]
    except (ValueError, KeyError):
        return []


def metric(w, n, *needles):
    """A counter of edge-n's /metrics, summed over the series containing every needle."""
    fetch = ("import sys, urllib.request as u; r = u.Request(sys.argv[1], headers="
             "{'Authorization': 'Bearer interop-admin-token'}); print(u.urlopen(r, timeout=5).read().decode())")
    r = w.run([sys.executable, "-c", fetch, f"http://{EDGE[n]}:7480/metrics"], timeout=20)
    total = 0.0
    for line in r.stdout.splitlines():
        if not line.startswith("#") and all(x in line for x in needles):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def wait_until(what, timeout, cond):
    """Polls `cond` every 200 ms for at most `timeout` seconds: whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    print(f"(waited {timeout}s for {what})", file=sys.stderr)
    return False


class Party:
    """cluster_parties.py in the namespace, spoken with in lines."""

    def __init__(self, w, argv):
        self.p = subprocess.Popen(["ip", "netns", "exec", w.ns] + argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=open(w.path("parties.log"), "w"),
                                  text=True, bufsize=1)
        # Its lines as they come (None at the end), read by a thread of their own so that
        # every wait on them can be bounded.
        self.out = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()
        self.lines = []
        w.procs.append(("parties", self.p))  # stopped with the world

    def read(self):
        for line in self.p.stdout:
            self.out.put(line.rstrip("\n"))
        self.out.put(None)

    def until(self, word, timeout):
        """Reads lines until `word` (True), its end or `timeout` (False); keeps the others."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.out.get(timeout=max(0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if line is None:
                return False
            if line == word:
                return True
            self.lines.append(line)

    def tell(self, word):
        self.p.stdin.write(word + "\n")
        self.p.stdin.flush()

    def finish(self, timeout):
        """Reads to the end: True if it exited 0."""
        self.until(None, timeout)
        self.p.stdin.close()
        try:
            return self.p.wait(timeout=5) == 0
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return False

    def checks(self):
        """Its "ok:"/"FAIL:" lines not yet taken: (ok, line) each."""
        taken, self.lines = self.lines, []
        return [(l.startswith("ok: "), l) for l in taken if l.startswith(("ok: ", "FAIL: "))]


class ProsodyLog:
    """What Prosody's debug log says of its s2s traffic. Prosody dials only acme.example here
    (xfed's nodes dial it, and it answers), so every connection it opens is to a node."""

    # "s2sout55d0...<TAB>debug<TAB>Sending[s2sout_unauthed]: <db:verify to='...' id='...'>"
    STANZA = re.compile(r"(\S+)\tdebug\t(Sending|Received)\[(\w+)\]: <([\w:]+)([^>]*)>")
    # "connEAU...<TAB>debug<TAB>Connected (FD 18 (127.0.0.12, 5269, 127.0.0.1, 36590))"
    DIALLED = re.compile(r"\tConnected \(FD \d+ \(([0-9.]+), 5269, [0-9.]+, (\d+)\)\)")
    TRIED = re.compile(r"Next target to try is ([0-9.]+):5269")

    def __init__(self, w):
        self.text = open(w.path("prosody-peer.test/prosody.log")).read()

    def dialled(self):
        """The connections Prosody opened, in order: (node address, Prosody's local port)."""
        return [(ip, int(port)) for ip, port in self.DIALLED.findall(self.text)]

    def tried(self):
        """Every address Prosody tried, in order (refused ones too)."""
        return self.TRIED.findall(self.text)

    def stanzas(self, way, kind, name):
        """(session, attributes) of each `name` element `way` (Sending/Received) on a
        session of `kind` (s2sin/s2sout, authenticated or not)."""
        return [(session, dict(re.findall(r"([\w:]+)='([^']*)'", attrs)))
                for session, w, stype, tag, attrs in self.STANZA.findall(self.text)
                if w == way and stype.startswith(kind) and tag == name]

    def verify_checks(self):
        """Prosody's dialback checks of acme.example's keys: [(stream id, answer)], the id
        naming the stream acme.example opened to Prosody, the answer what came back on the
        connection Prosody opened to acme.example for it."""
        asked = [a["id"] for _, a in self.stanzas("Sending", "s2sout", "db:verify")
                 if a.get("to") == "acme.example"]
        answers = {a.get("id"): a.get("type") for _, a in self.stanzas("Received", "s2sout", "verify")
                   if a.get("from") == "acme.example"}
        return [(i, answers.get(i)) for i in asked]

    def accepted(self):
        """The ids of the streams from acme.example Prosody accepted."""
        return [a.get("id") for _, a in self.stanzas("Sending", "s2sin", "db:result")
                if a.get("to") == "acme.example" and a.get("type") == "valid"]


def inbound_from_prosody(w, xfed, node_file):
    """The node's streams from peer.test, as its events say: [Prosody's port]."""
    return [int(e["peer"].rsplit(":", 1)[1]) for e in events(w, xfed, node_file, "stream_authenticated")
            if e.get("direction") == "incoming" and "peer.test" in e.get("domains", [])]


def scenario(w, a, check):
    xfed = os.path.abspath(a.xfed)
    w.dns(srv=[("_xmpp-server._tcp.acme.example", f"edge{n}.test", 5269, PRIORITY[n]) for n in EDGE]
          + [("_xmpp-server._tcp.peer.test", "prosody.test", 5269)],
          hosts=[(f"edge{n}.test", ip) for n, ip in EDGE.items()] + [("prosody.test", PROSODY_IP)],
          zones=("test", "example"))
    p_cert, p_key = w.cert("peer", ["peer.test"], signed=False)
    w.prosody("peer.test", PROSODY_IP, {"alice": "alice-password"}, p_cert, p_key)
    nodes = start_cluster(w, xfed)
    party = Party(w, [sys.executable, os.path.join(HERE, "cluster_parties.py"),
                      "--component-jid", "acme.example", "--component-secret", SECRET,
                      "--component-host", EDGE[1], "--component-port", "7400",
                      "--user-jid", "alice@peer.test", "--user-password", "alice-password",
                      "--user-host", PROSODY_IP, "--count", str(a.count), "--after", str(a.count)])
    if not check(party.until("linked", 45), "acme's component linked to edge-1, the user to Prosody",
                 party.lines):
        return
    # edge-2 and edge-3 reach acme through edge-1 once they have a link to it.
    for n in (2, 3):
        ok = wait_until(f"edge-{n}'s link to edge-1", 15, lambda: any(
            e.get("node") == "edge-1" for e in events(w, xfed, nodes[n], "cluster_link_up")))
        check(ok, f"edge-{n} opened an inter-node link to edge-1")
    party.tell("go")
    paused = party.until("pause", 60)
    for ok, line in party.checks():
        check(ok, line.split(": ", 1)[1])
    if not check(paused, "the parties reached the kill"):
        return
    through_edge_2(w, a, xfed, nodes, check)
    after_edge_2(w, a, xfed, nodes, party, check)


def through_edge_2(w, a, xfed, nodes, check):
    """Steps 1 and 2: who dialled whom, who checked what, who forwarded."""
    # Prosody asked about the key of the stream edge-1 opened over the one connection it
    # opened to acme.example — to edge-2, SRV's first —, got "valid", accepted the stream.
    log = ProsodyLog(w)
    asked = log.verify_checks()
    check(len(asked) == 1 and asked[0][1] == "valid" and log.accepted() == [asked[0][0]],
          f"Prosody checked the key of acme.example's stream once, answered valid, and accepted "
          f"the stream (checks {asked}, accepted {log.accepted()})")
    dialled = log.dialled()
    check([ip for ip, _ in dialled] == [EDGE[2]],
          f"Prosody's one connection to acme.example went to edge-2 (dialled {dialled})")
    outgoing = {n: [e.get("auth") for e in events(w, xfed, nodes[n], "stream_authenticated")
                    if e.get("direction") == "outgoing" and "peer.test" in e.get("domains", [])]
                for n in EDGE}
    check(outgoing == {1: ["dialback"], 2: [], 3: []},
          f"edge-1 alone opened a stream to peer.test, by dialback (per node: {outgoing})")
    inbound = {n: inbound_from_prosody(w, xfed, nodes[n]) for n in EDGE}
    port = dialled[0][1] if dialled else None
    check(inbound == {1: [], 2: [port], 3: []},
          f"edge-2 alone had a stream from peer.test: the one Prosody opened, from its port {port} "
          f"(per node: {inbound})")
    out_2 = metric(w, 2, FORWARDED, 'node="edge-1"', 'direction="out"')
    in_1 = metric(w, 1, FORWARDED, 'node="edge-2"', 'direction="in"')
    check(out_2 >= a.count and in_1 == out_2,
          f"edge-2 forwarded {out_2} stanzas to edge-1, edge-1 took {in_1} (want >= {a.count})")
    # Without stream management edge-1 learns that Prosody read its stream from the answers
    # to its checkpoint pings (XEP-0199). Prosody sends them on its own stream to
    # acme.example — to edge-2, which hands them to edge-1 (the ping's id names it): every
    # stanza edge-1 wrote is confirmed.
    held = lambda: [(c["unacked"], c["stanzas_out"]) for c in connections(w, xfed, nodes[1])
                    if c["direction"] == "outgoing"]
    ok = wait_until("edge-1's stream confirmed", 10, lambda: held() == [(0, a.count)])
    check(ok, f"edge-1's stream to Prosody: everything it wrote confirmed through edge-2, "
              f"(unconfirmed, sent) = {held()} (want [(0, {a.count})])")


def after_edge_2(w, a, xfed, nodes, party, check):
    """Step 3: edge-2 killed; Prosody's next stream goes to edge-3, SRV's second."""
    w.kill("edge-2")
    # A dialback stream has no stream management: a stanza Prosody writes to the dead
    # node's socket before it reads the close is lost in Prosody, and neither side can know.
    # The user sends once Prosody has seen the stream end.
    ended = "Destroying outgoing session peer.test->acme.example"
    check(wait_until("Prosody to see edge-2's end", 10, lambda: ended in ProsodyLog(w).text),
          "Prosody saw its stream to edge-2 end")
    party.tell("resume")
    done = party.finish(60)
    for ok, line in party.checks():
        check(ok, line.split(": ", 1)[1])
    check(done, "the parties finished")
    log = ProsodyLog(w)
    tried, dialled = log.tried(), log.dialled()
    check(tried == [EDGE[2], EDGE[2], EDGE[3]] and [ip for ip, _ in dialled] == [EDGE[2], EDGE[3]],
          f"after the kill Prosody tried edge-2 again, then reached edge-3 (tried {tried}, "
          f"dialled {dialled})")
    on_3 = inbound_from_prosody(w, xfed, nodes[3])
    check(on_3 == [dialled[-1][1]], f"edge-3 had Prosody's new stream (from port {on_3})")
    out_3 = metric(w, 3, FORWARDED, 'node="edge-1"', 'direction="out"')
    check(out_3 >= a.count, f"edge-3 forwarded {out_3} stanzas to edge-1 (want >= {a.count})")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--xfed", required=True, help="path to the xfed binary (built with --features cluster)")
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    check = Checks()
    with World(keep=a.keep) as w:
        w.address(PROSODY_IP)
        w.address(ETCD_IP)
        for ip in EDGE.values():
            w.address(ip)
        try:
            scenario(w, a, check)
        except Exception as e:  # a set-up failure is a failed check, with the logs
            check(False, f"{type(e).__name__}: {e}")
        if check.failed:
            w.keep = True
            for name, p in w.procs:
                if p.poll() is not None:
                    print(f"{name} exited with {p.returncode}", file=sys.stderr)
            for name in ("parties", "edge-1", "edge-2", "edge-3", "prosody-peer.test", "etcd"):
                print(f"--- {name} log (tail) ---\n{w.tail(name, 30)}", file=sys.stderr)
        print(f"{check.passed} passed, {check.failed} failed")
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
