//! A model: its versions, aliases (with a promote form), its model card and deployments.

use std::sync::Arc;

use crate::catalog::Db;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use futures_util::TryStreamExt as _;
use serde::Deserialize;

use super::human_size;
use crate::blobs::BlobStore;
use crate::catalog::{self, CatalogError, versions::VersionState};
use crate::config::Settings;
use crate::domain::{AliasName, ModelName, RelPath, Role, VersionName};
use crate::error::ApiError;
use crate::ops;
use crate::web::cache::PageCache;
use crate::web::error::encode_query;
use crate::web::markdown::{self, CardCache};
use crate::web::{Frame, WebCaller, WebError};

/// Cards larger than this are shown cut: a README is prose, not a payload.
const MAX_CARD: u64 = 256 * 1024;
/// Versions per page of the versions table, newest first.
const VERSIONS_SHOWN: u32 = 50;

pub struct VersionRow {
    pub name: String,
    pub ready: bool,
    pub size: String,
    pub files: i64,
    pub aliases: String,
    pub created_by: String,
    pub created_at: String,
}

pub struct AliasRow {
    name: String,
    version: String,
    updated_by: String,
    protected: bool,
}

pub struct DeploymentRow {
    name: String,
    state: String,
    target: String,
}

/// What the model page shows of the catalog, for one page of its versions.
pub struct ModelData {
    name: String,
    description: String,
    tags: Vec<String>,
    created_by: String,
    versions: Vec<VersionRow>,
    /// The link to the next (older) page of versions.
    older: Option<String>,
    /// Whether this is a later page, not the newest versions.
    paged: bool,
    ready_versions: Vec<String>,
    aliases: Vec<AliasRow>,
    deployments: Vec<DeploymentRow>,
    card: Option<Arc<str>>,
    card_version: String,
}

/// A model and the page of its versions (`before=`).
pub type ModelKey = (ModelName, Option<i64>);

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    frame: Frame,
    notice: Option<String>,
    data: Arc<ModelData>,
    can_promote: bool,
    is_admin: bool,
}

#[derive(Deserialize)]
pub struct ModelPath {
    model: String,
}

impl ModelPath {
    pub fn model(&self) -> &str {
        &self.model
    }
}

#[derive(Deserialize)]
pub struct ModelQuery {
    notice: Option<String>,
    /// Versions older than this one (its id, from the "older versions" link).
    before: Option<String>,
}

#[derive(Deserialize)]
pub struct PromoteForm {
    #[serde(default)]
    csrf: String,
    alias: String,
    version: String,
}

