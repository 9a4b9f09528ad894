#!/usr/bin/env python3
"""Interop scenarios: an xfed node (tenant acme, domain acme.test) federating with a real
Prosody (peer.test) inside a network namespace, dnsmasq serving the SRV and A records.

  --scenario dns      xfed finds Prosody by SRV; TLS required; dialback both ways
  --scenario static   xfed reaches Prosody by a static route; DNS has no record for it
  --scenario sasl     both trust one CA: SASL EXTERNAL where Prosody offers it, else dialback
  --scenario a-record  no SRV for Prosody's domain: xfed uses its A record, port 5269
  --scenario direct-tls  both sides publish only _xmpps-server SRV records: Prosody dials
                      xfed's s2s port with TLS first and xfed dials Prosody's direct TLS port
                      (XEP-0368); dialback both ways over those streams
  --scenario sm-kill  SASL EXTERNAL and stream management both ways; Prosody is killed with
                      SIGKILL while messages flow and started again: every message is
                      delivered or returned, none vanishes
  --scenario sm-blackhole  the same with Prosody's s2s port blackholed (no FIN, no reset)
                      until xfed gives the stream up, then reachable again
  --scenario dns-faults  no Prosody: NXDOMAIN and a "." SRV target bounce the message with
                      remote-server-not-found, a silent nameserver with remote-server-timeout
  --scenario check-dns  `xfed check-dns` against dnsmasq: SRV order, which target accepts
                      connections, "no service", and --all over a tenant's domains

Prints the parties' checks and "N passed, M failed" last; exit 0 only when all passed.
Must run as root (network namespaces).
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from world import World  # noqa: E402

PROSODY_IP, XFED_IP = "127.0.0.2", "127.0.0.3"
HERE = os.path.dirname(os.path.abspath(__file__))


def xfed_config(w, scenario, cert, key, ca, domains=("acme.test",)):
    tenants = w.path("tenants")
    os.makedirs(tenants, exist_ok=True)
    with open(w.path("dialback.secret"), "w") as f:
        f.write("interop-dialback-secret\n")
    federation = 'security_mode = "tls-required"\n'
    if scenario == "sasl":
        federation += "require_client_certs = true\nsasl_external = true\n"
        tls_ca = f'ca = ["{ca}"]'
    else:
        federation += "require_client_certs = false\n"
        tls_ca = ""
    with open(w.path("router.toml"), "w") as f:
        f.write(f'''tenants_dir = "tenants"
[node]
name = "interop"
[listen]
s2s = "{XFED_IP}:5269"
component = "{XFED_IP}:7400"
admin = "{XFED_IP}:7480"
[tls]
cert = "{cert}"
key = "{key}"
{tls_ca}
[federation]
dialback_secret_file = "dialback.secret"
{federation}
[dns]
nameservers = ["127.0.0.53:53"]
[limits]
handshake_timeout_secs = 15
''')
    routes = ""
    if scenario == "static":
        routes = f'[static_routes]\nenabled = true\nroutes = {{ "peer.test" = ["{PROSODY_IP}:5269"] }}\n'
    domains = ", ".join(f'"{d}"' for d in domains)
    with open(os.path.join(tenants, "acme.toml"), "w") as f:
        f.write(f'''name = "acme"
secret = "acme-component-secret"
domains = [{domains}]
[privacy]
mode = "allow-list"
allow = ["peer.test"]
{routes}''')
    return w.path("router.toml")


def dns_faults(w, a):
    """xfed alone; DNS gives it nothing usable for three domains."""
    w.address("127.0.0.9")
    # A nameserver that reads queries and never answers.
    w.spawn("mute-dns", [sys.executable, "-c",
                         "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                         "s.bind(('127.0.0.9', 53));\nwhile True: s.recvfrom(512)"])
    w.dns(srv=[("_xmpp-server._tcp.dot.test", "", 0)],
          hosts=[("xfed.test", XFED_IP)], forward={"silent.test": "127.0.0.9"})
    cert, key = w.cert("acme", ["acme.test"], signed=False)
    cfg = xfed_config(w, "dns", cert, key, None)
    text = open(w.path("tenants/acme.toml")).read().replace('mode = "allow-list"\nallow = ["peer.test"]', 'mode = "off"')
    open(w.path("tenants/acme.toml"), "w").write(text)
    w.spawn("xfed", [os.path.abspath(a.xfed), "run", "--config", cfg])
    w.wait_listening(XFED_IP, 7400)
    out = w.run([sys.executable, os.path.join(HERE, "bounces.py"), XFED_IP, "7400", "acme-component-secret",
                 "nx.test=remote-server-not-found", "dot.test=remote-server-not-found",
                 "silent.test=remote-server-timeout"], timeout=90)
    print(out.stdout, end="")
    if out.returncode != 0:
        print(out.stderr[-2000:], file=sys.stderr)
        print(f"--- xfed log (tail) ---\n{w.tail('xfed', 40)}", file=sys.stderr)
        w.keep = True
    return out.returncode


def sm_fault(w, a):
    """Stream management against a peer that dies (sm-kill: Prosody killed mid-flow and
    started again) or vanishes from the network (sm-blackhole: packets to its s2s port
    dropped without a FIN or a reset until xfed gives the stream up, then let through)."""
    w.dns(srv=[("_xmpp-server._tcp.acme.test", "xfed.test", 5269),
               ("_xmpp-server._tcp.peer.test", "prosody.test", 5269)],
          hosts=[("xfed.test", XFED_IP), ("prosody.test", PROSODY_IP)])
    p_cert, p_key = w.cert("peer", ["peer.test"])
    x_cert, x_key = w.cert("acme", ["acme.test"])
    ca = w.ca()
    start_prosody = lambda: w.prosody("peer.test", PROSODY_IP, {"alice": "alice-password"},
                                      p_cert, p_key, cafile=ca)
    start_prosody()
    cfg = xfed_config(w, "sasl", x_cert, x_key, ca)
    w.spawn("xfed", [os.path.abspath(a.xfed), "run", "--config", cfg])
    w.wait_listening(XFED_IP, 7400)
    blackhole = a.scenario == "sm-blackhole"
    # 25 messages a second: 16 s for a kill, 72 s for a blackhole. xfed notices a silent
    # peer when the kernel gives the connection up: TCP_USER_TIMEOUT is 20 s, but it is
    # checked when a retransmission timer fires, and with exponential backoff that was seen
    # as late as 49 s after the fault (RTOs 0.2 + 0.4 + ... + 25.6 s); then the redial may
    # meet the rule not yet lifted and back off for 6 s, give or take a third. Messages must
    # still be going out after all that for "delivered after the fault" to mean something.
    count = 1800 if blackhole else 400
    driver = w.spawn("sm-faults", [sys.executable, os.path.join(HERE, "sm_faults.py"), XFED_IP, "7400",
                                   "acme-component-secret", "alice@peer.test", "alice-password",
                                   PROSODY_IP, str(count), "25",
                                   "blackhole" if blackhole else "kill"])
    # The fault once an eighth of the messages went out.
    deadline = time.monotonic() + 60
    while f"sent {count // 8}" not in open(w.path("sm-faults.log")).read():
        if time.monotonic() > deadline or driver.poll() is not None:
            print(w.tail("sm-faults", 40), file=sys.stderr)
            print("FAIL: the driver did not get going\n0 passed, 1 failed")
            return 1
        time.sleep(0.05)
    if blackhole:
        # Loopback packets to Prosody's s2s port vanish: local routes are looked up after
        # this rule. Prosody's own stream to xfed and the user's c2s stream are untouched.
        rule = ["rule", "add", "pref", "10", "to", PROSODY_IP, "ipproto", "tcp", "dport",
                "5269", "blackhole"]
        w.ip(["rule", "add", "pref", "100", "lookup", "local"])
        w.ip(["rule", "del", "pref", "0"])
        w.ip(rule)
        deadline = time.monotonic() + 90
        while "had not confirmed" not in open(w.path("xfed.log")).read():
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        w.ip(["rule", "del"] + rule[2:])
    else:
        w.kill("prosody-peer.test")
        time.sleep(1)
        start_prosody()
    try:
        driver.wait(timeout=200)
    except subprocess.TimeoutExpired:
        driver.kill()
    # The driver's report: its counts, its checks and its summary (not its "sent N" lines).
    summary = "0 passed, 1 failed"
    for line in open(w.path("sm-faults.log")).read().splitlines():
        if re.fullmatch(r"\d+ passed, \d+ failed", line):
            summary = line
        elif line.startswith(("ok: ", "FAIL: ")) or ", delivered " in line:
            print(line)
    passed, failed = int(summary.split()[0]), int(summary.split()[2])
    log = open(w.path("xfed.log")).read().splitlines()
    ok = any("outbound s2s stream authenticated" in l and "sm=true" in l for l in log)
    print(("ok: " if ok else "FAIL: ") + "stream management was on")
    passed, failed = passed + ok, failed + (not ok)
    if failed:
        print(f"--- xfed log (tail) ---\n{w.tail('xfed', 60)}", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def check_dns(w, a):
    """`xfed check-dns` reads what dnsmasq serves, in xfed's order, and probes each target."""
    listener = ("import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 5269)); s.listen(8)\n"
                "while True: s.accept()[0].close()")
    for ip in (PROSODY_IP, XFED_IP):
        w.spawn(f"listener-{ip}", [sys.executable, "-c", listener, ip])
        w.wait_listening(ip, 5269)
    w.dns(srv=[("_xmpp-server._tcp.peer.test", "dead.test", 5269, 10),
               ("_xmpp-server._tcp.peer.test", "alive.test", 5269, 20),
               ("_xmpp-server._tcp.acme.test", "xfed.test", 5269),
               ("_xmpp-server._tcp.dot.test", "", 0)],
          hosts=[("dead.test", "127.0.0.7"), ("alive.test", PROSODY_IP), ("xfed.test", XFED_IP)])
    cert, key = w.cert("acme", ["acme.test"], signed=False)
    cfg = xfed_config(w, "dns", cert, key, None)
    text = open(w.path("tenants/acme.toml")).read().replace(
        'domains = ["acme.test"]', 'domains = ["acme.test"]\nchat_node_aliases = ["conference.acme.test"]')
    open(w.path("tenants/acme.toml"), "w").write(text)
    xfed = os.path.abspath(a.xfed)
    checks = []

    def check(name, ok, detail):
        checks.append(ok)
        print(("ok: " if ok else "FAIL: ") + name + ("" if ok else f"\n{detail}"))

    r = w.run([xfed, "check-dns", "peer.test", "--config", cfg], timeout=60)
    out = r.stdout
    check("peer.test is reachable (exit 0)", r.returncode == 0, out + r.stderr)
    check("the SRV records are listed as published",
          "SRV _xmpp-server._tcp.peer.test: 10 0 5269 dead.test; 20 0 5269 alive.test" in out
          or "SRV _xmpp-server._tcp.peer.test: 20 0 5269 alive.test; 10 0 5269 dead.test" in out, out)
    check("no direct-TLS records", "SRV _xmpps-server._tcp.peer.test: no records" in out, out)
    first, second = out.find("1. dead.test:5269 (STARTTLS)"), out.find("2. alive.test:5269 (STARTTLS)")
    check("priority 10 is tried before priority 20", 0 <= first < second, out)
    check("the dead target refuses", "127.0.0.7 port 5269: Connection refused" in out, out)
    check("the live target accepts", f"{PROSODY_IP} port 5269: accepts connections" in out, out)

    r = w.run([xfed, "check-dns", "dot.test", "--config", cfg], timeout=60)
    check("a \".\" target means no service (exit 1)",
          r.returncode == 1 and "offers no XMPP server-to-server service" in r.stdout, r.stdout + r.stderr)

    r = w.run([xfed, "check-dns", "--all", "--config", cfg], timeout=60)
    out = r.stdout
    check("--all checks the tenant's domain and alias",
          "acme.test\n" in out and "conference.acme.test\n" in out, out)
    check("--all: acme.test reachable through its SRV record",
          "1. xfed.test:5269 (STARTTLS)" in out and f"{XFED_IP} port 5269: accepts connections" in out, out)
    check("--all: the alias without DNS records is named, exit 1",
          r.returncode == 1 and "conference.acme.test does not exist in DNS" in out
          and "1 of 2 domain(s) not reachable" in out, out + r.stderr)
    passed = sum(checks)
    print(f"{passed} passed, {len(checks) - passed} failed")
    return 0 if all(checks) else 1


