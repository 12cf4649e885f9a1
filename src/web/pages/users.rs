//! Users (admins without model globs): list, create (a generated password is shown once), change role,
//! disable and enable.

use crate::catalog::Db;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Notice;
use crate::auth::Authenticator;
use crate::domain::{Role, UserName};
use crate::error::ApiError;
use crate::ops::{self, users::NewPassword};
use crate::web::error::encode_query;
use crate::web::{Frame, WebCaller, WebError};

pub struct UserRow {
    name: String,
    role: String,
    disabled: bool,
    created_at: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    frame: Frame,
    notice: Option<String>,
    /// A generated password, shown once.
    password: Option<String>,
    users: Vec<UserRow>,
    roles: [&'static str; 3],
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    name: String,
    role: String,
    #[serde(default)]
    password: String,
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    csrf: String,
    role: Option<String>,
    /// "disable" or "enable".
    state: Option<String>,
}

async fn render(
    pool: &Db,
    caller: WebCaller,
    notice: Option<String>,
    password: Option<String>,
) -> Result<HttpResponse, WebError> {
    let users = ops::users::list(pool, &caller.caller)
        .await?
        .into_iter()
        .map(|u| UserRow {
            name: u.name.to_string(),
            role: u.role.to_string(),
            disabled: u.disabled,
            created_at: u.created_at,
        })
        .collect();
    let roles = [Role::Viewer.as_str(), Role::Maintainer.as_str(), Role::Admin.as_str()];
    let body =
        UsersPage { frame: caller.frame(), notice, password, users, roles }.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
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

pub async fn create(
    pool: web::Data<Db>,
    caller: WebCaller,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let name = UserName::parse(form.name.trim()).map_err(ApiError::from)?;
    let role = Role::parse(&form.role).map_err(ApiError::from)?;
    // The form's empty field means "generate one".
    let password = NewPassword::choose(Some(form.password).filter(|p| !p.is_empty()))?;
    ops::users::create(&pool, &caller.caller, &name, role, &password).await?;
    let notice = format!("User {name} created as {role}.");
    render(&pool, caller, Some(notice), password.shown()).await
}

pub async fn update(
    pool: web::Data<Db>,
    authenticator: web::Data<Authenticator>,
    caller: WebCaller,
    name: web::Path<String>,
    form: web::Form<UpdateForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let name = UserName::parse(&name).map_err(ApiError::from)?;
    let role = form.role.as_deref().map(Role::parse).transpose().map_err(ApiError::from)?;
    let disabled = match form.state.as_deref() {
        Some("disable") => Some(true),
        Some("enable") => Some(false),
        _ => None,
    };
    let user = ops::users::update(&pool, &authenticator, &caller.caller, &name, role, disabled).await?;
    let notice = format!("{} is {}{}.", user.name, user.role, if user.disabled { ", disabled" } else { "" });
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/users?notice={}", encode_query(&notice))))
        .finish())
}
