//! API tokens: create one (its secret is shown once, with a copy button), list, revoke.

use crate::catalog::Db;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Notice;
use crate::auth::Authenticator;
use crate::auth::issue::TokenRequest;
use crate::domain::Role;
use crate::error::ApiError;
use crate::ops;
use crate::web::error::encode_query;
use crate::web::{Frame, WebCaller, WebError};

pub struct TokenRow {
    id: i64,
    user: String,
    name: String,
    prefix: String,
    role: String,
    models: String,
    expires: String,
    last_used: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    frame: Frame,
    notice: Option<String>,
    /// The secret of a token just created: shown this once.
    secret: Option<String>,
    tokens: Vec<TokenRow>,
    roles: Vec<&'static str>,
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    expires_in: String,
    /// Comma-separated model globs.
    #[serde(default)]
    models: String,
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

async fn render(
    pool: &Db,
    caller: WebCaller,
    notice: Option<String>,
    secret: Option<String>,
) -> Result<HttpResponse, WebError> {
    let tokens = ops::tokens::list(pool, &caller.caller)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            user: t.user.to_string(),
            name: t.name,
            prefix: t.prefix,
            role: t.role.to_string(),
            models: t
                .models
                .map(|m| m.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                .unwrap_or_else(|| "all".into()),
            expires: t.expires_at.map_or_else(|| "never".into(), |at| format!("unix {at}")),
            last_used: t.last_used_at.unwrap_or_else(|| "never".into()),
            revoked: t.revoked_at.is_some(),
        })
        .collect();
    let roles = [Role::Viewer, Role::Maintainer, Role::Admin]
        .into_iter()
        .filter(|r| *r <= caller.caller.role)
        .map(Role::as_str)
        .collect();
    let body =
        TokensPage { frame: caller.frame(), notice, secret, tokens, roles }.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // A page with a secret on it must not be cached anywhere.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

pub async fn list(
    pool: web::Data<Db>,
    caller: WebCaller,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, WebError> {
    render(&pool, caller, notice.into_inner().notice, None).await
}

/// Creates a token and shows its secret in the answer itself (never in a URL).
pub async fn create(
    pool: web::Data<Db>,
    caller: WebCaller,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let models: Vec<String> =
        form.models.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect();
    let request = TokenRequest {
        name: form.name,
        role: Some(form.role).filter(|r| !r.is_empty()),
        expires_in: Some(form.expires_in.trim().to_owned()).filter(|e| !e.is_empty()),
        models: (!models.is_empty()).then_some(models),
    };
    let (token, secret) = ops::tokens::issue(&pool, &caller.caller, request).await?;
    let notice = format!("Token {} created. Copy it now: it is not shown again.", token.name);
    render(&pool, caller, Some(notice), Some(secret.expose().to_owned())).await
}

pub async fn revoke(
    pool: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    caller: WebCaller,
    id: web::Path<i64>,
    form: web::Form<RevokeForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    ops::tokens::revoke(&pool, &authenticator, &caller.caller, *id).await?;
    let target = format!("/tokens?notice={}", encode_query(&format!("Token {} revoked.", *id)));
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish())
}
