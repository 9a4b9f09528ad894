//! The admin HTTP API on `[listen] admin`: JSON views of the node for operators and the
//! `xfed` subcommands, behind a bearer token from `[admin] token_file`.
//!
//! - `GET /api/status`: node, federation, tenants with their links and streams;
//! - `GET /api/connections[?tenant=T][&domain=D]`: every s2s stream, and per domain pair
//!   the last failure;
//! - `POST /api/connections/{id}/close`: closes a stream gracefully;
//! - `GET /api/events[?since=RFC3339][&tenant=T][&limit=N]`: the event log;
//! - `GET /api/log-level`, `POST /api/log-level/{level}`: the federation log level;
//! - `GET /metrics`: Prometheus metrics;
//! - `POST /api/reload`: read the configuration again (applied or staged);
//! - `POST /api/restart[?tenant=T][&dry_run=true]`: restart the stale instances.

pub mod client;
mod table;
mod tables;

use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::observe::{events, Event, Kind, Observer};
use crate::restart::plan::Instance;
use crate::routing::{policy, LinkControl, TenantSlot};
use crate::s2s::Side;
use crate::tenant::{ListLinks, TenantList};

/// What the admin API reads.
pub struct AdminState {
    pub node_name: String,
    pub tenants: Arc<TenantList>,
    /// The federation side; swapped when federation restarts.
    pub side: Arc<arc_swap::ArcSwap<Side>>,
    /// Requests must carry `Authorization: Bearer <token>`.
    pub token: Secret,
    pub observer: Arc<Observer>,
    /// Takes reloads and restarts; `None` for a node started on its own (tests).
    pub supervisor: Option<crate::node::supervisor::Supervisor>,
}

impl AdminState {
    /// Whether the node federates at all, and why (not).
    pub fn federation_state(&self) -> (bool, String) {
        let views: Vec<_> = self.tenants.load().iter().map(|(_, s)| s.view()).collect();
        let (active, why) = policy::node_reach(views.iter().map(|v| &*v.config));
        if active {
            let why = format!(
                "accepting server-to-server streams on {}; {why}",
                self.side.load().addr
            );
            return (true, why);
        }
        (false, why)
    }

    /// `Some(response)` when the request is not authorized.
    fn refuse(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let offered = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let ok: bool = offered
            .as_bytes()
            .ct_eq(self.token.expose().as_bytes())
            .into();
        (!ok).then(|| {
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .json(json!({"error": "a valid bearer token is required ([admin] token_file)"}))
        })
    }

    /// Every s2s stream as JSON, by id; with `tenant` or `domain`, only those carrying a
    /// pair of that tenant's or with that domain on either side.
    fn streams(&self, tenant: Option<&TenantSlot>, domain: Option<&str>) -> Vec<Value> {
        let owned = tenant.map(|t| t.view().owned.clone());
        let mut rows = self.side.load().context().stream_rows();
        if owned.is_some() || domain.is_some() {
            rows.retain(|r| {
                r.pairs.iter().any(|p| {
                    owned.as_ref().is_none_or(|o| o.contains(&p.local))
                        && domain.is_none_or(|d| p.local == d || p.remote == d)
                })
            });
        }
        rows.iter()
            .map(|r| serde_json::to_value(r).expect("a stream row is plain data"))
            .collect()
    }
}

/// Connections the admin API holds at once; more wait in the listen backlog.
const ADMIN_MAX_CONNECTIONS: usize = 256;

/// Starts the admin API on `listener` (on the current actix system).
pub fn start(
    listener: std::net::TcpListener,
    state: Arc<AdminState>,
) -> std::io::Result<actix_web::dev::ServerHandle> {
    let data = web::Data::from(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/api/status", web::get().to(status))
            .route("/api/connections", web::get().to(connections))
            .route("/api/connections/{id}/close", web::post().to(close))
            .route("/api/events", web::get().to(events))
            .route("/api/log-level", web::get().to(log_level))
            .route("/api/log-level/{level}", web::post().to(set_log_level))
            .route("/metrics", web::get().to(metrics))
            .route("/api/reload", web::post().to(reload))
            .route("/api/restart", web::post().to(restart))
    })
    .workers(1)
    // Operators and a Prometheus scraper need a handful; a flood cannot hold more than this
    // (the listener is loopback by default and every request needs the token).
    .max_connections(ADMIN_MAX_CONNECTIONS)
    .client_request_timeout(std::time::Duration::from_secs(10))
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}

