//! Staged changes apply at the time of `[restart] schedule`, evaluated in UTC, on a clock
//! the test controls (tokio's paused time drives a UTC clock): across midnight UTC, and for
//! a change staged one second before the run.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::fed::free_port;
use xfed::node::supervisor::{RestartView, Supervisor};
use xfed::restart::plan::Instance;
use xfed::restart::schedule::TokioClock;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("tenants")).unwrap();
    let router = dir.join("router.toml");
    std::fs::write(
        &router,
        format!(
            "tenants_dir = \"tenants\"\n[listen]\ns2s = \"127.0.0.1:{}\"\ncomponent = \"127.0.0.1:0\"\n\
             admin = \"127.0.0.1:0\"\n[restart]\ndelayed = true\nschedule = \"0 30 0 * * *\"\n",
            free_port()
        ),
    )
    .unwrap();
    for name in ["acme", "globex"] {
        std::fs::write(
            dir.join(format!("tenants/{name}.toml")),
            format!("name = \"{name}\"\nsecret = \"s\"\ndomains = [\"{name}.example\"]\n"),
        )
        .unwrap();
    }
    router
}

fn add_domain(dir: &Path, tenant: &str, domain: &str) {
    let path = dir.join(format!("tenants/{tenant}.toml"));
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("domains = [\"{tenant}.example\""),
        &format!("domains = [\"{tenant}.example\", \"{domain}\""),
    );
    std::fs::write(path, text).unwrap();
}

fn stale(v: &RestartView) -> Vec<Instance> {
    v.versions.stale().into_iter().cloned().collect()
}

/// Lets the scheduler run until `done` holds (bounded).
async fn settle(sup: &Supervisor, done: impl Fn(&RestartView) -> bool) -> RestartView {
    for _ in 0..1000 {
        let v = sup.view();
        if done(&v) {
            return v;
        }
        tokio::task::yield_now().await;
    }
    panic!("scheduler never got there: {:?}", sup.view());
}

#[actix_rt::test]
async fn staged_changes_apply_at_the_scheduled_utc_time() {
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let router = write_config(dir.path());
    let clock = Arc::new(TokioClock::starting_at(utc("2026-12-31T23:59:00Z")));
    let cfg = xfed::config::load(&router).unwrap_or_else(|e| panic!("{e}"));
    let sup = Supervisor::start(cfg, clock).await.expect("starts");
    assert_eq!(sup.view().next_run, Some(utc("2027-01-01T00:30:00Z")));

    // Two changes staged at 23:59 on the last day of the year: they wait past midnight UTC
    // and go out together in one run.
    add_domain(dir.path(), "acme", "acme.net");
    let r = sup.reload().await.expect("accepted");
    assert!(r.staged, "{r:?}");
    add_domain(dir.path(), "acme", "acme.org");
    sup.reload().await.expect("accepted");
    assert_eq!(stale(&sup.view()), [Instance::Tenant("acme".into())]);
    assert_eq!(
        sup.view().versions.instances[&Instance::Tenant("acme".into())].pending,
        ["domains +acme.net", "domains +acme.org"]
    );
    tokio::time::advance(Duration::from_secs(30 * 60)).await; // 00:29
    tokio::task::yield_now().await;
    let v = sup.view();
    assert_eq!(stale(&v), [Instance::Tenant("acme".into())], "not yet");
    assert!(v.last_run.is_none());
    tokio::time::advance(Duration::from_secs(61)).await; // 00:30:01
    let v = settle(&sup, |v| v.last_run.is_some()).await;
    let (at, outcome) = v.last_run.clone().unwrap();
    assert_eq!(at, utc("2027-01-01T00:30:00Z"));
    assert_eq!(outcome, "applied the staged changes");
    assert!(stale(&v).is_empty());
    assert_eq!(v.next_run, Some(utc("2027-01-02T00:30:00Z")));

    // Staged one second before the next run: it goes out with that run, and only then.
    tokio::time::advance(Duration::from_secs(24 * 3600 - 2)).await; // 2027-01-02 00:29:59
    add_domain(dir.path(), "globex", "globex.net");
    sup.reload().await.expect("accepted");
    assert_eq!(stale(&sup.view()), [Instance::Tenant("globex".into())]);
    assert_eq!(sup.view().last_run.unwrap().0, utc("2027-01-01T00:30:00Z"));
    // (tokio's timer rounds deadlines up to the next millisecond)
    tokio::time::advance(Duration::from_millis(1_010)).await;
    let v = settle(&sup, |v| {
        v.last_run
            .as_ref()
            .is_some_and(|(at, _)| *at == utc("2027-01-02T00:30:00Z"))
    })
    .await;
    assert!(stale(&v).is_empty(), "{v:?}");
    assert_eq!(v.versions.latest, 4);

    // A run with nothing staged says so.
    tokio::time::advance(Duration::from_secs(24 * 3600)).await;
    let v = settle(&sup, |v| {
        v.last_run
            .as_ref()
            .is_some_and(|(at, _)| *at == utc("2027-01-03T00:30:00Z"))
    })
    .await;
    assert_eq!(v.last_run.unwrap().1, "nothing was stale");
    sup.shutdown().await;
}
