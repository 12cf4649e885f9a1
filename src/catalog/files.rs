//! Files of a version: a path mapped to a blob. Rows are written only for blobs that are
//! already durable on disk, and only while the version is a draft.

use sqlx::types::Json;

use super::events::{self, Actor};
use super::{CatalogError, ConnMut, Db, JsonList, Result, begin_write, blobs, corrupt, now, on_conn, on_db, versions};
use crate::domain::{Digest, ModelName, RelPath, VersionName};

#[derive(Debug, Clone)]
pub struct File {
    pub path: RelPath,
    pub digest: Digest,
    pub size: i64,
    pub created_at: String,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct FileRow {
    path: String,
    digest: String,
    size: i64,
    created_at: String,
}

impl TryFrom<FileRow> for File {
    type Error = CatalogError;

    fn try_from(row: FileRow) -> Result<Self> {
        Ok(Self {
            path: RelPath::parse(&row.path).map_err(corrupt)?,
            digest: Digest::parse(&row.digest).map_err(corrupt)?,
            size: row.size,
            created_at: row.created_at,
        })
    }
}

/// Whether a put created the path or replaced what the draft had there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Created,
    Replaced,
}

/// Checks that a version exists and is a draft, before a client sends any bytes.
pub async fn ensure_draft(pool: &Db, model: &ModelName, version: &VersionName) -> Result<()> {
    let mut conn = pool.acquire().await?;
    versions::locate_draft(&mut conn, model, version).await.map(drop)
}

/// Records `path` → a blob in a draft, with the blob's row if it is new. The caller holds the
/// blob durable on disk (and safe from garbage collection) until this returns.
pub async fn put(
    pool: &Db,
    actor: &Actor,
    model: &ModelName,
    version: &VersionName,
    path: &RelPath,
    digest: &Digest,
    size: u64,
) -> Result<Put> {
    let size = i64::try_from(size).map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let version_id = versions::locate_draft(&mut tx, model, version).await?;
    blobs::insert(&mut tx, digest, size).await?;
    let put = upsert(&mut tx, version_id, path, digest, size).await?;
    record(&mut tx, actor, "file.uploaded", model, version, path, digest, size, put).await?;
    tx.commit().await?;
    Ok(put)
}

/// Records `path` → a blob the store already has (dedup without sending the bytes again).
/// Only a blob that some version of a model `may_read` accepts holds can be linked; any
/// other is answered as not stored (see [`blobs::visible_size`]).
#[expect(clippy::too_many_arguments, reason = "the link, and who may see which blobs")]
pub async fn link(
    pool: &Db,
    actor: &Actor,
    model: &ModelName,
    version: &VersionName,
    path: &RelPath,
    digest: &Digest,
    size: u64,
    may_read: impl Fn(&ModelName) -> bool,
) -> Result<Put> {
    let mut tx = begin_write(pool).await?;
    let version_id = versions::locate_draft(&mut tx, model, version).await?;
    let stored = blobs::visible_size(&mut tx, digest, may_read).await?;
    let Some(stored) = stored else {
        return Err(CatalogError::NotFound(format!(
            "no blob {digest} is stored here; upload the bytes with PUT to this path instead"
        )));
    };
    if stored != size {
        return Err(CatalogError::Conflict(format!(
            "blob {digest} is {stored} bytes, not {size}; check the size you sent"
        )));
    }
    let stored = i64::try_from(stored).map_err(corrupt)?;
    let put = upsert(&mut tx, version_id, path, digest, stored).await?;
    record(&mut tx, actor, "file.linked", model, version, path, digest, stored, put).await?;
    tx.commit().await?;
    Ok(put)
}

#[expect(clippy::too_many_arguments, reason = "one audit record, every field of it")]
async fn record(
    tx: impl Into<ConnMut<'_>>,
    actor: &Actor,
    action: &str,
    model: &ModelName,
    version: &VersionName,
    path: &RelPath,
    digest: &Digest,
    size: i64,
    put: Put,
) -> Result<()> {
    let details = serde_json::json!({
        "version": version, "path": path, "digest": digest, "size": size, "replaced": put == Put::Replaced,
    });
    events::record(tx, actor, action, Some(model.as_str()), &format!("{model}:{version}/{path}"), details).await
}

