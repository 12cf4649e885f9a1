//! Models: a name, a description and tags.

use sqlx::types::Json;

use super::events::{self, Actor};
use super::{
    CatalogError, Db, JsonList, Page, Result, any_glob, begin_write, corrupt, globs_param, is_unique_violation,
    like_pattern, now, on_conn, on_db,
};
use crate::domain::{Glob, ModelName};

/// A model as the catalog knows it, with a summary of its versions and aliases.
#[derive(Debug, Clone)]
pub struct Model {
    pub id: i64,
    pub name: ModelName,
    pub description: String,
    pub tags: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: Option<String>,
    pub version_count: i64,
    /// The most recently published version, if any.
    pub latest_version: Option<String>,
    /// Bytes of the latest published version.
    pub latest_size: i64,
    /// `prod, staging`: the model's aliases, for lists.
    pub aliases: Option<String>,
    /// `chat running, batch stopped`: its deployments and their states, for lists.
    pub deployments: Option<String>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct ModelRow {
    id: i64,
    name: String,
    description: String,
    tags: String,
    created_at: String,
    updated_at: String,
    created_by: Option<String>,
    version_count: i64,
    latest_version: Option<String>,
    latest_size: i64,
    aliases: Option<String>,
    deployments: Option<String>,
}

impl TryFrom<ModelRow> for Model {
    type Error = CatalogError;

    fn try_from(row: ModelRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            // Names were parsed before they were stored; a row that does not parse was
            // written by something else, which is worth a loud error, not a silent skip.
            name: ModelName::parse(&row.name).map_err(corrupt)?,
            description: row.description,
            tags: serde_json::from_str(&row.tags).map_err(corrupt)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            created_by: row.created_by,
            version_count: row.version_count,
            latest_version: row.latest_version,
            latest_size: row.latest_size,
            aliases: row.aliases,
            deployments: row.deployments,
        })
    }
}

/// The one SELECT of a model, with `$tail` (a string literal) appended.
macro_rules! select_model {
    ($tail:expr) => {
        concat!(
            "SELECT m.id, m.name, m.description, m.tags, m.created_at, m.updated_at, m.created_by,
                    m.version_count,
                    (SELECT v.name FROM versions v WHERE v.model_id = m.id AND v.state = 'ready'
                      ORDER BY v.published_at DESC, v.id DESC LIMIT 1) AS latest_version,
                    (SELECT CAST(COALESCE(SUM(f.size), 0) AS BIGINT) FROM files f WHERE f.version_id =
                       (SELECT v.id FROM versions v WHERE v.model_id = m.id AND v.state = 'ready'
                         ORDER BY v.published_at DESC, v.id DESC LIMIT 1)) AS latest_size,
                    (SELECT string_agg(a.name, ', ') FROM aliases a WHERE a.model_id = m.id) AS aliases,
                    (SELECT string_agg(d.name || ' ' || d.state, ', ') FROM deployments d WHERE d.model_id = m.id)
                      AS deployments
               FROM models m ",
            $tail
        )
    };
}

/// The columns of `select_model!`, for lists read as JSON.
const COLUMNS: &[&str] = &[
    "id",
    "name",
    "description",
    "tags",
    "created_at",
    "updated_at",
    "created_by",
    "version_count",
    "latest_version",
    "latest_size",
    "aliases",
    "deployments",
];

