//! Fair-use limits are instance-wide: only an admin without model globs lists, sets or
//! removes them (a limit on one user touches every model they use).

use crate::catalog::Db;

use super::error::OpsError;
use crate::auth::Caller;
use crate::catalog;
use crate::domain::{Limits, Subject};

/// One subject's limits, as the API shows them.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LimitView {
    /// `user:NAME` or `token:ID`.
    pub subject: String,
    #[serde(flatten)]
    pub limits: Limits,
}

pub async fn list(pool: &Db, caller: &Caller) -> Result<Vec<LimitView>, OpsError> {
    caller.require_instance_admin("see usage limits")?;
    let all = catalog::limits::list(pool).await?;
    Ok(all.into_iter().map(|(subject, limits)| LimitView { subject: subject.to_string(), limits }).collect())
}

pub async fn set(pool: &Db, caller: &Caller, subject: &str, limits: Limits) -> Result<LimitView, OpsError> {
    caller.require_instance_admin("set usage limits")?;
    let subject = Subject::parse(subject)?;
    let limits = limits.checked()?;
    catalog::limits::set(pool, &caller.actor(), &subject, limits).await?;
    Ok(LimitView { subject: subject.to_string(), limits })
}

pub async fn remove(pool: &Db, caller: &Caller, subject: &str) -> Result<(), OpsError> {
    caller.require_instance_admin("remove usage limits")?;
    let subject = Subject::parse(subject)?;
    Ok(catalog::limits::delete(pool, &caller.actor(), &subject).await?)
}
