//! `/api/v1/deployments`: a ready version in its own container. Handlers check the caller
//! and the request, then hand over to the supervisor, which converges in the background;
//! `POST` answers 202 and progress shows in `GET …/{name}` and the events.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use crate::auth::Caller;
use crate::catalog::deployments::{self, Deployment, Desired, NewDeployment, State, Target};
use crate::domain::{AliasName, DeploymentName, ModelName, Role, VersionName};
use crate::error::ApiError;
use crate::runtime::supervisor::Supervisor;
use crate::runtime::{GpuAllocation, GpuRequest, Overrides};

const DEFAULT_LOG_TAIL: u32 = 100;

#[derive(Debug, Serialize)]
pub struct DeploymentView {
    name: DeploymentName,
    model: ModelName,
    /// `model@alias` or `model:version`.
    target: String,
    runtime: String,
    gpu_request: Option<serde_json::Value>,
    env: BTreeMap<String, String>,
    args: Vec<String>,
    autostart: bool,
    idle_timeout_secs: Option<i64>,
    desired: Desired,
    state: State,
    reason: Option<String>,
    version: Option<String>,
    container_id: Option<String>,
    address: Option<String>,
    gpus: Option<GpuAllocation>,
    started_at: Option<String>,
    restarts: i64,
    created_by: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<Deployment> for DeploymentView {
    fn from(d: Deployment) -> Self {
        Self {
            target: format!("{}{}", d.model, d.target),
            name: d.name,
            model: d.model,
            runtime: d.runtime,
            gpu_request: d.gpu_request.and_then(|g| serde_json::from_str(&g).ok()),
            env: d.env,
            args: d.args,
            autostart: d.autostart,
            idle_timeout_secs: d.idle_timeout_secs,
            desired: d.desired,
            state: d.observed.state,
            reason: d.observed.reason,
            version: d.observed.serving_version,
            container_id: d.observed.container_id,
            address: d.observed.address,
            gpus: d.observed.gpu_allocation.and_then(|g| serde_json::from_str(&g).ok()),
            started_at: d.observed.started_at,
            restarts: d.observed.restarts,
            created_by: d.created_by,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// Defaults to the model's name with `/` as `-`.
    name: Option<String>,
    /// `model`, or `model@alias` / `model:version` in one string.
    model: String,
    version: Option<String>,
    alias: Option<String>,
    runtime: String,
    gpus: Option<u32>,
    gpu_memory_gib: Option<f64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    autostart: bool,
    idle_timeout_secs: Option<u32>,
    /// Start now (default), or only create it stopped.
    start: Option<bool>,
}

#[derive(Deserialize)]
pub struct DeploymentPath {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    tail: Option<u32>,
    follow: Option<bool>,
}

/// Splits `model@alias` / `model:version` and checks exactly one target is given.
fn parse_target(body: &CreateDeployment) -> Result<(ModelName, Target), ApiError> {
    let (model, inline) = match body.model.split_once(['@', ':']) {
        Some((model, _)) => (model, Some(&body.model[model.len()..])),
        None => (body.model.as_str(), None),
    };
    let model = ModelName::parse(model)?;
    let target = match (inline, &body.version, &body.alias) {
        (Some(t), None, None) if t.starts_with('@') => Target::Alias(AliasName::parse(&t[1..])?),
        (Some(t), None, None) => Target::Version(VersionName::parse(&t[1..])?),
        (None, Some(v), None) => Target::Version(VersionName::parse(v)?),
        (None, None, Some(a)) => Target::Alias(AliasName::parse(a)?),
        (None, None, None) => {
            return Err(ApiError::BadRequest(
                "say what to deploy: give version (pinned) or alias (followed), or model as model@alias".into(),
            ));
        }
        _ => return Err(ApiError::BadRequest("give one target: a version or an alias, not both".into())),
    };
    Ok((model, target))
}

fn parse_gpus(body: &CreateDeployment) -> Result<Option<String>, ApiError> {
    let request = match (body.gpus, body.gpu_memory_gib) {
        (None, None) => return Ok(None),
        (Some(n), None) => GpuRequest::gpus(n),
        (None, Some(gib)) => GpuRequest::memory_gib(gib),
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give gpus (whole GPUs) or gpu_memory_gib (a share of one), not both".into(),
            ));
        }
    }
    .map_err(ApiError::BadRequest)?;
    serde_json::to_string(&request).map(Some).map_err(ApiError::internal)
}

/// Creates a deployment and (unless `start: false`) starts it; 202, then watch its state.
pub async fn create_deployment(
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    body: web::Json<CreateDeployment>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (model, target) = parse_target(&body)?;
    caller.require_on(Role::Maintainer, &model)?;
    let name = match &body.name {
        Some(name) => DeploymentName::parse(name)?,
        None => DeploymentName::for_model(&model)?,
    };
    supervisor.runtime(&body.runtime).await?;
    Overrides::parse(&body.env, &body.args).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    docker_answers(&supervisor).await?;
    let new = NewDeployment {
        gpu_request: parse_gpus(&body)?,
        name,
        model,
        target,
        runtime: body.runtime,
        env: body.env,
        args: body.args,
        autostart: body.autostart,
        idle_timeout_secs: body.idle_timeout_secs.map(i64::from),
        desired: if body.start.unwrap_or(true) { Desired::Running } else { Desired::Stopped },
    };
    let deployment = supervisor.create(&caller.actor(), new).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/deployments/{}", deployment.name)))
        .json(DeploymentView::from(deployment)))
}

