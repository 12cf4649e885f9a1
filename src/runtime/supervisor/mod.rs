//! The supervisor: a level-triggered reconcile loop. Desired state lives in SQLite, actual
//! state comes from Docker (Hangar's containers, found by label); each pass converges one
//! towards the other. Woken by Docker's event stream, by API calls and by a timer, so a
//! missed event costs a few seconds, never correctness. After a restart it adopts the
//! containers it finds instead of starting second copies, and removes its own containers
//! that no deployment wants.
//!
//! Starts and stops run as tasks beside the loop (a model can take minutes to load); a
//! deployment with a task in flight is left alone by the loop until the task is done.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::catalog::Db;
use futures_util::StreamExt as _;
use tokio::sync::Notify;

mod lifecycle;
mod placement;
mod reconcile;
mod rollout;
#[cfg(test)]
mod tests;

use super::engine::{Engine, EngineError};
use super::gpu::{self, AdmissionError, GpuInventory, GpuUsage};
use super::presets::{self, Runtime};
use super::spec::{self, SpecSettings};
use super::traffic::Traffic;
use crate::blobs::BlobStore;
use crate::catalog::deployments::{self, Deployment, Desired, NewDeployment, Observed, State};
use crate::catalog::{self, Actor, CatalogError};
use crate::domain::{DeploymentName, NodeName};

/// How often the loop runs without being woken.
const RECONCILE_EVERY: Duration = Duration::from_secs(2);
/// How often health is probed while a server starts.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The first probes of a start come this often.
const FAST_PROBE_EVERY: Duration = Duration::from_millis(10);
const FAST_PROBES: u32 = 50;
/// A server that ran this long before exiting starts its crash count afresh.
const STABLE_AFTER: Duration = Duration::from_secs(600);
/// The longest a rollout waits for the old container's requests to finish.
const DRAIN_AT_MOST: Duration = Duration::from_secs(600);
/// Log lines quoted in a failure reason.
const REASON_LOG_LINES: u32 = 10;

/// Knobs of the supervisor, from the settings.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    pub spec: SpecSettings,
    /// The data dir as the Docker daemon sees it, when Hangar runs in a container.
    pub host_data_dir: Option<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL on stop.
    pub stop_grace_secs: i32,
    /// Restarts after crashes before a deployment is `failed`.
    pub max_restarts: u32,
    /// The first backoff; each further crash doubles it.
    pub backoff_base: Duration,
    /// How an alias move reaches the deployments that follow it.
    pub rollout: Rollout,
    /// This node: the supervisor converges the deployments that name it, and only those.
    pub node: NodeName,
    /// A node whose last heartbeat is older than this is down (placement skips it).
    pub node_down_after: Duration,
}

/// How a deployment that follows an alias moves to the alias's new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rollout {
    /// Blue/green: start the new version beside the old, switch when it is healthy, let
    /// the old finish its requests, then stop it. Needs GPU room for both.
    #[default]
    Surge,
    /// Stop the old, then start the new: a gap in service, but no room needed.
    Recreate,
}

impl Default for SupervisorSettings {
    fn default() -> Self {
        Self {
            spec: SpecSettings::default(),
            host_data_dir: None,
            stop_grace_secs: 10,
            max_restarts: 5,
            backoff_base: Duration::from_secs(1),
            rollout: Rollout::default(),
            node: NodeName::parse(DEFAULT_NODE).expect("the default node name is valid"),
            node_down_after: Duration::from_secs(30),
        }
    }
}

/// The node name of a server that was given none: a one-box appliance's.
pub const DEFAULT_NODE: &str = "local";

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    #[error("{0}")]
    Invalid(String),
    /// The node a deployment is on or is asked to go to has stopped heartbeating.
    #[error("{0}")]
    NodeDown(String),
}

/// Per-deployment memory of the loop: crash count and backoff, and whether a task is busy.
#[derive(Debug, Default)]
struct Track {
    crashes: u32,
    retry_at: Option<Instant>,
    busy: bool,
    started: Option<Instant>,
    /// A rollout that failed: its version is not tried again until the alias moves on.
    failed_rollout: Option<FailedRollout>,
}

/// A rollout that failed while the old version kept serving.
#[derive(Debug, Clone)]
struct FailedRollout {
    /// The version the alias moved to, which could not start.
    version: String,
    /// What the deployment reported, reported again when a restart keeps the old version.
    reason: String,
    /// The runtime it failed on ([`Supervisor::runtime_fingerprint`]).
    runtime: String,
}

