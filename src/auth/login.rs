//! Password sign-in, the one check behind `POST /api/v1/login` and the dashboard's form:
//! the user name is normalized once (trimmed) and that one string is both the limiter's key
//! and the name looked up, and an unknown user costs a password hash like a known one, so
//! neither the limiter nor the answer's timing tells who exists.

use std::sync::LazyLock;

use crate::catalog::Db;

use super::{AuthError, LoginLimiter, password};
use crate::catalog::{self, CatalogError, users::User};
use crate::domain::UserName;

/// An argon2id hash of a random password, made with the same parameters as real ones, that
/// unknown users are verified against so that they take as long as known ones.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| password::hash_blocking(&password::generate()).unwrap_or_default());

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many failures lately for this user or address (429).
    #[error(transparent)]
    Limited(AuthError),
    /// Unknown user or wrong password; which one is not said (401).
    #[error("unknown user or wrong password")]
    Refused,
    /// The password is right but the user is disabled (403).
    #[error("user '{0}' is disabled; ask an admin")]
    Disabled(UserName),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Checks `user`'s `password`, counting a failure against the user and `remote_addr`.
pub async fn sign_in(
    pool: &Db,
    limiter: &LoginLimiter,
    user: &str,
    password: String,
    remote_addr: &str,
) -> Result<User, LoginError> {
    let name = user.trim();
    let keys = [format!("user:{name}"), format!("addr:{remote_addr}")];
    limiter.check(&keys).map_err(LoginError::Limited)?;
    let found = match UserName::parse(name) {
        Ok(name) => catalog::users::credentials(pool, &name).await?,
        Err(_) => None,
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, DUMMY_HASH.clone()),
    };
    let verified = password::verify(password, hash).await;
    let Some(user) = user.filter(|_| verified) else {
        limiter.record_failure(&keys);
        return Err(LoginError::Refused);
    };
    if user.disabled {
        return Err(LoginError::Disabled(user.name));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash() {
        assert!(DUMMY_HASH.starts_with("$argon2id$"), "{}", *DUMMY_HASH);
    }
}
