//! `GET /metrics`: Prometheus exposition — counters as they stand, and gauges of the
//! current state set at each scrape.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};

use super::AdminState;
use crate::model::Direction;
use crate::tenant::ListLinks;

pub(super) async fn metrics(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let m = &st.observer.metrics;
    let mut streams = BTreeMap::new();
    for dir in [Direction::Incoming, Direction::Outgoing] {
        for auth in ["dialback", "sasl_external", "none"] {
            streams.insert((dir.as_str(), auth), 0.0);
        }
    }
    let mut s2s_queued = 0usize;
    let side = st.side.load();
    for e in side.context().streams.iter() {
        let auth = e.pairs.first().map_or("none", |p| p.mechanism.label());
        *streams.entry((e.direction.as_str(), auth)).or_default() += 1.0;
        s2s_queued += e.outbox.queued_bytes();
    }
    for ((dir, auth), n) in streams {
        m.gauge("xfed_s2s_streams", &[("direction", dir), ("auth", auth)])
            .set(n);
    }
    let mut link_queued = 0usize;
    for (addr, slot) in st.tenants.load().iter() {
        let links = addr.send(ListLinks).await.unwrap_or_default();
        link_queued += links.iter().map(|l| l.queued_bytes).sum::<usize>();
        m.gauge("xfed_component_links", &[("tenant", &slot.name)])
            .set(links.len() as f64);
    }
    m.gauge("xfed_queue_bytes", &[("kind", "s2s")])
        .set(s2s_queued as f64);
    m.gauge("xfed_queue_bytes", &[("kind", "component")])
        .set(link_queued as f64);
    m.gauge("xfed_queue_bytes", &[("kind", "s2s_pending")])
        .set(side.federation.pending_bytes() as f64);
    let version = st
        .control
        .as_ref()
        .map_or(1, |c| c.schedule().versions.latest);
    m.gauge("xfed_config_version", &[]).set(version as f64);
    m.counter("xfed_event_log_unwritten_total", &[])
        .absolute(st.observer.events.unwritten());
    m.counter("xfed_log_lines_dropped_total", &[])
        .absolute(crate::telemetry::lines_dropped());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render())
}
