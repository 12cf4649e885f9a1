//! `/api/v1/models/{model}/aliases…`: movable names that point at ready versions.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use super::{AliasPath, ModelPath};
use crate::catalog::{self, aliases::Alias};
use crate::domain::{AliasName, VersionName};
use crate::error::ApiError;

#[derive(Debug, Serialize)]
pub struct AliasView {
    alias: AliasName,
    version: VersionName,
    updated_at: String,
}

impl From<Alias> for AliasView {
    fn from(a: Alias) -> Self {
        Self {
            alias: a.name,
            version: a.version,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    version: String,
}

/// Points an alias at a ready version, creating or moving it.
pub async fn set_alias(
    pool: web::Data<SqlitePool>,
    path: web::Path<AliasPath>,
    body: web::Json<SetAlias>,
) -> Result<HttpResponse, ApiError> {
    let (model, alias) = path.parse()?;
    let version = VersionName::parse(&body.version)?;
    let previous = catalog::aliases::set(&pool, &model, &alias, &version).await?;
    let alias = catalog::aliases::get(&pool, &model, &alias).await?;
    let view = AliasView::from(alias);
    Ok(match previous {
        None => HttpResponse::Created().json(view),
        Some(_) => HttpResponse::Ok().json(view),
    })
}

pub async fn get_alias(
    pool: web::Data<SqlitePool>,
    path: web::Path<AliasPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, alias) = path.parse()?;
    let alias = catalog::aliases::get(&pool, &model, &alias).await?;
    Ok(HttpResponse::Ok().json(AliasView::from(alias)))
}

pub async fn list_aliases(
    pool: web::Data<SqlitePool>,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let aliases = catalog::aliases::list(&pool, &path.parse()?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": aliases.into_iter().map(AliasView::from).collect::<Vec<_>>()
    })))
}

pub async fn delete_alias(
    pool: web::Data<SqlitePool>,
    path: web::Path<AliasPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, alias) = path.parse()?;
    catalog::aliases::delete(&pool, &model, &alias).await?;
    Ok(HttpResponse::NoContent().finish())
}
