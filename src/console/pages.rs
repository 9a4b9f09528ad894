//! The console's pages, made on the server: what is read-only (tenants) whole, what is
//! live (status, connections, events, staged changes) as a frame the script fills from
//! [`super::data`] every two seconds.

use std::fmt::Write;

use actix_web::{web, HttpRequest, HttpResponse};

use super::html::{esc, layout, table, PAGES};
use super::{secured, see_other, Console};
use crate::admin::{status_of, AdminState};
use crate::model::ConnectionsQuery;

pub(super) async fn page(
    req: HttpRequest,
    console: web::Data<Console>,
    admin: web::Data<AdminState>,
    name: web::Path<String>,
) -> HttpResponse {
    let Some(signed) = console.signed(&req) else {
        return see_other("/console/login");
    };
    let cluster = match &admin.control {
        Some(control) => control.cluster().await.is_some(),
        None => false,
    };
    let body = match name.as_str() {
        "status" => status(),
        "tenants" => tenants(&admin).await,
        "connections" => connections(&admin, cluster),
        "events" => events(&admin, cluster),
        "changes" => changes(&admin, cluster),
        "log-level" => log_level(&admin),
        _ => {
            return secured(HttpResponse::NotFound())
                .content_type("text/plain; charset=utf-8")
                .body(format!(
                    "no such page; the console has {}\n",
                    PAGES.map(|(p, _)| p).join(", ")
                ))
        }
    };
    secured(HttpResponse::Ok())
        .content_type("text/html; charset=utf-8")
        .body(layout(&name, &admin.node_name, &signed.csrf, &body))
}

fn status() -> String {
    "<section id=\"federation\" class=\"reach\"><p>loading…</p></section>\
     <dl id=\"node\"></dl>\
     <div class=\"charts\">\
     <figure><figcaption>Stanzas per second (s2s, last 10 minutes)</figcaption>\
     <svg id=\"chart-stanzas\" viewBox=\"0 0 300 60\" preserveAspectRatio=\"none\"></svg></figure>\
     <figure><figcaption>Open s2s streams (last 10 minutes)</figcaption>\
     <svg id=\"chart-streams\" viewBox=\"0 0 300 60\" preserveAspectRatio=\"none\"></svg></figure></div>\
     <h2>Tenants</h2><div id=\"reach\"></div>\
     <h2>Restart schedule</h2><dl id=\"schedule\"></dl><div id=\"stale\"></div>\
     <div id=\"cluster\"></div>"
        .to_owned()
}

/// `<select>` options: "any" then each tenant (names escaped).
fn tenant_options(admin: &AdminState, any: &str) -> String {
    let mut s = format!("<option value=\"\">{}</option>", esc(any));
    for (_, slot) in admin.tenants.load().iter() {
        let _ = write!(s, "<option>{}</option>", esc(&slot.name));
    }
    s
}