/// The model card of a version: its README.md, rendered and sanitized (or as rendered
/// before, for bytes seen before).
pub async fn card(
    pool: &Db,
    blobs: &BlobStore,
    cards: &CardCache,
    model: &ModelName,
    version: &VersionName,
) -> Result<Option<Arc<str>>, WebError> {
    let readme = RelPath::parse("README.md").map_err(ApiError::from)?;
    let file = match catalog::files::get(pool, model, version, &readme).await {
        Ok(file) => file,
        Err(CatalogError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if let Some(html) = cards.get(&file.digest) {
        return Ok(Some(html));
    }
    let size = u64::try_from(file.size).unwrap_or(0).min(MAX_CARD);
    let chunks: Vec<bytes::Bytes> = blobs
        .read(&file.digest, 0..size)
        .await
        .map_err(ApiError::from)?
        .try_collect()
        .await
        .map_err(ApiError::internal)?;
    let text = String::from_utf8_lossy(&chunks.concat()).into_owned();
    Ok(Some(cards.put(file.digest, markdown::render(&text))))
}

#[expect(clippy::too_many_arguments, reason = "a handler names each thing it uses, one extractor each")]
pub async fn show(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    cards: web::Data<CardCache>,
    cache: web::Data<PageCache<ModelKey, ModelData>>,
    settings: web::Data<Settings>,
    caller: WebCaller,
    path: web::Path<ModelPath>,
    query: web::Query<ModelQuery>,
) -> Result<HttpResponse, WebError> {
    let name = ModelName::parse(&path.model).map_err(ApiError::from)?;
    caller.caller.require_on(Role::Viewer, &name)?;
    let query = query.into_inner();
    let before = query
        .before
        .as_deref()
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| ApiError::BadRequest("before= is not a link this page made; go back to the model".into()))?;
    let data =
        cache.get_or_load((name.clone(), before), || load(&pool, &blobs, &cards, &settings, &name, before)).await?;
    let body = ModelPage {
        frame: caller.frame(),
        notice: query.notice,
        data,
        can_promote: caller.caller.role >= Role::Maintainer,
        is_admin: caller.caller.role >= Role::Admin,
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

async fn load(
    pool: &Db,
    blobs: &BlobStore,
    cards: &CardCache,
    settings: &Settings,
    name: &ModelName,
    before: Option<i64>,
) -> Result<ModelData, WebError> {
    let model = catalog::models::get(pool, name).await?;
    let page = catalog::versions::list(pool, name, before, VERSIONS_SHOWN).await?;
    let older = page.next.map(|id| format!("/models/{name}?before={id}#versions"));
    let versions = page.items;
    let aliases = catalog::aliases::list(pool, name).await?;
    let deployments =
        catalog::deployments::list(pool).await?.into_iter().filter(|d| d.model == *name).collect::<Vec<_>>();
    let card_version = model.latest_version.clone().unwrap_or_default();
    let card = match VersionName::parse(&card_version) {
        Ok(v) => card(pool, blobs, cards, name, &v).await?,
        Err(_) => None,
    };
    let protected = |alias: &str| settings.protected_aliases.iter().any(|g| g.matches(alias));
    Ok(ModelData {
        name: model.name.to_string(),
        description: model.description,
        tags: model.tags,
        created_by: model.created_by.unwrap_or_default(),
        ready_versions: versions
            .iter()
            .filter(|v| v.state == VersionState::Ready)
            .map(|v| v.name.to_string())
            .collect(),
        versions: versions
            .into_iter()
            .map(|v| VersionRow {
                name: v.name.to_string(),
                ready: v.state == VersionState::Ready,
                size: human_size(v.size),
                files: v.file_count,
                aliases: v.aliases.join(", "),
                created_by: v.created_by.unwrap_or_default(),
                created_at: v.created_at,
            })
            .collect(),
        aliases: aliases
            .into_iter()
            .map(|a| AliasRow {
                protected: protected(a.name.as_str()),
                name: a.name.to_string(),
                version: a.version.to_string(),
                updated_by: a.updated_by.unwrap_or_default(),
            })
            .collect(),
        deployments: deployments
            .into_iter()
            .map(|d| DeploymentRow {
                name: d.name.to_string(),
                state: d.observed.state.as_str().to_owned(),
                target: format!("{}{}", d.model, d.target),
            })
            .collect(),
        older,
        paged: before.is_some(),
        card,
        card_version,
    })
}

/// Points an alias at a version (protected aliases: admins only), then back to the model.
pub async fn promote(
    pool: web::Data<Db>,
    settings: web::Data<Settings>,
    supervisor: web::Data<crate::runtime::supervisor::Supervisor>,
    caller: WebCaller,
    path: web::Path<ModelPath>,
    form: web::Form<PromoteForm>,
) -> Result<HttpResponse, WebError> {
    caller.check_csrf(&form.csrf)?;
    let name = ModelName::parse(&path.model).map_err(ApiError::from)?;
    let alias = AliasName::parse(form.alias.trim()).map_err(ApiError::from)?;
    let version = VersionName::parse(form.version.trim()).map_err(ApiError::from)?;
    ops::aliases::set(&pool, &settings, &supervisor, &caller.caller, &name, &alias, &version).await?;
    let notice = encode_query(&format!("{alias} now points at version {version}."));
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/models/{name}?notice={notice}"))).finish())
}
