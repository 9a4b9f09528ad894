use bytes::Bytes;

use super::*;
use crate::xmpp::Kind;

fn stanza(n: u32) -> Box<Stanza> {
    Box::new(Stanza {
        bytes: Bytes::from(format!("<message id='{n}'/>")),
        name: "message".into(),
        kind: Kind::Message,
        to: None,
        from: None,
        id: Some(n.to_string()),
        type_: None,
        xmlns: None,
        resends: 0,
        credit: None,
        receipt: None,
        read_at: None,
    })
}

/// A ping's id names the node that sent it, whatever the name holds, and still counts.
#[test]
fn a_ping_id_names_its_node() {
    for node in ["edge-1", "a'b<c", "é"] {
        let c = Checkpoint::ping("a.example", "b.example", node);
        let Checkpoint::Ping { id_prefix, .. } = &c else {
            panic!("a ping")
        };
        let id = format!("{id_prefix}7");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)),
            "{id}"
        );
        assert_eq!(ping_origin(&id).as_deref(), Some(node));
        assert_eq!(c.ping_count(&id), Some(7));
    }
    assert_eq!(
        ping_origin("xfed-ck-0123456789abcdef-7"),
        None,
        "an older id"
    );
    assert_eq!(ping_origin("other-7"), None);
}

fn ids(s: &[Box<Stanza>]) -> Vec<String> {
    s.iter().map(|s| s.id.clone().unwrap()).collect()
}

#[test]
fn xep0198_acks_confirm_the_oldest_first_and_requests_come_every_n() {
    let mut u = Unacked::default();
    let due: Vec<bool> = (0..5).map(|n| u.sent(stanza(n), 2)).collect();
    assert_eq!(due, [false, true, false, true, false]);
    assert_eq!(ids(&u.acknowledge(2).unwrap()), ["0", "1"]);
    assert_eq!(ids(&u.acknowledge(2).unwrap()), Vec::<String>::new());
    assert_eq!(u.len(), 3);
    assert_eq!(u.sent_count(), 5);
    assert_eq!(ids(&u.acknowledge(5).unwrap()), ["2", "3", "4"]);
    assert!(u.is_empty());
}

/// XEP-0198 §4: an `h` above what was sent is `handled-count-too-high`; an `h` below
/// the last one (a stale ack) is the same, seen modulo 2^32.
#[test]
fn xep0198_handled_count_too_high() {
    let mut u = Unacked::default();
    u.sent(stanza(0), 10);
    assert_eq!(u.acknowledge(2).unwrap_err(), TooHigh { h: 2, sent: 1 });
    let wire = crate::xmpp::stanza::stream_error(&TooHigh { h: 2, sent: 1 }.stream_error());
    assert!(
        wire.contains("<undefined-condition ")
            && wire
                .contains("<handled-count-too-high xmlns='urn:xmpp:sm:3' h='2' send-count='1'/>"),
        "{wire}"
    );
    u.acknowledge(1).unwrap();
    assert!(u.acknowledge(0).is_err(), "a count going back");
}

/// XEP-0198 §5: `h` wraps around to zero after 2^32 - 1.
#[test]
fn xep0198_counters_wrap_at_2_32() {
    let mut u = Unacked {
        acked: u32::MAX - 1,
        ..Default::default()
    };
    for n in 0..4 {
        u.sent(stanza(n), 100);
    }
    assert_eq!(u.sent_count(), 2);
    assert_eq!(ids(&u.acknowledge(u32::MAX).unwrap()), ["0"]);
    assert_eq!(ids(&u.acknowledge(1).unwrap()), ["1", "2"]);
    assert_eq!(u.len(), 1);
    let mut h = Handled(u32::MAX);
    h.count();
    assert_eq!(h.answer(), "<a xmlns='urn:xmpp:sm:3' h='0'/>");
}

#[test]
fn over_the_cap_the_oldest_go_and_the_count_stays_right() {
    let mut u = Unacked::default();
    for n in 0..5 {
        u.sent(stanza(n), 100);
    }
    let one = stanza(0).bytes.len();
    assert_eq!(u.bytes(), 5 * one);
    assert_eq!(u.release_over(3 * one), 2);
    assert_eq!(u.bytes(), 3 * one);
    assert_eq!(u.sent_count(), 5);
    assert_eq!(ids(&u.acknowledge(4).unwrap()), ["2", "3"]);
}

#[test]
fn unsent_stanzas_follow_the_sent_ones() {
    let mut u = Unacked::default();
    u.sent(stanza(0), 10);
    u.extend([stanza(1), stanza(2)]);
    let (written, unsent) = u.take();
    let ids = |v: &[Stanza]| v.iter().map(|s| s.id.clone().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&written), ["0"]);
    assert_eq!(ids(&unsent), ["1", "2"]);
}
