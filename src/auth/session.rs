//! Dashboard sessions: a random cookie value (only its sha256 is stored) and a per-session
//! CSRF token that every form and unsafe API call from the browser must send back.

use crate::catalog::Db;
use base64::Engine as _;
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::{Caller, now_unix};
use crate::catalog::{self, CatalogError};

pub const COOKIE: &str = "hangar_session";
/// Sessions last this long from sign-in.
pub const LIFETIME_SECS: i64 = 7 * 86_400;

fn random() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

/// Starts a session for `user_id`; returns the cookie value to set.
pub async fn start(pool: &Db, user_id: i64) -> Result<String, CatalogError> {
    let cookie = random();
    catalog::sessions::create(pool, &hash(&cookie), user_id, &random(), now_unix() + LIFETIME_SECS).await?;
    Ok(cookie)
}

pub async fn end(pool: &Db, cookie: &str) -> Result<(), CatalogError> {
    catalog::sessions::delete(pool, &hash(cookie)).await
}

/// The caller a session cookie stands for, with the session's CSRF token.
pub async fn resume(
    pool: &Db,
    cookie: &str,
    remote_addr: Option<String>,
) -> Result<Option<(Caller, String)>, CatalogError> {
    let Some(session) = catalog::sessions::get(pool, &hash(cookie), now_unix()).await? else {
        return Ok(None);
    };
    let caller = Caller {
        user_id: Some(session.user_id),
        user: Some(session.user),
        role: session.role,
        token_id: None,
        models: None,
        expires_at: None,
        remote_addr,
    };
    Ok(Some((caller, session.csrf)))
}

/// Compares a presented CSRF token with the session's, in constant time.
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())))
}
