//! Several nodes on one etcd, as an operator runs them: each test starts its own etcd on
//! a loopback address of its own (temporary data directory, stopped by PID) and `xfed`
//! processes on 127.a.b.1/2/3, pushes with `xfed config push` and asserts what
//! `xfed status --json` on each node shows. Every wait is bounded.
#![cfg(feature = "cluster")]

mod common;

#[path = "cluster/harness.rs"]
mod harness;

use std::process::Command;
use std::time::Duration;

use harness::*;

#[test]
fn a_push_is_run_by_every_node_within_two_seconds() {
    let (c, _cfg, v1) = start_three();
    let edit = tempfile::tempdir().unwrap();
    c.pull(edit.path());
    let acme = edit.path().join("tenants/acme.toml");
    let text = std::fs::read_to_string(&acme).unwrap();
    std::fs::write(
        &acme,
        text.replace("[\"acme.example\"]", "[\"acme.example\", \"acme.net\"]"),
    )
    .unwrap();
    let (code, out, err) = c.push(edit.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tenant acme: domains +acme.net"), "{out}");
    let v2 = version_of(&out);
    assert!(v2 > v1);
    let took = wait("the push on every node", Duration::from_secs(2), || {
        all_on(&c, 3, v2)
    });
    println!("push to applied on all 3 nodes: {took:?}");
    // Every node sees every other on the new version.
    let view = c.status(2).unwrap();
    assert_eq!(view["cluster"]["version"], v2);
    for row in view["cluster"]["nodes"].as_array().unwrap() {
        assert_eq!(row["alive"], true, "{row}");
    }
    // Only the tenant the change touched moved to the new version.
    let instances = &c.row(3, 3).unwrap()["status"]["instances"];
    let of = |name: &str| {
        instances
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance"] == name)
            .unwrap()["applied"]
            .clone()
    };
    assert_eq!(of("tenant acme"), v2);
    assert_eq!(of("tenant globex"), v1);
}

#[test]
fn refused_pushes_change_nothing_on_any_node() {
    let (c, _cfg, v1) = start_three();

    // A broken tenant file: check-config's lines, exit 2.
    let broken = tempfile::tempdir().unwrap();
    c.pull(broken.path());
    std::fs::write(
        broken.path().join("tenants/acme.toml"),
        "name = \"acme\"\ndomains = 3\n",
    )
    .unwrap();
    let (code, _, err) = c.push(broken.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tenants/acme.toml"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");

    // A domain held by two tenants.
    let dup = tempfile::tempdir().unwrap();
    c.pull(dup.path());
    let globex = dup.path().join("tenants/globex.toml");
    let text = std::fs::read_to_string(&globex).unwrap();
    std::fs::write(
        &globex,
        text.replace(
            "[\"globex.example\"]",
            "[\"globex.example\", \"acme.example\"]",
        ),
    )
    .unwrap();
    let (code, _, err) = c.push(dup.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("acme.example"), "{err}");

    // Two operators pulled the same version; the second push is refused naming both.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    c.pull(a.path());
    c.pull(b.path());
    for (dir, domain) in [(&a, "acme.net"), (&b, "acme.org")] {
        let f = dir.path().join("tenants/acme.toml");
        let t = std::fs::read_to_string(&f).unwrap();
        std::fs::write(
            &f,
            t.replace(
                "[\"acme.example\"]",
                &format!("[\"acme.example\", \"{domain}\"]"),
            ),
        )
        .unwrap();
    }
    let (code, out, err) = c.push(a.path());
    assert_eq!(code, 0, "{err}");
    let v2 = version_of(&out);
    let (code, _, err) = c.push(b.path());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("based on version {v1}"))
            && err.contains(&format!("at version {v2}")),
        "{err}"
    );
    wait(
        "every node on the one accepted push",
        Duration::from_secs(2),
        || all_on(&c, 3, v2),
    );
    // Nothing of the refused pushes anywhere: acme has acme.net, not acme.org.
    for n in 1..=3 {
        let v = c.status(n).unwrap();
        let acme = v["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "acme")
            .unwrap()
            .clone();
        let domains = acme["domains"].to_string();
        assert!(
            domains.contains("acme.net") && !domains.contains("acme.org"),
            "{domains}"
        );
        assert_eq!(v["cluster"]["version"], v2);
    }
}

