//! The operator's web console on the admin listener, beside the admin API (`/console/…`):
//! server-rendered pages with one small script that polls JSON for what is live (see
//! docs/CONSOLE.md). It reads the node through [`crate::admin`]'s views, so it shows what
//! the API and the `xfed` subcommands show.
//!
//! - [`session`]: sign-in by the admin token, session cookies, CSRF tokens;
//! - [`html`]: escaping and the pages' frame;
//! - [`pages`]: the pages;
//! - [`data`]: the JSON the script polls, and the actions it posts;
//! - [`history`]: the charts' samples of the last minutes, kept by a sampler task;
//! - [`assets`]: the stylesheet and the script, embedded in the binary.
//!
//! Safe to expose: every action is a POST carrying the session's CSRF token (and a matching
//! `Origin` when the browser sends one); every answer has a Content-Security-Policy without
//! inline script; every string from the network is escaped on the server or set as text by
//! the script. The session cookie must not travel in clear, so on an admin listener that is
//! not loopback the console is served over HTTPS only (the admin listener ends TLS there,
//! see [`crate::admin::over_tls`]), its cookie `Secure`, and plain HTTP is refused (the API
//! is unchanged).

mod assets;
mod data;
pub mod history;
pub mod html;
mod pages;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::admin::{over_tls, AdminState};
use history::History;
use session::{Opened, Sessions, COOKIE};

/// What the console keeps besides the admin API's state.
pub struct Console {
    /// Signed-in browsers.
    sessions: Sessions,
    /// When this node started, for its uptime.
    started: Instant,
    /// The admin listener is on loopback: plain HTTP is served. Elsewhere only requests
    /// that came over TLS are.
    loopback: bool,
    /// The charts' last minutes, filled by the [`Sampler`].
    history: Arc<History>,
}

/// The task that samples the node for the charts: it runs as long as the admin server
/// does, and ends when stopped or dropped.
pub struct Sampler(tokio::task::JoinHandle<()>);

impl Sampler {
    pub fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The headers of every console answer: no script but ours, no framing, nothing cached.
/// (The referrer policy is `same-origin`, not `no-referrer`: under the latter a browser
/// sends `Origin: null` with the console's own POSTs, which [`same_origin`] refuses.)
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The routes of the console for an admin listener on `addr`, to pass to
/// [`crate::admin::start`], and its sampler of `admin` (started here, on the current
/// runtime), to stop with the server.
pub fn mount(
    addr: SocketAddr,
    admin: Arc<AdminState>,
) -> (
    impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    Sampler,
) {
    let history = Arc::new(History::new(history::CAPACITY));
    let sampler = Sampler(actix_rt::spawn(history::sample(history.clone(), admin)));
    let console = web::Data::new(Console {
        sessions: Sessions::new(session::IDLE, session::ABSOLUTE),
        started: Instant::now(),
        loopback: addr.ip().is_loopback(),
        history,
    });
    let routes = move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(console.clone())
            .route("/", web::get().to(to_console))
            .route("/console", web::get().to(to_console))
            .route("/console/", web::get().to(to_console))
            .route("/console/login", web::get().to(login_page))
            .route("/console/login", web::post().to(login))
            .route("/console/logout", web::post().to(logout))
            .route("/console/assets/{file}", web::get().to(assets::asset))
            .route("/console/data/status", web::get().to(data::status))
            .route("/console/data/history", web::get().to(data::history))
            .route(
                "/console/data/connections",
                web::get().to(data::connections),
            )
            .route("/console/data/events", web::get().to(data::events))
            .route("/console/data/log-level", web::get().to(data::log_level))
            .route("/console/action/close/{id}", web::post().to(data::close))
            .route("/console/action/reload", web::post().to(data::reload))
            .route("/console/action/restart", web::post().to(data::restart))
            .route(
                "/console/action/log-level/{level}",
                web::post().to(data::set_log_level),
            )
            .route("/console/{page}", web::get().to(pages::page));
    };
    (routes, sampler)
}

