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
//! Reloads and restarts go to the node through [`Control`]. The same listener serves the
//! web console (`crate::console`), which the node mounts through [`start`]'s `mount`; on an
//! address that is not loopback it also speaks TLS, for the console ([`front`]).

pub mod client;
mod control;
mod front;
mod metrics;
mod status;
mod table;
mod tables;
mod views;

pub use control::{Answer, Control, Schedule};
pub use front::over_tls;
pub use status::status_of;
pub use views::ViewError;

use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::model::{ConnectionsQuery, EventsQuery, Refusal, RestartQuery, StreamRow};
use crate::observe::Observer;
use crate::routing::TenantSlot;
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

/// Connections the admin API holds at once; more wait in the listen backlog.
const ADMIN_MAX_CONNECTIONS: usize = 256;

/// The running admin listener.
pub struct AdminServer {
    handle: actix_web::dev::ServerHandle,
    /// The TLS front's accept loop, when the listener is not loopback ([`front`]); aborted
    /// at stop, so that the address is free again for a node started anew.
    front: Option<tokio::task::JoinHandle<()>>,
}

impl AdminServer {
    /// Stops taking connections and ends the server (gracefully: requests in flight finish).
    pub async fn stop(&self) {
        if let Some(front) = &self.front {
            front.abort();
        }
        self.handle.stop(true).await;
    }
}

/// Starts the admin API on `listener` (on the current actix system); `mount` adds more
/// routes to the same App (the node passes the web console's), which find the
/// [`AdminState`] as `web::Data<AdminState>`. With `tls`, connections that open with a TLS
/// handshake are served over TLS with it, the others over plain HTTP ([`front`]).
pub fn start<M>(
    listener: std::net::TcpListener,
    state: Arc<AdminState>,
    mount: M,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<AdminServer>
where
    M: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let data = web::Data::from(state);
    // With TLS: the public listener goes to the front, the server listens on two loopback
    // ports behind it, one per kind of connection.
    let (listeners, tls_back, front) = match tls {
        None => (vec![listener], None, None),
        Some(tls) => {
            let plain = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            let ended = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            let (plain_addr, ended_addr) = (plain.local_addr()?, ended.local_addr()?);
            listener.set_nonblocking(true)?;
            let public = tokio::net::TcpListener::from_std(listener)?;
            let front = actix_rt::spawn(front::serve(public, tls, ended_addr, plain_addr));
            (
                vec![plain, ended],
                Some(web::Data::new(front::TlsBack(ended_addr))),
                Some(front),
            )
        }
    };
    let mut server = HttpServer::new(move || {
        let app = App::new().app_data(data.clone());
        let app = match &tls_back {
            Some(back) => app.app_data(back.clone()),
            None => app,
        };
        app.route("/api/status", web::get().to(status::status))
            .route("/api/connections", web::get().to(connections))
            .route("/api/connections/{id}/close", web::post().to(close))
            .route("/api/events", web::get().to(events))
            .route("/api/log-level", web::get().to(log_level))
            .route("/api/log-level/{level}", web::post().to(set_log_level))
            .route("/metrics", web::get().to(metrics::metrics))
            .route("/api/reload", web::post().to(reload))
            .route("/api/restart", web::post().to(restart))
            .route("/api/drain", web::post().to(drain))
            .configure(mount.clone())
    })
    .workers(1)
    // Operators and a Prometheus scraper need a handful; a flood cannot hold more than this
    // (the listener is loopback by default and every request needs the token).
    .max_connections(ADMIN_MAX_CONNECTIONS)
    .client_request_timeout(std::time::Duration::from_secs(10))
    .disable_signals();
    for l in listeners {
        server = server.listen(l)?;
    }
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(AdminServer { handle, front })
}

/// The HTTP answer to a view: 200 with the value, or the refusal with its status.
pub fn answer<T: serde::Serialize>(view: Result<T, ViewError>) -> HttpResponse {
    match view {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(ViewError::NotFound(r)) => HttpResponse::NotFound().json(r),
        Err(ViewError::BadRequest(r)) => HttpResponse::BadRequest().json(r),
        Err(ViewError::Unavailable(r)) => HttpResponse::ServiceUnavailable().json(r),
        Err(ViewError::Conflict(r)) => HttpResponse::Conflict().json(r),
    }
}

async fn connections(
    req: HttpRequest,
    st: web::Data<AdminState>,
    filter: web::Query<ConnectionsQuery>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let q = filter.into_inner();
    if q.cluster {
        return answer(st.cluster_connections(q).await);
    }
    answer(st.connections(&q))
}

async fn close(req: HttpRequest, st: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    answer(st.close(*id))
}

async fn events(
    req: HttpRequest,
    st: web::Data<AdminState>,
    filter: web::Query<EventsQuery>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let q = filter.into_inner();
    if q.cluster {
        return answer(st.cluster_events(q).await);
    }
    answer(st.events(&q))
}

async fn log_level(req: HttpRequest, st: web::Data<AdminState>) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    answer(st.log_level())
}

async fn set_log_level(
    req: HttpRequest,
    st: web::Data<AdminState>,
    level: web::Path<String>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    answer(st.set_log_level(&level))
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

/// `POST /api/drain[?node=N]`: takes a node out of service; answers once it is idle (or
/// gave up waiting, saying what is left).
async fn drain(
    req: HttpRequest,
    st: web::Data<AdminState>,
    q: web::Query<crate::model::DrainQuery>,
) -> HttpResponse {
    if let Some(refused) = st.refuse(&req) {
        return refused;
    }
    let Some(control) = &st.control else {
        return no_control();
    };
    match control.drain(q.into_inner()).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(e) => HttpResponse::Conflict().json(e),
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
