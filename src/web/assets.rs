//! The dashboard's CSS and JavaScript, embedded in the binary.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const CSS: &str = include_str!("../../templates/static/app.css");
const JS: &str = include_str!("../../templates/static/app.js");

pub async fn asset(file: web::Path<String>) -> HttpResponse {
    let (body, content_type) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().content_type("text/plain").body("no such file"),
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}
