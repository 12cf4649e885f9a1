//! `/api/v1/runtimes`: how each format is served. Built-in presets, and runtimes admins
//! define or override (stored in SQLite). Templates are checked when saved: an unknown
//! placeholder is a 400.

use std::collections::BTreeMap;

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::openapi::{BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType};
use super::page::Items;
use crate::auth::Caller;
use crate::catalog;
use crate::domain::Role;
use crate::error::ApiError;
use crate::ops;
use crate::runtime::{PRESET_NAMES, Runtime, RuntimeDefinition, RuntimeDraft, RuntimeName, presets};

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RuntimePath {
    /// 1-63 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit.
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,62}$", example = "vllm")]
    name: String,
}

/// How a runtime serves a model: the body of `PUT /api/v1/runtimes/{name}`, which
/// `RuntimeDraft` parses. The same fields: `From<&RuntimeDraft>` names each, so a field added
/// there does not compile until it is described here too. A copy, not `RuntimeDraft`'s own
/// schema: that one refuses unknown fields (`additionalProperties: false`), which the view
/// that flattens it beside `name`, `builtin` and `customized` would then break.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "image": "vllm/vllm-openai:latest",
    "args": ["--model", "{model_dir}", "--port", "{port}", "--served-model-name", "{served_name}"],
    "port": 8000,
    "health_path": "/health",
    "startup_deadline_secs": 600,
}))]
pub struct RuntimeSpec {
    /// Image reference; it must already be on the host (`docker pull` it), nothing is pulled.
    image: String,
    /// Replaces the image's entrypoint when set; the image's own is kept when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    /// Arguments after the entrypoint, with placeholders: `{model_dir}`, `{port}`,
    /// `{served_name}`, `{mem_fraction}`, `{file}`, and the memory budget as `{memory_gib}`,
    /// `{memory_bytes}`, `{device_fraction}`, `{free_fraction}`, `{fit_target_mib}`.
    #[serde(default)]
    args: Vec<String>,
    /// The port the server listens on inside the container.
    #[schema(minimum = 1, maximum = 65535)]
    port: u32,
    /// Answers 200 once the model is loaded; default `/health`.
    #[serde(default)]
    health_path: String,
    /// From container start to a healthy answer, at most.
    startup_deadline_secs: u64,
    /// `/dev/shm` size; 0 keeps Docker's default (64 MiB).
    #[serde(default)]
    shm_size_bytes: u64,
    /// Environment; values may use placeholders.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Whether it speaks the OpenAI API (routed from `/v1/*`); default true. If not, it is
    /// reached through `/deployments/{name}/proxy/…`.
    #[serde(default)]
    openai: bool,
    /// Container paths that get a fresh writable volume per container.
    #[serde(default)]
    scratch_dirs: Vec<String>,
    /// A container path that gets the deployment's own volume, kept across restarts and
    /// removed with the deployment (compile caches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cache_dir: Option<String>,
}

impl From<&RuntimeDraft> for RuntimeSpec {
    fn from(draft: &RuntimeDraft) -> Self {
        let RuntimeDraft {
            image,
            entrypoint,
            args,
            port,
            health_path,
            startup_deadline_secs,
            shm_size_bytes,
            env,
            openai,
            scratch_dirs,
            cache_dir,
        } = draft.clone();
        Self {
            image,
            entrypoint,
            args,
            port,
            health_path,
            startup_deadline_secs,
            shm_size_bytes,
            env,
            openai,
            scratch_dirs,
            cache_dir,
        }
    }
}

/// A built-in preset under another image (the other form of the `PUT` body): everything else
/// is the preset's, and follows it when Hangar's preset changes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"preset": "llama-cpp", "image": "ghcr.io/ggml-org/llama.cpp:server-cuda13-b7000"}))]
pub struct PresetImageSpec {
    /// A built-in preset's name.
    #[schema(example = "llama-cpp")]
    preset: String,
    /// Image reference to run instead of the preset's; it must already be on the host.
    image: String,
}

/// The body of `PUT /api/v1/runtimes/{name}`: every field, or a preset with another image.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[expect(dead_code, reason = "the OpenAPI schema of the body that RuntimeDefinition parses")]
pub enum RuntimeBody {
    Spec(RuntimeSpec),
    PresetImage(PresetImageSpec),
}

