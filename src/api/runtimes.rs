//! `/api/v1/runtimes`: how each format is served. Built-in presets, and runtimes admins
//! define or override (stored in SQLite). Templates are checked when saved: an unknown
//! placeholder is a 400.

use actix_web::{HttpResponse, web};
use sqlx::SqlitePool;

use crate::auth::Caller;
use crate::catalog;
use crate::domain::Role;
use crate::error::ApiError;
use crate::runtime::{PRESET_NAMES, Runtime, RuntimeDraft, RuntimeName, presets};

#[derive(serde::Deserialize)]
pub struct RuntimePath {
    name: String,
}

/// A runtime with where it comes from.
fn view(runtime: &Runtime, stored: bool) -> Result<serde_json::Value, ApiError> {
    let mut value = serde_json::to_value(runtime).map_err(ApiError::internal)?;
    value["builtin"] = serde_json::Value::Bool(PRESET_NAMES.contains(&runtime.name().as_str()));
    value["customized"] = serde_json::Value::Bool(stored);
    Ok(value)
}

fn load(name: &str, json: &str) -> Result<Runtime, ApiError> {
    let draft: RuntimeDraft = serde_json::from_str(json).map_err(ApiError::internal)?;
    Runtime::new(RuntimeName::parse(name).map_err(ApiError::internal)?, draft).map_err(ApiError::internal)
}

/// Every runtime: stored ones, and the presets not overridden.
pub async fn list_runtimes(pool: web::Data<SqlitePool>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let stored = catalog::runtimes::list(&pool).await?;
    let mut items = Vec::new();
    for preset in presets() {
        if !stored.iter().any(|(name, _)| name == preset.name().as_str()) {
            items.push(view(&preset, false)?);
        }
    }
    for (name, json) in &stored {
        items.push(view(&load(name, json)?, true)?);
    }
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

pub async fn get_runtime(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<RuntimePath>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(json) = catalog::runtimes::get(&pool, &path.name).await? {
        return Ok(HttpResponse::Ok().json(view(&load(&path.name, &json)?, true)?));
    }
    let preset = crate::runtime::preset(&path.name)
        .ok_or_else(|| ApiError::NotFound(format!("runtime '{}' does not exist", path.name)))?;
    Ok(HttpResponse::Ok().json(view(&preset, false)?))
}

/// Defines or replaces a runtime (admins); a preset's name overrides the preset.
pub async fn put_runtime(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<RuntimePath>,
    body: web::Json<RuntimeDraft>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    let name = RuntimeName::parse(&path.name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let runtime = Runtime::new(name, body.into_inner()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let json = serde_json::to_string(runtime.draft()).map_err(ApiError::internal)?;
    let created = catalog::runtimes::put(&pool, &caller.actor(), runtime.name().as_str(), &json).await?;
    let view = view(&runtime, true)?;
    Ok(if created { HttpResponse::Created().json(view) } else { HttpResponse::Ok().json(view) })
}

/// Deletes a stored runtime (a preset comes back); refused while deployments use it.
pub async fn delete_runtime(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<RuntimePath>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Admin)?;
    catalog::runtimes::delete(&pool, &caller.actor(), &path.name).await?;
    Ok(HttpResponse::NoContent().finish())
}
