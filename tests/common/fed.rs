//! Two-node federation harness: node configurations on fixed free loopback ports with
//! static routes pointing at each other, certificates made with rcgen.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// A free TCP port on 127.0.0.1 for a listener whose port must be known in advance.
///
/// Taken below the kernel's ephemeral range (32768 and up on Linux), from a counter of this
/// process: a port handed out by binding port 0 and releasing it can be given again at once
/// to another test's ephemeral connection, which then steals it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 400) as u16 * 30;
    for _ in 0..2_000 {
        let port = 20_000 + (base - 20_000 + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below 32000");
}

/// A test CA and certificates it signs, written as PEM files.
pub struct Pki {
    pub dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    /// Serial numbers handed out, to revoke by.
    next_serial: std::cell::Cell<u64>,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "xfed test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_key,
            next_serial: std::cell::Cell::new(100),
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A leaf for `names`, signed by the CA; returns (cert, key) paths and its serial.
    pub fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf, u64) {
        self.leaf_for(file, names, &[rcgen::ExtendedKeyUsagePurpose::ServerAuth])
    }

    /// A leaf for `names` and the extended key usages `uses`, signed by the CA; returns
    /// (cert, key) paths and its serial.
    pub fn leaf_for(
        &self,
        file: &str,
        names: &[&str],
        uses: &[rcgen::ExtendedKeyUsagePurpose],
    ) -> (PathBuf, PathBuf, u64) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.extended_key_usages = uses.to_vec();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (c, k) = self.write(file, &cert.pem(), &key.serialize_pem());
        (c, k, serial)
    }

    /// A CA-signed leaf for `names` that expired in 2021.
    pub fn expired(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        self.write(file, &cert.pem(), &key.serialize_pem())
    }

    /// A self-signed leaf for `names`.
    pub fn self_signed(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let made = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        self.write(file, &made.cert.pem(), &made.key_pair.serialize_pem())
    }

    /// A CRL revoking `serials`; returns its path.
    pub fn crl(&self, file: &str, serials: &[u64]) -> PathBuf {
        let now = rcgen::date_time_ymd(2025, 1, 1);
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: now,
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.ca, &self.ca_key).unwrap();
        let path = self.dir.join(format!("{file}.crl.pem"));
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }

    fn write(&self, file: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let c = self.dir.join(format!("{file}.pem"));
        let k = self.dir.join(format!("{file}.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

/// One node of a federation test.
pub struct NodeSpec<'a> {
    /// Folder for this node's files.
    pub dir: &'a Path,
    pub s2s_port: u16,
    pub tenant: &'a str,
    pub domain: &'a str,
    pub secret: &'a str,
    /// The other node's domain and s2s port.
    pub peer_domain: &'a str,
    pub peer_port: u16,
    /// `[federation]` lines (security_mode, require_client_certs...).
    pub federation: &'a str,
    /// `[tls]` lines (cert, key, ca, crl).
    pub tls: &'a str,
    /// The dialback secret.
    pub dialback: &'a str,
}

/// Writes the node's router.toml and tenant file; returns the router.toml path.
pub fn write_node(spec: &NodeSpec<'_>) -> PathBuf {
    std::fs::create_dir_all(spec.dir.join("tenants")).unwrap();
    std::fs::write(spec.dir.join("dialback.secret"), spec.dialback).unwrap();
    let router = format!(
        "tenants_dir = \"tenants\"\n\
         [node]\nname = \"{tenant}-node\"\n\
         [listen]\ns2s = \"127.0.0.1:{port}\"\ncomponent = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [tls]\n{tls}\n\
         [federation]\ndialback_secret_file = \"dialback.secret\"\n{federation}\n\
         [limits]\nhandshake_timeout_secs = 10\n",
        tenant = spec.tenant,
        port = spec.s2s_port,
        tls = spec.tls,
        federation = spec.federation,
    );
    let path = spec.dir.join("router.toml");
    std::fs::write(&path, router).unwrap();
    let tenant = format!(
        "name = \"{tenant}\"\nsecret = \"{secret}\"\ndomains = [\"{domain}\"]\n\
         [privacy]\nmode = \"allow-list\"\nallow = [\"{peer}\"]\n\
         [static_routes]\nenabled = true\nroutes = {{ \"{peer}\" = [\"127.0.0.1:{peer_port}\"] }}\n",
        tenant = spec.tenant,
        secret = spec.secret,
        domain = spec.domain,
        peer = spec.peer_domain,
        peer_port = spec.peer_port,
    );
    std::fs::write(
        spec.dir
            .join("tenants")
            .join(format!("{}.toml", spec.tenant)),
        tenant,
    )
    .unwrap();
    path
}

/// Writes node A (tenant acme, acme.example, secret `acme-secret`) and node B (tenant
/// globex, globex.example, secret `globex-secret`) below `dir`, each routing statically to
/// the other, with `(federation, tls)` lines for each. Answers the router files (A, B) and
/// B's s2s port.
pub fn write_pair(dir: &Path, a: (&str, &str), b: (&str, &str)) -> (PathBuf, PathBuf, u16) {
    let (pa, pb) = (free_port(), free_port());
    let ra = write_node(&NodeSpec {
        dir: &dir.join("a"),
        s2s_port: pa,
        tenant: "acme",
        domain: "acme.example",
        secret: "acme-secret",
        peer_domain: "globex.example",
        peer_port: pb,
        federation: a.0,
        tls: a.1,
        dialback: "shared",
    });
    let rb = write_node(&NodeSpec {
        dir: &dir.join("b"),
        s2s_port: pb,
        tenant: "globex",
        domain: "globex.example",
        secret: "globex-secret",
        peer_domain: "acme.example",
        peer_port: pa,
        federation: b.0,
        tls: b.1,
        dialback: "shared",
    });
    (ra, rb, pb)
}

/// Two nodes federating over TLS with dialback: A (tenant acme, acme.example) with its admin
/// API on and a static route to `down.example` where nothing listens; B (tenant globex,
/// globex.example).
pub struct AdminPair {
    pub ra: PathBuf,
    pub rb: PathBuf,
    /// A's admin token file.
    pub token: PathBuf,
    /// B's s2s port.
    pub pb: u16,
}

pub fn admin_pair(dir: &Path) -> AdminPair {
    let down = free_port();
    let fed = "security_mode = \"tls-required\"\nrequire_client_certs = false";
    let (ra, rb, pb) = write_pair(dir, (fed, ""), (fed, ""));
    let token = dir.join("a/admin.token");
    std::fs::write(&token, "let-me-in\n").unwrap();
    let mut text = std::fs::read_to_string(&ra).unwrap();
    text.push_str("[admin]\ntoken_file = \"admin.token\"\n");
    std::fs::write(&ra, text).unwrap();
    let tenant_file = dir.join("a/tenants/acme.toml");
    let t = std::fs::read_to_string(&tenant_file)
        .unwrap()
        .replace(
            "routes = {",
            &format!("routes = {{ \"down.example\" = [\"127.0.0.1:{down}\"], "),
        )
        .replace(
            "allow = [\"globex.example\"]",
            "allow = [\"globex.example\", \"down.example\"]",
        );
    std::fs::write(&tenant_file, t).unwrap();
    AdminPair { ra, rb, token, pb }
}

/// Runs the `xfed` binary: (succeeded, stdout, stderr).
pub async fn xfed(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(args)
        .output()
        .await
        .expect("xfed runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a node in this process on the configuration at `router`.
pub async fn start_at(router: &Path) -> xfed::node::Node {
    let cfg = xfed::config::load(router).unwrap_or_else(|e| panic!("{e}"));
    xfed::node::Node::start(cfg).await.expect("node starts")
}

/// `xfed run` as a child process, its stderr lines arriving on `lines`.
pub struct RunningNode {
    pub child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RunningNode {
    /// Sends `signal` ("HUP", "TERM") to the node.
    pub fn signal(&self, signal: &str) {
        let _ = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
    }

    /// SIGTERM, then waits for the node to exit and its output to end; true on exit 0.
    pub fn terminate(&mut self) -> bool {
        self.signal("TERM");
        let ok = self.child.wait().is_ok_and(|s| s.success());
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        ok
    }
}

impl Drop for RunningNode {
    /// A test that fails half-way must not leave the node running (nor holding the test's
    /// output open).
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `xfed run --config router` (log level info) and waits until it has started.
pub fn run_node(router: &Path) -> RunningNode {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["run", "--config"])
        .arg(router)
        .env("XFED_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("xfed starts");
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    assert!(
        wait_line(&lines, "xfed node started").is_some(),
        "xfed did not start"
    );
    RunningNode {
        child,
        lines,
        reader: Some(reader),
    }
}

/// Waits for a line containing `needle` (bounded by [`super::WAIT`]).
pub fn wait_line(lines: &std::sync::mpsc::Receiver<String>, needle: &str) -> Option<String> {
    let deadline = std::time::Instant::now() + super::WAIT;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return Some(l),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Runs the `xfed` binary to its end, blocking: (exit code, stdout, stderr).
pub fn xfed_blocking(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(args)
        .output()
        .expect("xfed runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `xfed ARGS --config router`: (succeeded, stdout + stderr).
pub fn cli_with_config(args: &[&str], router: &Path) -> (bool, String) {
    let router = router.to_str().expect("a UTF-8 path");
    let (code, out, err) = xfed_blocking(&[args, &["--config", router]].concat());
    (code == 0, out + &err)
}

/// Node A (tenant acme, presenting its own certificate `acme_cert`/`acme_key`) and node B
/// (tenant globex, a certificate from `pki`'s CA), both trusting only that CA and requiring
/// valid certificates (dialback, no SASL EXTERNAL). Answers the router files (A, B).
pub fn tenant_cert_pair(
    dir: &Path,
    pki: &Pki,
    acme_cert: &Path,
    acme_key: &Path,
) -> (PathBuf, PathBuf) {
    let (b_cert, b_key, _) = pki.leaf("b", &["globex.example"]);
    let ca = pki.ca_path();
    let fed =
        "security_mode = \"tls-required\"\nrequire_client_certs = true\nsasl_external = false";
    let tls_a = format!("ca = [\"{}\"]", ca.display());
    let tls_b = format!(
        "cert = \"{}\"\nkey = \"{}\"\nca = [\"{}\"]",
        b_cert.display(),
        b_key.display(),
        ca.display()
    );
    let (a_router, b_router, _) = write_pair(dir, (fed, &tls_a), (fed, &tls_b));
    let tenant_file = dir.join("a/tenants/acme.toml");
    let mut text = std::fs::read_to_string(&tenant_file).unwrap();
    text.push_str(&format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        acme_cert.display(),
        acme_key.display()
    ));
    std::fs::write(&tenant_file, text).unwrap();
    (a_router, b_router)
}

/// [`admin_pair`], running: both nodes started, acme's component on A and globex's on B
/// connected, and one message crossed each way.
pub struct AdminWorld {
    pub a: xfed::node::Node,
    pub b: xfed::node::Node,
    /// A's admin API.
    pub url: String,
    /// A's admin token file.
    pub token: String,
    /// B's s2s port.
    pub pb: u16,
    pub acme: super::Raw,
    pub globex: super::Raw,
}

pub async fn admin_world(dir: &Path) -> AdminWorld {
    let AdminPair { ra, rb, token, pb } = admin_pair(dir);
    let a = start_at(&ra).await;
    let b = start_at(&rb).await;
    let url = format!("http://{}", a.admin_addr().expect("admin API on"));
    let mut acme = super::component(a.component_addr(), "acme.example", "acme-secret").await;
    let mut globex = super::component(b.component_addr(), "globex.example", "globex-secret").await;
    super::wait_links(&b, "globex", 1).await;
    acme.send(
        "<message from='a@acme.example' to='g@globex.example' id='1'><body>one</body></message>",
    )
    .await;
    globex.expect("<body>one</body>").await;
    globex.send("<message from='g@globex.example' to='a@acme.example' id='2'><body>two</body></message>").await;
    acme.expect("<body>two</body>").await;
    AdminWorld {
        a,
        b,
        url,
        token: token.display().to_string(),
        pb,
        acme,
        globex,
    }
}
