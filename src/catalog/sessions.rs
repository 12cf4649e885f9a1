//! Dashboard sessions: a cookie's sha256 → its user, CSRF token and expiry.

use sqlx::SqlitePool;

use super::{Result, corrupt};
use crate::domain::{Role, UserName};

/// A live session and who it belongs to.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: i64,
    pub user: UserName,
    pub role: Role,
    pub csrf: String,
}

pub async fn create(pool: &SqlitePool, id_hash: &str, user_id: i64, csrf: &str, expires_at: i64) -> Result<()> {
    sqlx::query("INSERT INTO sessions (id_hash, user_id, csrf, expires_at) VALUES (?, ?, ?, ?)")
        .bind(id_hash)
        .bind(user_id)
        .bind(csrf)
        .bind(expires_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// The session with this hash, if it exists, has not expired and its user is enabled.
pub async fn get(pool: &SqlitePool, id_hash: &str, now: i64) -> Result<Option<Session>> {
    let row: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT u.id, u.name, u.role, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id_hash = ? AND s.expires_at > ? AND u.disabled = 0",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(pool)
    .await?;
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

pub async fn delete(pool: &SqlitePool, id_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = ?").bind(id_hash).execute(pool).await?;
    Ok(())
}
