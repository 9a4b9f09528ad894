"""A throwaway test world inside a network namespace: its own loopback addresses, dnsmasq
answering the SRV and A records we give it, certificates made with openssl, Prosody servers
run as the prosody user, and any other process we start there. Everything started is
stopped by PID on exit; nothing outside the namespace is touched except /etc/netns/<name>.

Facts this relies on (see docs/DESIGN.md, "Interop set-up"): `ip netns exec` bind-mounts
/etc/netns/<name>/resolv.conf; Prosody's resolver needs the `test.` zone made transparent;
Prosody refuses to run as root.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

DNS_IP = "127.0.0.53"


def sh(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


class World:
    def __init__(self, keep=False):
        self.ns = f"xfed{os.getpid()}"
        self.dir = tempfile.mkdtemp(prefix="xfed-interop-")
        os.chmod(self.dir, 0o755)
        self.keep = keep
        self.procs = []  # (name, Popen)

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self):
        sh(["ip", "netns", "add", self.ns])
        sh(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        os.makedirs(f"/etc/netns/{self.ns}", exist_ok=True)
        with open(f"/etc/netns/{self.ns}/resolv.conf", "w") as f:
            f.write(f"nameserver {DNS_IP}\n")
        self.address(DNS_IP)
        return self

    def __exit__(self, exc_type, exc, tb):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for name, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        shutil.rmtree(f"/etc/netns/{self.ns}", ignore_errors=True)
        if self.keep or exc_type is not None:
            print(f"world kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def ip(self, args):
        """Runs `ip ARGS` inside the namespace (routes, rules)."""
        sh(["ip", "-n", self.ns] + args)

    def address(self, ip):
        sh(["ip", "-n", self.ns, "addr", "add", f"{ip}/8", "dev", "lo"])

    def path(self, name):
        return os.path.join(self.dir, name)

    # --- processes -------------------------------------------------------------------------

    def spawn(self, name, argv, user=None):
        """Starts `argv` inside the namespace (as `user` if given), output to <name>.log."""
        prefix = ["ip", "netns", "exec", self.ns]
        if user:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        log = open(self.path(f"{name}.log"), "w")
        p = subprocess.Popen(prefix + argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append((name, p))
        return p

    def kill(self, name):
        """SIGKILLs the process started as `name` (no chance to close anything) and forgets
        it, so that it can be started again."""
        for i, (n, p) in enumerate(self.procs):
            if n == name and p.poll() is None:
                p.kill()
                p.wait()
                del self.procs[i]
                return
        raise RuntimeError(f"no running process {name}")

    def run(self, argv, timeout, user=None):
        prefix = ["ip", "netns", "exec", self.ns]
        if user:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        return subprocess.run(prefix + argv, capture_output=True, text=True, timeout=timeout)

    def wait_listening(self, ip, port, timeout=15):
        """Waits until something listens on ip:port inside the namespace."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = sh(["ip", "netns", "exec", self.ns, "ss", "-Hltn"]).stdout
            if f"{ip}:{port} " in out:
                return
            for name, p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.tail(name)}")
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on {ip}:{port} after {timeout}s")

    def tail(self, name, lines=40):
        try:
            with open(self.path(f"{name}.log")) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- DNS ---------------------------------------------------------------------------------

    def dns(self, srv=(), hosts=(), forward=None, zones=("test",)):
        """dnsmasq on 127.0.0.53 with SRV records (name, target, port[, priority]; an empty
        target publishes "no service") and A records (name, ip); names under a domain in
        `forward` are asked of that server; every other name in `zones` (test. unless told)
        gets NXDOMAIN."""
        argv = [
            "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
            f"--listen-address={DNS_IP}", "--port=53", "--log-queries",
            f"--log-facility={self.path('dnsmasq-queries.log')}",
            f"--pid-file={self.path('dnsmasq.pid')}",
        ]
        argv += [f"--local=/{zone}/" for zone in zones]
        for record in srv:
            name, target, port = record[:3]
            prio = f",{record[3]}" if len(record) > 3 else ""
            argv.append(f"--srv-host={name},{target},{port}{prio}" if target else f"--srv-host={name}")
        for domain, server in (forward or {}).items():
            argv.append(f"--server=/{domain}/{server}")
        argv += [f"--host-record={name},{ip}" for name, ip in hosts]
        self.spawn("dnsmasq", argv)
        self.wait_listening(DNS_IP, 53)

    # --- certificates --------------------------------------------------------------------------

    def ca(self):
        key, crt = self.path("ca.key"), self.path("ca.pem")
        if not os.path.exists(crt):
            sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                "-out", crt, "-days", "2", "-subj", "/CN=xfed interop CA"])
        return crt

    def cert(self, name, sans, signed=True):
        """A certificate for `sans` (DNS names), CA-signed or self-signed: (cert, key)."""
        key, crt, csr = self.path(f"{name}.key"), self.path(f"{name}.crt"), self.path(f"{name}.csr")
        ext = self.path(f"{name}.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join(f"DNS:{s}" for s in sans) + "\n")
            f.write("extendedKeyUsage=serverAuth,clientAuth\n")
        if signed:
            ca = self.ca()
            sh(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/CN={sans[0]}"])
            sh(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", self.path("ca.key"),
                "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext])
        else:
            sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                "-out", crt, "-days", "2", "-subj", f"/CN={sans[0]}",
                "-addext", "subjectAltName=" + ",".join(f"DNS:{s}" for s in sans)])
        os.chmod(key, 0o644)
        return crt, key

    # --- Prosody ---------------------------------------------------------------------------

    def prosody(self, domain, ip, users, cert, key, cafile=None, secure_auth=False,
                s2s_direct_tls_port=None):
        """Starts Prosody for `domain` on ip (c2s 5222, s2s 5269, and direct TLS s2s on
        `s2s_direct_tls_port` when given) and registers `users`."""
        data = self.path(f"prosody-{domain}")
        os.makedirs(data, exist_ok=True)
        shutil.chown(data, "prosody", "prosody")
        ssl = f'{{ certificate = "{cert}"; key = "{key}";' + (f' cafile = "{cafile}";' if cafile else "") + " }"
        config = f'''
daemonize = false
pidfile = "{data}/prosody.pid"
data_path = "{data}"
interfaces = {{ "{ip}" }}
local_interfaces = {{ "{ip}" }}
c2s_ports = {{ 5222 }}
s2s_ports = {{ 5269 }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ {s2s_direct_tls_port or ""} }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix"; "smacks" }}
smacks_enabled_s2s = true
modules_disabled = {{ "s2s_bidi"; "admin_shell" }}
log = {{ debug = "{data}/prosody.log" }}
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
s2s_secure_auth = {"true" if secure_auth else "false"}
ssl = {ssl}
unbound = {{ options = {{ ["local-zone"] = "test. transparent" }} }}
VirtualHost "{domain}"
    ssl = {ssl}
'''
        cfg = self.path(f"prosody-{domain}.cfg.lua")
        with open(cfg, "w") as f:
            f.write(config)
        for user, password in users.items():
            self.run(["prosodyctl", "--config", cfg, "register", user, domain, password],
                     timeout=30, user="prosody")
        self.spawn(f"prosody-{domain}", ["prosody", "-F", "--config", cfg], user="prosody")
        self.wait_listening(ip, 5269)
        self.wait_listening(ip, 5222)
        if s2s_direct_tls_port:
            self.wait_listening(ip, s2s_direct_tls_port)
        return data
