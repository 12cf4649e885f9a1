//! Aliases: moving or deleting one takes a maintainer on the model, and an admin for a
//! protected alias (`protected_aliases`). Moving one wakes the supervisor so deployments
//! that follow it roll out now.

use crate::catalog::Db;

use super::error::OpsError;
use crate::auth::{AuthError, Caller};
use crate::catalog::{self, aliases::Alias};
use crate::config::Settings;
use crate::domain::{AliasName, ModelName, Role, VersionName};
use crate::runtime::supervisor::Supervisor;

/// Whether `set` created the alias or moved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Moved,
}

/// Checks the caller may move or delete `alias` of `model`, before anything is changed.
pub fn authorize_change(
    caller: &Caller,
    settings: &Settings,
    model: &ModelName,
    alias: &AliasName,
) -> Result<(), OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    if let Some(rule) = settings.protected_aliases.iter().find(|g| g.matches(alias.as_str()))
        && caller.role < Role::Admin
    {
        return Err(AuthError::Forbidden(format!(
            "alias '{alias}' is protected by the rule '{rule}' (protected_aliases); only an admin can move or delete it"
        ))
        .into());
    }
    Ok(())
}

/// Points `alias` at a ready version, creating or moving it, and wakes the supervisor so the
/// deployments that follow it roll out.
pub async fn set(
    pool: &Db,
    settings: &Settings,
    supervisor: &Supervisor,
    caller: &Caller,
    model: &ModelName,
    alias: &AliasName,
    version: &VersionName,
) -> Result<(Alias, Change), OpsError> {
    authorize_change(caller, settings, model, alias)?;
    let previous = catalog::aliases::set(pool, &caller.actor(), model, alias, version).await?;
    supervisor.wake();
    let now = catalog::aliases::get(pool, model, alias).await?;
    Ok((now, if previous.is_some() { Change::Moved } else { Change::Created }))
}

/// Removes an alias (the version stays); refused while deployments follow it.
pub async fn delete(
    pool: &Db,
    settings: &Settings,
    caller: &Caller,
    model: &ModelName,
    alias: &AliasName,
) -> Result<(), OpsError> {
    authorize_change(caller, settings, model, alias)?;
    Ok(catalog::aliases::delete(pool, &caller.actor(), model, alias).await?)
}
