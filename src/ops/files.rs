//! Files of a version and blobs by digest: upload, link, delete, and the size of a blob a
//! caller may see. A blob is visible, and linkable, only to a caller who may read some
//! version that holds it; to anyone else it answers exactly as a blob that is not stored.

use crate::catalog::Db;
use bytes::Bytes;
use futures_util::Stream;

use super::error::OpsError;
use crate::auth::Caller;
use crate::blobs::{BlobStore, Ingested};
use crate::catalog::{self, files::Put};
use crate::domain::{Digest, ModelName, RelPath, Role, VersionName};

/// Whether the caller may read `model`; what decides which blobs it may see.
fn may_read(caller: &Caller) -> impl Fn(&ModelName) -> bool + '_ {
    |model| caller.require_on(Role::Viewer, model).is_ok()
}

/// Streams `body` into the blob store and names it at `path` in a draft. With `expected`,
/// bytes that hash differently are refused and nothing is stored. The draft, and room on
/// the disk for `declared_size` (the request's `Content-Length`), are checked before a byte
/// is read.
#[expect(clippy::too_many_arguments, reason = "the file's place, its bytes, and who sends them")]
pub async fn upload<S, E>(
    pool: &Db,
    blobs: &BlobStore,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
    path: &RelPath,
    body: S,
    expected: Option<Digest>,
    declared_size: Option<u64>,
) -> Result<(Put, Ingested), OpsError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    caller.require_on(Role::Maintainer, model)?;
    catalog::files::ensure_draft(pool, model, version).await?;
    if let Some(size) = declared_size {
        blobs.ensure_room(size)?;
    }
    let blob = blobs.ingest(body, expected).await?;
    // `blob` holds off garbage collection until its row is committed.
    let put = catalog::files::put(pool, &caller.actor(), model, version, path, &blob.digest, blob.size).await?;
    Ok((put, blob))
}

/// Names a blob the caller may see at `path` in a draft, without its bytes being sent again.
pub async fn link(
    pool: &Db,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
    path: &RelPath,
    digest: &Digest,
    size: u64,
) -> Result<Put, OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    let actor = caller.actor();
    Ok(catalog::files::link(pool, &actor, model, version, path, digest, size, may_read(caller)).await?)
}

/// Removes a path from a draft.
pub async fn delete(
    pool: &Db,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
    path: &RelPath,
) -> Result<(), OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    Ok(catalog::files::delete(pool, &caller.actor(), model, version, path).await?)
}

/// The size of a blob the caller may see; any other, stored or not, is "not stored".
pub async fn blob_size(pool: &Db, caller: &Caller, digest: &Digest) -> Result<u64, OpsError> {
    caller.require(Role::Viewer)?;
    let mut conn = pool.acquire().await.map_err(catalog::CatalogError::from)?;
    catalog::blobs::visible_size(&mut conn, digest, may_read(caller))
        .await?
        .ok_or_else(|| catalog::CatalogError::NotFound(format!("no blob {digest} is stored here")).into())
}
