//! The `xfed` command as an operator runs it: `check-config` and `run` on good and broken
//! configurations.

use std::path::Path;
use std::process::Command;

fn xfed(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(args)
        .output()
        .expect("xfed runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(case: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/configs")
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
    assert!(out.contains("component 127.0.0.1:7400"), "{out}");
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
