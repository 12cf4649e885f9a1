//! API tokens: issue one for the caller, list, revoke. A token a token creates is capped by
//! it: no higher role, no model outside its globs, no later expiry. Other users' tokens
//! are instance-wide: only an admin without model globs lists or revokes them; anyone else
//! sees and revokes only their own, and another's answers as if it did not exist.

use crate::catalog::Db;

use crate::auth::issue::{self, IssueError, TokenRequest};
use crate::auth::token::Secret;
use crate::auth::{Authenticator, Caller};
use crate::catalog::{self, tokens::Token};
use crate::domain::{Glob, Role, UserName};
use crate::error::ApiError;

/// Issues a token for the calling user, within what the caller's own credential allows.
pub async fn issue(pool: &Db, caller: &Caller, request: TokenRequest) -> Result<(Token, Secret), ApiError> {
    caller.require(Role::Viewer)?;
    let user = caller.user()?.clone();
    let name = issue::token_name(&request.name)?;
    let role = request.role.as_deref().filter(|r| !r.is_empty()).map(Role::parse).transpose()?.unwrap_or(caller.role);
    if role > caller.role {
        return Err(IssueError::Forbidden(format!(
            "a token cannot have more than the role it is created with: you have {}, not {role}",
            caller.role
        ))
        .into());
    }
    let models = request.models.map(|m| m.iter().map(|g| Glob::parse(g)).collect::<Result<Vec<_>, _>>()).transpose()?;
    let models = match (&caller.models, models) {
        (Some(own), None) => Some(own.clone()),
        (Some(own), Some(asked)) if asked.iter().any(|g| !own.contains(g)) => {
            return Err(IssueError::Forbidden(
                "this token is limited to some models; a token it creates can only use the same globs".into(),
            )
            .into());
        }
        (_, asked) => asked,
    };
    let expires_at = cap_expiry(caller.expires_at, issue::expiry(request.expires_in.as_deref())?)?;
    Ok(issue::issue(pool, &caller.actor(), &user, name, role, models.as_deref(), expires_at).await?)
}

/// A child's expiry under its parent's: none asked means the parent's; later is refused.
fn cap_expiry(parent: Option<i64>, asked: Option<i64>) -> Result<Option<i64>, IssueError> {
    match (parent, asked) {
        (None, asked) => Ok(asked),
        (Some(parent), None) => Ok(Some(parent)),
        (Some(parent), Some(asked)) if asked > parent => Err(IssueError::Forbidden(format!(
            "this token expires at unix {parent}; a token it creates cannot outlive it (asked: unix {asked})"
        ))),
        (Some(_), Some(asked)) => Ok(Some(asked)),
    }
}

/// Whose tokens the caller may see and revoke: `None` for everyone's.
fn owner(caller: &Caller) -> Result<Option<&UserName>, ApiError> {
    let user = caller.user()?;
    Ok(if caller.is_instance_admin() { None } else { Some(user) })
}

/// The caller's tokens, newest first; an admin without model globs sees everyone's.
pub async fn list(pool: &Db, caller: &Caller) -> Result<Vec<Token>, ApiError> {
    Ok(catalog::tokens::list(pool, owner(caller)?).await?)
}

/// Revokes one of the caller's tokens (an admin without model globs: anyone's); effective
/// on the next request.
pub async fn revoke(pool: &Db, authenticator: &Authenticator, caller: &Caller, id: i64) -> Result<(), ApiError> {
    catalog::tokens::revoke(pool, &caller.actor(), id, owner(caller)?).await?;
    authenticator.invalidate();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_token_never_outlives_its_parent() {
        assert_eq!(cap_expiry(None, None).expect("free"), None);
        assert_eq!(cap_expiry(None, Some(5)).expect("free"), Some(5));
        assert_eq!(cap_expiry(Some(10), None).expect("inherits"), Some(10));
        assert_eq!(cap_expiry(Some(10), Some(5)).expect("sooner"), Some(5));
        assert!(matches!(cap_expiry(Some(10), Some(11)), Err(IssueError::Forbidden(_))));
    }
}