async fn status(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let restart = st.supervisor.as_ref().map(|s| s.view());
    let mut tenants = Vec::new();
    for (addr, slot) in st.tenants.load().iter() {
        let view = slot.view();
        let links = addr.send(ListLinks).await.unwrap_or_default();
        let streams = st.streams(Some(slot), None);
        let count = |dir: &str| streams.iter().filter(|s| s["direction"] == dir).count();
        let (active, why) = policy::reach(&view.config.privacy, &view.config.static_routes);
        let tv = restart.as_ref().and_then(|r| {
            r.versions
                .instances
                .get(&Instance::Tenant(slot.name.clone()))
                .cloned()
        });
        tenants.push(json!({
            "name": slot.name,
            "version": tv.as_ref().map_or(1, |v| v.applied),
            "latest_version": tv.as_ref().map_or(1, |v| v.latest),
            "digest": tv.as_ref().and_then(|v| v.digest.clone()),
            "state": if tv.as_ref().is_some_and(|v| v.is_stale()) { "stale" } else { "current" },
            "pending": tv.as_ref().map(|v| v.pending.clone()).unwrap_or_default(),
            "federation": {"state": if active { "active" } else { "inactive" }, "why": why},
            "domains": view.config.domains,
            "chat_node_aliases": view.config.chat_node_aliases,
            "privacy": view.config.privacy.mode.as_str(),
            "links": links.iter().map(|l| json!({"id": l.id, "peer": l.peer.to_string(), "queued_bytes": l.queued_bytes})).collect::<Vec<_>>(),
            "streams_in": count("incoming"),
            "streams_out": count("outgoing"),
        }));
    }
    let (active, why) = st.federation_state();
    HttpResponse::Ok().json(json!({
        "node": st.node_name,
        "config_version": restart.as_ref().map_or(1, |r| r.versions.latest),
        "restart": restart.as_ref().map(|r| json!({
            "delayed": r.delayed,
            "schedule": r.schedule,
            "next_run": r.next_run.map(|t| t.to_rfc3339()),
            "last_run": r.last_run.as_ref().map(|(at, what)| json!({"at": at.to_rfc3339(), "outcome": what})),
            "stale": r.versions.instances.iter().filter(|(_, v)| v.is_stale()).map(|(i, v)| json!({
                "instance": i.to_string(), "applied": v.applied, "latest": v.latest, "pending": v.pending,
            })).collect::<Vec<_>>(),
        })),
        "federation": {
            "state": if active { "active" } else { "inactive" },
            "why": why,
            "security_mode": st.side.load().context().policy.security_mode.as_str(),
        },
        "tenants": tenants,
    }))
}

#[derive(serde::Deserialize)]
struct Filter {
    tenant: Option<String>,
    domain: Option<String>,
}

async fn connections(
    req: HttpRequest,
    st: web::Data<AdminState>,
    filter: web::Query<Filter>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let tenant = match filter.tenant.as_deref() {
        Some(name) => match st.tenants.load().iter().find(|(_, s)| s.name == name) {
            Some((_, slot)) => Some(slot.clone()),
            None => {
                return HttpResponse::NotFound().json(json!({"error": format!("no tenant {name}")}))
            }
        },
        None => None,
    };
    let domain = filter.domain.as_deref().map(crate::config::domain_key);
    let failures: Vec<Value> = st
        .side
        .load()
        .federation
        .failures()
        .into_iter()
        .filter(|((l, r), _)| {
            tenant.as_ref().is_none_or(|t| t.view().owned.contains(l))
                && domain.as_deref().is_none_or(|d| l == d || r == d)
        })
        .map(|((l, r), f)| {
            json!({"local": l, "remote": r, "condition": f.condition.as_str(), "reason": f.reason, "at": f.at.to_rfc3339()})
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "connections": st.streams(tenant.as_deref(), domain.as_deref()),
        "failures": failures,
    }))
}

