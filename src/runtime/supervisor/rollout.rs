//! Alias moves: blue/green (surge) or recreate rollouts, and what a failed rollout leaves behind.

use std::sync::Arc;
use std::time::Instant;

use super::lifecycle::{Health, Prepared};
use super::{
    DRAIN_AT_MOST, FailedRollout, PROBE_EVERY, REASON_LOG_LINES, Rollout, Supervisor, SupervisorError, quoted,
};
use crate::catalog::CatalogError;
use crate::catalog::deployments::{self, Deployment, Observed, State};
use crate::runtime::engine::{Container, last_lines};
use crate::runtime::gpu;
use crate::runtime::spec;

impl Supervisor {
    /// For a running deployment that follows an alias: the alias's version, if it has moved
    /// away from what the deployment serves, unless a rollout to that version already failed
    /// on the runtime as it is now (changing the runtime, or the alias, tries again).
    pub(super) async fn moved_on(&self, d: &Deployment) -> Result<Option<String>, SupervisorError> {
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
        let failed = self.track(d.name.as_str(), |t| t.failed_rollout.clone());
        let failed_before = match failed {
            Some(failed) if failed.version == version => failed.runtime == self.runtime_fingerprint(&d.runtime).await,
            _ => false,
        };
        Ok((d.observed.serving_version.as_deref() != Some(version.as_str()) && !failed_before).then_some(version))
    }

    /// Moves a running deployment to `version`: blue/green, or recreate if so configured.
    pub(super) async fn roll_out(
        self: Arc<Self>,
        d: Deployment,
        old: Container,
        version: String,
    ) -> Result<(), SupervisorError> {
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
                let runtime = self.runtime_fingerprint(&d.runtime).await;
                let failed = FailedRollout { version: version.clone(), reason: reason.clone(), runtime };
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
    pub(super) async fn surge(
        &self,
        d: &Deployment,
        old: &Container,
        version: &str,
    ) -> Result<Result<(), String>, SupervisorError> {
        // Both versions hold GPUs until the old one stops: place the new beside everything.
        let allocation = {
            let _placing = self.placing().await?;
            match d.gpu_request {
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
        let prepared = match self.prepare_with(&pinned, allocation).await? {
            Ok(prepared) => prepared,
            Err(reason) => return Ok(Err(reason)),
        };
        let Prepared { mut spec, launch, version, allocation, deadline, health_path } = prepared;
        let usual_name = spec.name.clone();
        let instance = uuid::Uuid::new_v4().simple().to_string();
        spec.name = spec::rollout_name(&usual_name, &instance[..8]);
        let (id, address) = match self.engine.create_and_start(spec).await {
            Ok(started) => started,
            Err(e) => return Ok(Err(format!("the new container could not start: {e}"))),
        };
        self.record_launch(&d.name, launch, &id).await;
        match self.wait_healthy(&id, address.as_deref(), &health_path, deadline).await? {
            Health::Healthy => {}
            Health::Exited(c) => {
                let lines = last_lines(&*self.engine, &id, REASON_LOG_LINES).await;
                self.engine.stop_and_remove(&id, self.settings.stop_grace_secs).await?;
                let code = c.exit_code.map_or_else(|| "?".to_owned(), |c| c.to_string());
                return Ok(Err(format!("the new server exited with code {code}{}", quoted(&lines))));
            }
            Health::Deadline => {
                self.engine.stop_and_remove(&id, self.settings.stop_grace_secs).await?;
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
            gpu_allocation: allocation.clone(),
            started_at: Some(crate::catalog::now()),
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
        self.engine.stop_and_remove(&old.id, self.settings.stop_grace_secs).await?;
        self.engine.rename(&id, &usual_name).await?;
        self.track(d.name.as_str(), |t| t.failed_rollout = None);
        Ok(Ok(()))
    }

    /// Stops the old container and lets the loop start the alias's version in its place.
    pub(super) async fn recreate(&self, d: Deployment, old: Container, version: &str) -> Result<(), SupervisorError> {
        self.engine.stop_and_remove(&old.id, self.settings.stop_grace_secs).await?;
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

    /// A restart of a deployment whose rollout failed (the alias still names the version that
    /// could not start) starts the version that was serving, pinned, rather than failing on the
    /// new one again: a crash must not turn a failed rollout into an outage. Returns the
    /// deployment to start, and the failed rollout's report to keep showing.
    pub(super) async fn keep_serving_after_failed_rollout(
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
}
