//! What operators watch: the [`events::EventLog`] and the Prometheus [`metrics::Metrics`],
//! one of each per node, shared by everything that has something to report.

pub mod events;
pub mod metrics;

pub use events::{Event, EventLog, Kind};
pub use metrics::{Metrics, TenantCounters};

use crate::config::EventsConfig;

/// A node's event log and metrics.
pub struct Observer {
    pub events: EventLog,
    pub metrics: Metrics,
}

impl Observer {
    pub fn new(events: &EventsConfig) -> Self {
        Self {
            events: EventLog::new(events),
            metrics: Metrics::new(),
        }
    }

    /// An observer that keeps a small event ring in memory and writes no file.
    pub fn in_memory() -> Self {
        Self {
            events: EventLog::in_memory(1000),
            metrics: Metrics::new(),
        }
    }
}
