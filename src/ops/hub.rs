//! The Hugging Face Hub's write side in Hangar's terms: a repo is a model, a Git LFS upload
//! is a blob sent ahead of the commit that names it, and a commit is a draft made from its
//! parent's files plus the changes, published at once, with the target alias moved.
//!
//! Which blobs a commit may name: one the caller may see already (held by a version of a
//! model it may read), or one sent for this model through the LFS transfer (recorded by
//! `catalog::blobs::record_upload`). Any other digest is refused with the oid named, exactly
//! as one that was never uploaded: a digest must not give a caller bytes it could not read.

use std::collections::BTreeMap;

use crate::catalog::Db;
use bytes::Bytes;
use futures_util::Stream;

use super::error::OpsError;
use crate::auth::{Caller, now_unix};
use crate::blobs::{BlobStore, Session, SessionSpec};
use crate::catalog::{self, CatalogError, events::Actor, models::Model, versions::NewVersion, versions::Version};
use crate::config::Settings;
use crate::domain::{AliasName, Digest, ModelName, RelPath, Role};
use crate::runtime::supervisor::Supervisor;

/// Creates a model for `create_repo`: a maintainer within the token's globs.
pub async fn create_repo(pool: &Db, caller: &Caller, name: &ModelName) -> Result<Model, OpsError> {
    caller.require_on(Role::Maintainer, name)?;
    Ok(catalog::models::create(pool, &caller.actor(), name, "", &[]).await?)
}

/// How a blob a commit may name is known.
enum Known {
    /// Held by a version of a model the caller may read.
    Visible(u64),
    /// Sent for the model through the LFS transfer, not committed yet.
    SentHere(u64),
}

impl Known {
    fn size(&self) -> u64 {
        match self {
            Self::Visible(size) | Self::SentHere(size) => *size,
        }
    }
}

/// Whether a commit to `model` by `caller` may name `digest` (see the module's rule).
async fn known(pool: &Db, caller: &Caller, model: &ModelName, digest: &Digest) -> Result<Option<Known>, OpsError> {
    let mut conn = pool.acquire().await.map_err(CatalogError::from)?;
    let may_read = |m: &ModelName| caller.require_on(Role::Viewer, m).is_ok();
    if let Some(size) = catalog::blobs::visible_size(&mut conn, digest, may_read).await? {
        return Ok(Some(Known::Visible(size)));
    }
    drop(conn);
    Ok(catalog::blobs::uploaded_for(pool, model, digest).await?.map(Known::SentHere))
}

/// The size of a blob a commit to `model` by `caller` may name without its bytes being sent
/// (see the module's rule); `None` when they must be sent.
pub async fn known_blob(
    pool: &Db,
    caller: &Caller,
    model: &ModelName,
    digest: &Digest,
) -> Result<Option<u64>, OpsError> {
    Ok(known(pool, caller, model, digest).await?.map(|k| k.size()))
}

/// Stores the bytes of one LFS object sent for `model` in one request, verified against
/// its oid and size, and records them for the commit that follows.
pub async fn store_object<S, E>(
    pool: &Db,
    blobs: &BlobStore,
    actor: &Actor,
    model: &ModelName,
    oid: &Digest,
    size: u64,
    body: S,
) -> Result<(), OpsError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    blobs.ensure_room(size)?;
    let blob = blobs.ingest(body, Some(*oid)).await?;
    if blob.size != size {
        // Same sha256, other size: impossible but for a lying batch request; keep nothing named.
        return Err(OpsError::Invalid(format!(
            "object {} is {} bytes, not the {size} announced",
            oid.hex(),
            blob.size
        )));
    }
    // `blob` holds off garbage collection until its row is committed.
    catalog::blobs::record_upload(pool, actor, model, oid, size).await?;
    Ok(())
}

/// What an LFS multipart upload's session keeps to finish it.
#[derive(serde::Serialize, serde::Deserialize)]
struct LfsTarget {
    /// The model the object is sent for.
    hf_model: String,
}