async fn tenants(admin: &AdminState) -> String {
    let status = status_of(admin).await;
    let mut s = String::new();
    for t in &status.tenants {
        let slot = admin
            .tenants
            .load()
            .iter()
            .find(|(_, s)| s.name == t.name)
            .map(|(_, s)| s.clone());
        let Some(slot) = slot else { continue };
        let view = slot.view();
        let c = &view.config;
        let list = |l: &std::collections::BTreeSet<String>| {
            if l.is_empty() {
                "(none)".to_owned()
            } else {
                l.iter().cloned().collect::<Vec<_>>().join(", ")
            }
        };
        let routes: Vec<Vec<String>> = c
            .static_routes
            .routes
            .iter()
            .map(|(d, targets)| {
                vec![
                    d.clone(),
                    targets
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect();
        let links: Vec<Vec<String>> = t
            .links
            .iter()
            .map(|l| {
                vec![
                    l.id.to_string(),
                    l.peer.to_string(),
                    l.since.map_or_else(
                        || "unknown".into(),
                        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ),
                    l.stanzas_out.to_string(),
                    l.queued_bytes.to_string(),
                ]
            })
            .collect();
        let failures: Vec<Vec<String>> = admin
            .connections(&ConnectionsQuery {
                tenant: Some(t.name.clone()),
                ..ConnectionsQuery::default()
            })
            .map(|c| c.failures)
            .unwrap_or_default()
            .into_iter()
            .map(|f| {
                vec![
                    f.at.to_rfc3339(),
                    format!("{} → {}", f.local, f.remote),
                    f.condition,
                    f.reason,
                ]
            })
            .collect();
        let _ = write!(
            s,
            "<section class=\"tenant\" id=\"tenant-{name}\"><h2>{name}</h2><dl>\
             <dt>Federation</dt><dd class=\"{state}\">{state}: {why}</dd>\
             <dt>Version</dt><dd>{version} ({vstate}, latest {latest})</dd>\
             <dt>Domains</dt><dd>{domains}</dd>\
             <dt>Aliases</dt><dd>{aliases}</dd>\
             <dt>Privacy</dt><dd>{privacy}</dd>\
             <dt>Allow list</dt><dd>{allow}</dd>\
             <dt>Deny list</dt><dd>{deny}</dd>\
             <dt>Static routes</dt><dd>{routing}</dd>\
             <dt>s2s streams</dt><dd>{sin} in, {sout} out</dd></dl>",
            name = esc(&t.name),
            state = esc(t.federation.state.as_str()),
            why = esc(&t.federation.why),
            version = t.version,
            vstate = esc(t.state.as_str()),
            latest = t.latest_version,
            domains = esc(&t.domains.join(", ")),
            aliases = esc(&if t.chat_node_aliases.is_empty() {
                "(none)".to_owned()
            } else {
                t.chat_node_aliases.join(", ")
            }),
            privacy = esc(&t.privacy),
            allow = esc(&list(&c.privacy.allow)),
            deny = esc(&list(&c.privacy.deny)),
            routing = if c.static_routes.enabled {
                "enabled"
            } else {
                "disabled"
            },
            sin = t.streams_in,
            sout = t.streams_out,
        );
        s.push_str(&table(
            &format!("routes-{}", t.name),
            &["REMOTE DOMAIN", "TARGETS"],
            &routes,
            "no static routes",
        ));
        s.push_str("<h3>Component links</h3>");
        s.push_str(&table(
            &format!("links-{}", t.name),
            &["LINK", "PEER", "UP SINCE", "STANZAS OUT", "QUEUED BYTES"],
            &links,
            "no link up",
        ));
        s.push_str("<h3>Last failures</h3>");
        s.push_str(&table(
            &format!("failures-{}", t.name),
            &["AT", "PAIR", "CONDITION", "REASON"],
            &failures,
            "none",
        ));
        s.push_str("</section>");
    }
    s
}

/// The "this node / whole cluster" switch, for a node in a cluster.
fn scope(cluster: bool) -> &'static str {
    if cluster {
        "<label>Show <select id=\"f-scope\"><option value=\"\">this node</option>\
         <option value=\"cluster\">whole cluster</option></select></label>"
    } else {
        ""
    }
}

fn connections(admin: &AdminState, cluster: bool) -> String {
    format!(
        "<form class=\"filters\" id=\"filters\">{}\
         <label>Tenant <select id=\"f-tenant\">{}</select></label>\
         <label>Domain <input id=\"f-domain\" placeholder=\"any\"></label>\
         <label>Direction <select id=\"f-direction\"><option value=\"\">any</option>\
         <option>incoming</option><option>outgoing</option></select></label></form>\
         <p id=\"outcome\" class=\"outcome\" role=\"status\"></p>\
         <div id=\"unanswered\"></div>\
         <div id=\"connections\"><p>loading…</p></div>\
         <h2>Last failure per domain pair</h2><div id=\"failures\"></div>",
        scope(cluster),
        tenant_options(admin, "any")
    )
}

fn events(admin: &AdminState, cluster: bool) -> String {
    format!(
        "<form class=\"filters\" id=\"filters\">{}\
         <label>Tenant <select id=\"f-tenant\">{}</select></label>\
         <label>Kind <input id=\"f-kind\" placeholder=\"any, e.g. stream_closed\"></label>\
         <label>Since <select id=\"f-since\"><option value=\"\">the start of the log</option>\
         <option value=\"5\">5 minutes</option><option value=\"60\">1 hour</option>\
         <option value=\"1440\">1 day</option></select></label></form>\
         <div id=\"unanswered\"></div>\
         <div id=\"events\"><p>loading…</p></div>",
        scope(cluster),
        tenant_options(admin, "any")
    )
}

fn changes(admin: &AdminState, cluster: bool) -> String {
    let rollouts = if cluster {
        "<h2>Rolling restart</h2><div id=\"rollout\"><p>loading…</p></div>"
    } else {
        ""
    };
    let control = if admin.control.is_some() {
        ""
    } else {
        "<p class=\"problem\">This node runs without a restart scheduler: reload and restart are unavailable.</p>"
    };
    format!(
        "{control}<dl id=\"schedule\"></dl>\
         <h2>Staged</h2><div id=\"stale\"><p>loading…</p></div>\
         <h2>Act</h2><form class=\"actions\" id=\"actions\">\
         <label>Tenant <select id=\"a-tenant\">{}</select></label>\
         <button type=\"button\" id=\"dry-run\">Dry run</button>\
         <button type=\"button\" id=\"restart\" class=\"danger\">Restart stale</button>\
         <button type=\"button\" id=\"reload\">Reload configuration</button></form>\
         <h2>Outcome</h2><div id=\"outcome\" class=\"outcome\" role=\"status\">\
         <p>Nothing done yet on this page.</p></div>{rollouts}",
        tenant_options(admin, "all stale instances")
    )
}

fn log_level(admin: &AdminState) -> String {
    let current = admin.log_level().ok().map(|l| l.federation);
    let now = match admin.log_level() {
        Ok(l) => format!(
            "<p>Target <code>{}</code>: <strong id=\"level\">{}</strong> (filter <code id=\"filter\">{}</code>)</p>",
            esc(&l.target),
            esc(&l.federation),
            esc(&l.filter)
        ),
        Err(e) => format!(
            "<p class=\"problem\" id=\"level\">{}</p>",
            esc(&e.refusal().error)
        ),
    };
    let mut options = String::new();
    for l in ["default", "error", "warn", "info", "debug", "trace"] {
        let selected = if current.as_deref() == Some(l) {
            " selected"
        } else {
            ""
        };
        let _ = write!(options, "<option{selected}>{l}</option>");
    }
    format!(
        "{now}<form class=\"actions\" id=\"level-form\"><label>Federation log level \
         <select id=\"l-level\">{options}</select></label>\
         <button type=\"button\" id=\"set-level\">Set</button></form>\
         <p id=\"outcome\" class=\"outcome\" role=\"status\"></p>"
    )
}
