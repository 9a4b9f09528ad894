//! The admin HTTP API on `[listen] admin`: JSON views of the node for operators and the
//! `xfed` subcommands, behind a bearer token from `[admin] token_file`. Every answer is a
//! type of [`crate::model`], which the subcommands read back.
//!
//! - `GET /api/status`: node, federation, tenants with their links and streams;
//! - `GET /api/connections[?tenant=T][&domain=D][&cluster=true]`: every s2s stream, and
//!   per domain pair the last failure; with `cluster`, every alive node's, node by node;
//! - `POST /api/connections/{id}/close`: closes a stream gracefully;
//! - `GET /api/events[?since=RFC3339][&tenant=T][&limit=N][&cluster=true]`: the event
//!   log; with `cluster`, every alive node's;
//! - `GET /api/log-level`, `POST /api/log-level/{level}`: the federation log level;
//! - `GET /metrics`: Prometheus metrics;
//! - `POST /api/reload`: read the configuration again (applied or staged);
//! - `POST /api/restart[?tenant=T][&node=N][&dry_run=true]`: restart the stale instances;
//!   in a cluster, a rolling restart (or every node's dry run).
//!
//! Reloads and restarts go to the node through [`Control`].

pub mod client;
mod control;
mod metrics;
mod status;
mod table;
mod tables;

pub use control::{Answer, Control, Schedule};

use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::model::rollout::{ClusterConnections, ClusterEvents, FromNode, Question, Reply};
use crate::model::{
    Closed, Connections, ConnectionsQuery, EventRecord, Events, EventsQuery, FailureRow, LogLevel,
    Refusal, RestartQuery, StreamRow,
};
use crate::observe::{events, Event, Kind, Observer};
use crate::routing::{ConnectionControl, TenantSlot};
use crate::s2s::Side;
use crate::tenant::TenantList;

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
    pub control: Option<Arc<dyn Control>>,
}

impl AdminState {
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
                .json(Refusal::new(
                    "a valid bearer token is required ([admin] token_file)",
                ))
        })
    }

    /// Every s2s stream, by id; with `tenant` or `domain`, only those carrying a pair of
    /// that tenant's or with that domain on either side.
    fn streams(&self, tenant: Option<&TenantSlot>, domain: Option<&str>) -> Vec<StreamRow> {
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
        rows
    }
}

impl AdminState {
    /// `GET /api/connections` on this node: its streams, and per domain pair the last
    /// failure; refused for a tenant it does not have.
    pub fn connections(&self, q: &ConnectionsQuery) -> Result<Connections, Refusal> {
        let tenant = match q.tenant.as_deref() {
            Some(name) => match self.tenants.load().iter().find(|(_, s)| s.name == name) {
                Some((_, slot)) => Some(slot.clone()),
                None => return Err(Refusal::new(format!("no tenant {name}"))),
            },
            None => None,
        };
        let domain = q.domain.as_deref().map(crate::config::domain_key);
        let failures = self
            .side
            .load()
            .federation
            .failures()
            .into_iter()
            .filter(|((l, r), _)| {
                tenant.as_ref().is_none_or(|t| t.view().owned.contains(l))
                    && domain.as_deref().is_none_or(|d| l == d || r == d)
            })
            .map(|((local, remote), f)| FailureRow {
                local,
                remote,
                condition: f.condition.as_str().to_owned(),
                reason: f.reason,
                at: f.at,
            })
            .collect();
        Ok(Connections {
            connections: self.streams(tenant.as_deref(), domain.as_deref()),
            failures,
        })
    }

