//! Users: a name, a role, an argon2id password hash, and whether they are disabled.

use super::events::{self, Actor};
use super::{CatalogError, ConnMut, Db, Result, begin_write, corrupt, is_unique_violation, now, on_conn, on_db};
use crate::domain::{Role, UserName};

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub name: UserName,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    name: String,
    role: String,
    disabled: bool,
    created_at: String,
    updated_at: String,
}

impl TryFrom<UserRow> for User {
    type Error = CatalogError;

    fn try_from(row: UserRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            name: UserName::parse(&row.name).map_err(corrupt)?,
            role: Role::parse(&row.role).map_err(corrupt)?,
            disabled: row.disabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn not_found(name: &UserName) -> CatalogError {
    CatalogError::NotFound(format!("user '{name}' does not exist"))
}

pub async fn count(pool: &Db) -> Result<i64> {
    Ok(on_db!(pool, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await)?)
}

pub async fn create(pool: &Db, actor: &Actor, name: &UserName, role: Role, password_hash: &str) -> Result<User> {
    let mut tx = begin_write(pool).await?;
    let inserted =
        on_conn!(&mut tx, |tx| sqlx::query("INSERT INTO users (name, role, password_hash) VALUES ($1, $2, $3)")
            .bind(name.as_str())
            .bind(role.as_str())
            .bind(password_hash)
            .execute(&mut *tx)
            .await
            .map(drop));
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(CatalogError::Conflict(format!("user '{name}' already exists")));
        }
        other => other?,
    };
    events::record(&mut tx, actor, "user.created", None, name.as_str(), serde_json::json!({ "role": role })).await?;
    tx.commit().await?;
    get(pool, name).await
}

pub async fn get(pool: &Db, name: &UserName) -> Result<User> {
    let row: Option<UserRow> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT id, name, role, disabled, created_at, updated_at FROM users WHERE name = $1"
    )
    .bind(name.as_str())
    .fetch_optional(pool)
    .await)?;
    row.ok_or_else(|| not_found(name))?.try_into()
}

pub async fn list(pool: &Db) -> Result<Vec<User>> {
    let rows: Vec<UserRow> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT id, name, role, disabled, created_at, updated_at FROM users ORDER BY name"
    )
    .fetch_all(pool)
    .await)?;
    rows.into_iter().map(User::try_from).collect()
}

/// The user and their password hash, for a login attempt.
pub async fn credentials(pool: &Db, name: &UserName) -> Result<Option<(User, String)>> {
    let row: Option<(i64, String, String, bool, String, String, String)> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT id, name, role, disabled, created_at, updated_at, password_hash FROM users WHERE name = $1",
    )
    .bind(name.as_str())
    .fetch_optional(pool)
    .await)?;
    row.map(|(id, name, role, disabled, created_at, updated_at, hash)| {
        Ok((User::try_from(UserRow { id, name, role, disabled, created_at, updated_at })?, hash))
    })
    .transpose()
}

/// Changes a user's role or disables them; refuses to leave the hub without an admin.
pub async fn update(
    pool: &Db,
    actor: &Actor,
    name: &UserName,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<User> {
    let mut tx = begin_write(pool).await?;
    let updated = on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE users SET role = COALESCE($1, role), disabled = COALESCE($2, disabled),
                updated_at = $4
          WHERE name = $3",
    )
    .bind(role.map(Role::as_str))
    .bind(disabled)
    .bind(name.as_str())
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()))?;
    if updated == 0 {
        return Err(not_found(name));
    }
    let admins: i64 =
        on_conn!(&mut tx, |tx| sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled")
            .fetch_one(&mut *tx)
            .await)?;
    if admins == 0 {
        return Err(CatalogError::Conflict(format!(
            "this would leave no enabled admin; make another user admin before changing '{name}'"
        )));
    }
    // A disabled user is out at once: re-enabling them later must not revive old sessions.
    let sessions_ended = if disabled == Some(true) { end_sessions(&mut tx, name).await? } else { 0 };
    let details = serde_json::json!({ "role": role, "disabled": disabled, "sessions_ended": sessions_ended });
    events::record(&mut tx, actor, "user.updated", None, name.as_str(), details).await?;
    tx.commit().await?;
    get(pool, name).await
}

/// Sets a user's password and ends their dashboard sessions; with `revoke_tokens`, their
/// API tokens stop working too. One transaction, one `user.password_reset` event.
pub async fn set_password(
    pool: &Db,
    actor: &Actor,
    name: &UserName,
    password_hash: &str,
    revoke_tokens: bool,
) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let updated =
        on_conn!(&mut tx, |tx| sqlx::query("UPDATE users SET password_hash = $1, updated_at = $3 WHERE name = $2",)
            .bind(password_hash)
            .bind(name.as_str())
            .bind(now())
            .execute(&mut *tx)
            .await
            .map(|done| done.rows_affected()))?;
    if updated == 0 {
        return Err(not_found(name));
    }
    let sessions_ended = end_sessions(&mut tx, name).await?;
    let tokens_revoked = if revoke_tokens {
        on_conn!(&mut tx, |tx| sqlx::query(
            "UPDATE tokens SET revoked_at = $2
              WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE name = $1)",
        )
        .bind(name.as_str())
        .bind(now())
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected()))?
    } else {
        0
    };
    let details = serde_json::json!({ "sessions_ended": sessions_ended, "tokens_revoked": tokens_revoked });
    events::record(&mut tx, actor, "user.password_reset", None, name.as_str(), details).await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes every dashboard session of a user; how many there were.
async fn end_sessions(conn: impl Into<ConnMut<'_>>, name: &UserName) -> Result<u64> {
    let mut conn: ConnMut<'_> = conn.into();
    let ended = on_conn!(&mut conn, |conn| sqlx::query(
        "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = $1)"
    )
    .bind(name.as_str())
    .execute(&mut *conn)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(ended)
}
