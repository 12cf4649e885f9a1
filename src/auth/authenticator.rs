//! Turns a presented token into a `Caller`. Lookups are cached for a moment so the check
//! costs nothing measurable per request; every change to tokens or users made through this
//! server clears the cache, so a revocation takes effect on the very next request. Changes
//! made offline (`hangar admin …` against a running server) are seen within `CACHE_TTL`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::catalog::Db;
use subtle::ConstantTimeEq as _;

use super::token::Secret;
use super::{AuthError, Caller};
use crate::catalog::tokens::{self, TokenAuth};

const CACHE_TTL: Duration = Duration::from_secs(2);
/// A bound on memory: past this many cached tokens the cache starts afresh.
const CACHE_MAX: usize = 10_000;
/// `last_used_at` is written at most this often per token, not on every request.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

pub struct Authenticator {
    pool: Db,
    cache: Mutex<HashMap<String, (Instant, TokenAuth)>>,
    touched: Mutex<HashMap<i64, Instant>>,
}

impl Authenticator {
    pub fn new(pool: Db) -> Self {
        Self { pool, cache: Mutex::new(HashMap::new()), touched: Mutex::new(HashMap::new()) }
    }

    /// Forgets every cached lookup; call after any change to tokens or users.
    pub fn invalidate(&self) {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// The caller a bearer token stands for, or why it stands for no one.
    pub async fn authenticate(&self, raw: &str, remote_addr: Option<String>) -> Result<Caller, AuthError> {
        let secret = Secret::parse(raw)
            .ok_or_else(|| AuthError::Unauthenticated("the bearer token is not a Hangar token (hgr_…)".into()))?;
        let hash = secret.hash();
        let found = self.lookup(&secret, &hash).await?;
        let Some(auth) = found else {
            return Err(AuthError::Unauthenticated("the bearer token is not known here".into()));
        };
        let token = &auth.token;
        if token.revoked_at.is_some() {
            return Err(AuthError::Unauthenticated(format!("token {} ({}) was revoked", token.id, token.prefix)));
        }
        if let Some(expires_at) = token.expires_at
            && now_unix() >= expires_at
        {
            return Err(AuthError::Unauthenticated(format!(
                "token {} ({}) has expired; create a new one",
                token.id, token.prefix
            )));
        }
        if auth.user_disabled {
            return Err(AuthError::Unauthenticated(format!("user '{}' is disabled", token.user)));
        }
        self.touch(token.id);
        Ok(Caller {
            user_id: Some(auth.user_id),
            user: Some(token.user.clone()),
            role: token.role.min(auth.user_role),
            token_id: Some(token.id),
            models: token.models.clone(),
            expires_at: token.expires_at,
            remote_addr,
        })
    }

    async fn lookup(&self, secret: &Secret, hash: &str) -> Result<Option<TokenAuth>, AuthError> {
        {
            let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, auth)) = cache.get(hash)
                && at.elapsed() < CACHE_TTL
            {
                return Ok(Some(auth.clone()));
            }
        }
        let candidates = tokens::find_by_prefix(&self.pool, secret.prefix()).await.map_err(|e| {
            tracing::error!(error = ?e, "token lookup failed");
            AuthError::Unavailable(
                "the token could not be checked: the catalog's database did not answer; try again".into(),
            )
        })?;
        // The prefix narrows the search; the full hash decides, compared in constant time.
        let found = candidates.into_iter().find(|c| bool::from(c.secret_hash.as_bytes().ct_eq(hash.as_bytes())));
        if let Some(auth) = &found {
            let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash.to_owned(), (Instant::now(), auth.clone()));
        }
        Ok(found)
    }

    fn touch(&self, id: i64) {
        let due = {
            let mut touched = self.touched.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = touched.get(&id).is_none_or(|at| at.elapsed() >= TOUCH_EVERY);
            if due {
                if touched.len() >= CACHE_MAX {
                    touched.clear();
                }
                touched.insert(id, Instant::now());
            }
            due
        };
        if due {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                if let Err(e) = tokens::touch(&pool, id).await {
                    tracing::warn!(error = ?e, token = id, "could not record token use");
                }
            });
        }
    }
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
