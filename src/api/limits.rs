//! `/api/v1/limits`: fair-use limits on the gateway per user or token, set by admins.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use utoipa::IntoParams;

use super::openapi::{BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType};
use crate::auth::Caller;
use crate::domain::Limits;
use crate::error::ApiError;
use crate::ops;
use crate::ops::limits::LimitView;

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LimitPath {
    /// `user:NAME` (every token of the user together) or `token:ID`.
    #[param(example = "user:vera")]
    subject: String,
}

/// Every limit (admins without model globs).
#[utoipa::path(
    get,
    path = "/api/v1/limits",
    responses((status = 200, description = "Every limit", body = [LimitView]), Unauthorized, Forbidden),
)]
pub async fn list_limits(pool: web::Data<Db>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ops::limits::list(&pool, &caller).await?))
}

/// Sets a subject's limits, replacing any it had; a request over one gets 429 with `Retry-After`.
#[utoipa::path(
    put,
    path = "/api/v1/limits/{subject}",
    params(LimitPath),
    request_body = Limits,
    responses(
        (status = 200, description = "Set", body = LimitView),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn set_limits(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<LimitPath>,
    body: web::Json<Limits>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ops::limits::set(&pool, &caller, &path.subject, body.into_inner()).await?))
}

/// Removes a subject's limits.
#[utoipa::path(
    delete,
    path = "/api/v1/limits/{subject}",
    params(LimitPath),
    responses((status = 204, description = "Removed"), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn delete_limits(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<LimitPath>,
) -> Result<HttpResponse, ApiError> {
    ops::limits::remove(&pool, &caller, &path.subject).await?;
    Ok(HttpResponse::NoContent().finish())
}
