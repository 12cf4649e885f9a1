//! `/api/v1/models` and `/api/v1/models/{model}`.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ModelPath;
use super::openapi::{BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType};
use super::page::{PageQuery, PageView};
use crate::auth::Caller;
use crate::catalog::{self, models::Model};
use crate::domain::{FreeText, Lines, ModelName, Role};
use crate::error::ApiError;

const MAX_TAGS: usize = 64;
const MAX_TAG_LEN: usize = 64;

/// A model.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    name: ModelName,
    description: String,
    tags: Vec<String>,
    version_count: i64,
    /// The newest version's name, if it has any.
    latest_version: Option<String>,
    created_at: String,
    created_by: Option<String>,
    updated_at: String,
}

impl From<Model> for ModelView {
    fn from(m: Model) -> Self {
        Self {
            name: m.name,
            description: m.description,
            tags: m.tags,
            version_count: m.version_count,
            latest_version: m.latest_version,
            created_at: m.created_at,
            created_by: m.created_by,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    #[schema(value_type = ModelName)]
    name: String,
    /// Markdown, at most 64 KiB.
    #[serde(default)]
    description: String,
    /// At most 64, each 1-64 bytes of printable text; stored sorted and deduplicated.
    #[serde(default)]
    tags: Vec<String>,
}

/// The fields to change; those left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModel {
    description: Option<String>,
    tags: Option<Vec<String>>,
}

fn check_description(description: &str) -> Result<(), ApiError> {
    FreeText::description(description)?;
    Ok(())
}

/// Tags are free text within limits, deduplicated and sorted.
fn parse_tags(mut tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::BadRequest(format!("{} tags given; at most {MAX_TAGS} are allowed", tags.len())));
    }
    for tag in &tags {
        if tag.trim().is_empty()
            || tag.len() > MAX_TAG_LEN
            || FreeText::parse("tag", tag, Lines::One, MAX_TAG_LEN).is_err()
        {
            return Err(ApiError::BadRequest(format!(
                "tag {tag:?} is invalid; tags are 1-{MAX_TAG_LEN} bytes of printable text"
            )));
        }
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Creates a model.
#[utoipa::path(
    post,
    path = "/api/v1/models",
    request_body = CreateModel,
    responses(
        (status = 201, description = "Created", body = ModelView, headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, Conflict, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn create_model(
    pool: web::Data<Db>,
    caller: Caller,
    body: web::Json<CreateModel>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = ModelName::parse(&body.name)?;
    caller.require_on(Role::Maintainer, &name)?;
    check_description(&body.description)?;
    let tags = parse_tags(body.tags)?;
    let model = catalog::models::create(&pool, &caller.actor(), &name, &body.description, &tags).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/models/{}", model.name)))
        .json(ModelView::from(model)))
}

/// Lists the models the caller may see, by name; `q` searches names and descriptions.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    params(PageQuery),
    responses((status = 200, description = "A page of models", body = PageView<ModelView>), BadRequest, Unauthorized, Forbidden),
)]
pub async fn list_models(
    pool: web::Data<Db>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let page =
        catalog::models::list(&pool, q, caller.models.as_deref(), query.cursor()?.as_deref(), query.limit()?).await?;
    Ok(HttpResponse::Ok().json(PageView::new(page, ModelView::from)))
}

/// A model, with its version count and newest version.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}",
    params(ModelPath),
    responses((status = 200, description = "The model", body = ModelView), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn get_model(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let name = path.parse()?;
    caller.require_on(Role::Viewer, &name)?;
    let model = catalog::models::get(&pool, &name).await?;
    Ok(HttpResponse::Ok().json(ModelView::from(model)))
}

/// Changes a model's description or tags.
#[utoipa::path(
    patch,
    path = "/api/v1/models/{model}",
    params(ModelPath),
    request_body = UpdateModel,
    responses(
        (status = 200, description = "The model as changed", body = ModelView),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn update_model(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<ModelPath>,
    body: web::Json<UpdateModel>,
) -> Result<HttpResponse, ApiError> {
    let name = path.parse()?;
    caller.require_on(Role::Maintainer, &name)?;
    let body = body.into_inner();
    if let Some(description) = &body.description {
        check_description(description)?;
    }
    let changes =
        catalog::models::ModelChanges { description: body.description, tags: body.tags.map(parse_tags).transpose()? };
    let model = catalog::models::update(&pool, &caller.actor(), &name, changes).await?;
    Ok(HttpResponse::Ok().json(ModelView::from(model)))
}

/// Deletes a model with all its versions and aliases (admins only); refused while deployed.
#[utoipa::path(
    delete,
    path = "/api/v1/models/{model}",
    params(ModelPath),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
)]
pub async fn delete_model(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let name = path.parse()?;
    caller.require_on(Role::Admin, &name)?;
    catalog::models::delete(&pool, &caller.actor(), &name).await?;
    Ok(HttpResponse::NoContent().finish())
}
