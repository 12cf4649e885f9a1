//! `/api/v1/users` (admins) and `/api/v1/me`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::auth::{Authenticator, Caller, password};
use crate::catalog::{self, users::User};
use crate::domain::{Role, UserName};
use crate::error::ApiError;

#[derive(Debug, Serialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    name: String,
    role: String,
    /// Left out: one is generated and returned once.
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    role: Option<String>,
    disabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    password: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct UserPath {
    name: String,
}

/// A password to set: the one given, checked, or a generated one to hand back.
fn choose_password(given: Option<String>) -> Result<(String, bool), ApiError> {
    match given {
        Some(p) => {
            password::check_strength(&p).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            Ok((p, false))
        }
        None => Ok((password::generate(), true)),
    }
}

pub async fn create_user(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let body = body.into_inner();
    let name = UserName::parse(&body.name)?;
    let role = Role::parse(&body.role)?;
    let (password, generated) = choose_password(body.password)?;
    let hash = password::hash(password.clone()).await.map_err(ApiError::internal)?;
    let user = catalog::users::create(&pool, &caller.actor(), &name, role, &hash).await?;
    let mut view = serde_json::to_value(UserView::from(user)).map_err(ApiError::internal)?;
    if generated {
        view["password"] = serde_json::Value::String(password);
    }
    Ok(HttpResponse::Created().json(view))
}

pub async fn list_users(pool: web::Data<SqlitePool>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let users = catalog::users::list(&pool).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": users.into_iter().map(UserView::from).collect::<Vec<_>>()
    })))
}

pub async fn get_user(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let user = catalog::users::get(&pool, &UserName::parse(&path.name)?).await?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Changes a user's role, or disables (or enables) them. Their tokens follow at once.
pub async fn update_user(
    pool: web::Data<SqlitePool>,
    authenticator: web::Data<Authenticator>,
    caller: Caller,
    path: web::Path<UserPath>,
    body: web::Json<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let name = UserName::parse(&path.name)?;
    let role = body.role.as_deref().map(Role::parse).transpose()?;
    let user = catalog::users::update(&pool, &caller.actor(), &name, role, body.disabled).await?;
    authenticator.invalidate();
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// Sets a new password; without one in the body, generates and returns it.
pub async fn reset_password(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<UserPath>,
    body: web::Json<ResetPassword>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let name = UserName::parse(&path.name)?;
    let (password, generated) = choose_password(body.into_inner().password)?;
    let hash = password::hash(password.clone()).await.map_err(ApiError::internal)?;
    catalog::users::set_password(&pool, &caller.actor(), &name, &hash).await?;
    Ok(if generated {
        HttpResponse::Ok().json(serde_json::json!({ "password": password }))
    } else {
        HttpResponse::NoContent().finish()
    })
}

/// Who the caller is and what it may do.
pub async fn get_me(caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = caller.user()?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "user": user,
        "role": caller.role,
        "token_id": caller.token_id,
        "models": caller.models,
    })))
}
