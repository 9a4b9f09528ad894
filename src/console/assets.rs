//! The stylesheet and the script, embedded in the binary: no build step, no CDN.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::secured;

const CSS: &str = include_str!("assets/console.css");
/// The script in three parts, loaded in this order: helpers, a cluster's views, the pages.
const COMMON_JS: &str = include_str!("assets/common.js");
const CLUSTER_JS: &str = include_str!("assets/cluster.js");
const JS: &str = include_str!("assets/console.js");

pub(super) async fn asset(file: web::Path<String>) -> HttpResponse {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "common.js" => (COMMON_JS, "text/javascript; charset=utf-8"),
        "cluster.js" => (CLUSTER_JS, "text/javascript; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return secured(HttpResponse::NotFound()).finish(),
    };
    secured(HttpResponse::Ok())
        .insert_header((header::CONTENT_TYPE, kind))
        .body(body)
}
