//! `/api/v1/deployments`: a ready version in its own container. Handlers check the caller
//! and the request, then hand over to the supervisor, which converges in the background;
//! `POST` answers 202 and progress shows in `GET …/{name}` and the events.

use std::collections::BTreeMap;

use crate::catalog::Db;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unavailable, UnsupportedMediaType,
};
use super::page::Items;
use crate::auth::Caller;
use crate::catalog::deployments::{Deployment, Desired, State, Target};
use crate::catalog::launches::{self, Launch};
use crate::domain::{AliasName, DeploymentName, ModelName, ModelRef, NodeName, Role, VersionName};
use crate::error::ApiError;
use crate::nodes::{Location, Nodes, Relay};
use crate::ops::{self, deployments::Action, deployments::DeploymentRequest};
use crate::runtime::supervisor::Supervisor;
use crate::runtime::{GpuAllocation, GpuRequest};

const DEFAULT_LOG_TAIL: u32 = 100;

/// A deployment: what should run (written by people) and what does (seen by the supervisor).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    name: DeploymentName,
    model: ModelName,
    /// `model@alias` (follows the alias) or `model:version` (pinned).
    target: String,
    runtime: String,
    /// `{"gpus": N}` whole GPUs, or `{"gpu_memory_gib": X}` of one shared GPU.
    gpu_request: Option<GpuRequest>,
    env: BTreeMap<String, String>,
    args: Vec<String>,
    /// Started by the first gateway request when stopped.
    autostart: bool,
    idle_timeout_secs: Option<i64>,
    desired: Desired,
    /// `unknown` while the node that runs it is down.
    state: State,
    /// The node that runs it.
    node: Option<NodeName>,
    /// Why it failed, or what it waits for.
    reason: Option<String>,
    /// The version it serves now.
    version: Option<String>,
    container_id: Option<String>,
    /// Where the gateway reaches it (`host:port`).
    address: Option<String>,
    /// The GPUs admission gave it.
    gpus: Option<GpuAllocation>,
    started_at: Option<String>,
    restarts: i64,
    created_by: Option<String>,
    created_at: String,
    updated_at: String,
    /// What its newest start ran: image digest, argv, environment (secret values masked),
    /// manifest digest, runtime definition. In `GET /api/v1/deployments/{name}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    launch: Option<Launch>,
}

impl DeploymentView {
    /// The view of `d`, its state `unknown` when its node is down.
    fn new(d: Deployment, nodes: &Nodes) -> Self {
        let known = nodes.is_known(&d);
        Self {
            target: format!("{}{}", d.model, d.target),
            name: d.name,
            model: d.model,
            runtime: d.runtime,
            gpu_request: d.gpu_request,
            env: d.env,
            args: d.args,
            autostart: d.autostart,
            idle_timeout_secs: d.idle_timeout_secs,
            desired: d.desired,
            state: if known { d.observed.state } else { State::Unknown },
            node: d.node,
            reason: d.observed.reason,
            version: d.observed.serving_version,
            container_id: d.observed.container_id,
            address: d.observed.address,
            gpus: d.observed.gpu_allocation,
            started_at: d.observed.started_at,
            restarts: d.observed.restarts,
            created_by: d.created_by,
            created_at: d.created_at,
            updated_at: d.updated_at,
            launch: None,
        }
    }
}

/// What to deploy, how, and on which GPUs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// Defaults to the model's name with `/` as `-`.
    #[schema(value_type = Option<DeploymentName>)]
    name: Option<String>,
    /// `model`, or `model@alias` / `model:version` in one string.
    #[schema(example = "demo@prod")]
    model: String,
    /// Pin this version.
    #[schema(value_type = Option<VersionName>)]
    version: Option<String>,
    /// Follow this alias: moving it rolls the deployment.
    #[schema(value_type = Option<AliasName>)]
    alias: Option<String>,
    /// A runtime's name (`GET /api/v1/runtimes`).
    #[schema(example = "vllm")]
    runtime: String,
    /// Whole GPUs, no one else on them.
    #[schema(minimum = 1)]
    gpus: Option<u32>,
    /// GiB of one GPU, shared with other such requests.
    gpu_memory_gib: Option<f64>,
    /// Environment added to the runtime's; values may use placeholders.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Arguments added after the runtime's.
    #[serde(default)]
    args: Vec<String>,
    /// Let the first gateway request start it when stopped.
    #[serde(default)]
    autostart: bool,
    /// Stop it after this long without requests.
    idle_timeout_secs: Option<u32>,
    /// Start now (default), or only create it stopped.
    start: Option<bool>,
    /// The node to run it on (`GET /api/v1/nodes`); by default this node when its GPUs fit,
    /// else the first other node that is up and has room.
    #[schema(value_type = Option<NodeName>)]
    node: Option<String>,
}

