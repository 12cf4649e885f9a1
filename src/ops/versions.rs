//! Versions: creating a draft and publishing it take a maintainer on the model.

use crate::catalog::Db;

use super::error::OpsError;
use crate::auth::Caller;
use crate::catalog::{self, versions::NewVersion, versions::Version};
use crate::domain::{ModelName, Role, VersionName};

/// Starts a draft of `model`.
pub async fn create(pool: &Db, caller: &Caller, model: &ModelName, new: NewVersion) -> Result<Version, OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    Ok(catalog::versions::create(pool, &caller.actor(), model, new).await?)
}

/// Publishes a draft: from now on it is immutable and aliases may point at it.
pub async fn publish(
    pool: &Db,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
) -> Result<Version, OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    Ok(catalog::versions::publish(pool, &caller.actor(), model, version).await?)
}
