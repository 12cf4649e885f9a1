//! Which deployment a request means: a deployment's name, or a model (`m`, `m@alias`,
//! `m:version`) that exactly one deployment serves.

use crate::catalog::Db;

use super::OpenAiError;
use crate::auth::Caller;
use crate::catalog::deployments::{self, Deployment, Target};
use crate::domain::{ModelRef, Role};
use crate::error::ApiError;

fn internal(err: impl Into<ApiError>) -> OpenAiError {
    OpenAiError::from(err.into())
}

/// Resolves the `model` of a request to one of `deployments` the caller may use. Borrowed:
/// a `Deployment` is a dozen allocations to clone, on every request otherwise.
pub fn resolve<'a>(
    deployments: &'a [Deployment],
    caller: &Caller,
    wanted: &str,
) -> Result<&'a Deployment, OpenAiError> {
    let all: Vec<&Deployment> =
        deployments.iter().filter(|d| caller.require_on(Role::Viewer, &d.model).is_ok()).collect();
    if let Some(d) = all.iter().find(|d| d.name.as_str() == wanted) {
        return Ok(d);
    }
    // A string that is not a well-formed reference names no model: it falls through to the
    // not-found answer below, which lists what the caller may use.
    let wanted_ref = ModelRef::parse(wanted).ok();
    let matches: Vec<&Deployment> = match &wanted_ref {
        None => Vec::new(),
        Some(ModelRef { model, target: form }) => all
            .iter()
            .copied()
            .filter(|d| d.model == *model)
            .filter(|d| match (form, &d.target) {
                (None, _) => true,
                (Some(Target::Alias(want)), Target::Alias(a)) => a == want,
                (Some(Target::Alias(_)), _) => false,
                (Some(Target::Version(want)), target) => {
                    matches!(target, Target::Version(v) if v == want)
                        || d.observed.serving_version.as_deref() == Some(want.as_str())
                }
            })
            .collect(),
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let available: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
            Err(OpenAiError::model_not_found(format!(
                "no deployment serves model '{wanted}'; available: {}",
                if available.is_empty() { "none".to_owned() } else { available.join(", ") }
            )))
        }
        several => Err(OpenAiError::invalid_request(format!(
            "model '{wanted}' is served by several deployments ({}); name one of them",
            several.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// A deployment by its name, for the raw proxy.
pub async fn by_name(pool: &Db, caller: &Caller, name: &str) -> Result<Deployment, OpenAiError> {
    caller.require(Role::Viewer).map_err(internal)?;
    let name = crate::domain::DeploymentName::parse(name).map_err(internal)?;
    let deployment = deployments::get(pool, &name).await.map_err(internal)?;
    caller.require_on(Role::Viewer, &deployment.model).map_err(internal)?;
    Ok(deployment)
}
