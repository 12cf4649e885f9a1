//! Dashboard sessions: a cookie's sha256 → its user, CSRF token and expiry.

use super::{Db, Result, corrupt, on_db};
use crate::domain::{Role, UserName};

/// A live session and who it belongs to.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: i64,
    pub user: UserName,
    pub role: Role,
    pub csrf: String,
}

pub async fn create(pool: &Db, id_hash: &str, user_id: i64, csrf: &str, expires_at: i64) -> Result<()> {
    on_db!(pool, |pool| sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf, expires_at) VALUES ($1, $2, $3, $4)"
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(csrf)
    .bind(expires_at)
    .execute(pool)
    .await
    .map(drop))?;
    Ok(())
}

/// The session with this hash, if it exists, has not expired and its user is enabled.
pub async fn get(pool: &Db, id_hash: &str, now: i64) -> Result<Option<Session>> {
    let row: Option<(i64, String, String, String)> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT u.id, u.name, u.role, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id_hash = $1 AND s.expires_at > $2 AND NOT u.disabled",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await)?;
    row.map(|(user_id, user, role, csrf)| {
        Ok(Session {
            user_id,
            user: UserName::parse(&user).map_err(corrupt)?,
            role: Role::parse(&role).map_err(corrupt)?,
            csrf,
        })
    })
    .transpose()
}

pub async fn delete(pool: &Db, id_hash: &str) -> Result<()> {
    on_db!(pool, |pool| sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(pool)
        .await
        .map(drop))?;
    Ok(())
}
