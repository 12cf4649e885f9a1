//! Sign in and sign out. The session cookie is HttpOnly, SameSite=Lax, and Secure when the
//! request came over TLS; failed sign-ins count against the same limiter as the API's.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use sqlx::SqlitePool;

use crate::auth::{LoginLimiter, password, session};
use crate::catalog;
use crate::domain::UserName;
use crate::web::{WebCaller, WebError};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct SignIn {
    user: String,
    password: String,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct SignOut {
    #[serde(default)]
    csrf: String,
}

/// Only local paths: a `next` that leads off-site would make the sign-in page an open redirect.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn page(status: actix_web::http::StatusCode, next: String, error: Option<String>) -> Result<HttpResponse, WebError> {
    let body = LoginPage { next, error }.render().map_err(crate::error::ApiError::internal)?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body))
}

pub async fn show(query: web::Query<NextQuery>) -> Result<HttpResponse, WebError> {
    page(actix_web::http::StatusCode::OK, safe_next(query.next.as_deref()), None)
}

pub async fn sign_in(
    pool: web::Data<SqlitePool>,
    limiter: web::Data<LoginLimiter>,
    req: HttpRequest,
    form: web::Form<SignIn>,
) -> Result<HttpResponse, WebError> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let remote = req.peer_addr().map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    let keys = vec![format!("user:{}", form.user), format!("addr:{remote}")];
    if let Err(e) = limiter.check(&keys) {
        return page(actix_web::http::StatusCode::TOO_MANY_REQUESTS, next, Some(e.to_string()));
    }
    let found = match UserName::parse(form.user.trim()) {
        Ok(name) => catalog::users::credentials(&pool, &name).await?,
        Err(_) => None,
    };
    let verified = match found {
        Some((user, hash)) => password::verify(form.password, hash).await.then_some(user),
        None => None,
    };
    let user = match verified {
        Some(user) => user,
        None => {
            limiter.record_failure(&keys);
            let refused = Some("Unknown user or wrong password.".to_owned());
            return page(actix_web::http::StatusCode::UNAUTHORIZED, next, refused);
        }
    };
    if user.disabled {
        return page(actix_web::http::StatusCode::FORBIDDEN, next, Some("This user is disabled; ask an admin.".into()));
    }
    let value = session::start(&pool, user.id).await?;
    let cookie = Cookie::build(session::COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(req.connection_info().scheme() == "https")
        .max_age(CookieDuration::seconds(session::LIFETIME_SECS))
        .finish();
    Ok(HttpResponse::SeeOther().cookie(cookie).insert_header((header::LOCATION, next)).finish())
}

pub async fn sign_out(
    pool: web::Data<SqlitePool>,
    caller: WebCaller,
    req: HttpRequest,
    form: web::Form<SignOut>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    if let Some(cookie) = req.cookie(session::COOKIE) {
        session::end(&pool, cookie.value()).await?;
    }
    let mut gone = Cookie::build(session::COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther().cookie(gone).insert_header((header::LOCATION, "/login")).finish())
}
