//! `/api/v1/tokens` and `/api/v1/login`: API tokens. A token's secret is in the creation
//! response and nowhere else, ever.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized, UnsupportedMediaType,
};
use super::page::Items;
use crate::auth::issue::{self, TokenRequest};
use crate::auth::token::Secret;
use crate::auth::{Authenticator, Caller, LoginLimiter, login};
use crate::catalog::{Actor, tokens::Token};
use crate::domain::{Glob, Role, UserName};
use crate::error::ApiError;
use crate::ops;

/// Tokens issued by a login last this long unless asked otherwise.
const LOGIN_LIFETIME: &str = "30d";

/// A token as listed: everything but the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    id: i64,
    user: UserName,
    name: String,
    /// The secret's first characters, to recognize it by.
    prefix: String,
    role: Role,
    /// Model-name globs it is limited to; `null`: every model.
    models: Option<Vec<Glob>>,
    /// Unix seconds; `null`: never.
    expires_at: Option<i64>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    created_at: String,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        Self {
            id: t.id,
            user: t.user,
            name: t.name,
            prefix: t.prefix,
            role: t.role,
            models: t.models,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
            created_at: t.created_at,
        }
    }
}

/// The creation response: the listing view plus, this once, the token itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    /// The secret, `hgr_…`: send it as `Authorization: Bearer`. It is shown only here.
    token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What it is for (`ci`, `laptop`): 1-100 bytes of printable text.
    #[schema(max_length = 100)]
    name: String,
    /// Defaults to the caller's own role, and cannot be higher.
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
    /// `30d`, `12h`, … (s, m, h, d or w), at most 10 years; none: never expires.
    #[schema(pattern = "^[1-9][0-9]{0,5}[smhdw]$", example = "30d")]
    expires_in: Option<String>,
    /// Model-name globs the token is limited to, within the caller's own.
    #[schema(value_type = Option<Vec<Glob>>)]
    models: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[schema(value_type = UserName)]
    user: String,
    password: String,
    /// Default `login`.
    #[schema(max_length = 100)]
    token_name: Option<String>,
    /// Default `30d`.
    #[schema(pattern = "^[1-9][0-9]{0,5}[smhdw]$")]
    expires_in: Option<String>,
}

fn created(token: Token, secret: &Secret) -> HttpResponse {
    HttpResponse::Created().json(CreatedToken { view: token.into(), token: secret.expose().to_owned() })
}

/// Creates a token for the caller, with at most the caller's role, within its globs and
/// expiring no later than the caller's own token.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; the secret is in `token`", body = CreatedToken),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn create_token(
    pool: web::Data<Db>,
    caller: Caller,
    body: web::Json<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = TokenRequest { name: body.name, role: body.role, expires_in: body.expires_in, models: body.models };
    let (token, secret) = ops::tokens::issue(&pool, &caller, request).await?;
    Ok(created(token, &secret))
}

/// Lists the caller's tokens; an admin without model globs sees everyone's.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    responses((status = 200, description = "The tokens", body = Items<TokenView>), Unauthorized),
)]
pub async fn list_tokens(pool: web::Data<Db>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tokens = ops::tokens::list(&pool, &caller).await?;
    Ok(HttpResponse::Ok().json(Items::new(tokens, TokenView::from)))
}

/// Revokes one of the caller's tokens (an admin without model globs: anyone's). Effective on
/// the next request.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    params(("id" = i64, Path, description = "The token's `id`")),
    responses((status = 204, description = "Revoked"), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn revoke_token(
    pool: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::BadRequest(format!("token id {id:?} is not a number")))?;
    ops::tokens::revoke(&pool, &authenticator, &caller, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Exchanges a user name and password for a token with the user's role. Refused with 429 for a
/// while after 10 failures for one user or from one address.
#[utoipa::path(
    post,
    path = "/api/v1/login",
    security(()),
    request_body = Login,
    responses(
        (status = 201, description = "Signed in; the token is in `token`", body = CreatedToken),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType, TooManyRequests,
    ),
)]
pub async fn login(
    pool: web::Data<Db>,
    limiter: web::Data<LoginLimiter>,
    req: actix_web::HttpRequest,
    body: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let remote_addr = crate::forwarded::client_origin(&req).addr_string();
    let user =
        login::sign_in(&pool, &limiter, &body.user, body.password, remote_addr.as_deref().unwrap_or("unknown")).await?;
    let name = issue::token_name(body.token_name.as_deref().unwrap_or("login"))?;
    let expires_at = issue::expiry(Some(body.expires_in.as_deref().unwrap_or(LOGIN_LIFETIME)))?;
    let actor = Actor { user_id: Some(user.id), user: Some(user.name.to_string()), token_id: None, remote_addr };
    let (token, secret) = issue::issue(&pool, &actor, &user.name, name, user.role, None, expires_at).await?;
    Ok(created(token, &secret))
}
