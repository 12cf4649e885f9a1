//! GPU placement: where a start's GPUs come from, and evicting idle deployments to make room.

use std::collections::BTreeMap;

use super::{Supervisor, SupervisorError, Track};
use crate::catalog::Actor;
use crate::catalog::deployments::{self, Deployment, Desired, Observed, State};
use crate::domain::DeploymentName;
use crate::runtime::gpu::{self, AdmissionError, GpuAllocation, GpuRequest};

impl Supervisor {
    /// What every deployment but `except` holds now.
    pub(super) async fn allocations(
        &self,
        except: Option<&str>,
    ) -> Result<BTreeMap<String, GpuAllocation>, SupervisorError> {
        Ok(held_by(&deployments::list(&self.pool).await?, except))
    }

    /// Places a deployment's GPU request against what the others hold.
    pub(super) async fn place(
        &self,
        deployment: &str,
        request: Option<GpuRequest>,
    ) -> Result<Option<GpuAllocation>, SupervisorError> {
        let Some(request) = request else { return Ok(None) };
        let held = self.allocations(Some(deployment)).await?;
        Ok(Some(gpu::admit(&self.inventory, &held, request)?))
    }

    /// As `start`; with `evict`, a request that does not fit first stops idle autostart
    /// deployments, least recently used first (never one with requests in flight). Also
    /// says whether this call did the start (`false`: it was wanted running already).
    pub(super) async fn start_with(
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
            None => match self.place(name.as_str(), current.gpu_request).await {
                Err(SupervisorError::Admission(refused)) if evict => Some(self.evict_for(name, refused).await?),
                other => other?,
            },
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
    pub(super) async fn evict_for(
        &self,
        name: &DeploymentName,
        refused: AdmissionError,
    ) -> Result<GpuAllocation, SupervisorError> {
        let all = deployments::list(&self.pool).await?;
        let held = held_by(&all, Some(name.as_str()));
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
    pub(super) async fn stop_now(&self, d: &Deployment) -> Result<(), SupervisorError> {
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
}

/// What each of `deployments` but `except` holds, by deployment name.
pub(super) fn held_by(deployments: &[Deployment], except: Option<&str>) -> BTreeMap<String, GpuAllocation> {
    deployments
        .iter()
        .filter(|d| Some(d.name.as_str()) != except)
        .filter_map(|d| d.observed.gpu_allocation.clone().map(|held| (d.name.to_string(), held)))
        .collect()
}
