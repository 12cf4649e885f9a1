//! `/api/v1/models` and `/api/v1/models/{model}`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use super::ModelPath;
use super::page::{PageQuery, PageView};
use crate::auth::Caller;
use crate::catalog::{self, models::Model};
use crate::domain::{ModelName, Role};
use crate::error::ApiError;

const MAX_DESCRIPTION: usize = 64 * 1024;
const MAX_TAGS: usize = 64;
const MAX_TAG_LEN: usize = 64;

#[derive(Debug, Serialize)]
pub struct ModelView {
    name: ModelName,
    description: String,
    tags: Vec<String>,
    version_count: i64,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateModel {
    description: Option<String>,
    tags: Option<Vec<String>>,
}

fn check_description(description: &str) -> Result<(), ApiError> {
    if description.len() > MAX_DESCRIPTION {
        return Err(ApiError::BadRequest(format!("description is over {MAX_DESCRIPTION} bytes; shorten it")));
    }
    Ok(())
}

/// Tags are free text within limits, deduplicated and sorted.
fn parse_tags(mut tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::BadRequest(format!("{} tags given; at most {MAX_TAGS} are allowed", tags.len())));
    }
    for tag in &tags {
        if tag.trim().is_empty() || tag.len() > MAX_TAG_LEN || tag.chars().any(char::is_control) {
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
pub async fn create_model(
    pool: web::Data<SqlitePool>,
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
pub async fn list_models(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let page =
        catalog::models::list(&pool, q, caller.models.as_deref(), query.cursor()?.as_deref(), query.limit()?).await?;
    Ok(HttpResponse::Ok().json(PageView::new(page, ModelView::from)))
}

pub async fn get_model(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let name = path.parse()?;
    caller.require_on(Role::Viewer, &name)?;
    let model = catalog::models::get(&pool, &name).await?;
    Ok(HttpResponse::Ok().json(ModelView::from(model)))
}

/// Changes a model's description or tags.
pub async fn update_model(
    pool: web::Data<SqlitePool>,
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

/// Deletes a model with all its versions and aliases (admins only).
pub async fn delete_model(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, ApiError> {
    let name = path.parse()?;
    caller.require_on(Role::Admin, &name)?;
    catalog::models::delete(&pool, &caller.actor(), &name).await?;
    Ok(HttpResponse::NoContent().finish())
}
