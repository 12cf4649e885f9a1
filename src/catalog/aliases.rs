//! Aliases: movable names (`prod`, `staging`) that point at a ready version of a model.

use super::events::{self, Actor};
use super::{CatalogError, Db, Result, begin_write, corrupt, models, now, on_conn, on_db, versions};
use crate::domain::{AliasName, ModelName, VersionName};

#[derive(Debug, Clone)]
pub struct Alias {
    pub name: AliasName,
    pub version: VersionName,
    pub updated_at: String,
    pub updated_by: Option<String>,
}

fn not_found(model: &ModelName, alias: &AliasName) -> CatalogError {
    CatalogError::NotFound(format!("model '{model}' has no alias '{alias}'"))
}

type AliasRow = (String, String, String, Option<String>);

fn to_alias((name, version, updated_at, updated_by): AliasRow) -> Result<Alias> {
    Ok(Alias {
        name: AliasName::parse(&name).map_err(corrupt)?,
        version: VersionName::parse(&version).map_err(corrupt)?,
        updated_at,
        updated_by,
    })
}

/// Points `alias` at a ready `version`; returns the version it pointed at before, if any.
pub async fn set(
    pool: &Db,
    actor: &Actor,
    model: &ModelName,
    alias: &AliasName,
    version: &VersionName,
) -> Result<Option<VersionName>> {
    let mut tx = begin_write(pool).await?;
    let (version_id, state) = versions::locate(&mut tx, model, version).await?;
    if state != versions::VersionState::Ready {
        return Err(CatalogError::Conflict(format!(
            "version '{version}' of '{model}' is a draft; publish it before pointing '{alias}' at it"
        )));
    }
    let previous: Option<String> = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "SELECT v.name FROM aliases a JOIN versions v ON v.id = a.version_id
          WHERE a.model_id = (SELECT model_id FROM versions WHERE id = $1) AND a.name = $2",
    )
    .bind(version_id)
    .bind(alias.as_str())
    .fetch_optional(&mut *tx)
    .await)?;
    on_conn!(&mut tx, |tx| sqlx::query(
        "INSERT INTO aliases (model_id, name, version_id, updated_by)
         VALUES ((SELECT model_id FROM versions WHERE id = $1), $2, $1, $3)
         ON CONFLICT (model_id, name) DO UPDATE SET version_id = excluded.version_id,
             updated_by = excluded.updated_by, updated_at = $4",
    )
    .bind(version_id)
    .bind(alias.as_str())
    .bind(actor.name())
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(drop))?;
    let details = serde_json::json!({ "alias": alias, "from": previous, "to": version });
    events::record(&mut tx, actor, "alias.moved", Some(model.as_str()), &format!("{model}@{alias}"), details).await?;
    tx.commit().await?;
    previous.map(|v| VersionName::parse(&v).map_err(corrupt)).transpose()
}

pub async fn get(pool: &Db, model: &ModelName, alias: &AliasName) -> Result<Alias> {
    let row: Option<AliasRow> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT a.name, v.name, a.updated_at, a.updated_by FROM aliases a
           JOIN models m ON m.id = a.model_id JOIN versions v ON v.id = a.version_id
          WHERE m.name = $1 AND a.name = $2",
    )
    .bind(model.as_str())
    .bind(alias.as_str())
    .fetch_optional(pool)
    .await)?;
    match row {
        Some(row) => to_alias(row),
        None => {
            models::id_of(pool, model).await?;
            Err(not_found(model, alias))
        }
    }
}

pub async fn list(pool: &Db, model: &ModelName) -> Result<Vec<Alias>> {
    let rows: Vec<AliasRow> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT a.name, v.name, a.updated_at, a.updated_by FROM aliases a JOIN versions v ON v.id = a.version_id
          WHERE a.model_id = (SELECT id FROM models WHERE name = $1) ORDER BY a.name",
    )
    .bind(model.as_str())
    .fetch_all(pool)
    .await)?;
    if rows.is_empty() {
        // Tell a model without aliases apart from one that does not exist.
        models::id_of(pool, model).await?;
    }
    rows.into_iter().map(to_alias).collect()
}

pub async fn delete(pool: &Db, actor: &Actor, model: &ModelName, alias: &AliasName) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let following: Vec<String> = on_conn!(&mut tx, |tx| {
        sqlx::query_scalar(
        "SELECT d.name FROM deployments d JOIN models m ON m.id = d.model_id WHERE m.name = $1 AND d.alias = $2 ORDER BY d.name",
    )
    .bind(model.as_str())
    .bind(alias.as_str())
    .fetch_all(&mut *tx)
    .await
    })?;
    if !following.is_empty() {
        return Err(CatalogError::Conflict(format!(
            "deployment(s) {} follow '{model}@{alias}'; delete them or point them elsewhere first",
            following.join(", ")
        )));
    }
    let previous: Option<String> = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "DELETE FROM aliases WHERE model_id = (SELECT id FROM models WHERE name = $1) AND name = $2
         RETURNING (SELECT name FROM versions WHERE id = aliases.version_id)",
    )
    .bind(model.as_str())
    .bind(alias.as_str())
    .fetch_optional(&mut *tx)
    .await)?;
    let Some(previous) = previous else {
        drop(tx);
        models::id_of(pool, model).await?;
        return Err(not_found(model, alias));
    };
    let details = serde_json::json!({ "alias": alias, "from": previous });
    events::record(&mut tx, actor, "alias.deleted", Some(model.as_str()), &format!("{model}@{alias}"), details).await?;
    tx.commit().await?;
    Ok(())
}
