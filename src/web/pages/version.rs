//! A version: its files (with download links), metadata, manifest digest, who published it,
//! and a diff against another version of the model.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::human_size;
use crate::blobs::BlobStore;
use crate::catalog::{self, versions::VersionState};
use crate::domain::{ModelName, Role, VersionName};
use crate::error::ApiError;
use crate::web::cache::PageCache;
use crate::web::markdown::CardCache;
use crate::web::{Frame, WebCaller, WebError, pages::model::card};

/// Versions offered to compare with (the newest); any other can be named in the URL.
const COMPARE_CHOICES: u32 = 200;

pub struct FileRow {
    path: String,
    size: String,
    digest: String,
    short_digest: String,
    href: String,
}

pub struct DiffRow {
    path: String,
    change: &'static str,
}

/// What the version page shows of the catalog, for one comparison.
pub struct VersionData {
    model: String,
    version: String,
    ready: bool,
    description: String,
    metadata: String,
    manifest_digest: String,
    created_by: String,
    created_at: String,
    published_by: String,
    published_at: String,
    size: String,
    files: Vec<FileRow>,
    others: Vec<String>,
    against: String,
    diff: Vec<DiffRow>,
    card: Option<Arc<str>>,
}

/// A version and what it is compared with (`against=`, maybe empty).
pub type VersionKey = (ModelName, VersionName, String);

#[derive(Template)]
#[template(path = "version.html")]
struct VersionPage {
    frame: Frame,
    data: Arc<VersionData>,
}

#[derive(Deserialize)]
pub struct VersionPath {
    model: String,
    version: String,
}

#[derive(Deserialize)]
pub struct DiffQuery {
    against: Option<String>,
}

pub async fn show(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    cards: web::Data<CardCache>,
    cache: web::Data<PageCache<VersionKey, VersionData>>,
    caller: WebCaller,
    path: web::Path<VersionPath>,
    query: web::Query<DiffQuery>,
) -> Result<HttpResponse, WebError> {
    let model = ModelName::parse(&path.model).map_err(ApiError::from)?;
    let name = VersionName::parse(&path.version).map_err(ApiError::from)?;
    caller.caller.require_on(Role::Viewer, &model)?;
    let against = query.into_inner().against.unwrap_or_default();
    let key = (model.clone(), name.clone(), against.clone());
    let data = cache.get_or_load(key, || load(&pool, &blobs, &cards, &model, &name, against)).await?;
    let body = VersionPage { frame: caller.frame(), data }.render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

async fn load(
    pool: &Db,
    blobs: &BlobStore,
    cards: &CardCache,
    model: &ModelName,
    name: &VersionName,
    against: String,
) -> Result<VersionData, WebError> {
    let version = catalog::versions::get(pool, model, name).await?;
    let files = catalog::files::list(pool, model, name).await?;
    let others: Vec<String> = catalog::versions::names(pool, model, COMPARE_CHOICES)
        .await?
        .into_iter()
        .filter(|v| v != name)
        .map(|v| v.to_string())
        .collect();
    let diff = match VersionName::parse(&against) {
        Ok(other) => {
            let theirs: BTreeMap<String, String> = catalog::files::list(pool, model, &other)
                .await?
                .into_iter()
                .map(|f| (f.path.to_string(), f.digest.to_string()))
                .collect();
            let ours: BTreeMap<String, String> =
                files.iter().map(|f| (f.path.to_string(), f.digest.to_string())).collect();
            diff(&theirs, &ours)
        }
        Err(_) => Vec::new(),
    };
    Ok(VersionData {
        model: model.to_string(),
        version: name.to_string(),
        ready: version.state == VersionState::Ready,
        description: version.description,
        metadata: serde_json::to_string_pretty(&version.metadata).unwrap_or_default(),
        manifest_digest: version.manifest_digest.map(|d| d.to_string()).unwrap_or_default(),
        created_by: version.created_by.unwrap_or_default(),
        created_at: version.created_at,
        published_by: version.published_by.unwrap_or_default(),
        published_at: version.published_at.unwrap_or_default(),
        size: human_size(version.size),
        files: files
            .into_iter()
            .map(|f| FileRow {
                href: format!("/api/v1/models/{model}/versions/{name}/files/{}", f.path),
                short_digest: f.digest.hex()[..12].to_owned(),
                digest: f.digest.to_string(),
                size: human_size(f.size),
                path: f.path.to_string(),
            })
            .collect(),
        others,
        against,
        diff,
        card: card(pool, blobs, cards, model, name).await?,
    })
}

/// Files added, removed and changed going from `base` to `this`.
fn diff(base: &BTreeMap<String, String>, this: &BTreeMap<String, String>) -> Vec<DiffRow> {
    let mut rows = Vec::new();
    for (path, digest) in this {
        match base.get(path) {
            None => rows.push(DiffRow { path: path.clone(), change: "added" }),
            Some(old) if old != digest => rows.push(DiffRow { path: path.clone(), change: "changed" }),
            Some(_) => {}
        }
    }
    for path in base.keys().filter(|p| !this.contains_key(*p)) {
        rows.push(DiffRow { path: path.clone(), change: "removed" });
    }
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_added_removed_and_changed_files() {
        let base = BTreeMap::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
        let this = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "3".to_owned()),
            ("c".to_owned(), "4".to_owned()),
        ]);
        let rows: Vec<(String, &str)> = diff(&base, &this).into_iter().map(|r| (r.path, r.change)).collect();
        assert_eq!(rows, [("b".to_owned(), "changed"), ("c".to_owned(), "added")]);
        let rows: Vec<(String, &str)> = diff(&this, &base).into_iter().map(|r| (r.path, r.change)).collect();
        assert_eq!(rows, [("b".to_owned(), "changed"), ("c".to_owned(), "removed")]);
    }
}
