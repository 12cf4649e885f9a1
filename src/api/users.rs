//! `/api/v1/users` (admins without model globs) and `/api/v1/me`.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::{BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType};
use super::page::Items;
use crate::auth::{Authenticator, Caller};
use crate::catalog::users::User;
use crate::domain::{Glob, Role, UserName};
use crate::error::ApiError;
use crate::ops::{self, users::NewPassword};

/// A user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    name: UserName,
    role: Role,
    disabled: bool,
    created_at: String,
    updated_at: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self { name: u.name, role: u.role, disabled: u.disabled, created_at: u.created_at, updated_at: u.updated_at }
    }
}

/// A new user, and the password generated for them if none was given.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    #[serde(flatten)]
    view: UserView,
    /// Only when generated: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

/// A generated password, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeneratedPassword {
    password: String,
}

/// Who the caller is and what it may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    user: UserName,
    role: Role,
    /// The token this request came with; `null` for a session.
    token_id: Option<i64>,
    /// Model-name globs the token is limited to; `null`: every model.
    models: Option<Vec<Glob>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(value_type = UserName)]
    name: String,
    #[schema(value_type = Role)]
    role: String,
    /// Left out: one is generated and returned once. At least 12 characters.
    password: Option<String>,
}

/// The fields to change; those left out keep their value. The last enabled admin cannot be
/// demoted or disabled.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
    /// A disabled user's tokens and sessions stop working at once.
    disabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// Left out: one is generated and returned once.
    password: Option<String>,
    /// Keep the user's API tokens working (default `false`: they are revoked). Their
    /// dashboard sessions end either way.
    #[serde(default)]
    keep_tokens: bool,
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    #[param(value_type = UserName)]
    name: String,
}

/// Creates a user (admins).
#[utoipa::path(
    post,
    path = "/api/v1/users",
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = CreatedUser),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn create_user(
    pool: web::Data<Db>,
    caller: Caller,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = UserName::parse(&body.name)?;
    let role = Role::parse(&body.role)?;
    let password = NewPassword::choose(body.password)?;
    let user = ops::users::create(&pool, &caller, &name, role, &password).await?;
    Ok(HttpResponse::Created().json(CreatedUser { view: user.into(), password: password.shown() }))
}

/// Every user (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    responses((status = 200, description = "The users", body = Items<UserView>), Unauthorized, Forbidden),
)]
pub async fn list_users(pool: web::Data<Db>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let users = ops::users::list(&pool, &caller).await?;
    Ok(HttpResponse::Ok().json(Items::new(users, UserView::from)))
}

/// A user (admins).
#[utoipa::path(
    get,
    path = "/api/v1/users/{name}",
    params(UserPath),
    responses((status = 200, description = "The user", body = UserView), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn get_user(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let user = ops::users::get(&pool, &caller, &UserName::parse(&path.name)?).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Changes a user's role, or disables (or enables) them. Their tokens follow at once; a
/// disable ends their dashboard sessions.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{name}",
    params(UserPath),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The user as changed", body = UserView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn update_user(
    pool: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    caller: Caller,
    path: web::Path<UserPath>,
    body: web::Json<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    let name = UserName::parse(&path.name)?;
    let role = body.role.as_deref().map(Role::parse).transpose()?;
    let user = ops::users::update(&pool, &authenticator, &caller, &name, role, body.disabled).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Sets a new password; without one in the body, generates and returns it. Ends the user's
/// dashboard sessions and revokes their API tokens unless `keep_tokens` is true.
#[utoipa::path(
    post,
    path = "/api/v1/users/{name}/password",
    params(UserPath),
    request_body = ResetPassword,
    responses(
        (status = 200, description = "Generated", body = GeneratedPassword),
        (status = 204, description = "Set to the one given"),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn reset_password(
    pool: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    caller: Caller,
    path: web::Path<UserPath>,
    body: web::Json<ResetPassword>,
) -> Result<HttpResponse, ApiError> {
    let name = UserName::parse(&path.name)?;
    let body = body.into_inner();
    let password = NewPassword::choose(body.password)?;
    ops::users::reset_password(&pool, &authenticator, &caller, &name, &password, body.keep_tokens).await?;
    Ok(match password.shown() {
        Some(password) => HttpResponse::Ok().json(GeneratedPassword { password }),
        None => HttpResponse::NoContent().finish(),
    })
}

/// Who the caller is and what it may do.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    responses((status = 200, description = "The caller", body = MeView), Unauthorized),
)]
pub async fn get_me(caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = caller.user()?.clone();
    Ok(HttpResponse::Ok().json(MeView { user, role: caller.role, token_id: caller.token_id, models: caller.models }))
}