async fn close(req: HttpRequest, st: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let control = st
        .side
        .load()
        .context()
        .streams
        .get(&id)
        .map(|e| e.control.clone());
    match control {
        Some(control) => {
            control.do_send(LinkControl::Retire("operator"));
            HttpResponse::Ok().json(json!({"closed": *id}))
        }
        None => HttpResponse::NotFound().json(json!({"error": format!("no connection {id}")})),
    }
}

#[derive(serde::Deserialize)]
struct EventFilter {
    since: Option<String>,
    tenant: Option<String>,
    limit: Option<usize>,
}

async fn events(
    req: HttpRequest,
    st: web::Data<AdminState>,
    filter: web::Query<EventFilter>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let since = match filter
        .since
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
    {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
        Some(Err(e)) => {
            return HttpResponse::BadRequest()
                .json(json!({"error": format!("since: not an RFC 3339 time: {e}")}))
        }
    };
    let query = events::Query {
        since,
        tenant: filter.tenant.clone(),
        limit: filter.limit,
    };
    HttpResponse::Ok().json(json!({"events": st.observer.events.query(&query)}))
}

async fn log_level(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    match crate::telemetry::federation_level() {
        Ok((level, filter)) => HttpResponse::Ok().json(json!({
            "target": crate::telemetry::FEDERATION_TARGET,
            "federation": level.unwrap_or_else(|| "default".into()),
            "filter": filter,
        })),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
    }
}

async fn set_log_level(
    req: HttpRequest,
    st: web::Data<AdminState>,
    level: web::Path<String>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    match crate::telemetry::set_federation_level(&level) {
        Ok(filter) => {
            st.observer.events.record(
                Event::new(Kind::LogLevel)
                    .field("target", crate::telemetry::FEDERATION_TARGET)
                    .field("level", level.to_ascii_lowercase()),
            );
            tracing::info!(level = %level, %filter, "federation log level changed");
            HttpResponse::Ok().json(json!({
                "target": crate::telemetry::FEDERATION_TARGET,
                "federation": level.to_ascii_lowercase(),
                "filter": filter,
            }))
        }
        Err(e @ crate::telemetry::LevelError::BadLevel(_)) => {
            HttpResponse::BadRequest().json(json!({"error": e.to_string()}))
        }
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
    }
}

/// Prometheus exposition: counters as they stand, and gauges of current state set now.
async fn metrics(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let m = &st.observer.metrics;
    let mut streams = std::collections::BTreeMap::new();
    for dir in ["incoming", "outgoing"] {
        for auth in ["dialback", "sasl_external", "none"] {
            streams.insert((dir, auth), 0.0);
        }
    }
    let mut s2s_queued = 0usize;
    let side = st.side.load();
    for e in side.context().streams.iter() {
        let dir = e.direction.as_str();
        let auth = e.pairs.first().map_or("none", |p| p.mechanism.label());
        *streams.entry((dir, auth)).or_default() += 1.0;
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
        .supervisor
        .as_ref()
        .map_or(1, |s| s.view().versions.latest);
    m.gauge("xfed_config_version", &[]).set(version as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.render())
}

fn no_supervisor() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .json(json!({"error": "this node runs without a restart scheduler"}))
}

async fn reload(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let Some(sup) = &st.supervisor else {
        return no_supervisor();
    };
    match sup.reload().await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::UnprocessableEntity().json(e),
    }
}

#[derive(serde::Deserialize)]
struct RestartQuery {
    tenant: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn restart(
    req: HttpRequest,
    st: web::Data<AdminState>,
    q: web::Query<RestartQuery>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let Some(sup) = &st.supervisor else {
        return no_supervisor();
    };
    match sup.restart(q.tenant.clone(), q.dry_run).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::Conflict().json(e),
    }
}
