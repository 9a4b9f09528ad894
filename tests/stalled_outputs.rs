//! A node whose log and event file nobody takes any more — a stalled journal, a stalled
//! disk — goes on routing and answering its admin API, and still stops on SIGTERM. Both are
//! stood in for by pipes that no one reads: a write to one blocks once its buffer is full.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fed::free_port;
use common::*;

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_log_and_event_file_stall_keeps_routing() {
    let dir = tempfile::tempdir().unwrap();
    let (component_port, admin_port) = (free_port(), free_port());
    std::fs::create_dir(dir.path().join("tenants")).unwrap();
    write(dir.path(), "admin.token", "stall-test-token\n");
    write(
        dir.path(),
        "router.toml",
        &format!(
            "tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:0\"\n\
             component = \"127.0.0.1:{component_port}\"\nadmin = \"127.0.0.1:{admin_port}\"\n\
             [admin]\ntoken_file = \"admin.token\"\n[events]\nfile = \"events.jsonl\"\n"
        ),
    );
    for (name, domain) in [("acme", "acme.example"), ("globex", "globex.example")] {
        write(
            &dir.path().join("tenants"),
            &format!("{name}.toml"),
            &format!(
                "name = \"{name}\"\nsecret = \"s\"\ndomains = [\"{domain}\"]\n[privacy]\nmode = \"off\"\n"
            ),
        );
    }
    // The event file: a named pipe, held open by the test so the node's open does not wait.
    let events = dir.path().join("events.jsonl");
    assert!(Command::new("mkfifo")
        .arg(&events)
        .status()
        .unwrap()
        .success());
    let _events_pipe = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&events)
        .unwrap();
    // stderr: a pipe the test keeps and never reads.
    let mut node = tokio::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["run", "--config", "router.toml"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{component_port}").parse().unwrap();
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "xfed never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Each link that comes and goes logs two lines and records two events: 600 of them are
    // several times what either pipe's buffer holds.
    let cycles = 600;
    for i in 0..cycles {
        let mut link = component(addr, "acme.example", "s").await;
        link.send("</stream:stream>").await;
        let closed = tokio::time::timeout(WAIT, link.read_to_close()).await;
        assert!(closed.is_ok(), "link {i} of {cycles} was not closed");
    }

    let mut acme = component(addr, "acme.example", "s").await;
    let mut globex = component(addr, "globex.example", "s").await;
    // Sent the moment globex's handshake is answered: the link is in service by then.
    let sent = 200;
    for i in 0..sent {
        acme.send(format!(
            "<message from='a@acme.example' to='g@globex.example' id='m{i}'><body>{i}</body></message>"
        ))
        .await;
    }
    let last = format!("id='m{}'", sent - 1);
    globex.expect(&last).await;
    let delivered = globex.received.matches("<message").count();
    assert_eq!(
        delivered, sent,
        "sent {sent}, delivered {delivered}; acme got back: {}",
        acme.received
    );

    // The admin API answers, with the events in memory.
    let config = dir.path().join("router.toml").display().to_string();
    let out = tokio::time::timeout(
        WAIT * 4,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_xfed"))
            .args(["events", "--json", "--config", &config])
            .output(),
    )
    .await
    .expect("the admin API answered")
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let links_down = listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "link_down")
        .count();
    assert!(links_down > 0, "{listed}");

    // SIGTERM still ends it: what cannot be written is given up after a bounded wait.
    let pid = node.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(WAIT * 3, node.wait())
        .await
        .expect("the node stopped on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}
