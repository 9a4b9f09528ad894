//! `GET /api/status`: the node, its federation and restart schedule, every tenant, and the
//! cluster it is in.

use actix_web::{web, HttpRequest, HttpResponse};

use super::AdminState;
use crate::model::{
    Direction, FederationState, NodeFederation, Reach, Status, TenantStatus, VersionState,
};
use crate::restart::plan::Instance;
use crate::routing::policy;
use crate::tenant::ListLinks;

pub(super) async fn status(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    HttpResponse::Ok().json(status_of(&st).await)
}

/// The node, its federation and restart schedule, every tenant, and the cluster (what
/// `GET /api/status` answers).
pub async fn status_of(st: &AdminState) -> Status {
    let schedule = st.control.as_ref().map(|c| c.schedule());
    let mut tenants = Vec::new();
    for (addr, slot) in st.tenants.load().iter() {
        let view = slot.view();
        let links = addr.send(ListLinks).await.unwrap_or_default();
        let streams = st.streams(Some(slot), None);
        let count = |d: Direction| streams.iter().filter(|s| s.direction == d).count();
        let (active, why) = policy::reach(&view.config.privacy, &view.config.static_routes);
        let version = schedule.as_ref().and_then(|s| {
            s.versions
                .instances
                .get(&Instance::Tenant(slot.name.clone()))
                .cloned()
        });
        tenants.push(TenantStatus {
            name: slot.name.clone(),
            version: version.as_ref().map_or(1, |v| v.applied),
            latest_version: version.as_ref().map_or(1, |v| v.latest),
            digest: version.as_ref().and_then(|v| v.digest.clone()),
            state: if version.as_ref().is_some_and(|v| v.is_stale()) {
                VersionState::Stale
            } else {
                VersionState::Current
            },
            pending: version.map(|v| v.pending).unwrap_or_default(),
            federation: Reach {
                state: FederationState::of(active),
                why,
            },
            domains: view.config.domains.clone(),
            chat_node_aliases: view.config.chat_node_aliases.clone(),
            privacy: view.config.privacy.mode.as_str().to_owned(),
            links,
            streams_in: count(Direction::Incoming),
            streams_out: count(Direction::Outgoing),
        });
    }
    let cluster = match &st.control {
        Some(c) => c.cluster().await,
        None => None,
    };
    Status {
        node: st.node_name.clone(),
        cluster,
        config_version: schedule.as_ref().map_or(1, |s| s.versions.latest),
        federation: NodeFederation {
            reach: node_reach(st),
            security_mode: st
                .side
                .load()
                .context()
                .policy
                .security_mode
                .as_str()
                .to_owned(),
        },
        restart: schedule.map(|s| s.restart),
        tenants,
    }
}

/// Whether the node federates at all, and why (not).
fn node_reach(st: &AdminState) -> Reach {
    let views: Vec<_> = st.tenants.load().iter().map(|(_, s)| s.view()).collect();
    let (active, why) = policy::node_reach(views.iter().map(|v| &*v.config));
    let why = if active {
        format!(
            "accepting server-to-server streams on {}; {why}",
            st.side.load().addr
        )
    } else {
        why
    };
    Reach {
        state: FederationState::of(active),
        why,
    }
}
