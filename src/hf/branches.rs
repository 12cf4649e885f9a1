//! Branches: the Hub's `create_branch` and `delete_branch` over Hangar's aliases, which are
//! what revisions that move are here. A new branch starts at any revision the read side
//! resolves (an alias, a version, a commit id, `main`), or at `main`; the alias rules hold
//! as in the API (maintainers, protected aliases admin-only, audited, deployments that
//! follow an alias keep it from being deleted).

use crate::catalog::Db;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::revision::{self, HfError, commit_id};
use super::write::{parse, writable_repo};
use crate::auth::Caller;
use crate::catalog::{self, CatalogError};
use crate::config::Settings;
use crate::domain::{AliasName, ModelName};
use crate::ops;
use crate::runtime::supervisor::Supervisor;

#[derive(Debug, Default, Deserialize)]
struct NewBranch {
    #[serde(rename = "startingPoint")]
    starting_point: Option<String>,
}

/// The `{branch}` of the path, as an alias name.
fn branch(req: &HttpRequest) -> Result<AliasName, HfError> {
    let raw = req.match_info().get("branch").unwrap_or_default();
    AliasName::parse(raw).map_err(HfError::refused)
}

/// Whether `alias` names a revision of `model` already: an alias, or `main` while the model
/// has a published version (the Hub's `main` always exists).
async fn exists(pool: &Db, model: &ModelName, alias: &AliasName) -> Result<bool, HfError> {
    match catalog::aliases::get(pool, model, alias).await {
        Ok(_) => Ok(true),
        Err(CatalogError::NotFound(_)) if alias.as_str() == "main" => {
            Ok(!revision::published(pool, model).await?.is_empty())
        }
        Err(CatalogError::NotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn refused(status: StatusCode, message: String) -> HfError {
    HfError::Refused(status, message)
}

/// `POST /hf/api/models/{repo}/branch/{branch}`: a new alias at `startingPoint` (default
/// `main`); 409 if the branch exists, as the Hub answers (`exist_ok` relies on it).
pub async fn create_branch(
    pool: web::Data<Db>,
    settings: web::Data<Settings>,
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, HfError> {
    let model = writable_repo(&pool, &caller, &req).await?;
    let alias = branch(&req)?;
    let start: NewBranch = if body.is_empty() { NewBranch::default() } else { parse(&body)? };
    let version = revision::resolve(&pool, &model, start.starting_point.as_deref().unwrap_or("main")).await?;
    if exists(&pool, &model, &alias).await? {
        return Err(refused(StatusCode::CONFLICT, format!("Reference already exists: refs/heads/{alias}")));
    }
    ops::aliases::set(&pool, &settings, &supervisor, &caller, &model, &alias, &version.name)
        .await
        .map_err(HfError::refused)?;
    Ok(HttpResponse::Ok().json(json!({ "name": alias.as_str(), "targetCommit": commit_id(&version) })))
}

/// `DELETE /hf/api/models/{repo}/branch/{branch}`: removes the alias (the versions stay).
/// `main` without an alias of that name is the newest version, which cannot be deleted.
pub async fn delete_branch(
    pool: web::Data<Db>,
    settings: web::Data<Settings>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, HfError> {
    let model = writable_repo(&pool, &caller, &req).await?;
    let alias = branch(&req)?;
    match catalog::aliases::get(&pool, &model, &alias).await {
        Ok(_) => {}
        Err(CatalogError::NotFound(_)) if alias.as_str() == "main" => {
            return Err(refused(StatusCode::FORBIDDEN, "main is the newest version and cannot be deleted".into()));
        }
        Err(CatalogError::NotFound(_)) => {
            return Err(refused(StatusCode::NOT_FOUND, format!("Reference does not exist: refs/heads/{alias}")));
        }
        Err(e) => return Err(e.into()),
    }
    ops::aliases::delete(&pool, &settings, &caller, &model, &alias).await.map_err(HfError::refused)?;
    Ok(HttpResponse::Ok().json(json!({})))
}