pub struct Supervisor {
    pool: Db,
    blobs: BlobStore,
    engine: Arc<dyn Engine>,
    inventory: GpuInventory,
    settings: SupervisorSettings,
    data_dir: PathBuf,
    wake: Notify,
    /// Serializes GPU placement, so two requests never get the same GPU.
    admission: tokio::sync::Mutex<()>,
    tracks: Mutex<HashMap<String, Track>>,
    traffic: Arc<Traffic>,
}

impl Supervisor {
    pub fn new(
        pool: Db,
        blobs: BlobStore,
        engine: Arc<dyn Engine>,
        inventory: GpuInventory,
        settings: SupervisorSettings,
        data_dir: PathBuf,
        traffic: Arc<Traffic>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            blobs,
            engine,
            inventory,
            settings,
            data_dir,
            wake: Notify::new(),
            admission: tokio::sync::Mutex::new(()),
            tracks: Mutex::new(HashMap::new()),
            traffic,
        })
    }

    pub fn engine(&self) -> &dyn Engine {
        &*self.engine
    }

    pub fn inventory(&self) -> &GpuInventory {
        &self.inventory
    }

    /// The node this supervisor runs.
    pub fn node(&self) -> &NodeName {
        &self.settings.node
    }

    /// Whether `d` is this node's to converge.
    pub fn owns(&self, d: &Deployment) -> bool {
        d.node.as_ref() == Some(&self.settings.node)
    }

    /// Asks for a reconcile pass now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs the loop until the process ends, or until this future is dropped (which stops
    /// the Docker event watcher with it).
    pub async fn run(self: Arc<Self>) {
        let watcher = Arc::clone(&self);
        let _watcher = crate::tasks::AbortOnDrop(tokio::spawn(async move {
            loop {
                let mut changes = std::pin::pin!(watcher.engine.changes());
                while let Some(Ok(())) = changes.next().await {
                    watcher.wake();
                }
                // The stream ended or failed: Docker restarted or went away. Try again soon.
                tokio::time::sleep(RECONCILE_EVERY).await;
            }
        }));
        loop {
            if let Err(e) = Arc::clone(&self).reconcile().await {
                tracing::warn!(error = %e, "reconcile pass failed; will retry");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(RECONCILE_EVERY) => {}
            }
        }
    }

    /// The GPU inventory and who holds what, for `/api/v1/system`.
    pub async fn gpu_usage(&self) -> Result<Vec<GpuUsage>, SupervisorError> {
        Ok(gpu::usage(&self.inventory, &self.allocations(None).await?))
    }

    /// Creates a deployment on the node it names or placement chooses, its GPUs reserved at
    /// once: a request that does not fit is refused here and never reaches Docker.
    pub async fn create(&self, actor: &Actor, new: NewDeployment) -> Result<Deployment, SupervisorError> {
        let _placing = self.placing().await?;
        let (node, allocation) = self.choose_node(&new).await?;
        let new = NewDeployment { node: Some(node), ..new };
        let created = deployments::create(&self.pool, actor, &new).await?;
        if let Some(allocation) = allocation {
            let observed = Observed { gpu_allocation: Some(allocation), ..created.observed.clone() };
            deployments::observe(&self.pool, &created.name, &observed).await?;
        }
        self.wake();
        Ok(deployments::get(&self.pool, &created.name).await?)
    }

    /// Wants a deployment running again; a failed one gets a fresh set of restarts.
    pub async fn start(&self, actor: &Actor, name: &DeploymentName) -> Result<Deployment, SupervisorError> {
        Ok(self.start_with(actor, name, false).await?.0)
    }

    /// Makes sure an autostart deployment runs, starting it if needed, and waits for it to
    /// be healthy. Concurrent callers share one start: the first sets it running, the rest
    /// find it so, and all wait on the same container. Also says whether this call was the
    /// one that started it (a cold start, counted once however many waited).
    pub async fn ensure_running(
        &self,
        name: &DeploymentName,
        timeout: Duration,
    ) -> Result<(Deployment, bool), SupervisorError> {
        let current = deployments::get(&self.pool, name).await?;
        if current.observed.state == State::Running && current.observed.address.is_some() {
            return Ok((current, false));
        }
        let started = current.desired == Desired::Stopped && self.start_with(&Actor::system(), name, true).await?.1;
        let until = Instant::now() + timeout;
        loop {
            let d = deployments::get(&self.pool, name).await?;
            match d.observed.state {
                State::Running if d.observed.address.is_some() => return Ok((d, started)),
                State::Failed => {
                    return Err(SupervisorError::Invalid(format!(
                        "deployment '{name}' failed to start: {}",
                        d.observed.reason.as_deref().unwrap_or("no reason recorded")
                    )));
                }
                _ if Instant::now() >= until => {
                    return Err(SupervisorError::Invalid(format!(
                        "deployment '{name}' did not become ready within {} s",
                        timeout.as_secs()
                    )));
                }
                _ => tokio::time::sleep(Duration::from_millis(25)).await,
            }
        }
    }

    pub async fn stop(&self, actor: &Actor, name: &DeploymentName) -> Result<Deployment, SupervisorError> {
        let updated = deployments::set_desired(&self.pool, actor, name, Desired::Stopped).await?;
        self.wake();
        Ok(updated)
    }

    /// Stops the container now (waiting for it) and starts a new one.
    pub async fn restart(&self, actor: &Actor, name: &DeploymentName) -> Result<Deployment, SupervisorError> {
        let current = deployments::get(&self.pool, name).await?;
        self.wait_idle(name.as_str()).await;
        self.track(name.as_str(), |t| t.busy = true);
        let removed = self.remove_containers_of(name.as_str()).await;
        self.track(name.as_str(), |t| t.busy = false);
        removed?;
        let restarting = Observed {
            state: State::Pending,
            reason: Some("restart requested".into()),
            container_id: None,
            address: None,
            ..current.observed
        };
        deployments::observe(&self.pool, name, &restarting).await?;
        self.start(actor, name).await
    }

    /// Stops and removes a deployment's container, then the deployment.
    pub async fn delete(&self, actor: &Actor, name: &DeploymentName) -> Result<(), SupervisorError> {
        deployments::get(&self.pool, name).await?;
        self.wait_idle(name.as_str()).await;
        self.track(name.as_str(), |t| t.busy = true);
        let removed = self.remove_containers_of(name.as_str()).await;
        let deleted = match removed {
            Ok(()) => deployments::delete(&self.pool, actor, name).await.map_err(SupervisorError::from),
            Err(e) => Err(e),
        };
        if deleted.is_ok()
            && let Err(e) = self.engine.remove_volume(&spec::cache_volume(name.as_str())).await
        {
            tracing::warn!(deployment = %name, error = %e, "could not remove the deployment's cache volume");
        }
        self.tracks.lock().unwrap_or_else(PoisonError::into_inner).remove(name.as_str());
        deleted
    }

    async fn remove_containers_of(&self, name: &str) -> Result<(), SupervisorError> {
        for container in self.engine.list_managed().await?.into_iter().filter(|c| c.deployment == name) {
            self.engine.stop_and_remove(&container.id, self.settings.stop_grace_secs).await?;
        }
        Ok(())
    }

    async fn wait_idle(&self, name: &str) {
        while self.tracks.lock().unwrap_or_else(PoisonError::into_inner).get(name).is_some_and(|t| t.busy) {
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    fn track<R>(&self, name: &str, f: impl FnOnce(&mut Track) -> R) -> R {
        f(self.tracks.lock().unwrap_or_else(PoisonError::into_inner).entry(name.to_owned()).or_default())
    }

    /// A runtime's name and definition as they are now: what a failed rollout is compared
    /// against, so that an admin's fix to the runtime is tried.
    async fn runtime_fingerprint(&self, name: &str) -> String {
        match self.runtime(name).await {
            Ok(runtime) => format!("{name} {}", serde_json::to_string(&runtime.definition()).unwrap_or_default()),
            Err(e) => format!("{name} {e}"),
        }
    }

    /// A runtime by name: an admin's stored definition first, then the built-in preset.
    pub async fn runtime(&self, name: &str) -> Result<Runtime, SupervisorError> {
        if let Some(json) = catalog::runtimes::get(&self.pool, name).await? {
            return Runtime::from_stored(name, &json).map_err(SupervisorError::Invalid);
        }
        if let Some(why) = presets::refused_on_arch(name, std::env::consts::ARCH) {
            return Err(SupervisorError::Invalid(format!("runtime '{name}' cannot run on this host: {why}")));
        }
        presets::preset(name).ok_or_else(|| {
            SupervisorError::Invalid(format!(
                "runtime '{name}' does not exist; use one of {} or define it with PUT /api/v1/runtimes/{name}",
                presets::PRESET_NAMES.join(", ")
            ))
        })
    }
}

fn quoted(lines: &str) -> String {
    if lines.is_empty() { String::new() } else { format!(". Last output:\n{lines}") }
}