#[test]
fn a_second_node_with_a_live_nodes_name_is_refused() {
    let mut c = Cluster::new(2);
    let (code, _, err) = c.push(shipped().path());
    assert_eq!(code, 0, "{err}");
    c.start(1);
    wait("edge-1 up", Duration::from_secs(20), || {
        c.status(1).is_some()
    });
    // node2.toml named edge-1 too.
    let f = c.node_file(2);
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replace("edge-2", "edge-1")).unwrap();
    let out = c.xfed(2, &["run"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("node name \"edge-1\" is held by a live node"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {}", c.nodes[0].as_ref().unwrap().id())),
        "{err}"
    );
}

#[test]
fn a_node_killed_with_sigkill_leaves_every_view_within_its_lease() {
    let (mut c, _cfg, _) = start_three();
    c.kill_9(3);
    let took = wait(
        "edge-3 gone from edge-1's and edge-2's views",
        Duration::from_secs(LEASE_SECS + 1),
        || {
            [1, 2].iter().all(|&n| {
                c.row(n, 3)
                    .is_some_and(|r| r["alive"] == false && r["status"].is_null())
            })
        },
    );
    println!("kill -9 to gone from every view: {took:?} (lease {LEASE_SECS} s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_etcd_serves_on_and_catches_up() {
    let (mut c, _cfg, _) = tokio::task::block_in_place(start_three);
    let addr = c.component_addr(1);
    let secret =
        |t: &str| std::fs::read_to_string(repo().join(format!("tenants/{t}.secret"))).unwrap();
    let mut acme = common::component(addr, "acme.example", secret("acme").trim()).await;
    let mut globex = common::component(addr, "globex.example", secret("globex").trim()).await;

    c.etcd.kill();
    tokio::task::block_in_place(|| {
        wait(
            "edge-1 says etcd is unreachable",
            Duration::from_secs(10),
            || {
                c.status(1).is_some_and(|v| {
                    v["cluster"]["etcd"]["reachable"] == false
                        && v["cluster"]["etcd"]["unreachable_since"].is_string()
                })
            },
        )
    });
    let table = tokio::task::block_in_place(|| {
        let token = repo().join("config/admin.token");
        let out = Command::new(env!("CARGO_BIN_EXE_xfed"))
            .args(["status", "--admin"])
            .arg(format!("http://{}.1:7480", c.etcd.net))
            .arg("--token-file")
            .arg(token)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    assert!(table.contains("etcd unreachable since"), "{table}");

    acme.send(
        "<message from='a@acme.example' to='b@globex.example' id='m1'><body>hi</body></message>",
    )
    .await;
    globex.expect("id='m1'").await;

    // etcd back: a push made now reaches the node.
    tokio::task::block_in_place(|| {
        c.etcd.run();
        let edit = tempfile::tempdir().unwrap();
        c.pull(edit.path());
        let f = edit.path().join("tenants/globex.toml");
        let t = std::fs::read_to_string(&f).unwrap();
        std::fs::write(
            &f,
            t.replace("spam.example", "spam.example\", \"junk.example"),
        )
        .unwrap();
        let (code, out, err) = c.push(edit.path());
        assert_eq!(code, 0, "{err}");
        let v = version_of(&out);
        wait("edge-1 catches up", Duration::from_secs(10), || {
            c.status(1)
                .is_some_and(|s| s["cluster"]["etcd"]["reachable"] == true)
                && all_on(&c, 3, v)
        });
    });
    c.kill_9(2);
}

/// etcd on `https://` taking only clients with a certificate of its CA: two nodes that name
/// the CA and their client certificate push, join and run the pushed version; a node
/// without a client certificate, one that trusts another CA and one on `http://` are
/// refused by `xfed config push` with etcd's reason, and push nothing.
#[test]
fn nodes_reach_an_etcd_that_takes_only_tls_clients_with_certificates() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let net = net();
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = common::fed::Pki::new(pki_dir.path());
    // etcd's own gateway dials etcd with the server certificate: it is a client's too.
    let (cert, key, _) = pki.leaf_for("etcd", &[&format!("{net}.100")], &[ServerAuth, ClientAuth]);
    let tls = EtcdTls {
        cert,
        key,
        client_ca: pki.ca_path(),
    };
    let etcd = Etcd::start_tls(&net, tls);
    // Relative to each node's own file: the CA and certificates sit beside it.
    let mut c = Cluster::on(
        etcd,
        2,
        "etcd_ca = \"etcd-ca.pem\"\netcd_cert = \"node.pem\"\netcd_key = \"node.key\"\n",
    );
    std::fs::copy(pki.ca_path(), c.dir.path().join("etcd-ca.pem")).unwrap();
    let (node_cert, node_key, _) = pki.leaf_for("node", &["edge"], &[ClientAuth]);
    std::fs::copy(node_cert, c.dir.path().join("node.pem")).unwrap();
    std::fs::copy(node_key, c.dir.path().join("node.key")).unwrap();

    // Refused: each variant of node 2's file, pushing the shipped configuration.
    let cfg = shipped();
    let own = std::fs::read_to_string(c.node_file(2)).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = common::fed::Pki::new(other_dir.path());
    std::fs::copy(other.ca_path(), c.dir.path().join("other-ca.pem")).unwrap();
    let tls_keys = "etcd_ca = \"etcd-ca.pem\"\netcd_cert = \"node.pem\"\netcd_key = \"node.key\"\n";
    let client_keys = "etcd_cert = \"node.pem\"\netcd_key = \"node.key\"\n";
    // (node 2's file, what stderr says)
    let variants = [
        (own.replace(client_keys, ""), "etcd unreachable"),
        (
            own.replace("etcd-ca.pem", "other-ca.pem"),
            "invalid peer certificate",
        ),
        (
            own.replace("https://", "http://").replace(tls_keys, ""),
            "etcd unreachable",
        ),
        // Refused before dialling: whom to trust is not said.
        (
            own.replace(tls_keys, ""),
            "node2.toml: cluster.etcd_ca: the endpoints are https://",
        ),
        (
            own.replace("node.key", "missing.key"),
            "node2.toml: cluster.etcd_key: cannot read",
        ),
    ];
    for (text, says) in &variants {
        std::fs::write(c.node_file(2), text).unwrap();
        let out = c.xfed(
            2,
            &["config", "push", "--dir", cfg.path().to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}: pushed ({err})");
        assert!(err.contains(says), "{text}: {err}");
    }
    std::fs::write(c.node_file(2), &own).unwrap();

    // Taken: the first push is version 1, and both nodes run it.
    let (code, out, err) = c.push(cfg.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("(based on version 0)"),
        "a refused push wrote nothing: {out}"
    );
    let v1 = version_of(&out);
    c.start(1);
    c.start(2);
    wait("two nodes up over TLS", Duration::from_secs(20), || {
        all_on(&c, 2, v1)
    });
    let view = c.status(2).expect("node 2's status");
    assert_eq!(view["cluster"]["etcd"]["reachable"], true, "{view}");
}
