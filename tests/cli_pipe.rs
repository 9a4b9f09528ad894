//! `xfed` as the first command of a pipeline whose reader stops early (`xfed events |
//! head -1`): it ends quietly, with the status of a program SIGPIPE killed, not a panic.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

/// Events enough that their table is many times what a pipe holds (64 KiB on Linux), so
/// `xfed` is still writing when the reader goes.
const EVENTS: usize = 5000;

/// A stand-in admin API on 127.0.0.1 that answers one request with `body`.
fn answer_once(body: String) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("xfed connects");
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") && conn.read(&mut byte).expect("reads") == 1 {
            request.push(byte[0]);
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).expect("writes");
        conn.write_all(body.as_bytes()).expect("writes");
    });
    (url, server)
}

#[test]
fn a_listing_whose_reader_stops_early_ends_quietly_with_status_141() {
    let events: Vec<serde_json::Value> = (1..=EVENTS)
        .map(|seq| {
            serde_json::json!({"seq": seq, "time": "2026-12-01T10:00:00.000001Z",
                "module": "XMPPFederation", "event": "link_up", "tenant": "acme",
                "domains": ["acme.example"], "id": seq, "peer": "127.0.0.1:40000"})
        })
        .collect();
    let (url, server) = answer_once(serde_json::json!({ "events": events }).to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, "secret\n").expect("writes the token");

    let mut xfed = Command::new(env!("CARGO_BIN_EXE_xfed"))
        .args(["events", "--admin", &url, "--token-file"])
        .arg(&token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xfed runs");
    let mut reader = BufReader::new(xfed.stdout.take().expect("piped"));
    let mut first = String::new();
    reader.read_line(&mut first).expect("reads a line");
    assert!(first.contains("link_up"), "{first}");
    // The reader goes, as `head -1` does, with most of the table unread.
    drop(reader);

    let done = xfed.wait_with_output().expect("xfed ends");
    server.join().expect("the stand-in API answered");
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "nothing to say: {err}");
    assert_eq!(done.status.code(), Some(141), "{err}");
}