async fn upsert(
    tx: impl Into<ConnMut<'_>>,
    version_id: i64,
    path: &RelPath,
    digest: &Digest,
    size: i64,
) -> Result<Put> {
    let mut tx: ConnMut<'_> = tx.into();
    refuse_file_folder_clash(&mut tx, version_id, path).await?;
    let existed: Option<i64> =
        on_conn!(&mut tx, |tx| sqlx::query_scalar("SELECT size FROM files WHERE version_id = $1 AND path = $2")
            .bind(version_id)
            .bind(path.as_str())
            .fetch_optional(&mut *tx)
            .await)?;
    on_conn!(&mut tx, |tx| sqlx::query(
        "INSERT INTO files (version_id, path, digest, size) VALUES ($1, $2, $3, $4)
         ON CONFLICT (version_id, path) DO UPDATE SET digest = excluded.digest, size = excluded.size,
             created_at = $5",
    )
    .bind(version_id)
    .bind(path.as_str())
    .bind(digest.to_string())
    .bind(size)
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(drop))?;
    Ok(if existed.is_some() { Put::Replaced } else { Put::Created })
}

/// A version is laid out as a folder tree (snapshots, pulls): `a` cannot be a file and a
/// folder of `a/b` at once. Refuses `path` when a file of the version is one of its folders,
/// or when it is a folder of a file already there.
async fn refuse_file_folder_clash(tx: impl Into<ConnMut<'_>>, version_id: i64, path: &RelPath) -> Result<()> {
    let mut tx: ConnMut<'_> = tx.into();
    let clash: Option<String> = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "SELECT path FROM files
          WHERE version_id = $1
            AND (substr($2, 1, length(path) + 1) = path || '/' OR substr(path, 1, length($2) + 1) = $2 || '/')
          ORDER BY path LIMIT 1",
    )
    .bind(version_id)
    .bind(path.as_str())
    .fetch_optional(&mut *tx)
    .await)?;
    match clash {
        Some(first) if path.as_str().starts_with(&format!("{first}/")) => Err(CatalogError::Conflict(format!(
            "'{path}' would put a file inside '{first}', which is a file of this version; delete '{first}' first or choose another path"
        ))),
        Some(first) => Err(CatalogError::Conflict(format!(
            "'{path}' is a folder of '{first}', a file of this version; delete '{first}' first or choose another path"
        ))),
        None => Ok(()),
    }
}

/// The files of version `?2` of model `?1`, by path, as one JSON row.
static LIST: JsonList = JsonList::new(
    "SELECT f.path, f.digest, f.size, f.created_at
           FROM files f JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id
          WHERE m.name = $1 AND v.name = $2",
    &["path", "digest", "size", "created_at"],
    "path",
);

pub async fn list(pool: &Db, model: &ModelName, version: &VersionName) -> Result<Vec<File>> {
    let sql = LIST.sql(pool.dialect());
    let rows: Vec<FileRow> = on_db!(pool, |pool| sqlx::query_scalar::<_, Json<Vec<FileRow>>>(sql)
        .bind(model.as_str())
        .bind(version.as_str())
        .fetch_one(pool)
        .await)?
    .0;
    if rows.is_empty() {
        // Tell an empty draft apart from a version that does not exist.
        versions::get(pool, model, version).await?;
    }
    rows.into_iter().map(File::try_from).collect()
}

pub async fn get(pool: &Db, model: &ModelName, version: &VersionName, path: &RelPath) -> Result<File> {
    let row: Option<FileRow> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT f.path, f.digest, f.size, f.created_at
           FROM files f JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id
          WHERE m.name = $1 AND v.name = $2 AND f.path = $3",
    )
    .bind(model.as_str())
    .bind(version.as_str())
    .bind(path.as_str())
    .fetch_optional(pool)
    .await)?;
    match row {
        Some(row) => row.try_into(),
        None => {
            versions::get(pool, model, version).await?;
            Err(CatalogError::NotFound(format!("version '{version}' of '{model}' has no file '{path}'")))
        }
    }
}

pub async fn delete(pool: &Db, actor: &Actor, model: &ModelName, version: &VersionName, path: &RelPath) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let version_id = versions::locate_draft(&mut tx, model, version).await?;
    let deleted = on_conn!(&mut tx, |tx| sqlx::query("DELETE FROM files WHERE version_id = $1 AND path = $2")
        .bind(version_id)
        .bind(path.as_str())
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected()))?;
    if deleted == 0 {
        return Err(CatalogError::NotFound(format!("version '{version}' of '{model}' has no file '{path}'")));
    }
    let details = serde_json::json!({ "version": version, "path": path });
    events::record(&mut tx, actor, "file.deleted", Some(model.as_str()), &format!("{model}:{version}/{path}"), details)
        .await?;
    tx.commit().await?;
    Ok(())
}
