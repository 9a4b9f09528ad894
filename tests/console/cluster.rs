//! The console of a node in a cluster (cargo feature `cluster`): two `xfed run` processes
//! on a real etcd (tests/cluster/harness.rs), and node B (tenant partner) in this process
//! federating with edge-2 only. Signed in on edge-1, the operator sees the cluster as a
//! table naming both nodes and the leader; switched to "whole cluster", edge-2's stream
//! and events with their NODE value, without a close button for the stream edge-1 cannot
//! close; and a cluster's dry run from the changes page.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::common::fed::*;
use super::common::*;
use super::harness::{self, Cluster};
use super::webdriver::Browser;
use super::{screenshot, tenant, web, write};

/// The shipped configuration, for dialback with B: no client certificates required, and
/// acme routing partner.example to B.
fn edited(dir: &Path, b_s2s: u16) {
    let router = dir.join("config/router.toml");
    let text = std::fs::read_to_string(&router).unwrap();
    std::fs::write(
        &router,
        text.replace(
            "require_client_certs = true",
            "require_client_certs = false",
        ),
    )
    .unwrap();
    let acme = dir.join("tenants/acme.toml");
    let text = std::fs::read_to_string(&acme).unwrap();
    let text = text.replace("enabled = false", "enabled = true").replace(
        "routes = { \"partner.example\" = [\"192.0.2.10:5269\", \"xmpp.partner.example:5269\"] }",
        &format!("routes = {{ \"partner.example\" = [\"127.0.0.1:{b_s2s}\"] }}"),
    );
    assert!(text.contains(&format!("127.0.0.1:{b_s2s}")), "{text}");
    std::fs::write(&acme, text).unwrap();
}

/// Rows of the table `css` whose `data-node` is `node`, as text.
fn rows_of(b: &Browser, css: &str, node: &str) -> Vec<String> {
    b.script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]\
           .filter(r => r.dataset.node === arguments[1]).map(r => r.textContent);",
        json!([css, node]),
    )
    .as_array()
    .map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    })
    .unwrap_or_default()
}

#[actix_rt::test]
async fn the_console_of_a_node_in_a_cluster_shows_the_whole_cluster() {
    let b_s2s = free_port();
    let (c, _cfg) = tokio::task::spawn_blocking(move || {
        let mut c = Cluster::new(2);
        let cfg = harness::shipped();
        edited(cfg.path(), b_s2s);
        let (code, out, err) = c.push(cfg.path());
        assert_eq!(code, 0, "{err}");
        let v1 = harness::version_of(&out);
        for n in 1..=2 {
            c.start(n);
        }
        harness::wait(
            "two nodes up on the first version",
            std::time::Duration::from_secs(20),
            || harness::all_on(&c, 2, v1),
        );
        (c, cfg)
    })
    .await
    .unwrap();
    let net = c.etcd.net.clone();

    // B: partner.example, routing acme.example to edge-2.
    let dir = tempfile::tempdir().unwrap();
    let router_b = dir.path().join("router.toml");
    write(&dir.path().join("dialback.secret"), "b's own");
    write(
        &router_b,
        &format!(
            "tenants_dir = \"tenants\"\n[node]\nname = \"b\"\n[listen]\ns2s = \"127.0.0.1:{b_s2s}\"\n\
             component = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [federation]\nsecurity_mode = \"tls-required\"\nrequire_client_certs = false\n\
             dialback_secret_file = \"dialback.secret\"\n"
        ),
    );
    write(
        &dir.path().join("tenants/partner.toml"),
        &tenant(
            "partner",
            "partner.example",
            "\"acme.example\"",
            &format!("\"acme.example\" = [\"{net}.2:5269\"]"),
        ),
    );
    let node_b = start_at(&router_b).await;
    let mut partner = component(node_b.component_addr(), "partner.example", "partner-secret").await;
    partner
        .send("<message from='p@partner.example' to='u@acme.example' id='c1'><body>hi</body></message>")
        .await;

    let token = std::fs::read_to_string(harness::repo().join("config/admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    let b = Arc::new(
        tokio::task::spawn_blocking(|| Browser::start(free_port()))
            .await
            .unwrap(),
    );
    let console = format!("http://{net}.1:7480");

    // 1. The status page's cluster part: both nodes, alive, and the leader.
    web(&b, move |b| {
        b.goto(&format!("{console}/console/login"));
        b.type_into("#token", &token);
        b.click("#sign-in");
        let nodes = b.wait("both nodes in the cluster table", |b| {
            Some(b.text("#cluster-nodes")).filter(|t| t.contains("edge-1") && t.contains("edge-2"))
        });
        assert!(nodes.contains("alive"), "{nodes}");
        assert!(nodes.contains("this node"), "{nodes}");
        let leader = b.wait("a leader", |b| {
            Some(b.text("#cluster-leader")).filter(|t| t.starts_with("edge-"))
        });
        assert!(nodes.contains(&format!("{leader} (leader")), "{nodes}");
        assert!(b.find("#rollout-now").is_some());
        b.script("document.getElementById('cluster').scrollIntoView();", json!([]));
        screenshot(b, "cluster-status");

        // 2. Connections, whole cluster: edge-2's stream from B, with its node, and no close
        //    button (a tooltip says why).
        b.click("a[href='/console/connections']");
        b.element("#connections-table, #connections p.empty");
        assert!(rows_of(b, "#connections-table", "edge-2").is_empty(), "this node only");
        b.select("#f-scope", "cluster");
        let rows = b.wait("edge-2's stream with partner.example", |b| {
            let rows = rows_of(b, "#connections-table", "edge-2");
            rows.iter().any(|r| r.contains("partner.example")).then_some(rows)
        });
        assert!(rows.iter().all(|r| r.contains("on edge-2")), "{rows:?}");
        assert!(b
            .find("#connections-table tr[data-node='edge-2'] button[data-close]")
            .is_none());
        let why = b.script(
            "return document.querySelector(\"#connections-table tr[data-node='edge-2'] .remote\").title;",
            json!([]),
        );
        assert!(why.as_str().unwrap_or("").contains("only its own streams"), "{why}");
        assert!(b.find("#unanswered-nodes").is_none(), "both nodes answered");
        screenshot(b, "cluster-connections");

        // 3. Events, whole cluster: edge-2's events about partner.example, with its node.
        b.click("a[href='/console/events']");
        b.element("#events-table, #events p.empty");
        b.select("#f-scope", "cluster");
        b.wait("edge-2's events about partner.example", |b| {
            rows_of(b, "#events-table", "edge-2")
                .iter()
                .any(|r| r.contains("partner.example"))
                .then_some(())
        });
        assert!(!rows_of(b, "#events-table", "edge-1").is_empty());
        screenshot(b, "cluster-events");

        // 4. Changes: a dry run asks every node; no rolling restart in progress.
        b.click("a[href='/console/changes']");
        b.wait("the rollouts", |b| b.find("#rollout-now").map(|_| ()));
        b.click("#dry-run");
        let dry = b.wait("the cluster's dry run", |b| {
            Some(b.text("#outcome")).filter(|t| t.contains("Nothing was stale") || t.contains("Dry run"))
        });
        assert!(!dry.contains("Refused"), "{dry}");
        for n in ["edge-1", "edge-2"] {
            assert!(!rows_of(b, "#outcome-nodes", n).is_empty(), "{n}'s rows: {dry}");
        }
        screenshot(b, "cluster-changes");
    })
    .await;
    drop(b);
    drop(partner);
    node_b.shutdown().await;
    drop(c);
}
