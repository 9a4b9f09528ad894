use std::path::Path;

use super::*;

fn config(dir: &Path, max: u64, keep: usize) -> EventsConfig {
    EventsConfig {
        file: Some(dir.join("events.jsonl")),
        max_file_bytes: max,
        keep_files: keep,
        memory: 3,
    }
}

#[test]
fn events_carry_module_tenant_and_domains_and_the_ring_is_bounded() {
    let log = EventLog::in_memory(3);
    for i in 0..5 {
        log.record(
            Event::new(Kind::StreamClosed)
                .tenant(Some(if i % 2 == 0 { "acme" } else { "globex" }))
                .domains(["acme.example", "partner.example"])
                .field("reason", "idle"),
        );
    }
    let all = log.query(&Query::default());
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [3, 4, 5], "the ring keeps the newest");
    assert!(all.iter().all(|e| e["module"] == MODULE));
    assert_eq!(all[0]["event"], "stream_closed");
    assert_eq!(
        all[0]["domains"],
        json!(["acme.example", "partner.example"])
    );
    assert_eq!(all[0]["reason"], "idle");
    let acme = log.query(&Query {
        tenant: Some("acme".into()),
        ..Query::default()
    });
    assert_eq!(acme.len(), 2);
    let later = log.query(&Query {
        since: Some(Utc::now() + chrono::Duration::seconds(1)),
        ..Query::default()
    });
    assert!(later.is_empty());
    let newest = log.query(&Query {
        limit: Some(1),
        ..Query::default()
    });
    assert_eq!(newest[0]["seq"], 5);
}

#[test]
fn every_event_reads_as_the_admin_api_serves_it() {
    let log = EventLog::in_memory(10);
    log.record(Event::new(Kind::ConfigLoaded).field("tenants", 2));
    for _ in 0..2 {
        log.record_folded(
            "deny",
            Event::new(Kind::PolicyDenied)
                .tenant(Some("acme"))
                .domains(["acme.example"])
                .field("tls", Value::Null),
        );
    }
    let records = log.records(&Query::default());
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].event, "config_loaded");
    assert_eq!(records[0].tenant, None);
    assert_eq!(records[0].details["tenants"], 2);
    assert_eq!(records[1].tenant.as_deref(), Some("acme"));
    assert!(records[1].details["tls"].is_null());
    let lines = log.query(&Query::default());
    for (record, line) in records.iter().zip(&lines) {
        assert_eq!(&serde_json::to_value(record).unwrap(), line);
    }
}

#[test]
fn repeats_are_folded() {
    let log = EventLog::in_memory(100);
    for _ in 0..50 {
        log.record_folded("deny acme x", Event::new(Kind::PolicyDenied));
    }
    log.record_folded("deny acme y", Event::new(Kind::PolicyDenied));
    assert_eq!(log.query(&Query::default()).len(), 2);
}

#[test]
fn the_file_rotates_by_size_and_keeps_so_many() {
    let dir = tempfile::tempdir().unwrap();
    let log = EventLog::new(&config(dir.path(), 600, 2));
    for i in 0..40 {
        log.record(Event::new(Kind::LinkUp).field("n", i));
    }
    assert!(log.flush(Duration::from_secs(10)), "written");
    let main = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert!(main.len() <= 600, "rotated at its size bound");
    let first: Value = serde_json::from_str(main.lines().next().unwrap()).unwrap();
    assert_eq!(first["module"], MODULE);
    assert!(dir.path().join("events.jsonl.1").exists());
    assert!(dir.path().join("events.jsonl.2").exists());
    assert!(!dir.path().join("events.jsonl.3").exists(), "only 2 kept");
    let last: Value = serde_json::from_str(main.lines().last().unwrap()).unwrap();
    assert_eq!(last["n"], 39, "the newest event is in the live file");
}
