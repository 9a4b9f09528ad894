//! Interop with real Prosody (Debian's package) inside a network namespace the test creates,
//! with dnsmasq serving the SRV and A records: a slixmpp component of an xfed tenant and a
//! slixmpp user on Prosody exchange messages both ways, an iq and a presence.
//!
//! Needs root (network namespaces), prosody, dnsmasq, openssl and slixmpp: `./scripts/test`
//! installs them (slixmpp in a virtual environment, see [`common::python`]). The scenarios
//! live in `tests/interop/netns/`.

mod common;

use std::process::Command;

fn scenario(name: &str, summary: &str) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/netns/scenario.py"
    );
    let out = Command::new("timeout")
        .arg("240")
        .arg(common::python())
        .args([
            script,
            "--xfed",
            env!("CARGO_BIN_EXE_xfed"),
            "--scenario",
            name,
        ])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario {name} failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        stdout.lines().last().unwrap_or_default(),
        summary,
        "{stdout}"
    );
}

/// Prosody found by DNS SRV (after a dead first target); TLS required; dialback both ways
/// (Prosody's certificate is self-signed, so certificates cannot authenticate). Prosody's
/// second stream, to another domain of the tenant, is checked over the verify connection
/// xfed already has with Prosody.
#[test]
fn prosody_by_srv_with_tls_and_dialback() {
    scenario("dns", "9 passed, 0 failed");
}

/// Prosody reached through the tenant's static route; DNS has no record for it.
#[test]
fn prosody_by_static_route() {
    scenario("static", "7 passed, 0 failed");
}

/// Both sides trust one CA: SASL EXTERNAL both ways, client certificates required by xfed;
/// stream management (XEP-0198) on both streams, which Prosody offers after SASL.
#[test]
fn prosody_with_sasl_external_and_stream_management() {
    scenario("sasl", "9 passed, 0 failed");
}

/// No usable DNS answer: NXDOMAIN and a lone "." SRV target come back remote-server-not-found,
/// a nameserver that never answers remote-server-timeout; each with the reason.
#[test]
fn dns_failures_bounce_with_the_reason() {
    scenario("dns-faults", "3 passed, 0 failed");
}

/// XEP-0368 both ways: only `_xmpps-server` records are published; Prosody opens its stream
/// to xfed's s2s port with TLS first, xfed dials Prosody's direct TLS port; dialback over
/// both; `xfed check-dns` lists the direct TLS record and target.
#[test]
fn prosody_over_direct_tls_both_ways() {
    scenario("direct-tls", "10 passed, 0 failed");
}

/// Stream management against a peer that dies: Prosody is killed with SIGKILL while a
/// component sends 400 messages, and started again. Every message is delivered or returned
/// with an error — none vanishes — and delivery resumes after the restart.
#[test]
fn prosody_killed_mid_flow_loses_nothing() {
    scenario("sm-kill", "4 passed, 0 failed");
}

/// The same with Prosody's s2s port blackholed (packets dropped, no FIN, no reset) until
/// xfed gives the stream up after TCP_USER_TIMEOUT, then reachable again: 1,000 messages,
/// none vanishes, delivery resumes.
#[test]
fn prosody_blackholed_mid_flow_loses_nothing() {
    scenario("sm-blackhole", "3 passed, 0 failed");
}

/// No SRV record for Prosody's domain, only an A record: xfed connects to it on port 5269.
#[test]
fn prosody_by_a_record_without_srv() {
    scenario("a-record", "7 passed, 0 failed");
}

/// `xfed check-dns` against dnsmasq: SRV records as published and in xfed's order, each
/// target probed (one refuses, one accepts), a "." target, and `--all` over a tenant's
/// domain and chat alias naming the one that does not resolve.
#[test]
fn check_dns_reads_srv_and_probes_targets() {
    scenario("check-dns", "10 passed, 0 failed");
}
