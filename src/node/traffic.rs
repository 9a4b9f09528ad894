//! What a node carries per tenant, as a cluster node publishes it for the others' views.

use super::Node;
use crate::model::cluster::TenantCounts;

/// Links and streams, per tenant and in all.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// Each tenant's component links and the s2s streams carrying its domains.
    pub tenants: Vec<TenantCounts>,
    /// s2s streams in all.
    pub streams: usize,
}

impl Node {
    /// Component links and s2s streams per tenant (a stream counts for every tenant whose
    /// domains it carries), and s2s streams in all.
    pub async fn traffic(&self) -> Traffic {
        let streams = self.s2s_streams();
        let mut tenants = Vec::new();
        for t in &self.config.tenants {
            let links = self.links(&t.name).await.len();
            let carried = streams
                .iter()
                .filter(|s| {
                    s.pairs
                        .iter()
                        .any(|p| t.all_domains().any(|d| d == p.local))
                })
                .count();
            tenants.push(TenantCounts {
                tenant: t.name.clone(),
                links,
                streams: carried,
            });
        }
        Traffic {
            tenants,
            streams: streams.len(),
        }
    }
}
