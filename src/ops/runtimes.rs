//! Runtimes admins define: an instance-wide setting, since any deployment of any model may
//! use one, so only an admin without model globs may change them.

use crate::catalog::Db;

use crate::auth::Caller;
use crate::catalog;
use crate::error::ApiError;
use crate::runtime::Runtime;

const MANAGE_RUNTIMES: &str = "define runtimes";

/// Stores `runtime`, replacing one of the same name (a preset's name overrides the preset);
/// whether it is new.
pub async fn put(pool: &Db, caller: &Caller, runtime: &Runtime) -> Result<bool, ApiError> {
    caller.require_instance_admin(MANAGE_RUNTIMES)?;
    let json = serde_json::to_string(&runtime.definition()).map_err(ApiError::internal)?;
    Ok(catalog::runtimes::put(pool, &caller.actor(), runtime.name().as_str(), &json).await?)
}

/// Deletes a stored runtime; refused while deployments use it.
pub async fn delete(pool: &Db, caller: &Caller, name: &str) -> Result<(), ApiError> {
    caller.require_instance_admin(MANAGE_RUNTIMES)?;
    Ok(catalog::runtimes::delete(pool, &caller.actor(), name).await?)
}
