//! What the console's script polls (`GET /console/data/…`, JSON of [`crate::model`]) and the
//! actions it posts (`POST /console/action/…`, each with the session's CSRF token): the
//! admin API's own views, behind the session instead of the bearer token.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{secured, Console};
use crate::admin::{answer, status_of, AdminState, ViewError};
use crate::model::{ConnectionsQuery, EventsQuery, Refusal, RestartQuery, Status};

/// `GET /console/data/status`: the status, with what the charts sample (the cluster
/// view, when in one, is the status's `cluster`).
#[derive(Serialize)]
struct Overview {
    status: Status,
    /// Since this node started.
    uptime_secs: u64,
    /// s2s streams open now.
    streams: usize,
    /// Stanzas in and out over the streams open now (the script charts the difference
    /// between two samples, clamped at zero when streams close).
    stanzas: u64,
}

/// `answer` with the console's security headers.
fn hardened(mut resp: HttpResponse) -> HttpResponse {
    let probe = secured(HttpResponse::Ok()).finish();
    for (name, value) in probe.headers() {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

fn json<T: Serialize>(view: Result<T, ViewError>) -> HttpResponse {
    hardened(answer(view))
}

fn signed_out() -> HttpResponse {
    secured(HttpResponse::Unauthorized()).json(Refusal::new("sign in first"))
}

pub(super) async fn status(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
) -> HttpResponse {
    if console.signed(&req).is_none() {
        return signed_out();
    }
    let (stanzas, streams) = super::history::reading(&admin);
    json(Ok(Overview {
        status: status_of(&admin).await,
        uptime_secs: console.started.elapsed().as_secs(),
        streams,
        stanzas,
    }))
}

/// `GET /console/data/history`: the charts' samples of the last minutes.
pub(super) async fn history(req: HttpRequest, console: web::Data<Console>) -> HttpResponse {
    if console.signed(&req).is_none() {
        return signed_out();
    }
    json(Ok(console.history.samples(super::history::now_ms())))
}

pub(super) async fn connections(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
    filter: web::Query<ConnectionsQuery>,
) -> HttpResponse {
    if console.signed(&req).is_none() {
        return signed_out();
    }
    let filter = filter.into_inner();
    if filter.cluster {
        return json(admin.cluster_connections(filter).await);
    }
    json(admin.connections(&filter))
}

pub(super) async fn events(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
    filter: web::Query<EventsQuery>,
) -> HttpResponse {
    if console.signed(&req).is_none() {
        return signed_out();
    }
    let filter = filter.into_inner();
    if filter.cluster {
        return json(admin.cluster_events(filter).await);
    }
    json(admin.events(&filter))
}

pub(super) async fn log_level(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
) -> HttpResponse {
    if console.signed(&req).is_none() {
        return signed_out();
    }
    json(admin.log_level())
}

pub(super) async fn close(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
    id: web::Path<u64>,
) -> HttpResponse {
    if let Err(refused) = console.post(&req, None) {
        return refused.answer();
    }
    tracing::info!(stream = *id, "console: closing a stream");
    json(admin.close(*id))
}

pub(super) async fn set_log_level(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
    level: web::Path<String>,
) -> HttpResponse {
    if let Err(refused) = console.post(&req, None) {
        return refused.answer();
    }
    json(admin.set_log_level(&level))
}

fn no_control() -> HttpResponse {
    secured(HttpResponse::ServiceUnavailable())
        .json(Refusal::new("this node runs without a restart scheduler"))
}

pub(super) async fn reload(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
) -> HttpResponse {
    if let Err(refused) = console.post(&req, None) {
        return refused.answer();
    }
    let Some(control) = &admin.control else {
        return no_control();
    };
    tracing::info!("console: reload");
    match control.reload().await {
        Ok(v) => secured(HttpResponse::Ok()).json(v),
        Err(e) => secured(HttpResponse::UnprocessableEntity()).json(e),
    }
}

pub(super) async fn restart(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
    q: web::Query<RestartQuery>,
) -> HttpResponse {
    if let Err(refused) = console.post(&req, None) {
        return refused.answer();
    }
    let Some(control) = &admin.control else {
        return no_control();
    };
    let q = q.into_inner();
    tracing::info!(tenant = ?q.tenant, dry_run = q.dry_run, "console: restart");
    match control.restart(q).await {
        Ok(v) => secured(HttpResponse::Ok()).json(v),
        Err(e) => secured(HttpResponse::Conflict()).json(e),
    }
}
