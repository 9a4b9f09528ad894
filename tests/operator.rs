//! What an operator reads after real federated traffic: the event log (API, `xfed events`,
//! and the JSON-lines file), Prometheus metrics at `/metrics`, privacy denials in both; and,
//! on the real binary, the federation log level raised to debug and back at run time.

mod common;

use std::time::Duration;

use common::fed::*;
use common::*;
use serde_json::Value;

/// One `/metrics` sample's value, by its exact series text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A GET on the admin API, off this thread: the node's tenant actors run on it.
async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let (url, token) = (url.to_owned(), token.map(str::to_owned));
    tokio::task::spawn_blocking(move || get_blocking(&url, token.as_deref()))
        .await
        .unwrap()
}

fn get_blocking(url: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call().expect("admin API answers");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

#[actix_rt::test]
async fn events_and_metrics_follow_federated_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let AdminWorld {
        a,
        b,
        url,
        token,
        mut acme,
        globex: _globex,
        ..
    } = admin_world(dir.path()).await;
    let node = ["--admin", url.as_str(), "--token-file", token.as_str()];
    // Refused by acme's allow list, and a listed domain whose server is down.
    acme.send("<message from='a@acme.example' to='x@nope.example' id='3'/>")
        .await;
    acme.expect("<not-allowed").await;
    acme.send("<message from='a@acme.example' to='x@down.example' id='4'/>")
        .await;
    acme.expect("<remote-server-not-found").await;

    let (ok, out, err) = xfed(&[&["events", "--json"][..], &node].concat()).await;
    assert!(ok, "{err}");
    let log: Value = serde_json::from_str(&out).unwrap();
    let events = log["events"].as_array().unwrap();
    assert!(events.iter().all(|e| e["module"] == "XMPPFederation"));
    assert!(!events_of(events, "config_loaded").is_empty());
    assert_eq!(events_of(events, "federation_enabled").len(), 1);
    let link_up = events_of(events, "link_up");
    assert_eq!(link_up[0]["tenant"], "acme");
    let authed = events_of(events, "stream_authenticated");
    let out_auth = authed
        .iter()
        .find(|e| e["direction"] == "outgoing")
        .expect("outgoing stream authenticated");
    assert_eq!(out_auth["tenant"], "acme");
    assert_eq!(
        out_auth["domains"],
        serde_json::json!(["acme.example", "globex.example"])
    );
    assert_eq!(out_auth["auth"], "dialback");
    assert_eq!(out_auth["tls"], "TLSv1_3");
    assert!(authed.iter().any(|e| e["direction"] == "incoming"));
    let denied = events_of(events, "policy_denied");
    assert_eq!(denied.len(), 1, "{events:#?}");
    assert_eq!(denied[0]["tenant"], "acme");
    assert_eq!(
        denied[0]["domains"],
        serde_json::json!(["acme.example", "nope.example"])
    );
    assert_eq!(denied[0]["direction"], "out");
    let failed = events_of(events, "stream_failed");
    assert!(
        failed.iter().any(|e| e["domains"][1] == "down.example"
            && e["condition"] == "remote-server-not-found"
            && e["tenant"] == "acme"),
        "{failed:#?}"
    );

    // The operator closes the stream: the log says who closed it.
    let id = out_auth["stream"].to_string();
    let (ok, _, err) = xfed(&[&["close-connection", id.as_str()][..], &node].concat()).await;
    assert!(ok, "{err}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let closed = loop {
        let (_, out, _) = xfed(&[&["events", "--json", "--since", "1h"][..], &node].concat()).await;
        let log: Value = serde_json::from_str(&out).unwrap();
        let closed = log["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "stream_closed" && e["stream"] == out_auth["stream"])
            .cloned();
        if let Some(c) = closed {
            break c;
        }
        assert!(tokio::time::Instant::now() < deadline, "no stream_closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(closed["reason"], "operator");
    assert_eq!(closed["tenant"], "acme");
    assert!(closed["stanzas_out"].as_u64().unwrap() >= 1);

    // Filters: another tenant's events, and a time in the future.
    let (ok, out, _) =
        xfed(&[&["events", "--json", "--tenant", "globex"][..], &node].concat()).await;
    assert!(ok);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert!(log["events"].as_array().unwrap().is_empty(), "{log}");
    let (ok, out, _) = xfed(
        &[
            &["events", "--json", "--since", "2999-01-01T00:00:00Z"][..],
            &node,
        ]
        .concat(),
    )
    .await;
    assert!(ok);
    assert!(out.contains("\"events\": []"), "{out}");
    let (ok, _, err) = xfed(&[&["events", "--since", "last tuesday"][..], &node].concat()).await;
    assert!(!ok && err.contains("--since"), "{err}");
    // The table names the event, tenant and domains on one line.
    let (ok, out, _) = xfed(&[&["events", "--tenant", "acme"][..], &node].concat()).await;
    assert!(ok);
    assert!(
        out.lines().any(|l| l.contains("policy_denied")
            && l.contains("acme.example, nope.example")
            && l.contains("direction=out")),
        "{out}"
    );

    // The same events are in the file, one JSON object per line (written by the event log's
    // own thread: looked for until they are there, within WAIT).
    let path = dir.path().join("a/events.jsonl");
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut file = std::fs::read_to_string(&path).unwrap();
    while !file.contains("policy_denied") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        file = std::fs::read_to_string(&path).unwrap();
    }
    let lines: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(lines.iter().any(|e| e["event"] == "policy_denied"));
    assert!(lines.iter().all(|e| e["module"] == "XMPPFederation"));

    // Metrics: token required; the counts match the traffic above.
    let (status, _) = get(&format!("{url}/metrics"), None).await;
    assert_eq!(status, 401);
    let (status, text) = get(&format!("{url}/metrics"), Some("let-me-in")).await;
    assert_eq!(status, 200);
    let routed_out = sample(
        &text,
        r#"xfed_stanzas_routed_total{tenant="acme",direction="out"}"#,
    );
    // "one" and the stanza to down.example; the denied one was not routed.
    assert_eq!(routed_out, Some(2.0), "{text}");
    let routed_in = sample(
        &text,
        r#"xfed_stanzas_routed_total{tenant="acme",direction="in"}"#,
    );
    // "two", and the two errors returned to acme's link.
    assert_eq!(routed_in, Some(3.0), "{text}");
    assert!(
        sample(
            &text,
            r#"xfed_bytes_routed_total{tenant="acme",direction="out"}"#
        )
        .unwrap()
            > 100.0
    );
    assert_eq!(
        sample(
            &text,
            r#"xfed_policy_denials_total{tenant="acme",direction="out"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"xfed_bounces_total{condition="not-allowed"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"xfed_bounces_total{condition="remote-server-not-found"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"xfed_s2s_authenticated_total{direction="outgoing",auth="dialback"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "xfed_s2s_dial_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"xfed_component_links{tenant="acme"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&text, "xfed_config_version"), Some(1.0));
    assert!(text.contains("# TYPE xfed_s2s_streams gauge"), "{text}");
    // Time in the node, for the stanzas it passed on ("one" out to B, "two" in to acme); the
    // errors it wrote itself are not in transit. Buckets count cumulatively.
    assert_eq!(
        sample(&text, "xfed_stanza_transit_seconds_count"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"xfed_stanza_transit_seconds_bucket{le="+Inf"}"#),
        Some(2.0)
    );
    assert!(sample(&text, "xfed_stanza_transit_seconds_sum").is_some_and(|s| s > 0.0));

    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn federation_log_level_changes_at_run_time_and_status_says_why_federation_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let (s2s, admin) = (free_port(), free_port());
    std::fs::create_dir_all(dir.path().join("tenants")).unwrap();
    std::fs::write(dir.path().join("admin.token"), "t0ken\n").unwrap();
    let router = dir.path().join("router.toml");
    std::fs::write(
        &router,
        format!(
            "tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:{s2s}\"\n\
             component = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:{admin}\"\n\
             [admin]\ntoken_file = \"admin.token\"\n"
        ),
    )
    .unwrap();
    // The tenant lists nobody: federation is inactive, and status says why.
    std::fs::write(
        dir.path().join("tenants/acme.toml"),
        "name = \"acme\"\nsecret = \"s\"\ndomains = [\"acme.example\"]\n",
    )
    .unwrap();
    let mut node = run_node(&router);
    let cli = |args: &[&str]| cli_with_config(args, &router);
    let probe = || {
        // A connection that says nothing: the federation target logs it at debug.
        let c = std::net::TcpStream::connect(("127.0.0.1", s2s)).unwrap();
        drop(c);
    };

    let (ok, out) = cli(&["status"]);
    assert!(ok, "{out}");
    assert!(out.contains("federation: inactive"), "{out}");
    assert!(out.contains("allow list is empty"), "{out}");

    probe();
    let (ok, out) = cli(&["log-level"]);
    assert!(
        ok && out.contains("federation log (xfed::s2s): default"),
        "{out}"
    );
    let (ok, out) = cli(&["log-level", "debug"]);
    assert!(ok && out.contains("xfed::s2s=debug"), "{out}");
    probe();
    let line = wait_line(&node.lines, "inbound s2s connection");
    assert!(
        line.as_deref().is_some_and(|l| l.contains("DEBUG")),
        "{line:?}"
    );
    let (ok, _) = cli(&["log-level", "default"]);
    assert!(ok);
    probe();
    let (ok, out) = cli(&["log-level", "loud"]);
    assert!(!ok && out.contains("not a log level"), "{out}");
    let (ok, out) = cli(&["events", "--json"]);
    assert!(ok && out.contains("\"log_level\""), "{out}");
    assert!(out.contains("\"federation_disabled\""), "{out}");

    assert!(node.terminate());
    // Only the connection made while debug was on was logged.
    let all: Vec<String> = node.lines.try_iter().collect();
    assert!(
        !all.iter().any(|l| l.contains("inbound s2s connection")),
        "logged after going back to default: {all:?}"
    );
}
