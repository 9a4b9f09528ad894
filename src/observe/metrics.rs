//! Prometheus metrics, one registry per node (so several nodes in one process, as in the
//! tests, keep theirs apart). Counters are bumped where things happen; gauges that describe
//! current state (streams, queues, links) are set when `/metrics` is read.

use std::sync::Arc;
use std::time::Duration;

use crate::xmpp::transit::Transit;
use dashmap::DashMap;
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const META: Metadata<'static> = Metadata::new("xfed", Level::INFO, Some("xfed::observe"));

/// Seconds from the first DNS question to an authenticated outbound stream.
const DIAL_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A series: metric name and label pairs.
type SeriesId = (&'static str, Vec<(&'static str, String)>);

/// The node's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Counters with labels known only at run time, registered once each.
    counters: DashMap<SeriesId, Counter>,
    /// Bounces by condition: found without building a label set (a flood of bounces is
    /// exactly when this must stay cheap).
    bounces: DashMap<&'static str, Counter>,
    pub dial_seconds: Histogram,
    /// How long stanzas stayed in the node, shared with every connection's writer.
    pub transit: Arc<Transit>,
    pub dns_lookups: Counter,
    pub dns_failures: Counter,
}

/// A tenant's traffic counters, held by its routing slot so the hot path bumps them without
/// a lookup.
#[derive(Clone)]
pub struct TenantCounters {
    /// Stanzas and bytes the tenant's links sent, routed on.
    pub stanzas_out: Counter,
    pub bytes_out: Counter,
    /// Stanzas and bytes routed to the tenant's links.
    pub stanzas_in: Counter,
    pub bytes_in: Counter,
}

impl TenantCounters {
    /// Counters that count nothing (for tests that build slots by hand).
    pub fn noop() -> Self {
        Self {
            stanzas_out: Counter::noop(),
            bytes_out: Counter::noop(),
            stanzas_in: Counter::noop(),
            bytes_in: Counter::noop(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("xfed_s2s_dial_seconds".into()), DIAL_BUCKETS)
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(name.into(), None, help.into());
        };
        describe(
            "xfed_stanzas_routed_total",
            "Stanzas routed, per tenant; direction out = sent by the tenant, in = delivered to its links (errors returned to it included)",
        );
        describe(
            "xfed_bytes_routed_total",
            "Bytes of stanzas routed, per tenant and direction",
        );
        describe(
            "xfed_bounces_total",
            "Stanzas returned to their sender, by error condition",
        );
        describe(
            "xfed_policy_denials_total",
            "Stanzas refused by a tenant's privacy settings",
        );
        describe(
            "xfed_s2s_failures_total",
            "Failed attempts to federate with a remote domain, by condition",
        );
        describe("xfed_dns_lookups_total", "DNS lookups for remote servers");
        describe(
            "xfed_dns_failures_total",
            "DNS lookups for remote servers that found no server",
        );
        describe(
            "xfed_s2s_authenticated_total",
            "Domain pairs authenticated on s2s streams since start, by direction and method",
        );
        describe(
            "xfed_s2s_streams",
            "s2s streams up, by direction and authentication method",
        );
        describe(
            "xfed_queue_bytes",
            "Bytes waiting to be written, by kind of connection",
        );
        describe("xfed_component_links", "Component links up, per tenant");
        describe("xfed_config_version", "The latest configuration version");
        describe(
            "xfed_s2s_dial_seconds",
            "Time to set up an outbound s2s stream (resolve, connect, TLS, authenticate)",
        );
        let dial_seconds =
            recorder.register_histogram(&Key::from_name("xfed_s2s_dial_seconds"), &META);
        let dns_lookups =
            recorder.register_counter(&Key::from_name("xfed_dns_lookups_total"), &META);
        let dns_failures =
            recorder.register_counter(&Key::from_name("xfed_dns_failures_total"), &META);
        Self {
            recorder,
            handle,
            counters: DashMap::new(),
            bounces: DashMap::new(),
            dial_seconds,
            transit: Arc::default(),
            dns_lookups,
            dns_failures,
        }
    }

    fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
        Key::from_parts(
            name,
            labels
                .iter()
                .map(|(k, v)| Label::new(*k, v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    /// A counter by name and labels.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        let id = (
            name,
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        );
        self.counters
            .entry(id)
            .or_insert_with(|| {
                self.recorder
                    .register_counter(&Self::key(name, labels), &META)
            })
            .clone()
    }

    /// A gauge by name and labels.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder
            .register_gauge(&Self::key(name, labels), &META)
    }

    /// The counters of a tenant's traffic.
    pub fn tenant(&self, tenant: &str) -> TenantCounters {
        let c = |name, dir| self.counter(name, &[("tenant", tenant), ("direction", dir)]);
        TenantCounters {
            stanzas_out: c("xfed_stanzas_routed_total", "out"),
            bytes_out: c("xfed_bytes_routed_total", "out"),
            stanzas_in: c("xfed_stanzas_routed_total", "in"),
            bytes_in: c("xfed_bytes_routed_total", "in"),
        }
    }

    pub fn bounced(&self, condition: &'static str) {
        if let Some(c) = self.bounces.get(condition) {
            return c.increment(1);
        }
        let c = self.counter("xfed_bounces_total", &[("condition", condition)]);
        c.increment(1);
        self.bounces.insert(condition, c);
    }

    pub fn policy_denied(&self, tenant: &str, direction: &'static str) {
        self.counter(
            "xfed_policy_denials_total",
            &[("tenant", tenant), ("direction", direction)],
        )
        .increment(1);
    }

    pub fn dialed(&self, took: Duration) {
        self.dial_seconds.record(took.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        text.push_str(&self.transit.render(
            "xfed_stanza_transit_seconds",
            "Time a stanza stayed in the node: from being read whole to being taken for a write into the socket of the connection it leaves on",
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_registries_keep_their_counts_apart_and_render_prometheus_text() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.tenant("acme").stanzas_out.increment(3);
        a.bounced("remote-server-not-found");
        a.dialed(Duration::from_millis(30));
        b.tenant("acme").stanzas_out.increment(1);
        let text = a.render();
        assert!(
            text.contains(r#"xfed_stanzas_routed_total{tenant="acme",direction="out"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"xfed_bounces_total{condition="remote-server-not-found"} 1"#));
        assert!(
            text.contains(r#"xfed_s2s_dial_seconds_bucket{le="0.05"} 1"#),
            "{text}"
        );
        assert!(text.contains("# HELP xfed_stanzas_routed_total"));
        assert!(b
            .render()
            .contains(r#"xfed_stanzas_routed_total{tenant="acme",direction="out"} 1"#));
    }
}