/// Where to move a deployment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveDeployment {
    #[schema(value_type = NodeName)]
    node: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeploymentPath {
    #[param(value_type = DeploymentName)]
    name: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Lines from the end to start with; default 100.
    tail: Option<u32>,
    /// Keep sending what the container prints until it stops or the client leaves.
    follow: Option<bool>,
}

/// Splits `model@alias` / `model:version` and checks exactly one target is given.
fn parse_target(body: &CreateDeployment) -> Result<(ModelName, Target), ApiError> {
    let ModelRef { model, target: inline } = ModelRef::parse(&body.model)?;
    let target = match (inline, &body.version, &body.alias) {
        (Some(t), None, None) => t,
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

/// Creates a deployment and (unless `start: false`) starts it; 202, then watch its state.
/// A request that does not fit the free GPUs is refused with 409 naming what holds them.
#[utoipa::path(
    post,
    path = "/api/v1/deployments",
    request_body = CreateDeployment,
    responses(
        (status = 202, description = "Created; the supervisor converges in the background", body = DeploymentView,
            headers(("Location" = String))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType, Unavailable,
    ),
)]
pub async fn create_deployment(
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: Caller,
    body: web::Json<CreateDeployment>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (model, target) = parse_target(&body)?;
    let request = DeploymentRequest {
        name: body.name.as_deref().map(DeploymentName::parse).transpose()?,
        model,
        target,
        runtime: body.runtime,
        gpus: body.gpus,
        gpu_memory_gib: body.gpu_memory_gib,
        env: body.env,
        args: body.args,
        autostart: body.autostart,
        idle_timeout_secs: body.idle_timeout_secs.map(i64::from),
        start: body.start.unwrap_or(true),
        node: body.node.as_deref().map(NodeName::parse).transpose()?,
    };
    let deployment = ops::deployments::create(&supervisor, &caller, request).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/deployments/{}", deployment.name)))
        .json(DeploymentView::new(deployment, &nodes)))
}

/// Every deployment of a model the caller may see.
#[utoipa::path(
    get,
    path = "/api/v1/deployments",
    responses((status = 200, description = "The deployments", body = Items<DeploymentView>), Unauthorized, Forbidden),
)]
pub async fn list_deployments(
    pool: web::Data<Db>,
    nodes: web::Data<Nodes>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let visible = ops::deployments::list(&pool, &caller).await?;
    Ok(HttpResponse::Ok().json(Items::new(visible, |d| DeploymentView::new(d, &nodes))))
}

/// Looks a deployment up and checks the caller has `role` on its model.
async fn authorized(pool: &Db, caller: &Caller, role: Role, path: &DeploymentPath) -> Result<Deployment, ApiError> {
    Ok(ops::deployments::find(pool, caller, role, &DeploymentName::parse(&path.name)?).await?)
}

/// A deployment, with its observed state.
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{name}",
    params(DeploymentPath),
    responses((status = 200, description = "The deployment", body = DeploymentView), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn get_deployment(
    pool: web::Data<Db>,
    nodes: web::Data<Nodes>,
    caller: Caller,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Viewer, &path).await?;
    let launch = launches::latest(&pool, &deployment.name).await?;
    Ok(HttpResponse::Ok().json(DeploymentView { launch, ..DeploymentView::new(deployment, &nodes) }))
}

/// When `d` runs on another node, that node's answer to this same request (the container
/// and its engine are there); a 409 when that node is down.
async fn on_its_node(nodes: &Nodes, req: &HttpRequest, d: &Deployment) -> Result<Option<HttpResponse>, ApiError> {
    match nodes.locate(d) {
        Location::Here => Ok(None),
        Location::There { node, .. } if Relay::relayed(req) => Err(ApiError::Unavailable(format!(
            "deployment '{}' runs on node '{node}', not on the node this was relayed to; try again",
            d.name
        ))),
        Location::There { node, url } => match nodes.relay().forward(req, &url, web::Bytes::new()).await {
            Ok(answer) => Ok(Some(answer)),
            Err(e) => {
                tracing::warn!(%node, %url, error = %e, "could not relay a deployment call to its node");
                Err(ApiError::Unavailable(format!("node '{node}', which runs deployment '{}', did not answer", d.name)))
            }
        },
        Location::Down { node } => Err(ApiError::Conflict(nodes.down_message(d, &node))),
    }
}

