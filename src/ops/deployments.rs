//! Deployments: creating one (its checks and its runtime's resolution, in this one copy),
//! finding one the caller may see, and start, stop, restart and delete. The supervisor
//! converges in the background and records the transitions.

use std::collections::BTreeMap;

use crate::catalog::Db;

use super::error::OpsError;
use crate::auth::Caller;
use crate::catalog::deployments::{self, Deployment, Desired, NewDeployment, Target};
use crate::domain::{DeploymentName, ModelName, NodeName, Role};
use crate::runtime::supervisor::Supervisor;
use crate::runtime::{GpuRequest, Overrides};

/// A deployment as a front end parsed it from its request.
#[derive(Debug, Clone)]
pub struct DeploymentRequest {
    /// `None`: the model's name with `/` as `-`.
    pub name: Option<DeploymentName>,
    pub model: ModelName,
    pub target: Target,
    /// A stored runtime's name, else a preset's.
    pub runtime: String,
    /// Whole GPUs, no one else on them.
    pub gpus: Option<u32>,
    /// GiB of one GPU, shared with other such requests.
    pub gpu_memory_gib: Option<f64>,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub autostart: bool,
    pub idle_timeout_secs: Option<i64>,
    /// Start now, or only create it stopped.
    pub start: bool,
    /// The node to run it on; `None`: placement chooses (this node when it has room).
    pub node: Option<NodeName>,
}

/// What a caller may do with a deployment it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
}

/// Checks a request and hands it to the supervisor, which places its GPUs and starts it.
pub async fn create(
    supervisor: &Supervisor,
    caller: &Caller,
    request: DeploymentRequest,
) -> Result<Deployment, OpsError> {
    caller.require_on(Role::Maintainer, &request.model)?;
    let name = match request.name {
        Some(name) => name,
        None => DeploymentName::for_model(&request.model)?,
    };
    supervisor.runtime(&request.runtime).await?;
    Overrides::parse(&request.env, &request.args).map_err(|e| OpsError::Invalid(e.to_string()))?;
    let gpu_request = match (request.gpus, request.gpu_memory_gib) {
        (None, None) => None,
        (Some(n), None) => Some(GpuRequest::gpus(n).map_err(OpsError::Invalid)?),
        (None, Some(gib)) => Some(GpuRequest::memory_gib(gib).map_err(OpsError::Invalid)?),
        (Some(_), Some(_)) => {
            return Err(OpsError::Invalid(
                "give gpus (whole GPUs) or gpu_memory_gib (a share of one), not both".into(),
            ));
        }
    };
    if request.node.as_ref().is_none_or(|node| node == supervisor.node()) {
        docker_answers(supervisor).await?;
    }
    let new = NewDeployment {
        name,
        model: request.model,
        target: request.target,
        runtime: request.runtime,
        gpu_request,
        env: request.env,
        args: request.args,
        autostart: request.autostart,
        idle_timeout_secs: request.idle_timeout_secs,
        desired: if request.start { Desired::Running } else { Desired::Stopped },
        node: request.node,
    };
    Ok(supervisor.create(&caller.actor(), new).await?)
}

/// The deployments of the models the caller may read.
pub async fn list(pool: &Db, caller: &Caller) -> Result<Vec<Deployment>, OpsError> {
    caller.require(Role::Viewer)?;
    let all = deployments::list(pool).await?;
    Ok(all.into_iter().filter(|d| caller.require_on(Role::Viewer, &d.model).is_ok()).collect())
}

/// A deployment, if the caller has `role` on its model.
pub async fn find(pool: &Db, caller: &Caller, role: Role, name: &DeploymentName) -> Result<Deployment, OpsError> {
    caller.require(role)?;
    let deployment = deployments::get(pool, name).await?;
    caller.require_on(role, &deployment.model)?;
    Ok(deployment)
}

/// Starts, stops or restarts a deployment; starting and restarting need Docker to answer.
pub async fn act(
    pool: &Db,
    supervisor: &Supervisor,
    caller: &Caller,
    name: &DeploymentName,
    action: Action,
) -> Result<Deployment, OpsError> {
    let deployment = find(pool, caller, Role::Maintainer, name).await?;
    let actor = caller.actor();
    let here = supervisor.owns(&deployment);
    Ok(match action {
        // Start and stop are wishes in the catalog, which the node that runs it acts on.
        Action::Start => {
            if here {
                docker_answers(supervisor).await?;
            }
            supervisor.start(&actor, &deployment.name).await?
        }
        Action::Restart if !here => {
            return Err(OpsError::Invalid(format!(
                "deployment '{}' runs on node '{}'; restart it there, or with POST \
                 /api/v1/deployments/{}/restart on any node",
                deployment.name,
                deployment.node.as_ref().map_or("?", |n| n.as_str()),
                deployment.name
            )));
        }
        Action::Stop => supervisor.stop(&actor, &deployment.name).await?,
        Action::Restart => {
            docker_answers(supervisor).await?;
            supervisor.restart(&actor, &deployment.name).await?
        }
    })
}

/// Moves a deployment to another node (its GPUs placed there first); the node it leaves
/// stops its container, the new one starts it.
pub async fn move_to(
    pool: &Db,
    supervisor: &Supervisor,
    caller: &Caller,
    name: &DeploymentName,
    node: &NodeName,
) -> Result<Deployment, OpsError> {
    let deployment = find(pool, caller, Role::Maintainer, name).await?;
    Ok(supervisor.move_to(&caller.actor(), &deployment.name, node).await?)
}

/// Stops the container, frees its GPUs and deletes the deployment.
pub async fn delete(
    pool: &Db,
    supervisor: &Supervisor,
    caller: &Caller,
    name: &DeploymentName,
) -> Result<(), OpsError> {
    let deployment = find(pool, caller, Role::Maintainer, name).await?;
    Ok(supervisor.delete(&caller.actor(), &deployment.name).await?)
}

/// Deployment calls need Docker: without it, 503 naming the socket tried.
pub async fn docker_answers(supervisor: &Supervisor) -> Result<(), OpsError> {
    supervisor.engine().ping().await.map_err(|e| OpsError::Unavailable(e.to_string()))
}
