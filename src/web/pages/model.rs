//! A model: its versions, aliases (with a promote form), its model card and deployments.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use askama::Template;
use futures_util::TryStreamExt as _;
use serde::Deserialize;
use sqlx::SqlitePool;

use super::{Notice, human_size};
use crate::blobs::BlobStore;
use crate::catalog::{self, CatalogError, versions::VersionState};
use crate::config::Settings;
use crate::domain::{AliasName, ModelName, RelPath, Role, VersionName};
use crate::error::ApiError;
use crate::web::error::encode_query;
use crate::web::{WebCaller, WebError, markdown};

/// Cards larger than this are shown cut: a README is prose, not a payload.
const MAX_CARD: u64 = 256 * 1024;

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

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    user: String,
    csrf: String,
    notice: Option<String>,
    name: String,
    description: String,
    tags: Vec<String>,
    created_by: String,
    versions: Vec<VersionRow>,
    ready_versions: Vec<String>,
    aliases: Vec<AliasRow>,
    deployments: Vec<DeploymentRow>,
    card: Option<String>,
    card_version: String,
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
pub struct PromoteForm {
    #[serde(default)]
    csrf: String,
    alias: String,
    version: String,
}

/// The model card of a version: its README.md, rendered and sanitized.
pub async fn card(
    pool: &SqlitePool,
    blobs: &BlobStore,
    model: &ModelName,
    version: &VersionName,
) -> Result<Option<String>, WebError> {
    let readme = RelPath::parse("README.md").map_err(ApiError::from)?;
    let file = match catalog::files::get(pool, model, version, &readme).await {
        Ok(file) => file,
        Err(CatalogError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = u64::try_from(file.size).unwrap_or(0).min(MAX_CARD);
    let chunks: Vec<bytes::Bytes> = blobs
        .read(&file.digest, 0..size)
        .await
        .map_err(ApiError::from)?
        .try_collect()
        .await
        .map_err(ApiError::internal)?;
    let text = String::from_utf8_lossy(&chunks.concat()).into_owned();
    Ok(Some(markdown::render(&text)))
}

pub async fn show(
    pool: web::Data<SqlitePool>,
    blobs: web::Data<BlobStore>,
    settings: web::Data<Settings>,
    caller: WebCaller,
    path: web::Path<ModelPath>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, WebError> {
    let name = ModelName::parse(&path.model).map_err(ApiError::from)?;
    caller.caller.require_on(Role::Viewer, &name)?;
    let model = catalog::models::get(&pool, &name).await?;
    let versions = catalog::versions::list(&pool, &name, None, 200).await?.items;
    let aliases = catalog::aliases::list(&pool, &name).await?;
    let deployments =
        catalog::deployments::list(&pool).await?.into_iter().filter(|d| d.model == name).collect::<Vec<_>>();
    let card_version = model.latest_version.clone().unwrap_or_default();
    let card = match VersionName::parse(&card_version) {
        Ok(v) => card(&pool, &blobs, &name, &v).await?,
        Err(_) => None,
    };
    let protected = |alias: &str| settings.protected_aliases.iter().any(|g| g.matches(alias));
    let body = ModelPage {
        user: caller.user(),
        csrf: caller.csrf.clone(),
        notice: notice.into_inner().notice,
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
        card,
        card_version,
        can_promote: caller.caller.role >= Role::Maintainer,
        is_admin: caller.caller.role >= Role::Admin,
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

/// Points an alias at a version (protected aliases: admins only), then back to the model.
pub async fn promote(
    pool: web::Data<SqlitePool>,
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
    caller.caller.require_on(Role::Maintainer, &name)?;
    if let Some(rule) = settings.protected_aliases.iter().find(|g| g.matches(alias.as_str()))
        && caller.caller.role < Role::Admin
    {
        return Err(WebError::forbidden(format!(
            "alias '{alias}' is protected by the rule '{rule}'; only an admin can move it"
        )));
    }
    catalog::aliases::set(&pool, &caller.caller.actor(), &name, &alias, &version).await?;
    supervisor.wake();
    let notice = encode_query(&format!("{alias} now points at version {version}."));
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/models/{name}?notice={notice}"))).finish())
}
