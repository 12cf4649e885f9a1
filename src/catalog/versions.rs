//! Versions of a model: `draft` while files are added, then `ready` (published) and
//! immutable, with a manifest digest fixed at publish.

use sha2::{Digest as _, Sha256};
use sqlx::types::Json;

use super::events::{self, Actor};
use super::{
    CatalogError, ConnMut, Db, JsonList, Page, Result, begin_write, corrupt, is_unique_violation, models, now, on_conn,
    on_db,
};
use crate::domain::{Digest, ModelName, VersionName};

/// `draft`: files may be added and removed; `ready`: published, immutable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    Draft,
    Ready,
}

#[derive(Debug, Clone)]
pub struct Version {
    pub id: i64,
    pub model_id: i64,
    pub model: ModelName,
    pub name: VersionName,
    pub state: VersionState,
    pub description: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub manifest_digest: Option<Digest>,
    pub created_at: String,
    pub published_at: Option<String>,
    pub created_by: Option<String>,
    pub published_by: Option<String>,
    pub file_count: i64,
    pub size: i64,
    /// Aliases of the model that point at this version.
    pub aliases: Vec<String>,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct VersionRow {
    id: i64,
    model_id: i64,
    model: String,
    name: String,
    state: String,
    description: String,
    metadata: String,
    manifest_digest: Option<String>,
    created_at: String,
    published_at: Option<String>,
    created_by: Option<String>,
    published_by: Option<String>,
    file_count: i64,
    size: i64,
    aliases: Option<String>,
}

impl TryFrom<VersionRow> for Version {
    type Error = CatalogError;

