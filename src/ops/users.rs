//! Users: create, list, change role, disable or enable, reset a password. All instance-wide:
//! only an admin without model globs. Disabling a user or resetting their password ends
//! their dashboard sessions at once; a reset also revokes their API tokens unless asked
//! to keep them.

use crate::catalog::Db;

use crate::auth::{Authenticator, Caller, password};
use crate::catalog::{self, users::User};
use crate::domain::{Role, UserName};
use crate::error::ApiError;

/// What the refusals say a scoped token cannot do.
const MANAGE_USERS: &str = "manage users";

/// A password to set: the one given, checked, or a generated one to hand back once.
pub struct NewPassword {
    pub secret: String,
    pub generated: bool,
}

impl NewPassword {
    /// The password given (checked for strength), or a generated one when none was.
    pub fn choose(given: Option<String>) -> Result<Self, ApiError> {
        match given {
            Some(p) => {
                password::check_strength(&p).map_err(|e| ApiError::BadRequest(e.to_string()))?;
                Ok(Self { secret: p, generated: false })
            }
            None => Ok(Self { secret: password::generate(), generated: true }),
        }
    }

    /// The password to show the admin: only a generated one.
    pub fn shown(self) -> Option<String> {
        self.generated.then_some(self.secret)
    }
}

/// Every user.
pub async fn list(pool: &Db, caller: &Caller) -> Result<Vec<User>, ApiError> {
    caller.require_instance_admin(MANAGE_USERS)?;
    Ok(catalog::users::list(pool).await?)
}

/// One user.
pub async fn get(pool: &Db, caller: &Caller, name: &UserName) -> Result<User, ApiError> {
    caller.require_instance_admin(MANAGE_USERS)?;
    Ok(catalog::users::get(pool, name).await?)
}

/// Creates a user with `role` and the password chosen.
pub async fn create(
    pool: &Db,
    caller: &Caller,
    name: &UserName,
    role: Role,
    password: &NewPassword,
) -> Result<User, ApiError> {
    caller.require_instance_admin(MANAGE_USERS)?;
    let hash = password::hash(password.secret.clone()).await.map_err(ApiError::internal)?;
    Ok(catalog::users::create(pool, &caller.actor(), name, role, &hash).await?)
}

/// Changes a user's role and/or disables or enables them; their tokens follow at once, and
/// a disable ends their sessions. The last enabled admin cannot be demoted or disabled.
pub async fn update(
    pool: &Db,
    authenticator: &Authenticator,
    caller: &Caller,
    name: &UserName,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<User, ApiError> {
    caller.require_instance_admin(MANAGE_USERS)?;
    let user = catalog::users::update(pool, &caller.actor(), name, role, disabled).await?;
    authenticator.invalidate();
    Ok(user)
}

/// Sets a user's password and ends their sessions; unless `keep_tokens`, revokes their
/// API tokens as well.
pub async fn reset_password(
    pool: &Db,
    authenticator: &Authenticator,
    caller: &Caller,
    name: &UserName,
    password: &NewPassword,
    keep_tokens: bool,
) -> Result<(), ApiError> {
    caller.require_instance_admin(MANAGE_USERS)?;
    let hash = password::hash(password.secret.clone()).await.map_err(ApiError::internal)?;
    catalog::users::set_password(pool, &caller.actor(), name, &hash, !keep_tokens).await?;
    authenticator.invalidate();
    Ok(())
}