/// An answer with the console's security headers.
fn secured(mut b: HttpResponseBuilder) -> HttpResponseBuilder {
    b.insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

fn see_other(to: &str) -> HttpResponse {
    secured(HttpResponse::SeeOther())
        .insert_header((header::LOCATION, to))
        .finish()
}

async fn to_console(req: HttpRequest, console: web::Data<Console>) -> HttpResponse {
    if let Some(refused) = console.plain_refused(&req) {
        return refused;
    }
    see_other("/console/status")
}

/// A signed-in request: its session id and CSRF token.
struct Signed {
    id: String,
    csrf: String,
}

impl Console {
    /// The 403 for a request in plain HTTP to a listener that is not loopback.
    fn plain_refused(&self, req: &HttpRequest) -> Option<HttpResponse> {
        (!self.loopback && !over_tls(req)).then(|| {
            secured(HttpResponse::Forbidden())
                .content_type("text/plain; charset=utf-8")
                .body("The web console is served over HTTPS only on this address: open it with https://.\n")
        })
    }

    /// `https` when the request came over TLS.
    fn scheme(req: &HttpRequest) -> &'static str {
        if over_tls(req) {
            "https"
        } else {
            "http"
        }
    }

    /// The request's session, if it has one that is open (never over plain HTTP where
    /// that is refused).
    fn signed(&self, req: &HttpRequest) -> Option<Signed> {
        if !self.loopback && !over_tls(req) {
            return None;
        }
        let id = session_cookie(req)?;
        let csrf = self.sessions.check(&id, Instant::now())?;
        Some(Signed { id, csrf })
    }

    /// A POST of a signed-in session carrying its CSRF token (`offered`, from the form or
    /// the `X-CSRF-Token` header), from a page of this console: else why not.
    fn post(&self, req: &HttpRequest, offered: Option<&str>) -> Result<Signed, Refused> {
        let signed = self.signed(req).ok_or(Refused::SignedOut)?;
        let offered = offered
            .map(str::to_owned)
            .or_else(|| header_text(req, "x-csrf-token"))
            .unwrap_or_default();
        if !session::same(&offered, &signed.csrf) || !same_origin(req) {
            return Err(Refused::Forged);
        }
        Ok(signed)
    }
}

/// Why a POST was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// No open session (401).
    SignedOut,
    /// No valid CSRF token, or from another origin (403).
    Forged,
}

impl Refused {
    fn answer(self) -> HttpResponse {
        match self {
            Refused::SignedOut => secured(HttpResponse::Unauthorized()).body("sign in first\n"),
            Refused::Forged => secured(HttpResponse::Forbidden())
                .body("refused: no valid CSRF token, or another origin\n"),
        }
    }
}

/// The value of our cookie in the request's `Cookie` headers (actix-web's cookie feature
/// is off: this is all the parsing the console needs).
fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

fn header_text(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// No `Origin` (an older browser, or a same-origin GET-made form), or this very origin.
fn same_origin(req: &HttpRequest) -> bool {
    match header_text(req, "origin") {
        None => true,
        Some(origin) => {
            let info = req.connection_info();
            origin == format!("{}://{}", Console::scheme(req), info.host())
        }
    }
}

/// The session cookie: `value` for `max_age` seconds (0 clears it); `Secure` when the
/// request came over HTTPS.
fn cookie(req: &HttpRequest, value: &str, max_age: u64) -> String {
    let secure = if Console::scheme(req) == "https" {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

async fn login_page(req: HttpRequest, console: web::Data<Console>) -> HttpResponse {
    if let Some(refused) = console.plain_refused(&req) {
        return refused;
    }
    if console.signed(&req).is_some() {
        return see_other("/console/status");
    }
    secured(HttpResponse::Ok())
        .content_type("text/html; charset=utf-8")
        .body(html::login(None))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if let Some(refused) = console.plain_refused(&req) {
        return refused;
    }
    let token = form.token.trim();
    if !same_origin(&req) || !session::same(token, admin.token.expose()) {
        tracing::info!(peer = ?req.peer_addr(), "console sign-in refused");
        return secured(HttpResponse::Unauthorized())
            .content_type("text/html; charset=utf-8")
            .body(html::login(Some("That is not the admin token.")));
    }
    let Opened { id, .. } = console.sessions.open(Instant::now());
    let max_age = console.sessions.max_age().as_secs();
    secured(HttpResponse::SeeOther())
        .insert_header((header::SET_COOKIE, cookie(&req, &id, max_age)))
        .insert_header((header::LOCATION, "/console/status"))
        .finish()
}

#[derive(serde::Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    req: HttpRequest,
    console: web::Data<Console>,
    form: web::Form<LogoutForm>,
) -> HttpResponse {
    let signed = match console.post(&req, Some(&form.csrf)) {
        Ok(s) => s,
        Err(refused) => return refused.answer(),
    };
    console.sessions.close(&signed.id);
    secured(HttpResponse::SeeOther())
        .insert_header((header::SET_COOKIE, cookie(&req, "", 0)))
        .insert_header((header::LOCATION, "/console/login"))
        .finish()
}
