//! Blob rows: which digests are durable in the store, and how much they weigh.

use super::events::{self, Actor};
use std::time::Duration;

use super::{ConnMut, Db, Result, begin_write, corrupt, on_conn, on_db};
use crate::domain::{Digest, ModelName};

/// The size of a blob held by some version of a model `may_read` accepts. A blob no such
/// version holds is `None`, exactly as one that is not stored: digests must not tell a
/// caller what exists outside what it may read.
pub async fn visible_size(
    conn: impl Into<ConnMut<'_>>,
    digest: &Digest,
    may_read: impl Fn(&ModelName) -> bool,
) -> Result<Option<u64>> {
    let mut conn: ConnMut<'_> = conn.into();
    let holders: Vec<(String, i64)> = on_conn!(&mut conn, |conn| sqlx::query_as(
        "SELECT DISTINCT m.name, b.size
           FROM blobs b JOIN files f ON f.digest = b.digest
           JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id
          WHERE b.digest = $1",
    )
    .bind(digest.to_string())
    .fetch_all(&mut *conn)
    .await)?;
    for (model, size) in holders {
        if may_read(&ModelName::parse(&model).map_err(corrupt)?) {
            return u64::try_from(size).map(Some).map_err(corrupt);
        }
    }
    Ok(None)
}

/// The row of a blob now durable in the store; one already there stays as it is (the
/// digest names the bytes, so its size cannot differ).
pub(super) async fn insert(conn: impl Into<ConnMut<'_>>, digest: &Digest, size: i64) -> Result<()> {
    let mut conn: ConnMut<'_> = conn.into();
    on_conn!(&mut conn, |conn| sqlx::query(
        "INSERT INTO blobs (digest, size) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING"
    )
    .bind(digest.to_string())
    .bind(size)
    .execute(&mut *conn)
    .await
    .map(drop))?;
    Ok(())
}

/// Records a blob sent for `model` ahead of a commit that names it (a Hugging Face Git LFS
/// upload): its row, so garbage collection judges it by age like any unnamed blob, and the
/// `blob.uploaded` event that [`uploaded_for`] reads. The caller holds the blob durable on
/// disk (and safe from garbage collection) until this returns.
pub async fn record_upload(pool: &Db, actor: &Actor, model: &ModelName, digest: &Digest, size: u64) -> Result<()> {
    let size = i64::try_from(size).map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    insert(&mut tx, digest, size).await?;
    let target = format!("{model}@{digest}");
    events::record(
        &mut tx,
        actor,
        "blob.uploaded",
        Some(model.as_str()),
        &target,
        serde_json::json!({ "digest": digest, "size": size }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The size of a blob someone sent for `model` (see [`record_upload`]) that still has its
/// row; `None` if none was, or it has been collected since.
pub async fn uploaded_for(pool: &Db, model: &ModelName, digest: &Digest) -> Result<Option<u64>> {
    let size: Option<i64> = on_db!(pool, |pool| sqlx::query_scalar(
        "SELECT b.size FROM blobs b
          WHERE b.digest = $1
            AND EXISTS (SELECT 1 FROM events e WHERE e.model = $2 AND e.action = 'blob.uploaded' AND e.target = $3)",
    )
    .bind(digest.to_string())
    .bind(model.as_str())
    .bind(format!("{model}@{digest}"))
    .fetch_optional(pool)
    .await)?;
    size.map(u64::try_from).transpose().map_err(corrupt)
}

/// Every digest that has a row, referenced or not.
pub async fn all_digests(pool: &Db) -> Result<Vec<Digest>> {
    let rows: Vec<String> = on_db!(pool, |pool| sqlx::query_scalar("SELECT digest FROM blobs").fetch_all(pool).await)?;
    rows.iter().map(|d| Digest::parse(d).map_err(corrupt)).collect()
}

/// Deletes the rows of blobs no file refers to and that are older than `grace_secs`,
/// returning their digests so the caller can delete the bytes.
pub async fn take_unreferenced(pool: &Db, grace_secs: u64) -> Result<Vec<Digest>> {
    let mut tx = begin_write(pool).await?;
    let rows: Vec<String> = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "DELETE FROM blobs
          WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.digest = blobs.digest)
            AND created_at < $1
         RETURNING digest",
    )
    .bind(super::timestamp(
        std::time::SystemTime::now().checked_sub(Duration::from_secs(grace_secs)).unwrap_or(std::time::UNIX_EPOCH),
    ))
    .fetch_all(&mut *tx)
    .await)?;
    tx.commit().await?;
    rows.iter().map(|d| Digest::parse(d).map_err(corrupt)).collect()
}

/// Counts and sizes for `GET /api/v1/system`.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Totals {
    pub models: i64,
    pub versions: i64,
    pub files: i64,
    pub blobs: i64,
    /// Sum of file sizes: what the versions would take without dedup.
    pub logical_bytes: i64,
    /// Sum of blob sizes: what is on disk.
    pub stored_bytes: i64,
}

/// One row kept up to date by triggers (migration 0005), not a count of four tables.
pub async fn totals(pool: &Db) -> Result<Totals> {
    Ok(on_db!(pool, |pool| sqlx::query_as(
        "SELECT models, versions, files, blobs, logical_bytes, stored_bytes FROM catalog_totals WHERE id = 1",
    )
    .fetch_one(pool)
    .await)?)
}

/// Every blob row with its size: what a backup copies and what fsck checks on disk.
pub async fn sizes(pool: &Db) -> Result<Vec<(Digest, u64)>> {
    let rows: Vec<(String, i64)> =
        on_db!(pool, |pool| sqlx::query_as("SELECT digest, size FROM blobs ORDER BY digest").fetch_all(pool).await)?;
    rows.iter()
        .map(|(d, size)| Ok((Digest::parse(d).map_err(corrupt)?, u64::try_from(*size).map_err(corrupt)?)))
        .collect()
}

/// Whether `digest` still has a row (a blob GC removed while fsck looked is not missing).
pub async fn exists(pool: &Db, digest: &Digest) -> Result<bool> {
    let found: Option<i64> = on_db!(pool, |pool| sqlx::query_scalar("SELECT size FROM blobs WHERE digest = $1")
        .bind(digest.to_string())
        .fetch_optional(pool)
        .await)?;
    Ok(found.is_some())
}

/// One file of a ready version: what its snapshot must hold.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReadyFile {
    pub model: String,
    pub version: String,
    pub path: String,
    pub size: i64,
}

/// The files of every ready version, by model and version.
pub async fn ready_files(pool: &Db) -> Result<Vec<ReadyFile>> {
    Ok(on_db!(pool, |pool| sqlx::query_as(
        "SELECT m.name AS model, v.name AS version, f.path, f.size
           FROM files f JOIN versions v ON v.id = f.version_id JOIN models m ON m.id = v.model_id
          WHERE v.state = 'ready' ORDER BY m.name, v.name, f.path",
    )
    .fetch_all(pool)
    .await)?)
}

/// The (model, version) pairs deployments serve or pin: the snapshots in use.
pub async fn deployed_versions(pool: &Db) -> Result<std::collections::HashSet<(String, String)>> {
    let rows: Vec<(String, String)> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT m.name, COALESCE(d.serving_version, d.version)
           FROM deployments d JOIN models m ON m.id = d.model_id
          WHERE COALESCE(d.serving_version, d.version) IS NOT NULL",
    )
    .fetch_all(pool)
    .await)?;
    Ok(rows.into_iter().collect())
}
