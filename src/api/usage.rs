//! `GET /api/v1/usage`: requests and tokens through the gateway, by user, token, deployment
//! or model, per time step. Who sees what is `ops::usage`'s rule.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};

use super::openapi::{BadRequest, Forbidden, Unauthorized};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ops;
use crate::ops::usage::{Usage, UsageQuery};

#[utoipa::path(
    get,
    path = "/api/v1/usage",
    params(UsageQuery),
    responses(
        (status = 200, description = "Usage per key and step, largest first", body = Usage),
        BadRequest, Unauthorized, Forbidden,
    ),
)]
pub async fn get_usage(
    pool: web::Data<Db>,
    caller: Caller,
    query: web::Query<UsageQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(ops::usage::usage(&pool, &caller, &query, crate::auth::now_unix()).await?))
}