/// Models ordered by name after `$1`, matching `$2` (a LIKE pattern, ignoring ASCII case as
/// SQLite's LIKE does) and `$4` (JSON globs), at most `$3`, in dialect `$d`.
macro_rules! list_models {
    (sqlite) => {
        list_models!(sqlite, "LIKE")
    };
    (postgres) => {
        list_models!(postgres, "ILIKE")
    };
    ($d:ident, $like:literal) => {
        select_model!(concat!(
            "WHERE m.name > $1
               AND ($2 IS NULL OR m.name ",
            $like,
            " $2 ESCAPE '\\' OR m.description ",
            $like,
            " $2 ESCAPE '\\')
               AND ($4 IS NULL OR ",
            any_glob!($d, "m.name", "$4"),
            ")
             ORDER BY m.name LIMIT $3"
        ))
    };
}

static LIST: JsonList = JsonList::per_dialect(list_models!(sqlite), list_models!(postgres), COLUMNS, "name");

/// What a client may set on a model.
#[derive(Debug, Default)]
pub struct ModelChanges {
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
}

pub fn not_found(name: &ModelName) -> CatalogError {
    CatalogError::NotFound(format!("model '{name}' does not exist"))
}

pub async fn create(pool: &Db, actor: &Actor, name: &ModelName, description: &str, tags: &[String]) -> Result<Model> {
    let tags_json = serde_json::to_string(tags).map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let inserted = on_conn!(&mut tx, |tx| sqlx::query(
        "INSERT INTO models (name, description, tags, created_by) VALUES ($1, $2, $3, $4)"
    )
    .bind(name.as_str())
    .bind(description)
    .bind(&tags_json)
    .bind(actor.name())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()));
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(CatalogError::Conflict(format!("model '{name}' already exists")));
        }
        other => other?,
    };
    let details = serde_json::json!({ "description": description, "tags": tags });
    events::record(&mut tx, actor, "model.created", Some(name.as_str()), name.as_str(), details).await?;
    tx.commit().await?;
    get(pool, name).await
}

pub async fn get(pool: &Db, name: &ModelName) -> Result<Model> {
    let row: Option<ModelRow> = on_db!(pool, |pool| sqlx::query_as(select_model!("WHERE m.name = $1"))
        .bind(name.as_str())
        .fetch_optional(pool)
        .await)?;
    row.ok_or_else(|| not_found(name))?.try_into()
}

/// Looks up only the id, for calls that need nothing else.
pub async fn id_of(pool: &Db, name: &ModelName) -> Result<i64> {
    on_db!(pool, |pool| sqlx::query_scalar("SELECT id FROM models WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(pool)
        .await)?
    .ok_or_else(|| not_found(name))
}

/// Models ordered by name, after `cursor` (the last name of the previous page), whose name
/// or description contains `q` and whose name one of `globs` matches (all, without globs).
pub async fn list(
    pool: &Db,
    q: Option<&str>,
    globs: Option<&[Glob]>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<Model>> {
    let globs = globs_param(pool.dialect(), globs)?;
    let sql = LIST.sql(pool.dialect());
    let rows: Vec<ModelRow> = on_db!(pool, |pool| sqlx::query_scalar::<_, Json<Vec<ModelRow>>>(sql)
        .bind(cursor.unwrap_or(""))
        .bind(q.map(like_pattern))
        .bind(i64::from(limit) + 1)
        .bind(globs)
        .fetch_one(pool)
        .await)?
    .0;
    let mut items = rows.into_iter().map(Model::try_from).collect::<Result<Vec<_>>>()?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|m| m.name.to_string())
    } else {
        None
    };
    Ok(Page { items, next })
}

pub async fn update(pool: &Db, actor: &Actor, name: &ModelName, changes: ModelChanges) -> Result<Model> {
    let tags_json = changes.tags.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let updated = on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE models SET description = COALESCE($1, description), tags = COALESCE($2, tags),
                updated_at = $4
          WHERE name = $3",
    )
    .bind(changes.description.as_deref())
    .bind(tags_json)
    .bind(name.as_str())
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()))?;
    if updated == 0 {
        return Err(not_found(name));
    }
    let details = serde_json::json!({ "description": changes.description, "tags": changes.tags });
    events::record(&mut tx, actor, "model.updated", Some(name.as_str()), name.as_str(), details).await?;
    tx.commit().await?;
    get(pool, name).await
}

/// Deletes a model with its versions, files and aliases. Blobs stay until garbage collection
/// finds nothing refers to them.
pub async fn delete(pool: &Db, actor: &Actor, name: &ModelName) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let deployed = super::deployments::names_for_model(&mut tx, name).await?;
    if !deployed.is_empty() {
        return Err(CatalogError::Conflict(format!(
            "model '{name}' is deployed as {}; delete those deployments first",
            deployed.join(", ")
        )));
    }
    let deleted = on_conn!(&mut tx, |tx| sqlx::query("DELETE FROM models WHERE name = $1")
        .bind(name.as_str())
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected()))?;
    if deleted == 0 {
        return Err(not_found(name));
    }
    events::record(&mut tx, actor, "model.deleted", Some(name.as_str()), name.as_str(), serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}