    fn try_from(row: VersionRow) -> Result<Self> {
        let mut aliases: Vec<String> =
            row.aliases.map(|a| a.split(',').map(str::to_owned).collect()).unwrap_or_default();
        aliases.sort();
        Ok(Self {
            id: row.id,
            model_id: row.model_id,
            model: ModelName::parse(&row.model).map_err(corrupt)?,
            name: VersionName::parse(&row.name).map_err(corrupt)?,
            state: if row.state == "ready" { VersionState::Ready } else { VersionState::Draft },
            description: row.description,
            metadata: serde_json::from_str(&row.metadata).map_err(corrupt)?,
            manifest_digest: row.manifest_digest.as_deref().map(Digest::parse).transpose().map_err(corrupt)?,
            created_at: row.created_at,
            published_at: row.published_at,
            created_by: row.created_by,
            published_by: row.published_by,
            file_count: row.file_count,
            size: row.size,
            aliases,
        })
    }
}

/// The one SELECT of a version, with `$tail` (a string literal) appended.
macro_rules! select_version {
    ($tail:literal) => {
        concat!(
            "SELECT v.id, v.model_id, m.name AS model, v.name, v.state, v.description, v.metadata,
                    v.manifest_digest, v.created_at, v.published_at, v.created_by, v.published_by,
                    (SELECT COUNT(*) FROM files f WHERE f.version_id = v.id) AS file_count,
                    (SELECT CAST(COALESCE(SUM(f.size), 0) AS BIGINT) FROM files f WHERE f.version_id = v.id) AS size,
                    (SELECT string_agg(a.name, ',') FROM aliases a WHERE a.version_id = v.id) AS aliases
               FROM versions v JOIN models m ON m.id = v.model_id ",
            $tail
        )
    };
}

/// The columns of `select_version!`, for lists read as JSON.
const COLUMNS: &[&str] = &[
    "id",
    "model_id",
    "model",
    "name",
    "state",
    "description",
    "metadata",
    "manifest_digest",
    "created_at",
    "published_at",
    "created_by",
    "published_by",
    "file_count",
    "size",
    "aliases",
];

/// Versions of the model named `?1` with an id below `?2`, newest first, at most `?3`.
static LIST: JsonList = JsonList::new(
    select_version!(
        "WHERE v.model_id = (SELECT id FROM models WHERE name = $1) AND v.id < $2 ORDER BY v.id DESC LIMIT $3"
    ),
    COLUMNS,
    "id DESC",
);

pub fn not_found(model: &ModelName, version: &VersionName) -> CatalogError {
    CatalogError::NotFound(format!("model '{model}' has no version '{version}'"))
}

fn is_ready(model: &ModelName, version: &VersionName) -> CatalogError {
    CatalogError::Conflict(format!(
        "version '{version}' of '{model}' is published and immutable; create a new version to change it"
    ))
}

/// What a client may give a new version.
#[derive(Debug, Default)]
pub struct NewVersion {
    /// Left out: the next integer after the model's highest integer version.
    pub name: Option<VersionName>,
    pub description: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

pub async fn create(pool: &Db, actor: &Actor, model: &ModelName, new: NewVersion) -> Result<Version> {
    let metadata = serde_json::to_string(&new.metadata).map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let model_id: i64 = on_conn!(&mut tx, |tx| sqlx::query_scalar("SELECT id FROM models WHERE name = $1")
        .bind(model.as_str())
        .fetch_optional(&mut *tx)
        .await)?
    .ok_or_else(|| models::not_found(model))?;
    let name = match new.name {
        Some(name) => name,
        None => {
            // Inside the write transaction, so two clients never get the same number.
            let sql = tx.dialect().pick(
                "SELECT COALESCE(MAX(CAST(name AS INTEGER)), 0) FROM versions
                      WHERE model_id = $1 AND name NOT GLOB '*[^0-9]*' AND length(name) < 19",
                "SELECT COALESCE(MAX(CAST(name AS BIGINT)), 0) FROM versions
                      WHERE model_id = $1 AND name ~ '^[0-9]+$' AND length(name) < 19",
            );
            let highest: i64 =
                on_conn!(&mut tx, |tx| sqlx::query_scalar(sql).bind(model_id).fetch_one(&mut *tx).await)?;
            VersionName::numbered(highest + 1)
        }
    };
    let inserted = on_conn!(&mut tx, |tx| sqlx::query(
        "INSERT INTO versions (model_id, name, description, metadata, created_by) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(model_id)
    .bind(name.as_str())
    .bind(&new.description)
    .bind(&metadata)
    .bind(actor.name())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()));
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(CatalogError::Conflict(format!("model '{model}' already has a version '{name}'")));
        }
        other => other?,
    };
    let details = serde_json::json!({ "version": name, "description": new.description, "metadata": new.metadata });
    events::record(&mut tx, actor, "version.created", Some(model.as_str()), &format!("{model}:{name}"), details)
        .await?;
    tx.commit().await?;
    get(pool, model, &name).await
}

pub async fn get(pool: &Db, model: &ModelName, version: &VersionName) -> Result<Version> {
    let row: Option<VersionRow> =
        on_db!(pool, |pool| sqlx::query_as(select_version!("WHERE m.name = $1 AND v.name = $2"))
            .bind(model.as_str())
            .bind(version.as_str())
            .fetch_optional(pool)
            .await)?;
    match row {
        Some(row) => row.try_into(),
        None => {
            models::id_of(pool, model).await?;
            Err(not_found(model, version))
        }
    }
}

/// Versions of a model, newest first; `cursor` is the id after which to continue.
pub async fn list(pool: &Db, model: &ModelName, cursor: Option<i64>, limit: u32) -> Result<Page<Version>> {
    let sql = LIST.sql(pool.dialect());
    let rows: Vec<VersionRow> = on_db!(pool, |pool| sqlx::query_scalar::<_, Json<Vec<VersionRow>>>(sql)
        .bind(model.as_str())
        .bind(cursor.unwrap_or(i64::MAX))
        .bind(i64::from(limit) + 1)
        .fetch_one(pool)
        .await)?
    .0;
    if rows.is_empty() {
        // Tell a model without versions apart from one that does not exist.
        models::id_of(pool, model).await?;
    }
    let mut items = rows.into_iter().map(Version::try_from).collect::<Result<Vec<_>>>()?;
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|v| v.id.to_string())
    } else {
        None
    };
    Ok(Page { items, next })
}

