//! API tokens. Only a sha256 of each token is stored, with a short prefix to find it by
//! and to show in lists; the secret itself exists only in the creation response.

use super::events::{self, Actor};
use super::{CatalogError, Db, Result, begin_write, corrupt, now, on_conn, on_db};
use crate::domain::{Glob, Role, UserName};

/// A token as listed: everything but the secret.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: i64,
    pub user: UserName,
    pub name: String,
    pub prefix: String,
    pub role: Role,
    pub models: Option<Vec<Glob>>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    pub created_at: String,
}

/// What authentication needs to judge a presented token.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub token: Token,
    pub user_id: i64,
    pub secret_hash: String,
    pub user_role: Role,
    pub user_disabled: bool,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    user_id: i64,
    user: String,
    name: String,
    prefix: String,
    secret_hash: String,
    role: String,
    models: Option<String>,
    expires_at: Option<i64>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    created_at: String,
    user_role: String,
    user_disabled: bool,
}

impl TryFrom<TokenRow> for TokenAuth {
    type Error = CatalogError;

    fn try_from(row: TokenRow) -> Result<Self> {
        let models = row
            .models
            .map(|m| {
                let raw: Vec<String> = serde_json::from_str(&m).map_err(corrupt)?;
                raw.iter().map(|g| Glob::parse(g).map_err(corrupt)).collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(Self {
            token: Token {
                id: row.id,
                user: UserName::parse(&row.user).map_err(corrupt)?,
                name: row.name,
                prefix: row.prefix,
                role: Role::parse(&row.role).map_err(corrupt)?,
                models,
                expires_at: row.expires_at,
                last_used_at: row.last_used_at,
                revoked_at: row.revoked_at,
                created_at: row.created_at,
            },
            user_id: row.user_id,
            secret_hash: row.secret_hash,
            user_role: Role::parse(&row.user_role).map_err(corrupt)?,
            user_disabled: row.user_disabled,
        })
    }
}

macro_rules! select_token {
    ($tail:literal) => {
        concat!(
            r#"SELECT t.id, t.user_id, u.name AS "user", t.name, t.prefix, t.secret_hash, t.role, t.models,
                    t.expires_at, t.last_used_at, t.revoked_at, t.created_at,
                    u.role AS user_role, u.disabled AS user_disabled
               FROM tokens t JOIN users u ON u.id = t.user_id "#,
            $tail
        )
    };
}

/// A token to store; `secret_hash` is the sha256 hex of the whole token.
#[derive(Debug)]
pub struct NewToken<'a> {
    pub user: &'a UserName,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a str,
    pub role: Role,
    pub models: Option<&'a [Glob]>,
    pub expires_at: Option<i64>,
}

pub async fn create(pool: &Db, actor: &Actor, new: NewToken<'_>) -> Result<Token> {
    let models = new
        .models
        .map(|m| serde_json::to_string(&m.iter().map(Glob::as_str).collect::<Vec<_>>()))
        .transpose()
        .map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let user: Option<(i64, String)> =
        on_conn!(&mut tx, |tx| sqlx::query_as("SELECT id, role FROM users WHERE name = $1")
            .bind(new.user.as_str())
            .fetch_optional(&mut *tx)
            .await)?;
    let Some((user_id, user_role)) = user else {
        return Err(CatalogError::NotFound(format!("user '{}' does not exist", new.user)));
    };
    let user_role = Role::parse(&user_role).map_err(corrupt)?;
    if new.role > user_role {
        return Err(CatalogError::Conflict(format!(
            "a token cannot have more than its user's role: '{}' is {user_role}, not {}",
            new.user, new.role
        )));
    }
    let id: i64 = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "INSERT INTO tokens (user_id, name, prefix, secret_hash, role, models, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(user_id)
    .bind(new.name)
    .bind(new.prefix)
    .bind(new.secret_hash)
    .bind(new.role.as_str())
    .bind(models)
    .bind(new.expires_at)
    .fetch_one(&mut *tx)
    .await)?;
    let details = serde_json::json!({ "id": id, "name": new.name, "role": new.role, "user": new.user });
    events::record(&mut tx, actor, "token.created", None, &format!("token/{id}"), details).await?;
    tx.commit().await?;
    Ok(get(pool, id).await?.token)
}

pub async fn get(pool: &Db, id: i64) -> Result<TokenAuth> {
    let row: Option<TokenRow> =
        on_db!(pool, |pool| sqlx::query_as(select_token!("WHERE t.id = $1")).bind(id).fetch_optional(pool).await)?;
    row.ok_or_else(|| CatalogError::NotFound(format!("token {id} does not exist")))?.try_into()
}

/// Tokens whose prefix is `prefix`: usually one, compared in full by the caller.
pub async fn find_by_prefix(pool: &Db, prefix: &str) -> Result<Vec<TokenAuth>> {
    let rows: Vec<TokenRow> =
        on_db!(pool, |pool| sqlx::query_as(select_token!("WHERE t.prefix = $1")).bind(prefix).fetch_all(pool).await)?;
    rows.into_iter().map(TokenAuth::try_from).collect()
}

/// Whether a token with this hash exists (revoked or not).
pub async fn hash_exists(pool: &Db, secret_hash: &str) -> Result<bool> {
    let found: Option<i64> = on_db!(pool, |pool| sqlx::query_scalar("SELECT id FROM tokens WHERE secret_hash = $1")
        .bind(secret_hash)
        .fetch_optional(pool)
        .await)?;
    Ok(found.is_some())
}

/// Tokens of one user, or of everyone; newest first.
pub async fn list(pool: &Db, user: Option<&UserName>) -> Result<Vec<Token>> {
    let rows: Vec<TokenRow> =
        on_db!(pool, |pool| sqlx::query_as(select_token!("WHERE $1 IS NULL OR u.name = $1 ORDER BY t.id DESC"))
            .bind(user.map(UserName::as_str))
            .fetch_all(pool)
            .await)?;
    rows.into_iter().map(|r| TokenAuth::try_from(r).map(|t| t.token)).collect()
}

/// Revokes a token; with `owner`, only one of theirs.
pub async fn revoke(pool: &Db, actor: &Actor, id: i64, owner: Option<&UserName>) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let updated = on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $3)
          WHERE id = $1 AND ($2 IS NULL OR user_id = (SELECT id FROM users WHERE name = $2))",
    )
    .bind(id)
    .bind(owner.map(UserName::as_str))
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()))?;
    if updated == 0 {
        return Err(CatalogError::NotFound(format!("token {id} does not exist, or is not yours")));
    }
    events::record(&mut tx, actor, "token.revoked", None, &format!("token/{id}"), serde_json::json!({ "id": id }))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Notes that a token was just used. Not audited: it is not a change anyone made.
pub async fn touch(pool: &Db, id: i64) -> Result<()> {
    on_db!(pool, |pool| sqlx::query("UPDATE tokens SET last_used_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now())
        .execute(pool)
        .await
        .map(drop))?;
    Ok(())
}
