//! The supervisor: a level-triggered reconcile loop. Desired state lives in SQLite, actual
//! state comes from Docker (Hangar's containers, found by label); each pass converges one
//! towards the other. Woken by Docker's event stream, by API calls and by a timer, so a
//! missed event costs a few seconds, never correctness. After a restart it adopts the
//! containers it finds instead of starting second copies, and removes its own containers
//! that no deployment wants.
//!
//! Starts and stops run as tasks beside the loop (a model can take minutes to load); a
//! deployment with a task in flight is left alone by the loop until the task is done.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use sqlx::SqlitePool;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use super::docker::{Container, DockerClient, DockerError};
use super::gpu::{self, AdmissionError, GpuAllocation, GpuInventory, GpuRequest, GpuUsage};
use super::launch;
use super::presets::{self, Runtime};
use super::spec::{self, Overrides, SpecInput, SpecSettings};
use super::traffic::Traffic;
use crate::blobs::BlobStore;
use crate::catalog::deployments::{self, Deployment, Desired, NewDeployment, Observed, State};
use crate::catalog::launches::Launch;
use crate::catalog::{self, Actor, CatalogError};
use crate::domain::DeploymentName;

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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    #[error("{0}")]
    Invalid(String),
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
}

pub struct Supervisor {
    pool: SqlitePool,
    blobs: BlobStore,
    docker: DockerClient,
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
        pool: SqlitePool,
        blobs: BlobStore,
        docker: DockerClient,
        inventory: GpuInventory,
        settings: SupervisorSettings,
        data_dir: PathBuf,
        traffic: Arc<Traffic>,
    ) -> Arc<Self> {
        Arc::new(Self {
            pool,
            blobs,
            docker,
            inventory,
            settings,
            data_dir,
            wake: Notify::new(),
            admission: tokio::sync::Mutex::new(()),
            tracks: Mutex::new(HashMap::new()),
            traffic,
        })
    }

    pub fn docker(&self) -> &DockerClient {
        &self.docker
    }

    pub fn inventory(&self) -> &GpuInventory {
        &self.inventory
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
                let mut changes = std::pin::pin!(watcher.docker.changes());
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

    /// What every deployment but `except` holds now.
    async fn allocations(&self, except: Option<&str>) -> Result<BTreeMap<String, GpuAllocation>, SupervisorError> {
        held_by(&deployments::list(&self.pool).await?, except)
    }

    /// Places a deployment's GPU request against what the others hold.
    async fn place(
        &self,
        deployment: &str,
        request: Option<GpuRequest>,
    ) -> Result<Option<GpuAllocation>, SupervisorError> {
        let Some(request) = request else { return Ok(None) };
        let held = self.allocations(Some(deployment)).await?;
        Ok(Some(gpu::admit(&self.inventory, &held, request)?))
    }

    /// Creates a deployment, its GPUs reserved at once: a request that does not fit is
    /// refused here and never reaches Docker.
    pub async fn create(&self, actor: &Actor, new: NewDeployment) -> Result<Deployment, SupervisorError> {
        let request = parse_request(new.gpu_request.as_deref())?;
        let _placing = self.admission.lock().await;
        let allocation =
            if new.desired == Desired::Running { self.place(new.name.as_str(), request).await? } else { None };
        let created = deployments::create(&self.pool, actor, &new).await?;
        if let Some(allocation) = allocation {
            let observed = Observed { gpu_allocation: Some(to_json(&allocation)?), ..created.observed.clone() };
            deployments::observe(&self.pool, &created.name, &observed).await?;
        }
        self.wake();
        Ok(deployments::get(&self.pool, &created.name).await?)
    }

    /// Wants a deployment running again; a failed one gets a fresh set of restarts.
    pub async fn start(&self, actor: &Actor, name: &DeploymentName) -> Result<Deployment, SupervisorError> {
        Ok(self.start_with(actor, name, false).await?.0)
    }

    /// As `start`; with `evict`, a request that does not fit first stops idle autostart
    /// deployments, least recently used first (never one with requests in flight). Also
    /// says whether this call did the start (`false`: it was wanted running already).
    async fn start_with(
        &self,
        actor: &Actor,
        name: &DeploymentName,
        evict: bool,
    ) -> Result<(Deployment, bool), SupervisorError> {
        // Read under the lock: concurrent starts (say, twenty cold requests) then see what
        // the first one did, and only the first does anything.
        let _placing = self.admission.lock().await;
        let current = deployments::get(&self.pool, name).await?;
        if current.desired == Desired::Running && current.observed.state != State::Failed {
            return Ok((current, false));
        }
        let allocation = match &current.observed.gpu_allocation {
            Some(held) => Some(held.clone()),
            None => {
                let request = parse_request(current.gpu_request.as_deref())?;
                let placed = match self.place(name.as_str(), request).await {
                    Err(SupervisorError::Admission(refused)) if evict => Some(self.evict_for(name, refused).await?),
                    other => other?,
                };
                placed.map(|a| to_json(&a)).transpose()?
            }
        };
        let reset = if current.observed.state == State::Failed {
            Observed { state: State::Pending, reason: None, restarts: 0, ..current.observed.clone() }
        } else {
            current.observed.clone()
        };
        deployments::observe(&self.pool, name, &Observed { gpu_allocation: allocation, ..reset }).await?;
        self.track(name.as_str(), |t| *t = Track { busy: t.busy, ..Track::default() });
        let updated = deployments::set_desired(&self.pool, actor, name, Desired::Running).await?;
        self.wake();
        Ok((updated, true))
    }

    /// Stops the fewest idle autostart deployments, least recently used first, that make
    /// room for the refused request, then places it; if no such set exists, nothing is
    /// stopped and the original refusal (which names who holds what) stands.
    async fn evict_for(
        &self,
        name: &DeploymentName,
        refused: AdmissionError,
    ) -> Result<GpuAllocation, SupervisorError> {
        let all = deployments::list(&self.pool).await?;
        let held = held_by(&all, Some(name.as_str()))?;
        let mut candidates: Vec<&Deployment> = all
            .iter()
            .filter(|d| d.name != *name && d.autostart && d.observed.gpu_allocation.is_some())
            .filter(|d| self.traffic.in_flight(d.name.as_str()) == 0 && !self.track(d.name.as_str(), |t| t.busy))
            .collect();
        candidates.sort_by_key(|d| self.traffic.last_active(d.name.as_str()));
        let order: Vec<&str> = candidates.iter().map(|d| d.name.as_str()).collect();
        let Some(needed) = gpu::evictions_needed(&self.inventory, &held, &order, refused.request) else {
            return Err(refused.into());
        };
        for victim in &candidates[..needed] {
            tracing::info!(deployment = %victim.name, for_deployment = %name, "stopping an idle deployment to make room");
            self.stop_now(victim).await?;
        }
        let held = self.allocations(Some(name.as_str())).await?;
        Ok(gpu::admit(&self.inventory, &held, refused.request)?)
    }

    /// Stops a deployment at once and frees its GPUs (for eviction).
    async fn stop_now(&self, d: &Deployment) -> Result<(), SupervisorError> {
        self.track(d.name.as_str(), |t| t.busy = true);
        let stopped = async {
            deployments::set_desired(&self.pool, &Actor::system(), &d.name, Desired::Stopped).await?;
            self.remove_containers_of(d.name.as_str()).await?;
            let stopped = Observed {
                state: State::Stopped,
                reason: Some("stopped to make room for another deployment".into()),
                container_id: None,
                address: None,
                gpu_allocation: None,
                ..d.observed.clone()
            };
            deployments::observe(&self.pool, &d.name, &stopped).await?;
            Ok::<(), SupervisorError>(())
        }
        .await;
        self.track(d.name.as_str(), |t| t.busy = false);
        stopped
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
            && let Err(e) = self.docker.remove_volume(&spec::cache_volume(name.as_str())).await
        {
            tracing::warn!(deployment = %name, error = %e, "could not remove the deployment's cache volume");
        }
        self.tracks.lock().unwrap_or_else(PoisonError::into_inner).remove(name.as_str());
        deleted
    }

    async fn remove_containers_of(&self, name: &str) -> Result<(), SupervisorError> {
        for container in self.docker.list_managed().await?.into_iter().filter(|c| c.deployment == name) {
            self.docker.stop_and_remove(&container.id, self.settings.stop_grace_secs).await?;
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

    /// One pass: remove what no one wants, then converge each deployment.
    async fn reconcile(self: Arc<Self>) -> Result<(), SupervisorError> {
        let wanted = deployments::list(&self.pool).await?;
        let containers = self.docker.list_managed().await?;
        let names: std::collections::HashSet<&str> = wanted.iter().map(|d| d.name.as_str()).collect();
        for stray in containers.iter().filter(|c| !names.contains(c.deployment.as_str())) {
            tracing::info!(container = %stray.id, deployment = %stray.deployment, "removing a container no deployment wants");
            self.docker.stop_and_remove(&stray.id, self.settings.stop_grace_secs).await?;
        }
        for deployment in wanted {
            let mine: Vec<Container> =
                containers.iter().filter(|c| c.deployment == deployment.name.as_str()).cloned().collect();
            if self.track(deployment.name.as_str(), |t| t.busy) {
                continue;
            }
            Arc::clone(&self).converge(deployment, mine).await?;
        }
        Ok(())
    }

    async fn converge(self: Arc<Self>, d: Deployment, mut containers: Vec<Container>) -> Result<(), SupervisorError> {
        let name = d.name.to_string();
        // One container per deployment: keep the one the catalog knows (or the newest).
        if containers.len() > 1 {
            let keep = containers.iter().position(|c| Some(&c.id) == d.observed.container_id.as_ref()).unwrap_or(0);
            for (i, extra) in containers.iter().enumerate() {
                if i != keep {
                    self.docker.stop_and_remove(&extra.id, self.settings.stop_grace_secs).await?;
                }
            }
            containers = vec![containers.swap_remove(keep)];
        }
        let container = containers.pop();
        if d.desired == Desired::Running && d.observed.state == State::Running && self.idle(&d) {
            tracing::info!(deployment = %d.name, "stopping after its idle timeout");
            deployments::set_desired(&self.pool, &Actor::system(), &d.name, Desired::Stopped).await?;
            self.wake();
            return Ok(());
        }
        match (d.desired, container) {
            (Desired::Running, Some(c)) if c.running => {
                if d.observed.state != State::Running || d.observed.container_id.as_ref() != Some(&c.id) {
                    // Adopted after a restart, or a start whose health wait was interrupted.
                    self.spawn(name, move |sv| async move { sv.await_health(d, c).await });
                } else if let Some(version) = self.moved_on(&d).await? {
                    self.spawn(name, move |sv| async move { sv.roll_out(d, c, version).await });
                }
            }
            (Desired::Running, Some(c)) => self.spawn(name, move |sv| async move { sv.crashed(d, c).await }),
            (Desired::Running, None) => {
                let due = self.track(&name, |t| t.retry_at.is_none_or(|at| Instant::now() >= at));
                if d.observed.state != State::Failed && due {
                    self.spawn(name, move |sv| async move { sv.start_instance(d).await });
                }
            }
            (Desired::Stopped, Some(c)) => {
                self.spawn(name, move |sv| async move { sv.stop_instance(d, Some(c)).await })
            }
            (Desired::Stopped, None) => {
                if d.observed.state != State::Stopped || d.observed.gpu_allocation.is_some() {
                    self.spawn(name, move |sv| async move { sv.stop_instance(d, None).await });
                }
            }
        }
        Ok(())
    }

    /// For a running deployment that follows an alias: the alias's version, if it has moved
    /// away from what the deployment serves (and a rollout to it has not already failed).
    async fn moved_on(&self, d: &Deployment) -> Result<Option<String>, SupervisorError> {
        if !matches!(d.target, deployments::Target::Alias(_)) {
            return Ok(None);
        }
        let (version, _) = match deployments::resolve(&self.pool, &d.model, &d.target).await {
            Ok(resolved) => resolved,
            // The alias is gone; keep serving what runs.
            Err(CatalogError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let version = version.to_string();
        let failed_before =
            self.track(d.name.as_str(), |t| t.failed_rollout.as_ref().is_some_and(|f| f.version == version));
        Ok((d.observed.serving_version.as_deref() != Some(version.as_str()) && !failed_before).then_some(version))
    }

    /// Moves a running deployment to `version`: blue/green, or recreate if so configured.
    async fn roll_out(self: Arc<Self>, d: Deployment, old: Container, version: String) -> Result<(), SupervisorError> {
        let d = deployments::get(&self.pool, &d.name).await?;
        let from = d.observed.serving_version.clone();
        tracing::info!(deployment = %d.name, ?from, to = %version, "rolling out");
        if self.settings.rollout == Rollout::Recreate {
            return self.recreate(d, old, &version).await;
        }
        match self.surge(&d, &old, &version).await? {
            Ok(()) => {
                let details = serde_json::json!({ "from": from, "to": version, "mode": "surge" });
                deployments::note(&self.pool, &d.name, "deployment.rolled_out", details).await?;
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(deployment = %d.name, %reason, "rollout failed; the old version keeps serving");
                let current = deployments::get(&self.pool, &d.name).await?;
                let reason = format!(
                    "rollout to version {version} failed, version {} keeps serving: {reason}",
                    from.as_deref().unwrap_or("?")
                );
                let failed = FailedRollout { version: version.clone(), reason: reason.clone() };
                self.track(d.name.as_str(), |t| t.failed_rollout = Some(failed));
                self.observe(&current, Observed { reason: Some(reason.clone()), ..current.observed.clone() }).await?;
                let details = serde_json::json!({ "from": from, "to": version, "reason": reason });
                deployments::note(&self.pool, &d.name, "deployment.rollout_failed", details).await?;
                Ok(())
            }
        }
    }

    /// Starts `version` beside the running container, switches to it once healthy, drains
    /// and stops the old one. `Ok(Err(reason))` is a failed rollout that left the old serving.
    async fn surge(
        &self,
        d: &Deployment,
        old: &Container,
        version: &str,
    ) -> Result<Result<(), String>, SupervisorError> {
        // Both versions hold GPUs until the old one stops: place the new beside everything.
        let allocation = {
            let _placing = self.admission.lock().await;
            let request = parse_request(d.gpu_request.as_deref())?;
            match request {
                None => None,
                Some(request) => match gpu::admit(&self.inventory, &self.allocations(None).await?, request) {
                    Ok(a) => Some(a),
                    Err(e) => {
                        return Ok(Err(format!(
                            "there is no GPU room to run both versions side by side ({e}); set rollout = \"recreate\" to \
                             stop the old one first"
                        )));
                    }
                },
            }
        };
        let target = deployments::Target::Version(
            crate::domain::VersionName::parse(version).map_err(|e| SupervisorError::Invalid(e.to_string()))?,
        );
        let pinned =
            Deployment { target, observed: Observed { gpu_allocation: None, ..d.observed.clone() }, ..d.clone() };
        let prepared = match self.prepare_with(&pinned, allocation).await {
            Ok(prepared) => prepared,
            Err(reason) => return Ok(Err(reason)),
        };
        let Prepared { mut spec, launch, version, allocation, deadline, health_path } = prepared;
        let usual_name = spec.name.clone();
        let instance = uuid::Uuid::new_v4().simple().to_string();
        spec.options = spec::rollout_options(&usual_name, &instance[..8]);
        let (id, address) = match self.docker.create_and_start(spec).await {
            Ok(started) => started,
            Err(e) => return Ok(Err(format!("the new container could not start: {e}"))),
        };
        self.record_launch(&d.name, launch, &id).await;
        match self.wait_healthy(&id, address.as_deref(), &health_path, deadline).await? {
            Health::Healthy => {}
            Health::Exited(c) => {
                let lines = self.docker.last_lines(&id, REASON_LOG_LINES).await;
                self.docker.stop_and_remove(&id, self.settings.stop_grace_secs).await?;
                let code = c.exit_code.map_or_else(|| "?".to_owned(), |c| c.to_string());
                return Ok(Err(format!("the new server exited with code {code}{}", quoted(&lines))));
            }
            Health::Deadline => {
                self.docker.stop_and_remove(&id, self.settings.stop_grace_secs).await?;
                return Ok(Err(format!(
                    "the new server did not answer 200 on {health_path} within {} s",
                    deadline.as_secs()
                )));
            }
        }
        // The switch: one committed row, read by every next request.
        let current = deployments::get(&self.pool, &d.name).await?;
        // What requests read until now (the container's own report has no address when it
        // is reached over a Docker network).
        let old_address = current.observed.address.clone().or_else(|| old.address.clone());
        let switched = Observed {
            state: State::Running,
            reason: None,
            serving_version: Some(version),
            container_id: Some(id.clone()),
            address: address.clone(),
            gpu_allocation: allocation.as_ref().map(to_json).transpose()?,
            started_at: Some(now_rfc3339()),
            restarts: current.observed.restarts,
        };
        self.observe(&current, switched).await?;
        // Requests already on the old container finish there; any that read its address
        // just before the switch are sent on to the new one.
        if let Some(old_address) = &old_address {
            if let Some(new_address) = &address {
                self.traffic.retire(d.name.as_str(), old_address, new_address);
            }
            let until = Instant::now() + DRAIN_AT_MOST;
            while self.traffic.in_flight_at(old_address) > 0 && Instant::now() < until {
                tokio::time::sleep(PROBE_EVERY).await;
            }
        }
        self.docker.stop_and_remove(&old.id, self.settings.stop_grace_secs).await?;
        self.docker.rename(&id, &usual_name).await?;
        self.track(d.name.as_str(), |t| t.failed_rollout = None);
        Ok(Ok(()))
    }

    /// Stops the old container and lets the loop start the alias's version in its place.
    async fn recreate(&self, d: Deployment, old: Container, version: &str) -> Result<(), SupervisorError> {
        self.docker.stop_and_remove(&old.id, self.settings.stop_grace_secs).await?;
        let pending = Observed {
            state: State::Pending,
            reason: Some(format!("recreating for version {version}")),
            container_id: None,
            address: None,
            ..d.observed.clone()
        };
        self.observe(&d, pending).await?;
        let details = serde_json::json!({ "from": d.observed.serving_version, "to": version, "mode": "recreate" });
        deployments::note(&self.pool, &d.name, "deployment.rolled_out", details).await?;
        Ok(())
    }

    /// Whether a running deployment has had no request in flight for its idle timeout.
    fn idle(&self, d: &Deployment) -> bool {
        let Some(timeout) = d.idle_timeout_secs.and_then(|s| u64::try_from(s).ok()) else { return false };
        if self.traffic.in_flight(d.name.as_str()) > 0 {
            return false;
        }
        match self.traffic.last_active(d.name.as_str()) {
            Some(at) => at.elapsed() >= Duration::from_secs(timeout),
            None => {
                // Running since before this process: idle time counts from now.
                self.traffic.touch(d.name.as_str());
                false
            }
        }
    }

    /// Runs `task` for deployment `name` beside the loop, marking it busy meanwhile.
    fn spawn<F, Fut>(self: &Arc<Self>, name: String, task: F)
    where
        F: FnOnce(Arc<Self>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), SupervisorError>> + Send + 'static,
    {
        self.track(&name, |t| t.busy = true);
        let sv = Arc::clone(self);
        tokio::spawn(async move {
            match task(Arc::clone(&sv)).await {
                Ok(()) => sv.track(&name, |t| t.busy = false),
                // Deleted while the pass that spawned this was looking at it: nothing to do.
                Err(SupervisorError::Catalog(CatalogError::NotFound(_))) => {
                    sv.tracks.lock().unwrap_or_else(PoisonError::into_inner).remove(&name);
                }
                Err(e) => {
                    tracing::warn!(deployment = %name, error = %e, "supervisor task failed; will retry");
                    sv.track(&name, |t| t.busy = false);
                }
            }
            sv.wake();
        });
    }

    async fn observe(&self, d: &Deployment, observed: Observed) -> Result<(), SupervisorError> {
        deployments::observe(&self.pool, &d.name, &observed).await?;
        Ok(())
    }

    /// Marks a deployment failed with `reason`, releasing its GPUs.
    async fn fail(&self, d: &Deployment, reason: String) -> Result<(), SupervisorError> {
        tracing::warn!(deployment = %d.name, %reason, "deployment failed");
        let observed = Observed {
            state: State::Failed,
            reason: Some(reason),
            container_id: None,
            address: None,
            gpu_allocation: None,
            ..d.observed.clone()
        };
        self.observe(d, observed).await
    }

    async fn start_instance(self: Arc<Self>, d: Deployment) -> Result<(), SupervisorError> {
        // The pass that spawned this may have read a state that has changed since.
        let d = deployments::get(&self.pool, &d.name).await?;
        if d.desired != Desired::Running || d.observed.state == State::Failed {
            return Ok(());
        }
        let starting = Observed { state: State::Starting, reason: None, ..d.observed.clone() };
        self.observe(&d, starting).await?;
        let (d, still_failed) = self.keep_serving_after_failed_rollout(d).await?;
        let prepared = match self.prepare(&d).await {
            Ok(prepared) => prepared,
            Err(reason) => return self.fail(&d, reason).await,
        };
        let Prepared { spec, launch, version, allocation, deadline, health_path } = prepared;
        let (id, address) = match self.docker.create_and_start(spec).await {
            Ok(started) => started,
            Err(e @ DockerError::Unreachable { .. }) => return Err(e.into()),
            Err(e) => return self.fail(&d, format!("the container could not start: {e}")).await,
        };
        self.record_launch(&d.name, launch, &id).await;
        self.track(d.name.as_str(), |t| t.started = Some(Instant::now()));
        let mut observed = Observed {
            state: State::Starting,
            reason: None,
            serving_version: Some(version),
            container_id: Some(id.clone()),
            address: address.clone(),
            gpu_allocation: allocation.as_ref().map(to_json).transpose()?,
            started_at: None,
            restarts: d.observed.restarts,
        };
        self.observe(&d, observed.clone()).await?;
        match self.wait_healthy(&id, address.as_deref(), &health_path, deadline).await? {
            Health::Healthy => {
                observed.state = State::Running;
                observed.reason = still_failed;
                observed.started_at = Some(now_rfc3339());
                self.traffic.touch(d.name.as_str());
                self.observe(&d, observed).await
            }
            Health::Exited(c) => self.crashed(d, c).await,
            Health::Deadline => {
                let lines = self.docker.last_lines(&id, REASON_LOG_LINES).await;
                self.docker.stop_and_remove(&id, self.settings.stop_grace_secs).await?;
                let reason = format!(
                    "the server did not answer 200 on {health_path} within {} s{}",
                    deadline.as_secs(),
                    quoted(&lines)
                );
                self.fail(&Deployment { observed, ..d }, reason).await
            }
        }
    }

    /// A restart of a deployment whose rollout failed (the alias still names the version that
    /// could not start) starts the version that was serving, pinned, rather than failing on the
    /// new one again: a crash must not turn a failed rollout into an outage. Returns the
    /// deployment to start, and the failed rollout's report to keep showing.
    async fn keep_serving_after_failed_rollout(
        &self,
        d: Deployment,
    ) -> Result<(Deployment, Option<String>), SupervisorError> {
        let failed = self.track(d.name.as_str(), |t| t.failed_rollout.clone());
        let (Some(failed), Some(serving)) = (failed, d.observed.serving_version.as_deref()) else {
            return Ok((d, None));
        };
        if !matches!(d.target, deployments::Target::Alias(_)) {
            return Ok((d, None));
        }
        let (alias_version, _) = match deployments::resolve(&self.pool, &d.model, &d.target).await {
            Ok(resolved) => resolved,
            Err(CatalogError::NotFound(_)) => return Ok((d, None)),
            Err(e) => return Err(e.into()),
        };
        if alias_version.as_str() != failed.version || serving == failed.version {
            return Ok((d, None));
        }
        let pinned = crate::domain::VersionName::parse(serving).map_err(|e| SupervisorError::Invalid(e.to_string()))?;
        tracing::info!(deployment = %d.name, %serving, failed = %failed.version, "restarting the version that was serving");
        Ok((Deployment { target: deployments::Target::Version(pinned), ..d }, Some(failed.reason)))
    }

    /// Everything a start needs that can fail for a reason a person should read.
    async fn prepare(&self, d: &Deployment) -> Result<Prepared, String> {
        let allocation = match &d.observed.gpu_allocation {
            Some(json) => Some(serde_json::from_str::<GpuAllocation>(json).map_err(|e| e.to_string())?),
            None => {
                let _placing = self.admission.lock().await;
                let request = parse_request(d.gpu_request.as_deref()).map_err(|e| e.to_string())?;
                self.place(d.name.as_str(), request).await.map_err(|e| format!("no GPU free: {e}"))?
            }
        };
        self.prepare_with(d, allocation).await
    }

    /// As `prepare`, with the GPUs already placed.
    async fn prepare_with(&self, d: &Deployment, allocation: Option<GpuAllocation>) -> Result<Prepared, String> {
        let runtime = self.runtime(&d.runtime).await.map_err(|e| e.to_string())?;
        let (version, files) =
            deployments::resolve(&self.pool, &d.model, &d.target).await.map_err(|e| e.to_string())?;
        let picked = presets::pick_model_files(&runtime, files.iter().map(|(p, _)| p.as_str()))?;
        match self.docker.image_exists(runtime.image()).await {
            Ok(true) => {}
            Ok(false) => return Err(DockerError::ImageMissing(runtime.image().to_owned()).to_string()),
            Err(e) => return Err(e.to_string()),
        }
        let snapshot = self.blobs.snapshot(&d.model, &version, files).await.map_err(|e| e.to_string())?;
        let snapshot = self.daemon_path(&snapshot);
        let overrides = Overrides::parse(&d.env, &d.args).map_err(|e| e.to_string())?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let spec = spec::container_spec(&SpecInput {
            deployment: d.name.as_str(),
            instance: &instance,
            runtime: &runtime,
            snapshot: &snapshot,
            gpus: allocation.as_ref(),
            file: picked.file.as_deref(),
            mmproj: picked.mmproj.as_deref(),
            overrides: &overrides,
            settings: &self.settings.spec,
        })
        .map_err(|e| e.to_string())?;
        let manifest_digest = catalog::versions::get(&self.pool, &d.model, &version)
            .await
            .map_err(|e| e.to_string())?
            .manifest_digest
            .map(|digest| digest.to_string());
        Ok(Prepared {
            launch: launch::launch_of(&spec, &runtime, version.as_str(), manifest_digest),
            spec,
            version: version.to_string(),
            allocation,
            deadline: runtime.startup_deadline(),
            health_path: runtime.health_path().to_owned(),
        })
    }

    /// Records what a start of `name` ran, with the image digest Docker resolved. A record
    /// that cannot be written is logged: it never stops a server that started.
    async fn record_launch(&self, name: &DeploymentName, mut launch: Launch, container_id: &str) {
        launch.container_id = container_id.to_owned();
        launch.image_digest = self.docker.image_digest(container_id).await.unwrap_or_else(|e| {
            tracing::warn!(deployment = %name, error = %e, "could not read the container's image digest");
            None
        });
        match catalog::launches::record(&self.pool, name, &launch).await {
            Ok(Some(before)) => tracing::info!(
                deployment = %name, image = %launch.image, %before, now = ?launch.image_digest,
                "the image is a different build than at the last start"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(deployment = %name, error = %e, "could not record the launch"),
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

    /// Maps a path under the data dir to where the Docker daemon finds it.
    fn daemon_path(&self, path: &Path) -> PathBuf {
        match (&self.settings.host_data_dir, path.strip_prefix(&self.data_dir)) {
            (Some(host), Ok(rel)) => host.join(rel),
            _ => std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
        }
    }

    /// Waits for a running container (adopted or interrupted) to answer its health check.
    async fn await_health(self: Arc<Self>, d: Deployment, c: Container) -> Result<(), SupervisorError> {
        let d = deployments::get(&self.pool, &d.name).await?;
        if d.observed.state == State::Running && d.observed.container_id.as_ref() == Some(&c.id) {
            return Ok(());
        }
        let runtime = match self.runtime(&d.runtime).await {
            Ok(r) => r,
            Err(e) => return self.fail(&d, e.to_string()).await,
        };
        let address = c.address.clone().or_else(|| d.observed.address.clone());
        let mut observed =
            Observed { container_id: Some(c.id.clone()), address: address.clone(), ..d.observed.clone() };
        if d.observed.state == State::Running {
            // Adopted as it was: a fresh check, but no state flapping meanwhile.
            return self.observe(&d, observed).await;
        }
        observed.state = State::Starting;
        self.observe(&d, observed.clone()).await?;
        match self.wait_healthy(&c.id, address.as_deref(), runtime.health_path(), runtime.startup_deadline()).await? {
            Health::Healthy => {
                observed.state = State::Running;
                observed.started_at.get_or_insert_with(now_rfc3339);
                self.observe(&d, observed).await
            }
            Health::Exited(exited) => self.crashed(d, exited).await,
            Health::Deadline => {
                self.docker.stop_and_remove(&c.id, self.settings.stop_grace_secs).await?;
                let reason = format!("the server did not answer 200 on {} in time", runtime.health_path());
                self.fail(&Deployment { observed, ..d }, reason).await
            }
        }
    }

    /// A container exited while it should run: back off and restart, or give up.
    async fn crashed(self: Arc<Self>, d: Deployment, c: Container) -> Result<(), SupervisorError> {
        let d = deployments::get(&self.pool, &d.name).await?;
        let lines = self.docker.last_lines(&c.id, REASON_LOG_LINES).await;
        self.docker.stop_and_remove(&c.id, self.settings.stop_grace_secs).await?;
        let why = if c.oom_killed {
            "was killed for running out of memory (OOM)".to_owned()
        } else {
            format!("exited with code {}", c.exit_code.unwrap_or(-1))
        };
        let crashes = self.track(d.name.as_str(), |t| {
            if t.started.is_some_and(|s| s.elapsed() >= STABLE_AFTER) {
                t.crashes = 0;
            }
            t.crashes += 1;
            t.crashes
        });
        if crashes > self.settings.max_restarts {
            let reason = format!("the server {why}, {} times in a row; gave up{}", crashes, quoted(&lines));
            self.track(d.name.as_str(), |t| t.retry_at = None);
            return self.fail(&d, reason).await;
        }
        let backoff = self.settings.backoff_base.saturating_mul(1 << (crashes - 1).min(16));
        self.track(d.name.as_str(), |t| t.retry_at = Some(Instant::now() + backoff));
        let observed = Observed {
            state: State::Pending,
            reason: Some(format!(
                "the server {why}; restarting in {} s (attempt {crashes} of {}){}",
                backoff.as_secs_f32(),
                self.settings.max_restarts,
                quoted(&lines)
            )),
            container_id: None,
            address: None,
            restarts: d.observed.restarts + 1,
            ..d.observed.clone()
        };
        self.observe(&d, observed).await
    }

    async fn stop_instance(self: Arc<Self>, d: Deployment, c: Option<Container>) -> Result<(), SupervisorError> {
        let d = deployments::get(&self.pool, &d.name).await?;
        if d.desired != Desired::Stopped {
            return Ok(());
        }
        // Keep the reason of a deployment already stopped (say, evicted to make room).
        let reason = if d.observed.state == State::Stopped { d.observed.reason.clone() } else { None };
        if let Some(c) = c {
            self.observe(&d, Observed { state: State::Stopping, ..d.observed.clone() }).await?;
            self.docker.stop_and_remove(&c.id, self.settings.stop_grace_secs).await?;
        }
        let stopped = Observed {
            state: State::Stopped,
            reason,
            container_id: None,
            address: None,
            gpu_allocation: None,
            ..d.observed.clone()
        };
        self.observe(&d, stopped).await
    }

    /// Probes a starting server: TCP connect, then its health path must answer 200.
    async fn wait_healthy(
        &self,
        id: &str,
        address: Option<&str>,
        health_path: &str,
        deadline: Duration,
    ) -> Result<Health, SupervisorError> {
        let until = Instant::now() + deadline;
        let mut probes = 0u32;
        while Instant::now() < until {
            if let Some(address) = address
                && probe(address, health_path).await
            {
                return Ok(Health::Healthy);
            }
            probes += 1;
            // Docker is asked less often than the port is probed.
            if probes.is_multiple_of(if probes < FAST_PROBES { 25 } else { 5 }) {
                match self.docker.inspect(id).await? {
                    Some(c) if !c.running => return Ok(Health::Exited(c)),
                    None => {
                        return Ok(Health::Exited(Container {
                            id: id.to_owned(),
                            deployment: String::new(),
                            instance: String::new(),
                            running: false,
                            exit_code: None,
                            oom_killed: false,
                            address: None,
                        }));
                    }
                    Some(_) => {}
                }
            }
            // Quick probes first, when a small server is about to answer; then calmer ones
            // for the minutes a large model takes to load.
            tokio::time::sleep(if probes < FAST_PROBES { FAST_PROBE_EVERY } else { PROBE_EVERY }).await;
        }
        Ok(Health::Deadline)
    }
}

struct Prepared {
    spec: spec::ContainerSpec,
    /// What the start will run, recorded once Docker has created the container.
    launch: Launch,
    version: String,
    allocation: Option<GpuAllocation>,
    deadline: Duration,
    health_path: String,
}

enum Health {
    Healthy,
    Exited(Container),
    Deadline,
}

/// One HTTP/1.0 GET of the health path: true on a 200.
async fn probe(address: &str, path: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: hangar\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200")
    };
    tokio::time::timeout(Duration::from_secs(2), attempt).await.ok().flatten().unwrap_or(false)
}

/// What each of `deployments` but `except` holds, by deployment name.
fn held_by(
    deployments: &[Deployment],
    except: Option<&str>,
) -> Result<BTreeMap<String, GpuAllocation>, SupervisorError> {
    let mut held = BTreeMap::new();
    for d in deployments.iter().filter(|d| Some(d.name.as_str()) != except) {
        if let Some(json) = &d.observed.gpu_allocation {
            let allocation: GpuAllocation =
                serde_json::from_str(json).map_err(|e| SupervisorError::Invalid(e.to_string()))?;
            held.insert(d.name.to_string(), allocation);
        }
    }
    Ok(held)
}

fn parse_request(json: Option<&str>) -> Result<Option<GpuRequest>, SupervisorError> {
    json.map(|j| serde_json::from_str(j).map_err(|e| SupervisorError::Invalid(format!("invalid GPU request: {e}"))))
        .transpose()
}

fn to_json(allocation: &GpuAllocation) -> Result<String, SupervisorError> {
    serde_json::to_string(allocation).map_err(|e| SupervisorError::Invalid(e.to_string()))
}

fn quoted(lines: &str) -> String {
    if lines.is_empty() { String::new() } else { format!(". Last output:\n{lines}") }
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    // Days since the epoch to a civil date (Howard Hinnant's algorithm), to avoid a
    // date-time dependency for one timestamp.
    let secs = now.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}
