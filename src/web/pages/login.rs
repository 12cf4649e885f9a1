//! Sign in and sign out. The session cookie is HttpOnly, SameSite=Lax, and Secure when the
//! request came over TLS; failed sign-ins count against the same limiter as the API's. The
//! form is refused when a browser says it was posted from another site (login CSRF), and
//! `next` is refused unless it is a path on this site (open redirect).

use crate::catalog::Db;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::login::{self, LoginError};
use crate::auth::{LoginLimiter, session};
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

/// Where to go after signing in: a path on this site, or 400. A browser ignores tabs and
/// newlines in a URL and reads `\` as `/`, so `/\t/evil.example` would lead off-site.
fn local_next(next: Option<&str>) -> Result<String, WebError> {
    let Some(next) = next else { return Ok("/".to_owned()) };
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    if local {
        Ok(next.to_owned())
    } else {
        Err(WebError::Page {
            status: StatusCode::BAD_REQUEST,
            message: "`next` must be a path on this site: it starts with one `/` and holds no `\\`, spaces or control characters".into(),
        })
    }
}

/// Whether a form post came from this site: a browser names the page's origin in `Origin`
/// (and says `Sec-Fetch-Site`) on every form post, so a post from another site's page is
/// told apart; clients that send neither (scripts) are not browsers acting for someone.
fn same_origin(req: &HttpRequest) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    // The request's own Host header: actix's connection info would also believe
    // X-Forwarded-Host and Forwarded from any client. A reverse proxy passes Host on, port
    // included (`proxy_set_header Host $http_host`, as the README's example does; `$host`
    // drops the port); HTTP/2 names it in the request's authority instead.
    let uri = req.uri();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| uri.authority().map(|a| a.as_str()));
    let Some(host) = host else { return false };
    origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .and_then(|o| o.host_str().map(|h| o.port().map_or_else(|| h.to_owned(), |p| format!("{h}:{p}"))))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

fn page(status: StatusCode, next: String, error: Option<String>) -> Result<HttpResponse, WebError> {
    let body = LoginPage { next, error }.render().map_err(crate::error::ApiError::internal)?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body))
}

pub async fn show(query: web::Query<NextQuery>) -> Result<HttpResponse, WebError> {
    page(StatusCode::OK, local_next(query.next.as_deref())?, None)
}

pub async fn sign_in(
    pool: web::Data<Db>,
    limiter: web::Data<LoginLimiter>,
    req: HttpRequest,
    form: web::Form<SignIn>,
) -> Result<HttpResponse, WebError> {
    if !same_origin(&req) {
        return Err(WebError::forbidden("this sign-in form was sent from another site; sign in on Hangar's own page"));
    }
    let form = form.into_inner();
    let next = local_next(form.next.as_deref())?;
    let origin = crate::forwarded::client_origin(&req);
    let remote = origin.addr_string().unwrap_or_else(|| "unknown".to_owned());
    let user = match login::sign_in(&pool, &limiter, &form.user, form.password, &remote).await {
        Ok(user) => user,
        Err(LoginError::Limited(e)) => return page(StatusCode::TOO_MANY_REQUESTS, next, Some(e.to_string())),
        Err(LoginError::Refused) => {
            return page(StatusCode::UNAUTHORIZED, next, Some("Unknown user or wrong password.".to_owned()));
        }
        Err(LoginError::Disabled(_)) => {
            return page(StatusCode::FORBIDDEN, next, Some("This user is disabled; ask an admin.".into()));
        }
        Err(LoginError::Catalog(e)) => return Err(e.into()),
    };
    let value = session::start(&pool, user.id).await?;
    let cookie = Cookie::build(session::COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(origin.https)
        .max_age(CookieDuration::seconds(session::LIFETIME_SECS))
        .finish();
    Ok(HttpResponse::SeeOther().cookie(cookie).insert_header((header::LOCATION, next)).finish())
}

pub async fn sign_out(
    pool: web::Data<Db>,
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