/// The names of a model's newest `limit` versions, newest first: for pickers, without the
/// sizes and counts of `list`.
pub async fn names(pool: &Db, model: &ModelName, limit: u32) -> Result<Vec<VersionName>> {
    static NAMES: JsonList = JsonList::new(
        "SELECT id, name FROM versions WHERE model_id = (SELECT id FROM models WHERE name = $1)
          ORDER BY id DESC LIMIT $2",
        &["name"],
        "id DESC",
    );
    #[derive(serde::Deserialize)]
    struct Name {
        name: String,
    }
    let sql = NAMES.sql(pool.dialect());
    let names: Json<Vec<Name>> = on_db!(pool, |pool| sqlx::query_scalar(sql,)
        .bind(model.as_str())
        .bind(i64::from(limit))
        .fetch_one(pool)
        .await)?;
    if names.0.is_empty() {
        models::id_of(pool, model).await?;
    }
    names.0.iter().map(|row| VersionName::parse(&row.name).map_err(corrupt)).collect()
}

/// What a client may change on a draft.
#[derive(Debug, Default)]
pub struct VersionChanges {
    pub description: Option<String>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

pub async fn update(
    pool: &Db,
    actor: &Actor,
    model: &ModelName,
    version: &VersionName,
    changes: VersionChanges,
) -> Result<Version> {
    let metadata = changes.metadata.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let (id, state) = locate(&mut tx, model, version).await?;
    if state == VersionState::Ready {
        return Err(is_ready(model, version));
    }
    on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE versions SET description = COALESCE($1, description), metadata = COALESCE($2, metadata) WHERE id = $3",
    )
    .bind(changes.description.as_deref())
    .bind(metadata)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()))?;
    let details = serde_json::json!({ "description": changes.description, "metadata": changes.metadata });
    events::record(&mut tx, actor, "version.updated", Some(model.as_str()), &format!("{model}:{version}"), details)
        .await?;
    tx.commit().await?;
    get(pool, model, version).await
}

/// Publishes a draft: fixes its manifest digest and makes it immutable.
pub async fn publish(pool: &Db, actor: &Actor, model: &ModelName, version: &VersionName) -> Result<Version> {
    let mut tx = begin_write(pool).await?;
    let (id, state) = locate(&mut tx, model, version).await?;
    if state == VersionState::Ready {
        return Err(CatalogError::Conflict(format!("version '{version}' of '{model}' is already published")));
    }
    let files: Vec<(String, String, i64)> = on_conn!(&mut tx, |tx| sqlx::query_as(
        "SELECT path, digest, size FROM files WHERE version_id = $1 ORDER BY path"
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await)?;
    if files.is_empty() {
        return Err(CatalogError::Conflict(format!(
            "version '{version}' of '{model}' has no files; upload at least one before publishing"
        )));
    }
    let manifest = manifest_digest(files.iter().map(|(p, d, s)| (p.as_str(), d.as_str(), *s)));
    on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE versions SET state = 'ready', manifest_digest = $1, published_by = $2,
                published_at = $4
          WHERE id = $3",
    )
    .bind(manifest.to_string())
    .bind(actor.name())
    .bind(id)
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()))?;
    let details = serde_json::json!({ "version": version, "manifest_digest": manifest, "files": files.len() });
    events::record(&mut tx, actor, "version.published", Some(model.as_str()), &format!("{model}:{version}"), details)
        .await?;
    tx.commit().await?;
    get(pool, model, version).await
}

