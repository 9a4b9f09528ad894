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

/// A node's folder: `router.toml` (every listener on 127.0.0.1, the admin API on `admin`
/// with token `t0ken`, `extra` appended) and one tenant file per (name, domain).
fn node_dir(admin: u16, extra: &str, tenants: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tenants")).unwrap();
    std::fs::write(dir.path().join("admin.token"), "t0ken\n").unwrap();
    std::fs::write(
        dir.path().join("router.toml"),
        format!(
            "tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:0\"\ncomponent = \"127.0.0.1:0\"\n\
             admin = \"127.0.0.1:{admin}\"\n[admin]\ntoken_file = \"admin.token\"\n{extra}"
        ),
    )
    .unwrap();
    for (name, domain) in tenants {
        std::fs::write(
            dir.path().join(format!("tenants/{name}.toml")),
            format!("name = \"{name}\"\nsecret = \"s\"\ndomains = [\"{domain}\"]\n"),
        )
        .unwrap();
    }
    dir
}

/// The cells of a line: (start, end) of each run of text; cells are two or more spaces
/// apart.
fn cells(line: &str) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, c) in line.char_indices().filter(|(_, c)| *c != ' ') {
        match out.last_mut() {
            Some((_, end)) if i - *end < 2 => *end = i + c.len_utf8(),
            _ => out.push((i, i + c.len_utf8())),
        }
    }
    out
}

#[test]
fn status_table_lines_up_with_long_tenant_names() {
    let long = "the-tenant-with-the-longest-name-on-this-node";
    let admin = common::fed::free_port();
    let dir = node_dir(admin, "", &[(long, "long.example"), ("b", "b.example")]);
    let mut node = common::fed::run_node(&dir.path().join("router.toml"));
    let router = dir.path().join("router.toml").display().to_string();
    let (code, out, err) = xfed(&["status", "--config", &router]);
    assert!(node.terminate());
    assert_eq!(code, 0, "{err}");
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("TENANT"))
        .filter(|l| !l.starts_with("    "))
        .collect();
    assert_eq!(table.len(), 3, "a header and two tenants:\n{out}");
    let header = cells(table[0]);
    for row in &table[1..] {
        let row = cells(row);
        assert_eq!(row.len(), header.len(), "{out}");
        for (h, c) in header.iter().zip(&row) {
            assert!(h.0 == c.0 || h.1 == c.1, "misaligned:\n{out}");
        }
    }
    assert!(
        out.contains(&format!("{long}  1 current  inactive")),
        "{out}"
    );
}

#[test]
fn a_busy_port_is_reported_once_on_one_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tenants")).unwrap();
    std::fs::write(
        dir.path().join("router.toml"),
        format!("tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:{port}\"\ncomponent = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let router = dir.path().join("router.toml").display().to_string();
    let (code, _, err) = xfed(&["run", "--config", &router]);
    assert_eq!(code, 1, "{err}");
    let said: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("Address already in use"))
        .collect();
    assert_eq!(said.len(), 1, "{err}");
    assert_eq!(
        said[0].matches("Address already in use").count(),
        1,
        "{err}"
    );
    assert!(
        said[0].starts_with(&format!(
            "xfed: cannot listen for server-to-server on 127.0.0.1:{port}: "
        )),
        "{err}"
    );
}

#[test]
fn a_router_file_in_the_current_folder_is_found_by_a_relative_path() {
    let dir = node_dir(
        0,
        "[events]\nfile = \"events.jsonl\"\n",
        &[("a", "a.example")],
    );
    for path in ["router.toml", "./router.toml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_xfed"))
            .args(["check-config", "--config", path])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{path}: {err}");
    }
    let mut node = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["run", "--config", "router.toml"])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let events = dir.path().join("events.jsonl");
    let deadline = std::time::Instant::now() + common::WAIT;
    while !events.exists() && node.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "no event log written");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = node.kill();
    let _ = node.wait();
    assert!(events.exists(), "xfed run refused router.toml");
}

#[test]
fn without_config_the_command_takes_xfed_config_then_the_checkout() {
    let dir = node_dir(0, "", &[("envtenant", "env.example")]);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .arg("check-config")
        .env("XFED_CONFIG", dir.path().join("router.toml"))
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("envtenant"), "{text}");

    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .arg("check-config")
        .env_remove("XFED_CONFIG")
        .current_dir(checkout)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("acme") && text.contains("globex"), "{text}");
}

#[test]
fn check_config_reports_every_bad_value_and_still_checks_the_tenants() {
    let dir = node_dir(
        0,
        "[federation]\nsecurity_mode = \"maybe\"\nidle_timeout_secs = \"ten\"\n",
        &[("acme", "not a domain")],
    );
    let router = dir.path().join("router.toml").display().to_string();
    let (code, _, err) = xfed(&["check-config", "--config", &router]);
    assert_eq!(code, 2, "{err}");
    for want in [
        "router.toml:9: federation.security_mode: unknown variant `maybe`",
        "router.toml:10: federation.idle_timeout_secs: invalid type",
        "acme.toml: domains[0]: ",
        "configuration refused: 3 problem(s)",
    ] {
        assert!(err.contains(want), "{want:?} missing:\n{err}");
    }
}
