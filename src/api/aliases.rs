//! `/api/v1/models/{model}/aliases…`: movable names that point at ready versions.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType};
use super::page::Items;
use super::{AliasPath, ModelPath};
use crate::auth::Caller;
use crate::catalog::{self, aliases::Alias};
use crate::config::Settings;
use crate::domain::{AliasName, Role, VersionName};
use crate::error::ApiError;
use crate::ops::{self, aliases::Change};
use crate::runtime::supervisor::Supervisor;

/// An alias and the version it points at.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasView {
    alias: AliasName,
    version: VersionName,
    updated_at: String,
    updated_by: Option<String>,
}

impl From<Alias> for AliasView {
    fn from(a: Alias) -> Self {
        Self { alias: a.name, version: a.version, updated_at: a.updated_at, updated_by: a.updated_by }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    /// A ready (published) version of the model.
    #[schema(value_type = VersionName)]
    version: String,
}

/// Points an alias at a ready version, creating or moving it. Deployments that follow the
/// alias roll out to the new version. A protected alias (`protected_aliases`) takes an admin.
#[utoipa::path(
    put,
    path = "/api/v1/models/{model}/aliases/{alias}",
    params(AliasPath),
    request_body = SetAlias,
    responses(
        (status = 201, description = "Created", body = AliasView),
        (status = 200, description = "Moved", body = AliasView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn set_alias(
    pool: web::Data<Db>,
    caller: Caller,
    settings: web::Data<Settings>,
    supervisor: web::Data<Supervisor>,
    path: web::Path<AliasPath>,
    body: web::Json<SetAlias>,
) -> Result<HttpResponse, ApiError> {
    let (model, alias) = path.parse()?;
    let version = VersionName::parse(&body.version)?;
    let (alias, change) = ops::aliases::set(&pool, &settings, &supervisor, &caller, &model, &alias, &version).await?;
    let view = AliasView::from(alias);
    Ok(match change {
        Change::Created => HttpResponse::Created().json(view),
        Change::Moved => HttpResponse::Ok().json(view),
    })
}

/// The version an alias points at.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/aliases/{alias}",
    params(AliasPath),
    responses((status = 200, description = "The alias", body = AliasView), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn get_alias(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<AliasPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, alias) = path.parse()?;
    caller.require_on(Role::Viewer, &model)?;
    let alias = catalog::aliases::get(&pool, &model, &alias).await?;
    Ok(HttpResponse::Ok().json(AliasView::from(alias)))
}

/// Every alias of a model.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/aliases",
    params(ModelPath),
    responses((status = 200, description = "The aliases", body = Items<AliasView>), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn list_aliases(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let model = path.parse()?;
    caller.require_on(Role::Viewer, &model)?;
    let aliases = catalog::aliases::list(&pool, &model).await?;
    Ok(HttpResponse::Ok().json(Items::new(aliases, AliasView::from)))
}

/// Removes an alias; the version stays. A protected alias takes an admin; refused while
/// deployments follow it.
#[utoipa::path(
    delete,
    path = "/api/v1/models/{model}/aliases/{alias}",
    params(AliasPath),
    responses((status = 204, description = "Removed"), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
)]
pub async fn delete_alias(
    pool: web::Data<Db>,
    caller: Caller,
    settings: web::Data<Settings>,
    path: web::Path<AliasPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, alias) = path.parse()?;
    ops::aliases::delete(&pool, &settings, &caller, &model, &alias).await?;
    Ok(HttpResponse::NoContent().finish())
}
