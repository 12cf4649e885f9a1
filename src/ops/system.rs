//! What a caller learns of the whole instance from `/metrics` and `/api/v1/system`: totals
//! over every model (counts, storage, Prometheus series) only without model globs; the
//! GPUs' holders by name only where the deployment serves a model in the caller's scope.

use crate::catalog::Db;

use crate::auth::Caller;
use crate::catalog;
use crate::error::ApiError;
use crate::runtime::gpu::GpuUsage;
use crate::runtime::supervisor::Supervisor;

/// What a GPU's holder is called where its deployment is outside the caller's models.
pub const HIDDEN_HOLDER: &str = "(outside your models)";

/// Refuses `/metrics` to a token limited to some models.
pub fn require_metrics(caller: &Caller) -> Result<(), ApiError> {
    Ok(caller.require_unscoped("read /metrics")?)
}

/// Whether the caller sees the catalog and storage totals of `/api/v1/system`.
pub fn sees_totals(caller: &Caller) -> bool {
    caller.models.is_none()
}

/// The GPUs and their holders; a holder outside the caller's models keeps its place (the
/// GPU is in use) but not its name.
pub async fn gpu_usage(pool: &Db, supervisor: &Supervisor, caller: &Caller) -> Result<Vec<GpuUsage>, ApiError> {
    let mut usage = supervisor.gpu_usage().await?;
    let Some(globs) = &caller.models else {
        return Ok(usage);
    };
    let visible: std::collections::HashSet<String> = catalog::deployments::list(pool)
        .await?
        .into_iter()
        .filter(|d| globs.iter().any(|g| g.matches(d.model.as_str())))
        .map(|d| d.name.to_string())
        .collect();
    let hide = |name: &mut String| {
        if !visible.contains(name.as_str()) {
            HIDDEN_HOLDER.clone_into(name);
        }
    };
    for gpu in &mut usage {
        if let Some(name) = gpu.exclusive.as_mut() {
            hide(name);
        }
        for holder in &mut gpu.shared {
            hide(&mut holder.deployment);
        }
    }
    Ok(usage)
}
