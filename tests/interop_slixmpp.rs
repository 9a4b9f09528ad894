//! Interop with a component library nobody here wrote: two slixmpp (PyPI) components of two
//! tenants exchange 1,000 messages each way through the node, in order, none lost; a message
//! to an unreachable domain comes back as remote-server-not-found.
//!
//! Needs slixmpp: `./scripts/test` installs it in a virtual environment (see
//! [`common::python`]).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[actix_rt::test]
async fn slixmpp_components_exchange_a_thousand_messages_each_way() {
    let dir = write_config(
        "",
        &[
            TenantSpec {
                name: "acme",
                secret: "acme-secret",
                // The unreachable domain has a static route to a closed port: refused at once.
                body: "domains = [\"acme.example\"]\n\
                       [privacy]\nmode = \"allow-list\"\nallow = [\"globex.example\"]\n\
                       [static_routes]\nenabled = true\n\
                       routes = { \"nobody-serves-this.invalid\" = [\"127.0.0.1:1\"] }\n",
            },
            TenantSpec {
                name: "globex",
                secret: "globex-secret",
                body: "domains = [\"globex.example\"]\n[privacy]\nmode = \"off\"\n",
            },
        ],
    );
    let node = start(dir.path()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/slixmpp_components.py"
    );
    let port = node.component_addr().port().to_string();
    let run = tokio::process::Command::new(python())
        .args([
            script,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--a-domain",
            "acme.example",
            "--a-secret",
            "acme-secret",
            "--b-domain",
            "globex.example",
            "--b-secret",
            "globex-secret",
            "--count",
            "1000",
            "--timeout",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("slixmpp driver finished within 90 s")
        .expect("python runs (./scripts/test installs slixmpp)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "slixmpp driver failed:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" passed, 0 failed") && !last.starts_with("0 passed"),
        "unexpected summary {last:?}:\n{stdout}"
    );
    node.shutdown().await;
}
