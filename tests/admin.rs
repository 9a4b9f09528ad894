//! The operator's view on a running node, through the real `xfed` binary: the admin API
//! refuses requests without the token; `status` and `connections` show what federated
//! traffic did; `close-connection` closes a stream and the next stanza opens another.

mod common;

use std::time::Duration;

use common::fed::*;
use common::*;
use serde_json::Value;

#[actix_rt::test]
async fn operator_sees_and_closes_federated_connections() {
    let dir = tempfile::tempdir().unwrap();
    let AdminWorld {
        a,
        b,
        url,
        token,
        pb,
        mut acme,
        mut globex,
    } = admin_world(dir.path()).await;
    acme.send("<message from='a@acme.example' to='x@down.example' id='3'/>")
        .await;
    acme.expect("id='3' type='error'").await;

    // No token, wrong token: refused.
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "guess").unwrap();
    let bad = bad.display().to_string();
    let (ok, _, err) = xfed(&["status", "--admin", &url, "--token-file", &bad]).await;
    assert!(!ok && err.contains("401"), "{err}");

    let (ok, out, err) = xfed(&["status", "--admin", &url, "--token-file", &token, "--json"]).await;
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["node"], "acme-node");
    let acme_status = &status["tenants"][0];
    assert_eq!(acme_status["name"], "acme");
    assert_eq!(acme_status["links"].as_array().unwrap().len(), 1);
    assert_eq!(acme_status["streams_out"], 1);
    assert!(acme_status["streams_in"].as_u64().unwrap() >= 1);

    let (ok, out, err) = xfed(&[
        "connections",
        "--admin",
        &url,
        "--token-file",
        &token,
        "--json",
    ])
    .await;
    assert!(ok, "{err}");
    let conns: Value = serde_json::from_str(&out).unwrap();
    let list = conns["connections"].as_array().unwrap();
    let outgoing = list
        .iter()
        .find(|c| c["direction"] == "outgoing")
        .expect("outgoing");
    assert_eq!(outgoing["pairs"][0]["local"], "acme.example");
    assert_eq!(outgoing["pairs"][0]["remote"], "globex.example");
    assert_eq!(outgoing["pairs"][0]["auth"], "dialback");
    assert_eq!(outgoing["tls_version"], "TLSv1_3");
    assert_eq!(outgoing["peer_port"], pb);
    assert!(outgoing["stanzas_out"].as_u64().unwrap() >= 1);
    let incoming = list
        .iter()
        .find(|c| {
            c["direction"] == "incoming" && c["pairs"].as_array().is_some_and(|p| !p.is_empty())
        })
        .expect("incoming");
    assert!(incoming["stanzas_in"].as_u64().unwrap() >= 1);
    let failure = &conns["failures"][0];
    assert_eq!(failure["remote"], "down.example");
    assert_eq!(failure["condition"], "remote-server-not-found");

    // The table an operator reads, filtered by domain.
    let (ok, out, _) = xfed(&[
        "connections",
        "--admin",
        &url,
        "--token-file",
        &token,
        "--domain",
        "globex.example",
    ])
    .await;
    assert!(ok);
    assert!(
        out.contains("acme.example -> globex.example (dialback)"),
        "{out}"
    );
    assert!(!out.contains("down.example"), "{out}");

    // Close the outgoing stream: it goes away, and the next stanza opens another.
    let id = outgoing["id"].as_u64().unwrap().to_string();
    let (ok, out, err) = xfed(&[
        "close-connection",
        &id,
        "--admin",
        &url,
        "--token-file",
        &token,
    ])
    .await;
    assert!(ok && out.contains(&id), "{out}{err}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.s2s_streams().iter().any(|s| s.id.to_string() == id) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream {id} still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    acme.send(
        "<message from='a@acme.example' to='g@globex.example' id='4'><body>four</body></message>",
    )
    .await;
    globex.expect("<body>four</body>").await;
    let (ok, _, err) = xfed(&[
        "close-connection",
        "999999",
        "--admin",
        &url,
        "--token-file",
        &token,
    ])
    .await;
    assert!(!ok && err.contains("404"), "{err}");
    a.shutdown().await;
    b.shutdown().await;
}