/// Moves it to another node: placed there first (409 if it does not fit or the node is
/// down), then the node it leaves stops its container and the new one starts it. Works when
/// the node it leaves is down: that node removes the container when it is back.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{name}/move",
    params(DeploymentPath),
    request_body = MoveDeployment,
    responses(
        (status = 202, description = "Moving", body = DeploymentView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn move_deployment(
    pool: web::Data<Db>,
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: Caller,
    path: web::Path<DeploymentPath>,
    body: web::Json<MoveDeployment>,
) -> Result<HttpResponse, ApiError> {
    let name = DeploymentName::parse(&path.name)?;
    let node = NodeName::parse(&body.node)?;
    let moved = ops::deployments::move_to(&pool, &supervisor, &caller, &name, &node).await?;
    Ok(HttpResponse::Accepted().json(DeploymentView::new(moved, &nodes)))
}

/// Stops the container (SIGTERM, grace period, removal), frees its GPUs, deletes it.
#[utoipa::path(
    delete,
    path = "/api/v1/deployments/{name}",
    params(DeploymentPath),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unavailable),
)]
pub async fn delete_deployment(
    pool: web::Data<Db>,
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Maintainer, &path).await?;
    if let Some(answer) = on_its_node(&nodes, &req, &deployment).await? {
        return Ok(answer);
    }
    ops::deployments::delete(&pool, &supervisor, &caller, &deployment.name).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Asks for it to run; 202, then watch its state.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{name}/start",
    params(DeploymentPath),
    responses(
        (status = 202, description = "Starting", body = DeploymentView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unavailable,
    ),
)]
pub async fn start_deployment(
    pool: web::Data<Db>,
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let found = authorized(&pool, &caller, Role::Maintainer, &path).await?;
    if let Some(answer) = on_its_node(&nodes, &req, &found).await? {
        return Ok(answer);
    }
    let deployment = ops::deployments::act(&pool, &supervisor, &caller, &found.name, Action::Start).await?;
    Ok(HttpResponse::Accepted().json(DeploymentView::new(deployment, &nodes)))
}

/// Asks for it to stop; its GPUs are freed once the container is gone.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{name}/stop",
    params(DeploymentPath),
    responses(
        (status = 202, description = "Stopping", body = DeploymentView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unavailable,
    ),
)]
pub async fn stop_deployment(
    pool: web::Data<Db>,
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let found = authorized(&pool, &caller, Role::Maintainer, &path).await?;
    if let Some(answer) = on_its_node(&nodes, &req, &found).await? {
        return Ok(answer);
    }
    let deployment = ops::deployments::act(&pool, &supervisor, &caller, &found.name, Action::Stop).await?;
    Ok(HttpResponse::Accepted().json(DeploymentView::new(deployment, &nodes)))
}

/// Replaces its container with a fresh one.
#[utoipa::path(
    post,
    path = "/api/v1/deployments/{name}/restart",
    params(DeploymentPath),
    responses(
        (status = 202, description = "Restarting", body = DeploymentView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unavailable,
    ),
)]
pub async fn restart_deployment(
    pool: web::Data<Db>,
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<DeploymentPath>,
) -> Result<HttpResponse, ApiError> {
    let found = authorized(&pool, &caller, Role::Maintainer, &path).await?;
    if let Some(answer) = on_its_node(&nodes, &req, &found).await? {
        return Ok(answer);
    }
    let deployment = ops::deployments::act(&pool, &supervisor, &caller, &found.name, Action::Restart).await?;
    Ok(HttpResponse::Accepted().json(DeploymentView::new(deployment, &nodes)))
}

/// The container's output: the last `tail` lines, then with `follow=true` what it prints
/// until it stops or the client leaves.
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{name}/logs",
    params(DeploymentPath, LogsQuery),
    responses(
        (status = 200, description = "The output, streamed", content_type = "text/plain; charset=utf-8", body = String),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, Unavailable,
    ),
)]
pub async fn deployment_logs(
    pool: web::Data<Db>,
    supervisor: web::Data<Supervisor>,
    nodes: web::Data<Nodes>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<DeploymentPath>,
    query: web::Query<LogsQuery>,
) -> Result<HttpResponse, ApiError> {
    let deployment = authorized(&pool, &caller, Role::Viewer, &path).await?;
    if let Some(answer) = on_its_node(&nodes, &req, &deployment).await? {
        return Ok(answer);
    }
    let Some(container) = deployment.observed.container_id else {
        return Err(ApiError::Conflict(format!(
            "deployment '{}' has no container now (it is {}); start it to see its logs",
            deployment.name,
            deployment.observed.state.as_str()
        )));
    };
    ops::deployments::docker_answers(&supervisor).await?;
    let stream = supervisor
        .engine()
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
            node: None,
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