/// Opens an upload session (the native ones: parts verified, the whole hashed once) for an
/// LFS object sent in parts of `part_size` bytes. A client that asks again for the same
/// object (a retried upload) gets the session it had, with at least half its lifetime left,
/// rather than one more reservation of the object's size on the disk.
pub async fn start_parts(
    blobs: &BlobStore,
    settings: &Settings,
    model: &ModelName,
    oid: &Digest,
    size: u64,
    part_size: u64,
) -> Result<Session, OpsError> {
    let lifetime = i64::try_from(settings.upload_session_ttl_secs).unwrap_or(i64::MAX);
    let open = blobs.sessions().await?.into_iter().find(|s| {
        let target: Option<LfsTarget> = serde_json::from_value(s.spec.target.clone()).ok();
        target.is_some_and(|t| t.hf_model == model.as_str())
            && s.spec.digest == *oid
            && (s.spec.size, s.spec.part_size) == (size, part_size)
            && s.spec.expires_at - now_unix() > lifetime / 2
    });
    if let Some(session) = open {
        return Ok(session);
    }
    let target = serde_json::to_value(LfsTarget { hf_model: model.to_string() })
        .map_err(|e| OpsError::Invalid(e.to_string()))?;
    let spec = SessionSpec { size, digest: *oid, part_size, expires_at: now_unix().saturating_add(lifetime), target };
    Ok(blobs.create_session(spec).await?)
}

/// The session `id` if it is an LFS upload for `model` of `oid`; any other answers as one
/// that does not exist.
async fn lfs_session(blobs: &BlobStore, id: uuid::Uuid, model: &ModelName, oid: &Digest) -> Result<Session, OpsError> {
    let session = blobs.session(id).await?;
    let target: Option<LfsTarget> = serde_json::from_value(session.spec.target.clone()).ok();
    match target {
        Some(t) if t.hf_model == model.as_str() && session.spec.digest == *oid => Ok(session),
        _ => Err(crate::blobs::SessionError::NotFound(id).into()),
    }
}

/// Writes part `n` (counted from 0) of an LFS session, after checking the session is that object's.
pub async fn put_part<S, E>(
    blobs: &BlobStore,
    id: uuid::Uuid,
    model: &ModelName,
    oid: &Digest,
    n: u64,
    body: S,
) -> Result<(), OpsError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    lfs_session(blobs, id, model, oid).await?;
    blobs.write_part(id, n, body, None).await?;
    Ok(())
}

/// Hashes the whole of an LFS session once, stores it under its oid and records it.
pub async fn complete_parts(
    pool: &Db,
    blobs: &BlobStore,
    actor: &Actor,
    id: uuid::Uuid,
    model: &ModelName,
    oid: &Digest,
) -> Result<(), OpsError> {
    lfs_session(blobs, id, model, oid).await?;
    let (spec, blob) = blobs.complete_session(id).await?;
    // `blob` holds off garbage collection until its row is committed.
    catalog::blobs::record_upload(pool, actor, model, &blob.digest, spec.size).await?;
    Ok(())
}

/// One change of a commit.
#[derive(Debug)]
pub enum Change {
    /// A file sent inline.
    Inline {
        path: RelPath,
        bytes: Bytes,
    },
    /// A file whose bytes are a blob, named by its sha256 (sent through LFS, or known).
    Lfs {
        path: RelPath,
        oid: Digest,
        size: Option<u64>,
    },
    DeleteFile(RelPath),
    /// Every file under a folder.
    DeleteFolder(String),
}

/// A commit: its message and changes, on top of `parent` (none for a repo without a
/// published version), moving `alias` if the target revision is one.
#[derive(Debug)]
pub struct Commit {
    pub summary: String,
    pub description: String,
    pub changes: Vec<Change>,
    pub parent: Option<Version>,
    pub alias: Option<AliasName>,
}

/// Where a file of the new version comes from.
enum Source {
    /// The parent's: a blob the caller may read.
    Parent(Digest, u64),
    /// A blob the caller may see, or one sent for this model.
    Blob {
        oid: Digest,
        size: u64,
        visible: bool,
    },
    Inline(Bytes),
}

