//! The `xfed` command as an operator runs it: `check-config` and `run` on good and broken
//! configurations.

mod common;

use std::path::Path;
use std::process::Command;

fn xfed(args: &[&str]) -> (i32, String, String) {
    common::fed::xfed_blocking(args)
}

fn fixture(case: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(case)
        .join("router.toml")
        .display()
        .to_string()
}

#[test]
fn check_config_summarizes_a_good_configuration() {
    let (code, out, err) = xfed(&["check-config", "--config", &fixture("good")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(out.contains("tenants: 2"), "{out}");
    assert!(out.contains("domains: acme.example, acme.net"), "{out}");
    assert!(
        out.contains("chat node aliases: conference.acme.example"),
        "{out}"
    );
    assert!(out.contains("component 127.0.0.1:17400"), "{out}");
}

#[test]
fn check_config_lists_every_problem_and_exits_2() {
    let (code, out, err) = xfed(&["check-config", "--config", &fixture("many_problems")]);
    assert_eq!(code, 2, "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("router.toml: restart.schedule: ")),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l.contains("acme.toml: domains[0]: ")),
        "{err}"
    );
    assert!(
        lines.iter().any(|l| l.contains("globex.toml: secret: ")),
        "{err}"
    );
}

#[test]
fn run_refuses_a_broken_configuration_with_the_same_lines() {
    let (check_code, _, check_err) = xfed(&["check-config", "--config", &fixture("bad_domains")]);
    let (run_code, _, run_err) = xfed(&["run", "--config", &fixture("bad_domains")]);
    assert_eq!((check_code, run_code), (2, 2));
    let problems = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains(".toml"))
            .map(str::to_owned)
            .collect()
    };
    assert!(!problems(&check_err).is_empty());
    assert_eq!(problems(&check_err), problems(&run_err));
    assert!(run_err.contains("not starting"), "{run_err}");
}

#[test]
fn shipped_configuration_checks_out() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/router.toml");
    let (code, out, err) = xfed(&["check-config", "--config", &shipped.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("acme") && out.contains("globex"), "{out}");
}

/// `xfed run` on a real process: a component link is up; SIGTERM closes it with the
/// system-shutdown stream error and the process exits 0.
#[test]
fn sigterm_shuts_down_gracefully() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::create_dir(dir.path().join("tenants")).unwrap();
    std::fs::write(
        dir.path().join("router.toml"),
        format!("tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:0\"\ncomponent = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tenants/acme.toml"),
        "name = \"acme\"\nsecret = \"s\"\ndomains = [\"acme.example\"]\n",
    )
    .unwrap();
    let config = dir.path().join("router.toml").display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["run", "--config", &config])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("xfed starts");

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("xfed never listened: {e}"),
        }
    };
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='acme.example'>").unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !(got.contains(" id='") && got.ends_with('>')) {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let id = got
        .split(" id='")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    conn.write_all(
        format!(
            "<handshake>{}</handshake>",
            xfed::component::digest(&id, "s")
        )
        .as_bytes(),
    )
    .unwrap();
    got.clear();
    while !got.contains("<handshake/>") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    got.clear();
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) => panic!("no close after SIGTERM ({e}); got: {got}"),
        }
    }
    assert!(got.contains("<system-shutdown "), "{got}");
    assert!(got.ends_with("</stream:stream>"), "{got}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "xfed did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
