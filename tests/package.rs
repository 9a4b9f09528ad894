//! The Debian package's parts, checked without building or installing it: the systemd unit
//! passes `systemd-analyze verify` and has the hardening the README promises, every file
//! the package lists exists, and the packaged configuration — with secrets made by the
//! package's own `make-secrets`, under a throw-away root — checks out, runs, answers
//! `xfed status` and stops on SIGTERM.
//!
//! Needs `systemd-analyze` (Debian's `systemd`): `./scripts/test` installs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn unit() -> String {
    std::fs::read_to_string(repo("packaging/xfed.service")).unwrap()
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    // verify checks that ExecStart's program exists: point it at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("xfed.service");
    let text = unit().replace(
        "ExecStart=/usr/bin/xfed ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_xfed")),
    );
    std::fs::write(&copy, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze runs (./scripts/test installs systemd)");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // It exits 0 on unknown keys too, warning only: any word from it is a problem.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_unit_runs_unprivileged_and_hardened_and_reloads_by_sighup() {
    let unit = unit();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "User=xfed",
        "ExecStart=/usr/bin/xfed run --config /etc/xfed/router.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/xfed",
        "CapabilityBoundingSet=",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from the unit");
    }
    // Every port it listens on is above 1024: no capability to bind one below.
    assert!(!lines.iter().any(|l| l.starts_with("AmbientCapabilities=")));
    // The log goes to the journal: no redirection of the output elsewhere.
    assert!(!lines
        .iter()
        .any(|l| l.starts_with("StandardOutput=") || l.starts_with("StandardError=")));
}

#[test]
fn every_file_the_package_lists_is_in_the_repository() {
    let manifest: toml::Table = std::fs::read_to_string(repo("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().unwrap();
    let mut installed = Vec::new();
    for asset in assets {
        let (source, target) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        installed.push(target.to_owned());
        if source != "target/release/xfed" {
            assert!(repo(source).is_file(), "{source} listed but missing");
        }
    }
    assert!(installed.iter().any(|t| t == "usr/bin/"));
    assert!(installed.iter().any(|t| t == "etc/xfed/router.toml"));
    let scripts = repo(deb["maintainer-scripts"].as_str().unwrap());
    for script in ["postinst", "postrm"] {
        let text = std::fs::read_to_string(scripts.join(script)).unwrap();
        assert!(
            text.contains("#DEBHELPER#"),
            "{script}: cargo-deb puts the unit's set-up there"
        );
    }
    let units = deb["systemd-units"]["unit-scripts"].as_str().unwrap();
    assert!(repo(units).join("xfed.service").is_file());
}

/// The packaged configuration as it lands in /etc/xfed, below `root`: the paths into
/// /var/lib/xfed moved below `root` too, and the listeners on free loopback ports (the
/// machine running the tests may already serve 5269). Answers the router file and the
/// s2s port.
fn install_config(root: &Path) -> (PathBuf, u16) {
    let etc = root.join("etc/xfed");
    std::fs::create_dir_all(etc.join("tenants")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/xfed")).unwrap();
    let packaged = std::fs::read_to_string(repo("packaging/etc/router.toml")).unwrap();
    let (s2s, component, admin) = (
        common::fed::free_port(),
        common::fed::free_port(),
        common::fed::free_port(),
    );
    let text = packaged
        .replace(
            "\"/var/lib/xfed/",
            &format!("\"{}/var/lib/xfed/", root.display()),
        )
        .replace("\"0.0.0.0:5269\"", &format!("\"127.0.0.1:{s2s}\""))
        .replace("\"127.0.0.1:7400\"", &format!("\"127.0.0.1:{component}\""))
        .replace("\"127.0.0.1:7480\"", &format!("\"127.0.0.1:{admin}\""));
    assert_ne!(text, packaged);
    let router = etc.join("router.toml");
    std::fs::write(&router, text).unwrap();
    std::fs::copy(
        repo("packaging/etc/tenants/README"),
        etc.join("tenants/README"),
    )
    .unwrap();
    let made = Command::new("sh")
        .arg(repo("packaging/make-secrets"))
        .arg(&etc)
        .status()
        .unwrap();
    assert!(made.success());
    (router, s2s)
}

#[test]
fn the_packaged_configuration_runs_under_a_throwaway_root() {
    let root = tempfile::tempdir().unwrap();
    let (router, s2s) = install_config(root.path());
    let etc = router.parent().unwrap();
    for secret in ["dialback.secret", "admin.token"] {
        let text = std::fs::read_to_string(etc.join(secret)).unwrap();
        assert_eq!(text.trim().len(), 64, "{secret}: 32 random bytes in hex");
        assert!(!std::fs::read_to_string(repo("config").join(secret))
            .unwrap()
            .contains(text.trim()));
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(etc.join("admin.token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the admin token is readable by others");
    let kept = std::fs::read_to_string(etc.join("admin.token")).unwrap();
    let again = Command::new("sh")
        .arg(repo("packaging/make-secrets"))
        .arg(etc)
        .status()
        .unwrap();
    assert!(again.success());
    assert_eq!(
        std::fs::read_to_string(etc.join("admin.token")).unwrap(),
        kept,
        "an upgrade keeps the secrets"
    );

    let router_arg = router.display().to_string();
    let (code, out, err) = common::fed::xfed_blocking(&["check-config", "--config", &router_arg]);
    assert_eq!(code, 0, "{out}{err}");

    let mut node = common::fed::run_node(&router);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", s2s)).is_ok(),
        "nothing listens on s2s"
    );
    let (code, out, err) = common::fed::xfed_blocking(&["status", "--config", &router_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration version 1"), "{out}");
    assert!(node.terminate(), "xfed did not stop cleanly on SIGTERM");
    assert!(
        root.path().join("var/lib/xfed/events.jsonl").is_file(),
        "no event log in the state folder"
    );
}