/// Makes the commit a published version: every check first (the caller's role, the alias's
/// protection, deletions of paths that exist, every oid known), so a refused commit stores
/// nothing; then a draft with the parent's files and the changes, published with the
/// commit's message as its description, and the alias moved through `ops::aliases::set`.
pub async fn commit(
    pool: &Db,
    blobs: &BlobStore,
    settings: &Settings,
    supervisor: &Supervisor,
    caller: &Caller,
    model: &ModelName,
    commit: Commit,
) -> Result<Version, OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    if let Some(alias) = &commit.alias {
        super::aliases::authorize_change(caller, settings, model, alias)?;
    }
    let mut files: BTreeMap<RelPath, Source> = BTreeMap::new();
    if let Some(parent) = &commit.parent {
        for file in catalog::files::list(pool, model, &parent.name).await? {
            let size = u64::try_from(file.size).map_err(catalog::corrupt)?;
            files.insert(file.path, Source::Parent(file.digest, size));
        }
    }
    let mut unknown = Vec::new();
    for change in commit.changes {
        match change {
            Change::Inline { path, bytes } => {
                files.insert(path, Source::Inline(bytes));
            }
            Change::Lfs { path, oid, size } => match known(pool, caller, model, &oid).await? {
                Some(k) if size.is_some_and(|s| s != k.size()) => {
                    return Err(OpsError::Invalid(format!(
                        "object {} is {} bytes, not {} as '{path}' says",
                        oid.hex(),
                        k.size(),
                        size.unwrap_or_default()
                    )));
                }
                Some(k) => {
                    let visible = matches!(k, Known::Visible(_));
                    files.insert(path, Source::Blob { oid, size: k.size(), visible });
                }
                None => unknown.push(oid.hex()),
            },
            Change::DeleteFile(path) => {
                if files.remove(&path).is_none() {
                    return Err(CatalogError::NotFound(format!("A file with this name doesn't exist: '{path}'")).into());
                }
            }
            Change::DeleteFolder(folder) => {
                let prefix = format!("{}/", folder.trim_end_matches('/'));
                let before = files.len();
                files.retain(|path, _| !path.as_str().starts_with(&prefix));
                if files.len() == before {
                    return Err(
                        CatalogError::NotFound(format!("A folder with this name doesn't exist: '{folder}'")).into()
                    );
                }
            }
        }
    }
    if !unknown.is_empty() {
        return Err(OpsError::Invalid(format!(
            "LFS object(s) {} were never uploaded to '{model}' (or are no longer stored); upload them first",
            unknown.join(", ")
        )));
    }
    let description = match commit.description.trim() {
        "" => commit.summary.trim().to_owned(),
        more => format!("{}\n\n{more}", commit.summary.trim()),
    };
    let new = NewVersion { name: None, description, metadata: serde_json::Map::new() };
    let actor = caller.actor();
    let draft = catalog::versions::create(pool, &actor, model, new).await?;
    let filled = fill(pool, blobs, caller, &actor, model, &draft, files).await;
    let published = match filled {
        Ok(()) => catalog::versions::publish(pool, &actor, model, &draft.name).await.map_err(OpsError::from),
        Err(e) => Err(e),
    };
    let version = match published {
        Ok(version) => version,
        Err(e) => {
            // A commit is whole or nothing: the draft goes with the error.
            if let Err(cleanup) = catalog::versions::delete(pool, &actor, model, &draft.name).await {
                tracing::warn!(%model, version = %draft.name, error = %cleanup, "could not remove a failed commit's draft");
            }
            return Err(e);
        }
    };
    if let Some(alias) = &commit.alias {
        super::aliases::set(pool, settings, supervisor, caller, model, alias, &version.name).await?;
        return Ok(catalog::versions::get(pool, model, &version.name).await?);
    }
    Ok(version)
}

/// Names every file of the new version in its draft.
async fn fill(
    pool: &Db,
    blobs: &BlobStore,
    caller: &Caller,
    actor: &Actor,
    model: &ModelName,
    draft: &Version,
    files: BTreeMap<RelPath, Source>,
) -> Result<(), OpsError> {
    let may_read = |m: &ModelName| caller.require_on(Role::Viewer, m).is_ok();
    let missing = |digest: &Digest| {
        OpsError::Invalid(format!("LFS object {} is no longer stored; upload it again", digest.hex()))
    };
    for (path, source) in files {
        match source {
            Source::Parent(digest, size) | Source::Blob { oid: digest, size, visible: true } => {
                catalog::files::link(pool, actor, model, &draft.name, &path, &digest, size, may_read).await?;
            }
            Source::Blob { oid, size, visible: false } => {
                // Held on disk until its row is committed.
                let Some(_pinned) = blobs.pin(&oid).await? else { return Err(missing(&oid)) };
                catalog::files::put(pool, actor, model, &draft.name, &path, &oid, size).await?;
            }
            Source::Inline(bytes) => {
                let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]);
                let blob = blobs.ingest(body, None).await?;
                catalog::files::put(pool, actor, model, &draft.name, &path, &blob.digest, blob.size).await?;
            }
        }
    }
    Ok(())
}
