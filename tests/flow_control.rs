//! Flow control (issue 14): a sender faster than the path is slowed, not refused. A
//! component writes as fast as TCP lets it, through node A, s2s, node B, to a component that
//! reads slowly; the queues are small enough that without flow control most stanzas would
//! come back with `resource-constraint`. No timing is asserted: only that every stanza is
//! delivered and none returned.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::fed::*;
use common::flow::{start_limited, Tally};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Stanzas sent, of about 400 bytes each: 2 MB, 32 times node B's queue for its link.
const N: usize = 5000;

#[actix_rt::test]
async fn a_fast_sender_to_a_slow_reader_is_slowed_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plain = "security_mode = \"no-tls\"\nrequire_client_certs = false";
    let (ra, rb, _) = write_pair(dir.path(), (plain, ""), (plain, ""));
    let a = start_limited(&ra, "").await;
    let b = start_limited(&rb, "").await;
    let acme = component(a.component_addr(), "acme.example", "acme-secret").await;
    let globex = component(b.component_addr(), "globex.example", "globex-secret").await;
    wait_links(&b, "globex", 1).await;

    // The sender writes everything as fast as TCP takes it, and counts what comes back.
    let (mut acme_rd, mut acme_wr) = acme.stream.into_split();
    let returned = Arc::new(AtomicUsize::new(0));
    let back = returned.clone();
    actix_rt::spawn(async move {
        let mut tally = Tally::default();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = acme_rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tally.add(&buf[..n]);
            back.store(tally.errors, Ordering::Relaxed);
        }
    });
    let body = "x".repeat(300);
    let writer = actix_rt::spawn(async move {
        for chunk in (0..N).collect::<Vec<_>>().chunks(50) {
            let mut out = String::new();
            for i in chunk {
                out.push_str(&format!(
                    "<message from='a@acme.example' to='b@globex.example' id='f{i}'><body>{body}</body></message>"
                ));
            }
            acme_wr
                .write_all(out.as_bytes())
                .await
                .expect("the sender writes");
        }
        acme_wr
    });

    // The reader takes 4 KiB at a time, 2 ms apart: far slower than the sender.
    let mut stream = globex.stream;
    let mut tally = Tally::default();
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while tally.messages + returned.load(Ordering::Relaxed) < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} delivered and {} returned of {N}",
            tally.messages,
            returned.load(Ordering::Relaxed)
        );
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the reader gets something within 10 s")
            .expect("read");
        assert!(n > 0, "node B closed the slow reader's link");
        tally.add(&buf[..n]);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = writer.await;
    println!(
        "delivered {} returned {} of {N}",
        tally.messages,
        returned.load(Ordering::Relaxed)
    );
    assert_eq!(
        returned.load(Ordering::Relaxed),
        0,
        "no stanza was returned"
    );
    assert_eq!(tally.messages, N, "every stanza was delivered");
    assert_eq!(tally.errors, 0);
    a.shutdown().await;
    b.shutdown().await;
}
