//! The models list (the home page): search, pages, and a form to create a model.

use std::sync::Arc;

use crate::catalog::Db;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use base64::Engine as _;
use serde::Deserialize;

use super::{Notice, human_size};
use crate::catalog::{self, models::Model};
use crate::domain::{FreeText, ModelName, Role};
use crate::error::ApiError;
use crate::web::cache::PageCache;
use crate::web::error::encode_query;
use crate::web::{Frame, WebCaller, WebError};

const PAGE: u32 = 50;

pub struct ModelRow {
    name: String,
    description: String,
    tags: Vec<String>,
    latest: String,
    versions: i64,
    size: String,
    aliases: String,
    deployments: String,
}

impl From<Model> for ModelRow {
    fn from(m: Model) -> Self {
        Self {
            name: m.name.to_string(),
            description: m.description,
            tags: m.tags,
            latest: m.latest_version.unwrap_or_else(|| "—".into()),
            versions: m.version_count,
            size: human_size(m.latest_size),
            aliases: m.aliases.unwrap_or_default(),
            deployments: m.deployments.unwrap_or_default(),
        }
    }
}

/// What one page of the list (for one search) shows of the catalog.
pub struct ModelsData {
    models: Vec<ModelRow>,
    /// The link to the next page.
    next: Option<String>,
}

/// A page of the list: the search, the cursor, and the caller's model globs (tokens may be
/// limited to some models).
pub type ModelsKey = (String, Option<String>, Option<Vec<String>>);

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    frame: Frame,
    notice: Option<String>,
    q: String,
    data: Arc<ModelsData>,
    can_create: bool,
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn list(
    pool: web::Data<Db>,
    cache: web::Data<PageCache<ModelsKey, ModelsData>>,
    caller: WebCaller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, WebError> {
    let query = query.into_inner();
    let q = query.q.unwrap_or_default();
    let cursor = query
        .cursor
        .as_deref()
        .and_then(|c| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let globs = caller.caller.models.as_ref().map(|g| g.iter().map(|g| g.as_str().to_owned()).collect());
    let key = (q.clone(), cursor.clone(), globs);
    let data = cache
        .get_or_load(key, || async {
            let search = Some(q.trim()).filter(|q| !q.is_empty());
            let globs = caller.caller.models.as_deref();
            let page = catalog::models::list(&pool, search, globs, cursor.as_deref(), PAGE).await?;
            let next = page.next.map(|c| {
                let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c);
                format!("/?q={}&cursor={cursor}", encode_query(&q))
            });
            Ok::<_, WebError>(ModelsData { models: page.items.into_iter().map(ModelRow::from).collect(), next })
        })
        .await?;
    let body = ModelsPage {
        frame: caller.frame(),
        can_create: caller.caller.role >= Role::Maintainer,
        notice: Notice { notice: query.notice }.notice,
        q,
        data,
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

pub async fn create(
    pool: web::Data<Db>,
    caller: WebCaller,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let name = ModelName::parse(form.name.trim()).map_err(ApiError::from)?;
    caller.caller.require_on(Role::Maintainer, &name)?;
    let description = FreeText::description(form.description.trim()).map_err(ApiError::from)?;
    catalog::models::create(&pool, &caller.caller.actor(), &name, description.as_str(), &[]).await?;
    let target = format!("/models/{name}?notice={}", encode_query("Model created."));
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish())
}
