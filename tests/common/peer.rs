//! Scripted s2s peers over raw sockets: a remote server's streams towards a node, and a
//! stand-in authoritative server answering dialback verifications.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::fed::{free_port, write_node, NodeSpec};
use super::{Raw, WAIT};

/// A raw s2s peer (evil.example) on a no-tls node, its stream open and features read.
pub async fn raw_s2s(addr: SocketAddr, to: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    c.send(format!(
        "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
         xmlns:stream='http://etherx.jabber.org/streams' from='evil.example' to='{to}' version='1.0'>"
    ))
    .await;
    c.read_until(|r| r.contains("</stream:features>")).await;
    c
}

/// A stand-in authoritative server for globex.example: answers every `<db:verify/>` with
/// `verdict` (`valid` or `invalid`), and reports each connection it accepts and each
/// question it gets. A connection that has had 3 questions is closed after the third answer.
pub async fn authoritative(
    listener: tokio::net::TcpListener,
    seen: tokio::sync::mpsc::UnboundedSender<String>,
    verdict: &'static str,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut n = 0;
    while let Ok((mut s, _)) = listener.accept().await {
        n += 1;
        let _ = seen.send(format!("connection {n}"));
        let seen = seen.clone();
        actix_rt::spawn(async move {
            let mut text = String::new();
            let mut buf = vec![0u8; 16 * 1024];
            let mut opened = false;
            let mut asked = 0;
            loop {
                let Ok(Ok(k)) = tokio::time::timeout(WAIT, s.read(&mut buf)).await else {
                    return;
                };
                if k == 0 {
                    return;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..k]));
                if !opened && text.contains("<stream:stream") {
                    opened = true;
                    let _ = s
                        .write_all(
                            b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
                              xmlns:stream='http://etherx.jabber.org/streams' from='globex.example' \
                              id='auth-stream' version='1.0'><stream:features/>",
                        )
                        .await;
                }
                while let Some(start) = text.find("<db:verify ") {
                    let Some(end) = text[start..].find("</db:verify>") else {
                        break;
                    };
                    let q = text[start..start + end].to_owned();
                    text.drain(..start + end);
                    let attr = |name: &str| {
                        q.split(&format!("{name}='"))
                            .nth(1)
                            .and_then(|r| r.split('\'').next())
                            .unwrap_or("")
                            .to_owned()
                    };
                    let (from, id) = (attr("from"), attr("id"));
                    let _ = seen.send(format!("verify {from} {id}"));
                    let answer = format!(
                        "<db:verify from='globex.example' to='{from}' id='{id}' type='{verdict}'/>"
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                    asked += 1;
                }
                if asked >= 3 {
                    return;
                }
            }
        });
    }
}

/// globex.example opens a stream to `to` and offers a dialback key; answers what xfed said.
pub async fn dialback_from_globex(addr: SocketAddr, to: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    c.send(format!(
        "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
         xmlns:stream='http://etherx.jabber.org/streams' from='globex.example' to='{to}' version='1.0'>"
    ))
    .await;
    c.read_until(|r| r.contains("</stream:features>")).await;
    c.send(format!(
        "<db:result from='globex.example' to='{to}'>0123456789abcdef</db:result>"
    ))
    .await;
    c.expect("<db:result").await;
    c.read_until(|r| r.contains("type=")).await;
    c
}

/// Node A (tenant acme, acme.example, privacy allowing globex.example) whose static route
/// for globex.example points at `peer_port`, with `[federation]` and `[tls]` lines and
/// extra `[limits]` lines.
pub fn node_a(dir: &Path, peer_port: u16, federation: &str, tls: &str, limits: &str) -> PathBuf {
    let router = write_node(&NodeSpec {
        dir,
        s2s_port: free_port(),
        tenant: "acme",
        domain: "acme.example",
        secret: "acme-secret",
        peer_domain: "globex.example",
        peer_port,
        federation,
        tls,
        dialback: "shared",
    });
    let text = std::fs::read_to_string(&router).unwrap().replace(
        "handshake_timeout_secs = 10",
        &format!("handshake_timeout_secs = 10\n{limits}"),
    );
    std::fs::write(&router, text).unwrap();
    router
}
