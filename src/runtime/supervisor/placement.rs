//! GPU placement: which node a deployment runs on, where a start's GPUs come from, and
//! evicting idle deployments to make room. Each node's GPUs are placed against what the
//! deployments on that node hold; placement holds a lock every node shares.

use std::collections::BTreeMap;

use super::{Supervisor, SupervisorError, Track};
use crate::catalog::Actor;
use crate::catalog::deployments::{self, Deployment, Desired, NewDeployment, Observed, State};
use crate::catalog::nodes::{self, PlacementLock};
use crate::domain::{DeploymentName, NodeName};
use crate::runtime::gpu::{self, AdmissionError, GpuAllocation, GpuInventory, GpuRequest};

impl Supervisor {
    /// Both placement locks: this process's, then the catalog's, which the other nodes take.
    pub(super) async fn placing(&self) -> Result<(tokio::sync::MutexGuard<'_, ()>, PlacementLock), SupervisorError> {
        let local = self.admission.lock().await;
        Ok((local, nodes::placement_lock(&self.pool).await?))
    }

    /// What every deployment on this node but `except` holds now.
    pub(super) async fn allocations(
        &self,
        except: Option<&str>,
    ) -> Result<BTreeMap<String, GpuAllocation>, SupervisorError> {
        self.allocations_on(&self.settings.node, except).await
    }

    async fn allocations_on(
        &self,
        node: &NodeName,
        except: Option<&str>,
    ) -> Result<BTreeMap<String, GpuAllocation>, SupervisorError> {
        let on_node: Vec<Deployment> =
            deployments::list(&self.pool).await?.into_iter().filter(|d| d.node.as_ref() == Some(node)).collect();
        Ok(held_by(&on_node, except))
    }

    /// Places a deployment's GPU request on this node against what the others hold.
    pub(super) async fn place(
        &self,
        deployment: &str,
        request: Option<GpuRequest>,
    ) -> Result<Option<GpuAllocation>, SupervisorError> {
        self.place_on(&self.settings.node.clone(), deployment, request).await
    }

    /// Places a deployment's GPU request on `node`, against its inventory as it registered
    /// it and what the deployments there hold. Another node's host memory is not known
    /// here: that node checks it when it starts the container.
    async fn place_on(
        &self,
        node: &NodeName,
        deployment: &str,
        request: Option<GpuRequest>,
    ) -> Result<Option<GpuAllocation>, SupervisorError> {
        let Some(request) = request else { return Ok(None) };
        let held = self.allocations_on(node, Some(deployment)).await?;
        if *node == self.settings.node {
            return Ok(Some(gpu::admit(&self.inventory, &held, request)?));
        }
        let inventory = self.inventory_of(node).await?;
        Ok(Some(gpu::admit_on_host(&inventory, &held, request, None)?))
    }

    /// Another node's GPUs, if it is up.
    async fn inventory_of(&self, node: &NodeName) -> Result<GpuInventory, SupervisorError> {
        let all = nodes::list(&self.pool).await?;
        let Some(found) = all.iter().find(|n| n.name == *node) else {
            let names: Vec<&str> = all.iter().map(|n| n.name.as_str()).collect();
            return Err(SupervisorError::Invalid(format!(
                "there is no node '{node}'; the nodes are {}",
                names.join(", ")
            )));
        };
        if !found.is_up(self.settings.node_down_after) {
            return Err(SupervisorError::NodeDown(format!(
                "node '{node}' is down (its last heartbeat was at {}); deploy elsewhere or bring it back",
                found.heartbeat_at
            )));
        }
        Ok(found.gpus.clone())
    }

    /// The node a new deployment goes to and what it gets there: the node it names, else
    /// this one if its GPUs fit, else the first other node that is up and has room (by
    /// name). A refusal everywhere is this node's refusal, which names what holds its GPUs.
    pub(super) async fn choose_node(
        &self,
        new: &NewDeployment,
    ) -> Result<(NodeName, Option<GpuAllocation>), SupervisorError> {
        let running = new.desired == Desired::Running;
        if let Some(node) = &new.node {
            if *node != self.settings.node {
                self.inventory_of(node).await?;
            }
            let allocation =
                if running { self.place_on(node, new.name.as_str(), new.gpu_request).await? } else { None };
            return Ok((node.clone(), allocation));
        }
        let here = self.settings.node.clone();
        if !running || new.gpu_request.is_none() {
            return Ok((here, None));
        }
        let refused = match self.place_on(&here, new.name.as_str(), new.gpu_request).await {
            Ok(allocation) => return Ok((here, allocation)),
            Err(SupervisorError::Admission(refused)) => refused,
            Err(e) => return Err(e),
        };
        let others = nodes::list(&self.pool).await?;
        for other in others.iter().filter(|n| n.name != here && n.is_up(self.settings.node_down_after)) {
            let held = self.allocations_on(&other.name, None).await?;
            if let Ok(allocation) = gpu::admit_on_host(&other.gpus, &held, refused.request, None) {
                return Ok((other.name.clone(), Some(allocation)));
            }
        }
        Err(refused.into())
    }

    /// Moves a deployment to `node` (`hangar deploy --move-to`): placed there under the
    /// placement lock, then handed over in the catalog. The node it leaves removes its
    /// container; the new one starts it (if it is wanted running).
    pub async fn move_to(
        &self,
        actor: &Actor,
        name: &DeploymentName,
        node: &NodeName,
    ) -> Result<Deployment, SupervisorError> {
        let _placing = self.placing().await?;
        let current = deployments::get(&self.pool, name).await?;
        if current.node.as_ref() == Some(node) {
            return Err(SupervisorError::Invalid(format!("deployment '{name}' already runs on node '{node}'")));
        }
        if *node != self.settings.node {
            self.inventory_of(node).await?;
        }
        let allocation = if current.desired == Desired::Running {
            self.place_on(node, name.as_str(), current.gpu_request).await?
        } else {
            None
        };
        let moved = deployments::move_to(&self.pool, actor, name, node, allocation.as_ref()).await?;
        self.wake();
        Ok(moved)
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
        let _placing = self.placing().await?;
        let current = deployments::get(&self.pool, name).await?;
        if current.desired == Desired::Running && current.observed.state != State::Failed {
            return Ok((current, false));
        }
        let node = current.node.clone().unwrap_or_else(|| self.settings.node.clone());
        // Eviction stops containers, which only the node that runs them can do.
        let evict = evict && node == self.settings.node;
        let allocation = match &current.observed.gpu_allocation {
            Some(held) => Some(held.clone()),
            None => match self.place_on(&node, name.as_str(), current.gpu_request).await {
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
        let all: Vec<Deployment> = deployments::list(&self.pool).await?.into_iter().filter(|d| self.owns(d)).collect();
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
