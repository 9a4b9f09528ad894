//! `xfed drain` on a node on its own, through the real binary: the node closes its
//! component links gracefully, takes no new connection, answers once it is idle, and its
//! admin API still answers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Opens a component stream for acme.example and completes the handshake.
fn component(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
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
        .unwrap();
    let digest = xfed::component::digest(id, "s");
    conn.write_all(format!("<handshake>{digest}</handshake>").as_bytes())
        .unwrap();
    got.clear();
    while !got.contains("<handshake/>") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    conn
}

#[test]
fn a_drained_node_closes_its_links_gracefully_and_takes_no_new_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (component_port, admin_port) = (free_port(), free_port());
    std::fs::create_dir(dir.path().join("tenants")).unwrap();
    std::fs::write(dir.path().join("admin.token"), "drain-test-token\n").unwrap();
    std::fs::write(
        dir.path().join("router.toml"),
        format!(
            "tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:0\"\n\
             component = \"127.0.0.1:{component_port}\"\nadmin = \"127.0.0.1:{admin_port}\"\n\
             [admin]\ntoken_file = \"admin.token\"\n[events]\nfile = \"\"\n"
        ),
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
    let mut conn = component(component_port);

    let out = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["drain", "--json", "--config", &config])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["idle"], true, "{outcome}");
    assert_eq!(outcome["links_closed"], 1, "{outcome}");

    // The link got the stream's closing tag, no stream error; the component closes too.
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("</stream:stream>") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed without the closing tag: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(!got.contains("stream:error"), "{got}");
    let _ = conn.write_all(b"</stream:stream>");

    assert!(
        TcpStream::connect(("127.0.0.1", component_port)).is_err(),
        "a drained node still takes component links"
    );
    let table = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["drain", "--config", &config])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("drained: 0 component link(s)") && text.contains("idle"),
        "{text}"
    );
    let status = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["status", "--config", &config])
        .output()
        .unwrap();
    assert!(status.status.success(), "the admin API still answers");

    let _ = child.kill();
    let _ = child.wait();
}
