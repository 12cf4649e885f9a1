//! `/api/v1/models/{model}/versions…`: create, list, read, change (drafts only), publish
//! and delete versions.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::openapi::{BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType};
use super::page::{PageQuery, PageView};
use super::{ModelPath, VersionPath};
use crate::auth::Caller;
use crate::catalog::{self, versions::Version, versions::VersionState};
use crate::domain::{Digest, FreeText, ModelName, Role, VersionName};
use crate::error::ApiError;
use crate::ops;

type Metadata = serde_json::Map<String, serde_json::Value>;

const MAX_METADATA: usize = 256 * 1024;

/// A version of a model.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    model: ModelName,
    version: VersionName,
    state: VersionState,
    description: String,
    /// Free-form: format, parameters, quantization, base model, source commit, …
    #[schema(value_type = Object)]
    metadata: Metadata,
    /// sha256 over the sorted `path digest size` lines; fixed when published, `null` before.
    manifest_digest: Option<Digest>,
    file_count: i64,
    /// Bytes, summed over the files.
    size: i64,
    /// The aliases that point at it.
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersion {
    /// Left out: the next integer after the highest integer version.
    #[schema(value_type = Option<VersionName>)]
    version: Option<String>,
    #[serde(default)]
    description: String,
    /// A JSON object of at most 256 KiB.
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Metadata,
}

/// The fields to change (drafts only); those left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersion {
    description: Option<String>,
    /// Replaces the metadata as a whole.
    #[schema(value_type = Option<Object>)]
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

/// A version's description, checked as `FreeText`.
fn description(raw: &str) -> Result<String, ApiError> {
    Ok(FreeText::description(raw)?.into_string())
}

/// Creates a draft version; without `version`, it is numbered after the highest integer one.
#[utoipa::path(
    post,
    path = "/api/v1/models/{model}/versions",
    params(ModelPath),
    request_body = CreateVersion,
    responses(
        (status = 201, description = "The draft", body = VersionView, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn create_version(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<ModelPath>,
    body: web::Json<CreateVersion>,
) -> Result<HttpResponse, ApiError> {
    let model = path.parse()?;
    let body = body.into_inner();
    check_metadata(&body.metadata)?;
    let new = catalog::versions::NewVersion {
        name: body.version.as_deref().map(VersionName::parse).transpose()?,
        description: description(&body.description)?,
        metadata: body.metadata,
    };
    let version = ops::versions::create(&pool, &caller, &model, new).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/models/{}/versions/{}", version.model, version.name)))
        .json(VersionView::from(version)))
}

/// Lists versions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions",
    params(
        ModelPath,
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Items per page: 1-500, default 50"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before"),
    ),
    responses(
        (status = 200, description = "A page of versions", body = PageView<VersionView>),
        BadRequest, Unauthorized, Forbidden, NotFound,
    ),
)]
pub async fn list_versions(
    pool: web::Data<Db>,
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

/// A version, with its state, metadata, size and aliases.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions/{version}",
    params(VersionPath),
    responses((status = 200, description = "The version", body = VersionView), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn get_version(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<VersionPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    caller.require_on(Role::Viewer, &model)?;
    let version = catalog::versions::get(&pool, &model, &version).await?;
    Ok(HttpResponse::Ok().json(VersionView::from(version)))
}

/// Changes a draft's description or metadata; a ready version answers 409.
#[utoipa::path(
    patch,
    path = "/api/v1/models/{model}/versions/{version}",
    params(VersionPath),
    request_body = UpdateVersion,
    responses(
        (status = 200, description = "The version as changed", body = VersionView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn update_version(
    pool: web::Data<Db>,
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
    let description = body.description.as_deref().map(description).transpose()?;
    let changes = catalog::versions::VersionChanges { description, metadata: body.metadata };
    let version = catalog::versions::update(&pool, &caller.actor(), &model, &version, changes).await?;
    Ok(HttpResponse::Ok().json(VersionView::from(version)))
}

/// Publishes a draft: fixes its manifest digest; from now on it never changes.
#[utoipa::path(
    post,
    path = "/api/v1/models/{model}/versions/{version}/publish",
    params(VersionPath),
    responses(
        (status = 200, description = "The published version", body = VersionView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
    ),
)]
pub async fn publish_version(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<VersionPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    let version = ops::versions::publish(&pool, &caller, &model, &version).await?;
    Ok(HttpResponse::Ok().json(VersionView::from(version)))
}

/// Deletes a version that no alias points at (admins only).
#[utoipa::path(
    delete,
    path = "/api/v1/models/{model}/versions/{version}",
    params(VersionPath),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
)]
pub async fn delete_version(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<VersionPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    caller.require_on(Role::Admin, &model)?;
    catalog::versions::delete(&pool, &caller.actor(), &model, &version).await?;
    Ok(HttpResponse::NoContent().finish())
}