/// A runtime with where it comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuntimeView {
    name: String,
    /// The preset this runtime takes everything but its image from (defined as
    /// `{"preset", "image"}`); the fields shown are those in effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    preset: Option<String>,
    #[serde(flatten)]
    spec: RuntimeSpec,
    /// A built-in preset's name.
    builtin: bool,
    /// Stored by an admin; for a preset's name, it overrides the preset.
    customized: bool,
}

impl RuntimeView {
    fn new(runtime: &Runtime, stored: bool) -> Self {
        Self {
            name: runtime.name().as_str().to_owned(),
            preset: runtime.preset().map(str::to_owned),
            spec: runtime.draft().into(),
            builtin: PRESET_NAMES.contains(&runtime.name().as_str()),
            customized: stored,
        }
    }
}

fn load(name: &str, json: &str) -> Result<Runtime, ApiError> {
    Runtime::from_stored(name, json).map_err(|e| ApiError::internal(anyhow::anyhow!(e)))
}

/// Every runtime: stored ones, and the presets not overridden.
#[utoipa::path(
    get,
    path = "/api/v1/runtimes",
    responses((status = 200, description = "The runtimes, by name", body = Items<RuntimeView>), Unauthorized, Forbidden),
)]
pub async fn list_runtimes(pool: web::Data<Db>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let stored = catalog::runtimes::list(&pool).await?;
    let mut items = Vec::new();
    for preset in presets() {
        if !stored.iter().any(|(name, _)| name == preset.name().as_str()) {
            items.push(RuntimeView::new(&preset, false));
        }
    }
    for (name, json) in &stored {
        items.push(RuntimeView::new(&load(name, json)?, true));
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// A runtime: an admin's, or a preset.
#[utoipa::path(
    get,
    path = "/api/v1/runtimes/{name}",
    params(RuntimePath),
    responses((status = 200, description = "The runtime", body = RuntimeView), Unauthorized, Forbidden, NotFound),
)]
pub async fn get_runtime(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<RuntimePath>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(json) = catalog::runtimes::get(&pool, &path.name).await? {
        return Ok(HttpResponse::Ok().json(RuntimeView::new(&load(&path.name, &json)?, true)));
    }
    let preset = crate::runtime::preset(&path.name)
        .ok_or_else(|| ApiError::NotFound(format!("runtime '{}' does not exist", path.name)))?;
    Ok(HttpResponse::Ok().json(RuntimeView::new(&preset, false)))
}

/// Defines or replaces a runtime (admins without model globs); a preset's name overrides the preset. The body is
/// every field, or `{"preset": "llama-cpp", "image": "…"}`: a preset under another image,
/// everything else the preset's. Templates are checked: an unknown placeholder is a 400.
#[utoipa::path(
    put,
    path = "/api/v1/runtimes/{name}",
    params(RuntimePath),
    request_body = RuntimeBody,
    responses(
        (status = 201, description = "Defined", body = RuntimeView),
        (status = 200, description = "Replaced", body = RuntimeView),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn put_runtime(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<RuntimePath>,
    body: web::Json<RuntimeDefinition>,
) -> Result<HttpResponse, ApiError> {
    let name = RuntimeName::parse(&path.name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let runtime = Runtime::define(name, body.into_inner()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let created = ops::runtimes::put(&pool, &caller, &runtime).await?;
    let view = RuntimeView::new(&runtime, true);
    Ok(if created { HttpResponse::Created().json(view) } else { HttpResponse::Ok().json(view) })
}

/// Deletes a stored runtime (admins without model globs; a preset comes back); refused while deployments use it.
#[utoipa::path(
    delete,
    path = "/api/v1/runtimes/{name}",
    params(RuntimePath),
    responses((status = 204, description = "Deleted"), Unauthorized, Forbidden, NotFound, Conflict),
)]
pub async fn delete_runtime(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<RuntimePath>,
) -> Result<HttpResponse, ApiError> {
    ops::runtimes::delete(&pool, &caller, &path.name).await?;
    Ok(HttpResponse::NoContent().finish())
}