/// Deletes a version. Refused while an alias points at it, so no alias ever dangles.
pub async fn delete(pool: &Db, actor: &Actor, model: &ModelName, version: &VersionName) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let (id, _) = locate(&mut tx, model, version).await?;
    let aliases: Vec<String> =
        on_conn!(&mut tx, |tx| sqlx::query_scalar("SELECT name FROM aliases WHERE version_id = $1 ORDER BY name")
            .bind(id)
            .fetch_all(&mut *tx)
            .await)?;
    if !aliases.is_empty() {
        return Err(CatalogError::Conflict(format!(
            "version '{version}' of '{model}' is what alias(es) {} point at; move or delete them first",
            aliases.join(", ")
        )));
    }
    let pinned: Vec<String> = on_conn!(&mut tx, |tx| {
        sqlx::query_scalar(
        "SELECT name FROM deployments WHERE model_id = (SELECT model_id FROM versions WHERE id = $1) AND version = $2",
    )
    .bind(id)
    .bind(version.as_str())
    .fetch_all(&mut *tx)
    .await
    })?;
    if !pinned.is_empty() {
        return Err(CatalogError::Conflict(format!(
            "version '{version}' of '{model}' is deployed as {}; delete those deployments first",
            pinned.join(", ")
        )));
    }
    on_conn!(&mut tx, |tx| sqlx::query("DELETE FROM versions WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected()))?;
    let details = serde_json::json!({ "version": version });
    events::record(&mut tx, actor, "version.deleted", Some(model.as_str()), &format!("{model}:{version}"), details)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Every (model, version) pair, to tell live snapshots from stale ones.
pub async fn all_names(pool: &Db) -> Result<std::collections::HashSet<(String, String)>> {
    let rows: Vec<(String, String)> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT m.name, v.name FROM versions v JOIN models m ON m.id = v.model_id"
    )
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().collect())
}

/// Finds a version's id and state inside a write transaction.
pub(crate) async fn locate(
    tx: impl Into<ConnMut<'_>>,
    model: &ModelName,
    version: &VersionName,
) -> Result<(i64, VersionState)> {
    let mut tx: ConnMut<'_> = tx.into();
    let row: Option<(i64, String)> = on_conn!(&mut tx, |tx| sqlx::query_as(
        "SELECT v.id, v.state FROM versions v JOIN models m ON m.id = v.model_id WHERE m.name = $1 AND v.name = $2",
    )
    .bind(model.as_str())
    .bind(version.as_str())
    .fetch_optional(&mut *tx)
    .await)?;
    match row {
        Some((id, state)) => Ok((id, if state == "ready" { VersionState::Ready } else { VersionState::Draft })),
        None => {
            let model_exists: Option<i64> =
                on_conn!(&mut tx, |tx| sqlx::query_scalar("SELECT id FROM models WHERE name = $1")
                    .bind(model.as_str())
                    .fetch_optional(&mut *tx)
                    .await)?;
            Err(match model_exists {
                Some(_) => not_found(model, version),
                None => models::not_found(model),
            })
        }
    }
}

/// Finds a draft inside a write transaction, or says why files cannot change.
pub(crate) async fn locate_draft(tx: impl Into<ConnMut<'_>>, model: &ModelName, version: &VersionName) -> Result<i64> {
    match locate(tx, model, version).await? {
        (id, VersionState::Draft) => Ok(id),
        (_, VersionState::Ready) => Err(is_ready(model, version)),
    }
}

/// sha256 over the `path digest size\n` lines of a version, sorted by path.
pub fn manifest_digest<'a>(files: impl Iterator<Item = (&'a str, &'a str, i64)>) -> Digest {
    let mut hasher = Sha256::new();
    for (path, digest, size) in files {
        hasher.update(format!("{path} {digest} {size}\n").as_bytes());
    }
    Digest::from_bytes(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_digest_hashes_the_sorted_lines() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let expected = Sha256::digest(format!("a {d} 0\nb/c {d} 0\n").as_bytes());
        let got = manifest_digest([("a", d, 0), ("b/c", d, 0)].into_iter());
        assert_eq!(got, Digest::from_bytes(expected.into()));
    }
}