    /// `GET /api/events` on this node.
    pub fn events(&self, q: &EventsQuery) -> Result<Vec<EventRecord>, Refusal> {
        let since = match q.since.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
            None => None,
            Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
            Some(Err(e)) => return Err(Refusal::new(format!("since: not an RFC 3339 time: {e}"))),
        };
        let query = events::Query {
            since,
            tenant: q.tenant.clone(),
            limit: q.limit,
        };
        Ok(self.observer.events.records(&query))
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
            .route("/api/status", web::get().to(status::status))
            .route("/api/connections", web::get().to(connections))
            .route("/api/connections/{id}/close", web::post().to(close))
            .route("/api/events", web::get().to(events))
            .route("/api/log-level", web::get().to(log_level))
            .route("/api/log-level/{level}", web::post().to(set_log_level))
            .route("/metrics", web::get().to(metrics::metrics))
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

async fn connections(
    req: HttpRequest,
    st: web::Data<AdminState>,
    filter: web::Query<ConnectionsQuery>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let mut q = filter.into_inner();
    if std::mem::take(&mut q.cluster) {
        return match gather(&st, Question::Connections(q)).await {
            Ok(nodes) => HttpResponse::Ok().json(ClusterConnections {
                nodes: nodes
                    .into_iter()
                    .map(|n| {
                        n.pick(|r| match r {
                            Reply::Connections(c) => Some(c),
                            _ => None,
                        })
                    })
                    .collect(),
            }),
            Err(e) => e,
        };
    }
    match st.connections(&q) {
        Ok(c) => HttpResponse::Ok().json(c),
        Err(e) => HttpResponse::NotFound().json(e),
    }
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
            control.do_send(ConnectionControl::Retire("operator"));
            HttpResponse::Ok().json(Closed { closed: *id })
        }
        None => HttpResponse::NotFound().json(Refusal::new(format!("no connection {id}"))),
    }
}

async fn events(
    req: HttpRequest,
    st: web::Data<AdminState>,
    filter: web::Query<EventsQuery>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let mut q = filter.into_inner();
    if std::mem::take(&mut q.cluster) {
        return match gather(&st, Question::Events(q)).await {
            Ok(nodes) => HttpResponse::Ok().json(ClusterEvents {
                nodes: nodes
                    .into_iter()
                    .map(|n| {
                        n.pick(|r| match r {
                            Reply::Events(e) => Some(e),
                            _ => None,
                        })
                    })
                    .collect(),
            }),
            Err(e) => e,
        };
    }
    match st.events(&q) {
        Ok(events) => HttpResponse::Ok().json(Events { events }),
        Err(e) => HttpResponse::BadRequest().json(e),
    }
}

/// Asks every alive node of the cluster through [`Control::gather`].
async fn gather(st: &AdminState, q: Question) -> Result<Vec<FromNode<Reply>>, HttpResponse> {
    let Some(control) = &st.control else {
        return Err(no_control());
    };
    control
        .gather(q)
        .await
        .map_err(|e| HttpResponse::Conflict().json(e))
}

async fn log_level(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    match crate::telemetry::federation_level() {
        Ok((level, filter)) => HttpResponse::Ok().json(LogLevel {
            target: crate::telemetry::FEDERATION_TARGET.to_owned(),
            federation: level.unwrap_or_else(|| "default".into()),
            filter,
        }),
        Err(e) => HttpResponse::ServiceUnavailable().json(Refusal::new(e.to_string())),
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
            HttpResponse::Ok().json(LogLevel {
                target: crate::telemetry::FEDERATION_TARGET.to_owned(),
                federation: level.to_ascii_lowercase(),
                filter,
            })
        }
        Err(e @ crate::telemetry::LevelError::BadLevel(_)) => {
            HttpResponse::BadRequest().json(Refusal::new(e.to_string()))
        }
        Err(e) => HttpResponse::ServiceUnavailable().json(Refusal::new(e.to_string())),
    }
}

fn no_control() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .json(Refusal::new("this node runs without a restart scheduler"))
}

async fn reload(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let Some(control) = &st.control else {
        return no_control();
    };
    match control.reload().await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::UnprocessableEntity().json(e),
    }
}

async fn restart(
    req: HttpRequest,
    st: web::Data<AdminState>,
    q: web::Query<RestartQuery>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let Some(control) = &st.control else {
        return no_control();
    };
    match control.restart(q.into_inner()).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::Conflict().json(e),
    }
}
