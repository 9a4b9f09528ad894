//! What a node confirms to the node that forwarded it stanzas, as a tenant sees it: when
//! the node holding a tenant's link is killed with `kill -9`, every stanza sent is delivered
//! or returned to its sender — none vanishes, and only one the dead node had already written
//! can arrive twice; and stanzas that waited on a slow tenant are confirmed once they leave,
//! so a node killed later has nothing of them left to hand back. Real etcd, three `xfed run`
//! processes; every wait is bounded.
#![cfg(feature = "cluster")]

mod common;

#[path = "cluster/harness.rs"]
mod harness;
#[path = "cluster/traffic.rs"]
mod traffic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use traffic::*;

/// acme is linked to edge-2 and edge-3; a globex component on edge-1 sends to acme from 16
/// addresses (they spread over both nodes), 16 KiB each. acme's server on edge-2 stops
/// reading, so edge-2 holds what it could not write yet, and edge-2 is killed with
/// `kill -9`. Every message sent is delivered (what reached the component's socket before
/// the kill is still read from it) or comes back to its sender with an error; edge-1
/// hands what edge-2 had not confirmed to edge-3; a message delivered twice can only be
/// one edge-2 had written just before it died.
#[test]
fn kill_9_of_a_node_holding_a_link_loses_no_stanza() {
    let (mut c, _cfg, _v) = three_relaying();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = Arc::new(AtomicBool::new(true));
    let on2 = rt.block_on(receiver(c.component_addr(2), "acme.example", run.clone()));
    let on3 = rt.block_on(receiver(c.component_addr(3), "acme.example", run.clone()));
    // Both nodes reached: probes from 16 addresses arrive on both.
    until_forwarding(&rt, &c, 1, &on2);
    until_forwarding(&rt, &c, 1, &on3);
    let go = Arc::new(AtomicBool::new(true));
    let s = rt.block_on(async {
        sender(
            c.component_addr(1),
            "a1",
            16 * 1024,
            16,
            Duration::from_millis(2),
            go.clone(),
        )
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        delivered_ids(&on2.text()).len() > 10,
        "edge-2 was carrying some"
    );
    on2.paused.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(3));
    let at_kill = s.sent.load(Ordering::Relaxed);
    c.kill_9(2);
    let killed = Instant::now();
    on2.paused.store(false, Ordering::Relaxed);
    // The first message delivered on edge-3 after the kill from a sender that was on edge-2.
    let on2_senders: BTreeSet<String> = from_of_delivered(&on2.text());
    std::thread::sleep(Duration::from_secs(4));
    go.store(false, Ordering::Relaxed);
    let sent = s.sent.load(Ordering::Relaxed);
    let settled = |_: ()| {
        let mut ids: BTreeSet<String> = delivered_ids(&on2.text()).into_iter().collect();
        ids.extend(delivered_ids(&on3.text()));
        ids.extend(returned_ids(&s.back.lock().unwrap()));
        ids.iter().filter(|i| i.starts_with("a1-")).count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while settled(()) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let d2 = delivered_ids(&on2.text());
    let d3 = delivered_ids(&on3.text());
    let back = returned_ids(&s.back.lock().unwrap());
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for id in d2.iter().chain(&d3).filter(|i| i.starts_with("a1-")) {
        *count.entry(id).or_default() += 1;
    }
    let missing: Vec<usize> = (0..sent)
        .filter(|n| {
            let id = format!("a1-{n}");
            !count.contains_key(id.as_str()) && !back.contains(&id)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} vanished (the kill after {at_kill} sent): {missing:?}\nedge-1 log: {}",
        missing.len(),
        std::fs::read_to_string(c.dir.path().join("node1.log")).unwrap_or_default()
    );
    let twice: Vec<&&str> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| i)
        .collect();
    for id in &twice {
        assert!(
            d2.iter().any(|i| i == **id),
            "{id} delivered twice but edge-2 never had it"
        );
    }
    // After the kill, edge-2's senders are served by edge-3.
    let moved = d3
        .iter()
        .filter_map(|i| i.strip_prefix("a1-")?.parse::<usize>().ok())
        .filter(|n| *n > at_kill)
        .count();
    assert!(moved > 0, "nothing delivered on edge-3 after the kill");
    let handed_back = metric(&c, 1, &["xfed_cluster_handed_back_stanzas_total"]);
    assert!(
        handed_back > 0,
        "edge-2 held unconfirmed stanzas when it died"
    );
    println!(
        "kill -9: {sent} sent, {} delivered on edge-2 before it died, {} on edge-3, {} returned, {} delivered twice; {handed_back} handed back by edge-1; edge-2 carried {} senders; {:?} since the kill",
        d2.len(),
        d3.len(),
        back.len(),
        twice.len(),
        on2_senders.len(),
        killed.elapsed()
    );
    run.store(false, Ordering::Relaxed);
}

/// acme is linked to edge-2 only and stops reading while a globex component on edge-1 sends
/// it 16 KiB messages, so they wait on edge-2 (and, past its share, on edge-1) after the
/// sender has stopped; acme then reads them all. Once they have left edge-2 they are
/// confirmed: when edge-2 is killed afterwards, edge-1 holds nothing of it to hand back (a
/// stanza handed back would reach acme twice, or come back to its sender), and nothing is
/// returned to the sender.
#[test]
fn stanzas_that_waited_on_a_slow_tenant_are_confirmed_once_they_leave() {
    let (mut c, _cfg, _v) = three_relaying();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = Arc::new(AtomicBool::new(true));
    let on2 = rt.block_on(receiver(c.component_addr(2), "acme.example", run.clone()));
    until_forwarding(&rt, &c, 1, &on2);
    let go = Arc::new(AtomicBool::new(true));
    let s = rt.block_on(async {
        sender(
            c.component_addr(1),
            "w1",
            16 * 1024,
            16,
            Duration::from_millis(2),
            go.clone(),
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    on2.paused.store(true, Ordering::Relaxed);
    // Far more than the sockets between edge-2 and acme and edge-2's share hold, so edge-2
    // keeps some and edge-1 the rest: edge-1's last stanzas reach edge-2 while acme works
    // through a backlog.
    std::thread::sleep(Duration::from_secs(3));
    go.store(false, Ordering::Relaxed);
    // Still paused for a while; the count is final by then (a send under way when the sender
    // was stopped has been counted).
    std::thread::sleep(Duration::from_secs(1));
    let sent = s.sent.load(Ordering::Relaxed);
    on2.paused.store(false, Ordering::Relaxed);
    let delivered = || {
        let ids: BTreeSet<String> = delivered_ids(&on2.text()).into_iter().collect();
        ids.iter().filter(|i| i.starts_with("w1-")).count()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered() < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(delivered(), sent, "every message reached acme");
    // Longer than the slowest way a confirmation comes (edge-1 asks every 200 ms), then the
    // node goes.
    std::thread::sleep(Duration::from_millis(500));
    c.kill_9(2);
    std::thread::sleep(Duration::from_secs(2));
    let handed_back = metric(&c, 1, &["xfed_cluster_handed_back_stanzas_total"]);
    let back = returned_ids(&s.back.lock().unwrap());
    assert_eq!(
        (handed_back, back.len()),
        (0, 0),
        "edge-1 held stanzas edge-2 had delivered: {back:?}"
    );
    println!("{sent} sent, acme paused for 4 s: all delivered and confirmed");
    run.store(false, Ordering::Relaxed);
}