pub async fn list_deployments(pool: web::Data<SqlitePool>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let items: Vec<DeploymentView> = deployments::list(&pool)
        .await?
        .into_iter()
        .filter(|d| caller.require_on(Role::Viewer, &d.model).is_ok())
        .map(DeploymentView::from)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// Deployment calls need Docker: without it, 503 naming the socket tried.
async fn docker_answers(supervisor: &Supervisor) -> Result<(), ApiError> {
    supervisor.docker().ping().await.map_err(|e| ApiError::Unavailable(e.to_string()))
}

/// Looks a deployment up and checks the caller may act on its model.
async fn authorized(
    pool: &SqlitePool,
    caller: &Caller,
    role: Role,
    path: &DeploymentPath,
) -> Result<Deployment, ApiError> {
    caller.require(role)?;
    let deployment = deployments::get(pool, &DeploymentName::parse(&path.name)?).await?;
    caller.require_on(role, &deployment.model)?;
    Ok(deployment)
}

pub async fn get_deployment(
    pool: web::Data<SqlitePool>,
    caller: Caller,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Viewer, &path).await?;
    Ok(HttpResponse::Ok().json(DeploymentView::from(deployment)))
}

/// Stops the container (SIGTERM, grace period, removal), frees its GPUs, deletes it.
pub async fn delete_deployment(
    pool: web::Data<SqlitePool>,
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Maintainer, &path).await?;
    supervisor.delete(&caller.actor(), &deployment.name).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn start_deployment(
    pool: web::Data<SqlitePool>,
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Maintainer, &path).await?;
    docker_answers(&supervisor).await?;
    let deployment = supervisor.start(&caller.actor(), &deployment.name).await?;
    Ok(HttpResponse::Accepted().json(DeploymentView::from(deployment)))
}

pub async fn stop_deployment(
    pool: web::Data<SqlitePool>,
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Maintainer, &path).await?;
    let deployment = supervisor.stop(&caller.actor(), &deployment.name).await?;
    Ok(HttpResponse::Accepted().json(DeploymentView::from(deployment)))
}

pub async fn restart_deployment(
    pool: web::Data<SqlitePool>,
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Maintainer, &path).await?;
    docker_answers(&supervisor).await?;
    let deployment = supervisor.restart(&caller.actor(), &deployment.name).await?;
    Ok(HttpResponse::Accepted().json(DeploymentView::from(deployment)))
}

/// The container's output: the last `tail` lines, then with `follow=true` what it prints
/// until it stops or the client leaves.
pub async fn deployment_logs(
    pool: web::Data<SqlitePool>,
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    path: web::Path<DeploymentPath>,
    query: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Viewer, &path).await?;
    let Some(container) = deployment.observed.container_id else {
        return Err(ApiError::Conflict(format!(
            "deployment '{}' has no container now (it is {}); start it to see its logs",
            deployment.name,
            deployment.observed.state.as_str()
        )));
    };
    docker_answers(&supervisor).await?;
    let stream = supervisor
        .docker()
        .logs(&container, query.tail.unwrap_or(DEFAULT_LOG_TAIL), query.follow.unwrap_or(false))
        .map(|chunk| chunk.map_err(actix_web::error::ErrorBadGateway));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(model: &str, version: Option<&str>, alias: Option<&str>) -> CreateDeployment {
        CreateDeployment {
            name: None,
            model: model.into(),
            version: version.map(Into::into),
            alias: alias.map(Into::into),
            runtime: "vllm".into(),
            gpus: None,
            gpu_memory_gib: None,
            env: BTreeMap::new(),
            args: Vec::new(),
            autostart: false,
            idle_timeout_secs: None,
            start: None,
        }
    }

    #[test]
    fn targets_parse_from_fields_or_inline() {
        let alias = |a: &str| Target::Alias(AliasName::parse(a).expect("alias"));
        let version = |v: &str| Target::Version(VersionName::parse(v).expect("version"));
        assert_eq!(parse_target(&body("team/m@prod", None, None)).expect("ok").1, alias("prod"));
        assert_eq!(parse_target(&body("team/m:3", None, None)).expect("ok").1, version("3"));
        assert_eq!(parse_target(&body("m", Some("1.2"), None)).expect("ok").1, version("1.2"));
        assert_eq!(parse_target(&body("m", None, Some("staging"))).expect("ok").1, alias("staging"));
        assert!(parse_target(&body("m", None, None)).is_err());
        assert!(parse_target(&body("m", Some("1"), Some("prod"))).is_err());
        assert!(parse_target(&body("m@prod", Some("1"), None)).is_err());
    }
}