def interop(w, a):
    """xfed and Prosody federating; returns the exit status."""
    srv = [("_xmpp-server._tcp.acme.test", "xfed.test", 5269),
           ("_xmpp-server._tcp.two.acme.test", "xfed.test", 5269)]
    hosts = [("xfed.test", XFED_IP), ("prosody.test", PROSODY_IP)]
    if a.scenario == "direct-tls":
        # Only direct TLS records, and no A record for either domain: a STARTTLS fallback
        # would find nothing, so the messages cross only if XEP-0368 works both ways.
        srv = [("_xmpps-server._tcp.acme.test", "xfed.test", 5269),
               ("_xmpps-server._tcp.peer.test", "prosody.test", 5270)]
    elif a.scenario == "a-record":
        hosts.append(("peer.test", PROSODY_IP))
    elif a.scenario != "static":
        # The first target (priority 10) is dead: xfed must go on to the second.
        srv.append(("_xmpp-server._tcp.peer.test", "dead.test", 5269, 10))
        srv.append(("_xmpp-server._tcp.peer.test", "prosody.test", 5269, 20))
        hosts.append(("dead.test", "127.0.0.7"))
    w.dns(srv=srv, hosts=hosts)
    signed = a.scenario == "sasl"
    p_cert, p_key = w.cert("peer", ["peer.test"], signed=signed)
    x_cert, x_key = w.cert("acme", ["acme.test"], signed=signed)
    ca = w.ca() if signed else None
    w.prosody("peer.test", PROSODY_IP, {"alice": "alice-password"}, p_cert, p_key, cafile=ca,
              s2s_direct_tls_port=5270 if a.scenario == "direct-tls" else None)
    # In "dns", a second domain of the tenant, for Prosody's second stream.
    domains = ("acme.test", "two.acme.test") if a.scenario == "dns" else ("acme.test",)
    cfg = xfed_config(w, a.scenario, x_cert, x_key, ca, domains)
    w.spawn("xfed", [os.path.abspath(a.xfed), "run", "--config", cfg])
    w.wait_listening(XFED_IP, 7400)
    out = w.run([sys.executable, os.path.join(HERE, "parties.py"),
                 "--component-jid", "acme.test", "--component-secret", "acme-component-secret",
                 "--component-host", XFED_IP, "--component-port", "7400",
                 "--user-jid", "alice@peer.test", "--user-password", "alice-password",
                 "--user-host", PROSODY_IP, "--count", str(a.count), "--timeout", "60"]
                + (["--second-domain", "two.acme.test"] if a.scenario == "dns" else []),
                timeout=120)
    lines = out.stdout.splitlines()
    summary = lines[-1] if lines and lines[-1].endswith(" failed") else "0 passed, 1 failed"
    for line in lines[:-1]:
        print(line)
    passed, failed = int(summary.split()[0]), int(summary.split()[2])
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        for name in ("xfed", "prosody-peer.test"):
            print(f"--- {name} log (tail) ---\n{w.tail(name, 60)}", file=sys.stderr)
    # Which mechanism authenticated each direction, from xfed's log.
    want = "SASL EXTERNAL" if a.scenario == "sasl" else "dialback"
    log = open(w.path("xfed.log")).read().splitlines()
    for direction in ("outbound", "inbound"):
        hits = [l for l in log if f"{direction} s2s" in l and "authenticated" in l]
        ok = bool(hits) and all(f"mechanism={want}" in l for l in hits)
        seen = ", ".join(l.split("mechanism=")[-1] for l in hits) or "none"
        print(("ok: " if ok else "FAIL: ") + f"{direction} authenticated with {want} (saw: {seen})")
        passed, failed = passed + ok, failed + (not ok)
    if a.scenario == "sasl":
        # XEP-0198 both ways: Prosody offers it after SASL EXTERNAL (smacks_enabled_s2s) and
        # enables ours; every message above crossed acknowledged streams.
        ok = any("outbound s2s stream authenticated" in l and "sm=true" in l for l in log)
        print(("ok: " if ok else "FAIL: ") + "stream management on xfed's outbound stream")
        passed, failed = passed + ok, failed + (not ok)
        ok = any("stream management enabled by the peer" in l for l in log)
        print(("ok: " if ok else "FAIL: ") + "Prosody enabled stream management on its stream to xfed")
        passed, failed = passed + ok, failed + (not ok)
    if a.scenario == "direct-tls":
        for direction in ("inbound", "outbound"):
            ok = any(f"{direction} s2s stream over direct TLS" in l for l in log)
            print(("ok: " if ok else "FAIL: ") + f"{direction} stream over direct TLS")
            passed, failed = passed + ok, failed + (not ok)
        r = w.run([os.path.abspath(a.xfed), "check-dns", "acme.test", "--config", cfg], timeout=60)
        ok = ("SRV _xmpps-server._tcp.acme.test: 0 0 5269 xfed.test" in r.stdout
              and "SRV _xmpp-server._tcp.acme.test: no records" in r.stdout
              and "1. xfed.test:5269 (direct TLS)" in r.stdout and r.returncode == 0)
        print(("ok: " if ok else "FAIL: ") + "check-dns shows the direct TLS record and target"
              + ("" if ok else f"\n{r.stdout}{r.stderr}"))
        passed, failed = passed + ok, failed + (not ok)
    if a.scenario == "dns":
        # Prosody's two streams (to acme.test and two.acme.test) were checked over one
        # verify connection to peer.test.
        opened = [l for l in log if "dialback verify connection opened" in l and "remote=peer.test" in l]
        ok = len(opened) == 1
        print(("ok: " if ok else "FAIL: ") + f"verify connections opened to peer.test: {len(opened)} (want 1)")
        passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or out.returncode != 0 else 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--xfed", required=True, help="path to the xfed binary")
    p.add_argument("--scenario", choices=["dns", "static", "sasl", "a-record", "direct-tls", "sm-kill", "sm-blackhole",
                            "dns-faults", "check-dns"],
                   default="dns")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    with World(keep=a.keep) as w:
        w.address(PROSODY_IP)
        w.address(XFED_IP)
        run = {"dns-faults": dns_faults, "check-dns": check_dns, "sm-kill": sm_fault,
               "sm-blackhole": sm_fault}.get(a.scenario, interop)
        code = run(w, a)
        if code != 0:
            w.keep = True
    sys.exit(code)


if __name__ == "__main__":
    main()
