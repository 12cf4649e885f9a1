//! `/api/v1/tokens` and `/api/v1/login`: API tokens. A token's secret is in the creation
//! response and nowhere else, ever.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::auth::token::{Secret, parse_lifetime};
use crate::auth::{Authenticator, Caller, LoginLimiter, password};
use crate::catalog::{self, Actor, tokens::NewToken, tokens::Token};
use crate::domain::{Glob, Role, UserName};
use crate::error::ApiError;

/// Tokens issued by a login last this long unless asked otherwise.
const LOGIN_LIFETIME: &str = "30d";
const MAX_TOKEN_NAME: usize = 100;

#[derive(Debug, Serialize)]
pub struct TokenView {
    id: i64,
    user: UserName,
    name: String,
    prefix: String,
    role: Role,
    models: Option<Vec<Glob>>,
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
#[derive(Debug, Serialize)]
struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    /// Defaults to the caller's own role.
    role: Option<String>,
    /// `30d`, `12h`, …; none: never expires.
    expires_in: Option<String>,
    /// Model-name globs the token is limited to.
    models: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    user: String,
    password: String,
    token_name: Option<String>,
    expires_in: Option<String>,
}

fn parse_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_TOKEN_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!("token name must be 1-{MAX_TOKEN_NAME} bytes of printable text")));
    }
    Ok(name)
}

fn expiry(expires_in: Option<&str>) -> Result<Option<i64>, ApiError> {
    expires_in
        .map(|raw| {
            let secs = parse_lifetime(raw).map_err(ApiError::BadRequest)?;
            Ok(crate::auth::now_unix().saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)))
        })
        .transpose()
}

/// Stores a new token and answers with its secret.
async fn issue(
    pool: &SqlitePool,
    actor: &Actor,
    user: &UserName,
    name: &str,
    role: Role,
    models: Option<&[Glob]>,
    expires_at: Option<i64>,
) -> Result<HttpResponse, ApiError> {
    let secret = Secret::generate();
    let new = NewToken { user, name, prefix: secret.prefix(), secret_hash: &secret.hash(), role, models, expires_at };
    let token = catalog::tokens::create(pool, actor, new).await?;
    Ok(HttpResponse::Created().json(CreatedToken { view: token.into(), token: secret.expose().to_owned() }))
}

/// Creates a token for the caller, with at most the caller's role and within its globs.
pub async fn create_token(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    body: web::Json<CreateToken>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let user = caller.user()?.clone();
    let body = body.into_inner();
    let name = parse_name(&body.name)?;
    let role = body.role.as_deref().map(Role::parse).transpose()?.unwrap_or(caller.role);
    if role > caller.role {
        return Err(ApiError::Forbidden(format!(
            "a token cannot have more than the role it is created with: you have {}, not {role}",
            caller.role
        )));
    }
    let models = body.models.map(|m| m.iter().map(|g| Glob::parse(g)).collect::<Result<Vec<_>, _>>()).transpose()?;
    // A limited token can only create tokens at least as limited.
    let models = match (&caller.models, models) {
        (Some(own), None) => Some(own.clone()),
        (Some(own), Some(asked)) if asked.iter().any(|g| !own.contains(g)) => {
            return Err(ApiError::Forbidden(
                "this token is limited to some models; a token it creates can only use the same globs".into(),
            ));
        }
        (_, asked) => asked,
    };
    let expires_at = expiry(body.expires_in.as_deref())?;
    issue(&pool, &caller.actor(), &user, name, role, models.as_deref(), expires_at).await
}

/// Lists the caller's tokens; an admin sees everyone's.
pub async fn list_tokens(pool: web::Data<SqlitePool>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = caller.user()?;
    let owner = if caller.role >= Role::Admin { None } else { Some(user) };
    let tokens = catalog::tokens::list(&pool, owner).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": tokens.into_iter().map(TokenView::from).collect::<Vec<_>>()
    })))
}

/// Revokes one of the caller's tokens (an admin: anyone's). Effective on the next request.
pub async fn revoke_token(
    pool: web::Data<SqlitePool>,
    authenticator: web::Data<Authenticator>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = caller.user()?;
    let id: i64 = id.parse().map_err(|_| ApiError::BadRequest(format!("token id {id:?} is not a number")))?;
    let owner = if caller.role >= Role::Admin { None } else { Some(user) };
    catalog::tokens::revoke(&pool, &caller.actor(), id, owner).await?;
    authenticator.invalidate();
    Ok(HttpResponse::NoContent().finish())
}

/// Exchanges a user name and password for a token with the user's role.
pub async fn login(
    pool: web::Data<SqlitePool>,
    limiter: web::Data<LoginLimiter>,
    req: actix_web::HttpRequest,
    body: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let remote_addr = req.peer_addr().map(|a| a.ip().to_string());
    let keys = vec![format!("user:{}", body.user), format!("addr:{}", remote_addr.as_deref().unwrap_or("unknown"))];
    limiter.check(&keys)?;
    let refused = || ApiError::Unauthorized("unknown user or wrong password".into());
    let user = match UserName::parse(&body.user) {
        Ok(name) => catalog::users::credentials(&pool, &name).await?,
        Err(_) => None,
    };
    let Some((user, hash)) = user else {
        limiter.record_failure(&keys);
        return Err(refused());
    };
    if !password::verify(body.password, hash).await {
        limiter.record_failure(&keys);
        return Err(refused());
    }
    if user.disabled {
        return Err(ApiError::Forbidden(format!("user '{}' is disabled; ask an admin", user.name)));
    }
    let name = parse_name(body.token_name.as_deref().unwrap_or("login"))?;
    let expires_at = expiry(Some(body.expires_in.as_deref().unwrap_or(LOGIN_LIFETIME)))?;
    let actor = Actor { user_id: Some(user.id), user: Some(user.name.to_string()), token_id: None, remote_addr };
    issue(&pool, &actor, &user.name, name, user.role, None, expires_at).await
}
