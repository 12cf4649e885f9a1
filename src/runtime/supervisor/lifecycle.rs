//! Starting, health-waiting, crash backoff and stopping of one deployment's container.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{
    FAST_PROBE_EVERY, FAST_PROBES, PROBE_EVERY, REASON_LOG_LINES, STABLE_AFTER, Supervisor, SupervisorError, quoted,
};
use crate::catalog;
use crate::catalog::deployments::{self, Deployment, Desired, Observed, State};
use crate::catalog::launches::Launch;
use crate::domain::DeploymentName;
use crate::runtime::engine::{Container, EngineError, last_lines};
use crate::runtime::gpu::GpuAllocation;
use crate::runtime::launch;
use crate::runtime::presets::{self, Runtime};
use crate::runtime::spec::{self, Overrides, SpecInput};

impl Supervisor {
    /// Marks a deployment failed with `reason`, releasing its GPUs.
    pub(super) async fn fail(&self, d: &Deployment, reason: String) -> Result<(), SupervisorError> {
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

    pub(super) async fn start_instance(self: Arc<Self>, d: Deployment) -> Result<(), SupervisorError> {
        // The pass that spawned this may have read a state that has changed since.
        let d = deployments::get(&self.pool, &d.name).await?;
        if d.desired != Desired::Running || d.observed.state == State::Failed || !self.owns(&d) {
            return Ok(());
        }
        let starting = Observed { state: State::Starting, reason: None, ..d.observed.clone() };
        self.observe(&d, starting).await?;
        let (d, still_failed) = self.keep_serving_after_failed_rollout(d).await?;
        let prepared = match self.prepare(&d).await? {
            Ok(prepared) => prepared,
            Err(reason) => return self.fail(&d, reason).await,
        };
        let Prepared { spec, launch, version, allocation, deadline, health_path } = prepared;
        let (id, address) = match self.engine.create_and_start(spec).await {
            Ok(started) => started,
            Err(e @ EngineError::Unreachable { .. }) => return Err(e.into()),
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
            gpu_allocation: allocation.clone(),
            started_at: None,
            restarts: d.observed.restarts,
        };
        self.observe(&d, observed.clone()).await?;
        match self.wait_healthy(&id, address.as_deref(), &health_path, deadline).await? {
            Health::Healthy => {
                observed.state = State::Running;
                observed.reason = still_failed;
                observed.started_at = Some(crate::catalog::now());
                self.traffic.touch(d.name.as_str());
                self.observe(&d, observed).await
            }
            Health::Exited(c) => self.crashed(d, c).await,
            Health::Deadline => {
                let lines = last_lines(&*self.engine, &id, REASON_LOG_LINES).await;
                self.engine.stop_and_remove(&id, self.settings.stop_grace_secs).await?;
                let reason = format!(
                    "the server did not answer 200 on {health_path} within {} s{}",
                    deadline.as_secs(),
                    quoted(&lines)
                );
                self.fail(&Deployment { observed, ..d }, reason).await
            }
        }
    }

    /// Everything a start needs. `Ok(Err(reason))` is a start that cannot happen, for a
    /// reason a person should read (the deployment fails with it); `Err` is an engine that
    /// cannot be reached, which the loop retries without failing anything.
    pub(super) async fn prepare(&self, d: &Deployment) -> Result<Result<Prepared, String>, SupervisorError> {
        let allocation = match &d.observed.gpu_allocation {
            Some(held) => Some(held.clone()),
            None => {
                let _placing = self.placing().await?;
                match self.place(d.name.as_str(), d.gpu_request).await {
                    Ok(allocation) => allocation,
                    Err(e) => return Ok(Err(format!("no GPU free: {e}"))),
                }
            }
        };
        self.prepare_with(d, allocation).await
    }

    /// As `prepare`, with the GPUs already placed.
    pub(super) async fn prepare_with(
        &self,
        d: &Deployment,
        allocation: Option<GpuAllocation>,
    ) -> Result<Result<Prepared, String>, SupervisorError> {
        let runtime = match self.runtime(&d.runtime).await {
            Ok(runtime) => runtime,
            Err(e) => return Ok(Err(e.to_string())),
        };
        match self.engine.image_exists(runtime.image()).await {
            Ok(true) => {}
            Ok(false) => return Ok(Err(EngineError::ImageMissing(runtime.image().to_owned()).to_string())),
            Err(e @ EngineError::Unreachable { .. }) => return Err(e.into()),
            Err(e) => return Ok(Err(e.to_string())),
        }
        Ok(self.prepare_on(d, &runtime, allocation).await)
    }

    /// The spec and launch record of `d` on `runtime`, whose image the engine has.
    async fn prepare_on(
        &self,
        d: &Deployment,
        runtime: &Runtime,
        allocation: Option<GpuAllocation>,
    ) -> Result<Prepared, String> {
        let (version, files) =
            deployments::resolve(&self.pool, &d.model, &d.target).await.map_err(|e| e.to_string())?;
        let picked = presets::pick_model_files(runtime, files.iter().map(|(p, _)| p.as_str()))?;
        let snapshot = self.blobs.snapshot(&d.model, &version, files).await.map_err(|e| e.to_string())?;
        let snapshot = self.daemon_path(&snapshot);
        let overrides = Overrides::parse(&d.env, &d.args).map_err(|e| e.to_string())?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let spec = spec::container_spec(&SpecInput {
            deployment: d.name.as_str(),
            instance: &instance,
            runtime,
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
            launch: launch::launch_of(&spec, runtime, version.as_str(), manifest_digest),
            spec,
            version: version.to_string(),
            allocation,
            deadline: runtime.startup_deadline(),
            health_path: runtime.health_path().to_owned(),
        })
    }

    /// Records what a start of `name` ran, with the image digest Docker resolved. A record
    /// that cannot be written is logged: it never stops a server that started.
    pub(super) async fn record_launch(&self, name: &DeploymentName, mut launch: Launch, container_id: &str) {
        launch.container_id = container_id.to_owned();
        launch.image_digest = self.engine.image_digest(container_id).await.unwrap_or_else(|e| {
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

    /// Maps a path under the data dir to where the Docker daemon finds it.
    pub(super) fn daemon_path(&self, path: &Path) -> PathBuf {
        match (&self.settings.host_data_dir, path.strip_prefix(&self.data_dir)) {
            (Some(host), Ok(rel)) => host.join(rel),
            _ => std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
        }
    }

    /// Waits for a running container (adopted or interrupted) to answer its health check.
    pub(super) async fn await_health(self: Arc<Self>, d: Deployment, c: Container) -> Result<(), SupervisorError> {
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
                observed.started_at.get_or_insert_with(crate::catalog::now);
                self.observe(&d, observed).await
            }
            Health::Exited(exited) => self.crashed(d, exited).await,
            Health::Deadline => {
                self.engine.stop_and_remove(&c.id, self.settings.stop_grace_secs).await?;
                let reason = format!("the server did not answer 200 on {} in time", runtime.health_path());
                self.fail(&Deployment { observed, ..d }, reason).await
            }
        }
    }

    /// A container exited while it should run: back off and restart, or give up.
    pub(super) async fn crashed(self: Arc<Self>, d: Deployment, c: Container) -> Result<(), SupervisorError> {
        let d = deployments::get(&self.pool, &d.name).await?;
        let lines = last_lines(&*self.engine, &c.id, REASON_LOG_LINES).await;
        self.engine.stop_and_remove(&c.id, self.settings.stop_grace_secs).await?;
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

    pub(super) async fn stop_instance(
        self: Arc<Self>,
        d: Deployment,
        c: Option<Container>,
    ) -> Result<(), SupervisorError> {
        let d = deployments::get(&self.pool, &d.name).await?;
        if d.desired != Desired::Stopped {
            return Ok(());
        }
        // Keep the reason of a deployment already stopped (say, evicted to make room).
        let reason = if d.observed.state == State::Stopped { d.observed.reason.clone() } else { None };
        if let Some(c) = c {
            self.observe(&d, Observed { state: State::Stopping, ..d.observed.clone() }).await?;
            self.engine.stop_and_remove(&c.id, self.settings.stop_grace_secs).await?;
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
    pub(super) async fn wait_healthy(
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
                match self.engine.inspect(id).await? {
                    Some(c) if !c.running => return Ok(Health::Exited(c)),
                    None => return Ok(Health::Exited(Container::gone(id))),
                    Some(_) => {}
                }
            }
            // Quick probes first, when a small server is about to answer; then calmer ones
            // for the minutes a large model takes to load.
            tokio::time::sleep(if probes < FAST_PROBES { FAST_PROBE_EVERY } else { PROBE_EVERY }).await;
        }
        Ok(Health::Deadline)
    }
    pub(super) async fn observe(&self, d: &Deployment, observed: Observed) -> Result<(), SupervisorError> {
        deployments::observe(&self.pool, &d.name, &observed).await?;
        Ok(())
    }
}

pub(super) struct Prepared {
    pub(super) spec: spec::ContainerSpec,
    /// What the start will run, recorded once Docker has created the container.
    pub(super) launch: Launch,
    pub(super) version: String,
    pub(super) allocation: Option<GpuAllocation>,
    pub(super) deadline: Duration,
    pub(super) health_path: String,
}

pub(super) enum Health {
    Healthy,
    Exited(Container),
    Deadline,
}

/// One HTTP/1.0 GET of the health path: true on a 200.
pub(super) async fn probe(address: &str, path: &str) -> bool {
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
