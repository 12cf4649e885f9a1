//! `/api/v1/models/{model}/versions…`: create, list, read, change (drafts only), publish
//! and delete versions.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use super::page::{PageQuery, PageView};
use super::{ModelPath, VersionPath};
use crate::auth::Caller;
use crate::catalog::{self, versions::Version, versions::VersionState};
use crate::domain::{Digest, ModelName, Role, VersionName};
use crate::error::ApiError;

type Metadata = serde_json::Map<String, serde_json::Value>;

const MAX_METADATA: usize = 256 * 1024;

#[derive(Debug, Serialize)]
pub struct VersionView {
    model: ModelName,
    version: VersionName,
    state: VersionState,
    description: String,
    metadata: Metadata,
    manifest_digest: Option<Digest>,
    file_count: i64,
    size: i64,
    aliases: Vec<String>,
    created_at: String,
    created_by: Option<String>,
    published_at: Option<String>,
    published_by: Option<String>,
}

impl From<Version> for VersionView {
    fn from(v: Version) -> Self {
        Self {
            model: v.model,
            version: v.name,
            state: v.state,
            description: v.description,
            metadata: v.metadata,
            manifest_digest: v.manifest_digest,
            file_count: v.file_count,
            size: v.size,
            aliases: v.aliases,
            created_at: v.created_at,
            created_by: v.created_by,
            published_at: v.published_at,
            published_by: v.published_by,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVersion {
    version: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersion {
    description: Option<String>,
    metadata: Option<Metadata>,
}

fn check_metadata(metadata: &Metadata) -> Result<(), ApiError> {
    let size = serde_json::to_vec(metadata).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA {
        return Err(ApiError::BadRequest(format!(
            "metadata is {size} bytes of JSON; at most {MAX_METADATA} are allowed"
        )));
    }
    Ok(())
}

/// Creates a draft version; without `version`, it is numbered after the highest integer one.
pub async fn create_version(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<ModelPath>,
    body: web::Json<CreateVersion>,
) -> Result<HttpResponse, ApiError> {
    let model = path.parse()?;
    caller.require_on(Role::Maintainer, &model)?;
    let body = body.into_inner();
    check_metadata(&body.metadata)?;
    let new = catalog::versions::NewVersion {
        name: body.version.as_deref().map(VersionName::parse).transpose()?,
        description: body.description,
        metadata: body.metadata,
    };
    let version = catalog::versions::create(&pool, &caller.actor(), &model, new).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/models/{}/versions/{}", version.model, version.name)))
        .json(VersionView::from(version)))
}

/// Lists versions, newest first.
pub async fn list_versions(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<ModelPath>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let model = path.parse()?;
    caller.require_on(Role::Viewer, &model)?;
    if query.q.is_some() {
        return Err(ApiError::BadRequest("versions cannot be searched with q; list them and filter".into()));
    }
    let cursor = query
        .cursor()?
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::BadRequest("cursor is not one this server issued; start again without it".into()))?;
    let page = catalog::versions::list(&pool, &model, cursor, query.limit()?).await?;
    Ok(HttpResponse::Ok().json(PageView::new(page, VersionView::from)))
}

pub async fn get_version(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<VersionPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    caller.require_on(Role::Viewer, &model)?;
    let version = catalog::versions::get(&pool, &model, &version).await?;
    Ok(HttpResponse::Ok().json(VersionView::from(version)))
}

/// Changes a draft's description or metadata; a ready version answers 409.
pub async fn update_version(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<VersionPath>,
    body: web::Json<UpdateVersion>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    caller.require_on(Role::Maintainer, &model)?;
    let body = body.into_inner();
    if let Some(metadata) = &body.metadata {
        check_metadata(metadata)?;
    }
    let changes = catalog::versions::VersionChanges { description: body.description, metadata: body.metadata };
    let version = catalog::versions::update(&pool, &caller.actor(), &model, &version, changes).await?;
    Ok(HttpResponse::Ok().json(VersionView::from(version)))
}

/// Publishes a draft: fixes its manifest digest; from now on it never changes.
pub async fn publish_version(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<VersionPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    caller.require_on(Role::Maintainer, &model)?;
    let version = catalog::versions::publish(&pool, &caller.actor(), &model, &version).await?;
    Ok(HttpResponse::Ok().json(VersionView::from(version)))
}

/// Deletes a version that no alias points at (admins only).
pub async fn delete_version(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<VersionPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    caller.require_on(Role::Admin, &model)?;
    catalog::versions::delete(&pool, &caller.actor(), &model, &version).await?;
    Ok(HttpResponse::NoContent().finish())
}
