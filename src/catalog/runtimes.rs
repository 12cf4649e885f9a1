//! Runtimes admins defined or changed. Built-in presets live in code; a row with a preset's
//! name overrides it. The definition is stored as the JSON the API takes.

use super::events::{self, Actor};
use super::{CatalogError, Db, Result, begin_write, now, on_conn, on_db};

/// Every stored runtime: (name, JSON definition).
pub async fn list(pool: &Db) -> Result<Vec<(String, String)>> {
    Ok(on_db!(pool, |pool| sqlx::query_as("SELECT name, spec FROM runtimes ORDER BY name").fetch_all(pool).await)?)
}

pub async fn get(pool: &Db, name: &str) -> Result<Option<String>> {
    Ok(on_db!(pool, |pool| sqlx::query_scalar("SELECT spec FROM runtimes WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await)?)
}

/// Creates or replaces a runtime; returns whether it was new.
pub async fn put(pool: &Db, actor: &Actor, name: &str, spec: &str) -> Result<bool> {
    let mut tx = begin_write(pool).await?;
    let existed: Option<i64> =
        on_conn!(&mut tx, |tx| sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM runtimes WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await)?;
    on_conn!(&mut tx, |tx| sqlx::query(
        "INSERT INTO runtimes (name, spec, updated_by) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_by = excluded.updated_by,
             updated_at = $4",
    )
    .bind(name)
    .bind(spec)
    .bind(actor.name())
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(drop))?;
    let details: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
    events::record(&mut tx, actor, "runtime.saved", None, &format!("runtime/{name}"), details).await?;
    tx.commit().await?;
    Ok(existed.is_none())
}

/// Deletes a stored runtime; refused while a deployment uses it.
pub async fn delete(pool: &Db, actor: &Actor, name: &str) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let users: Vec<String> =
        on_conn!(&mut tx, |tx| sqlx::query_scalar("SELECT name FROM deployments WHERE runtime = $1 ORDER BY name")
            .bind(name)
            .fetch_all(&mut *tx)
            .await)?;
    if !users.is_empty() {
        return Err(CatalogError::Conflict(format!(
            "runtime '{name}' is used by deployment(s) {}; delete them first",
            users.join(", ")
        )));
    }
    let deleted = on_conn!(&mut tx, |tx| sqlx::query("DELETE FROM runtimes WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected()))?;
    if deleted == 0 {
        return Err(CatalogError::NotFound(format!("no stored runtime '{name}' (built-in presets cannot be deleted)")));
    }
    events::record(&mut tx, actor, "runtime.deleted", None, &format!("runtime/{name}"), serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}
