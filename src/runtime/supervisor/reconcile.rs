//! The reconcile loop's pass: adoption of what runs, one container per deployment, crash and
//! idle detection, and the tasks it spawns beside itself.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use super::{Supervisor, SupervisorError};
use crate::catalog::deployments::{self, Deployment, Desired, State};
use crate::catalog::{Actor, CatalogError};
use crate::runtime::engine::Container;

impl Supervisor {
    /// One pass: remove what no one wants, then converge each deployment.
    pub(super) async fn reconcile(self: Arc<Self>) -> Result<(), SupervisorError> {
        // This node's deployments only; a container of one that moved away is a stray here.
        let wanted: Vec<Deployment> =
            deployments::list(&self.pool).await?.into_iter().filter(|d| self.owns(d)).collect();
        let containers = self.engine.list_managed().await?;
        let names: std::collections::HashSet<&str> = wanted.iter().map(|d| d.name.as_str()).collect();
        for stray in containers.iter().filter(|c| !names.contains(c.deployment.as_str())) {
            tracing::info!(container = %stray.id, deployment = %stray.deployment, "removing a container no deployment wants");
            self.engine.stop_and_remove(&stray.id, self.settings.stop_grace_secs).await?;
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

    pub(super) async fn converge(
        self: Arc<Self>,
        d: Deployment,
        mut containers: Vec<Container>,
    ) -> Result<(), SupervisorError> {
        let name = d.name.to_string();
        // One container per deployment: keep the one the catalog knows (or the newest).
        if containers.len() > 1 {
            let keep = containers.iter().position(|c| Some(&c.id) == d.observed.container_id.as_ref()).unwrap_or(0);
            for (i, extra) in containers.iter().enumerate() {
                if i != keep {
                    self.engine.stop_and_remove(&extra.id, self.settings.stop_grace_secs).await?;
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

    /// Whether a running deployment has had no request in flight for its idle timeout.
    pub(super) fn idle(&self, d: &Deployment) -> bool {
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
    pub(super) fn spawn<F, Fut>(self: &Arc<Self>, name: String, task: F)
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
}
