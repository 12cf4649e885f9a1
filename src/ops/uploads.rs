//! Upload sessions of a draft's files: a big file sent in parts that survive cuts and
//! restarts (`blobs::sessions` keeps the bytes). A session belongs to one path of one draft;
//! every call checks the caller may write that model, and a session of another draft answers
//! as one that does not exist. Completing it names the file in the draft as a streamed upload
//! does.

use std::time::Duration;

use crate::catalog::Db;
use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use super::error::OpsError;
use crate::auth::{Caller, now_unix};
use crate::blobs::{BlobStore, Ingested, MAX_PART_SIZE, MIN_PART_SIZE, Session, SessionError, SessionSpec};
use crate::catalog::{self, files::Put};
use crate::domain::{Digest, ModelName, RelPath, Role, VersionName};

/// The file a session will become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub model: ModelName,
    pub version: VersionName,
    pub path: RelPath,
}

/// `Target` as the session keeps it.
#[derive(Serialize, Deserialize)]
struct TargetRecord {
    model: String,
    version: String,
    path: String,
}

/// What a client asks for when it opens a session.
#[derive(Debug)]
pub struct NewSession {
    pub path: RelPath,
    pub size: u64,
    pub digest: Digest,
    /// `None`: the store's default.
    pub part_size: Option<u64>,
}

/// A session with the file it belongs to.
#[derive(Debug)]
pub struct Open {
    pub session: Session,
    pub target: Target,
}

/// The file a session belongs to; `None` for one this code did not write.
fn target_of(session: &Session) -> Option<Target> {
    let record: TargetRecord = serde_json::from_value(session.spec.target.clone()).ok()?;
    Some(Target {
        model: ModelName::parse(&record.model).ok()?,
        version: VersionName::parse(&record.version).ok()?,
        path: RelPath::parse(&record.path).ok()?,
    })
}

/// Opens a session for a file of a draft, after checking the draft and the disk's room.
pub async fn start(
    pool: &Db,
    blobs: &BlobStore,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
    request: NewSession,
    lifetime: Duration,
) -> Result<Open, OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    catalog::files::ensure_draft(pool, model, version).await?;
    if request.size == 0 {
        return Err(OpsError::Invalid("an empty file needs no session: PUT it".into()));
    }
    let part_size = request.part_size.unwrap_or(crate::blobs::DEFAULT_PART_SIZE);
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
        return Err(OpsError::Invalid(format!(
            "part_size must be from {MIN_PART_SIZE} to {MAX_PART_SIZE} bytes, not {part_size}"
        )));
    }
    let record =
        TargetRecord { model: model.to_string(), version: version.to_string(), path: request.path.to_string() };
    let target = Target { model: model.clone(), version: version.clone(), path: request.path };
    let expires_at = now_unix().saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    let spec = SessionSpec {
        size: request.size,
        digest: request.digest,
        part_size,
        expires_at,
        target: serde_json::to_value(record).map_err(|e| OpsError::Invalid(e.to_string()))?,
    };
    let session = blobs.create_session(spec).await?;
    Ok(Open { session, target })
}

/// The draft's open sessions, for a client that comes back to finish its uploads.
pub async fn list(
    blobs: &BlobStore,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
) -> Result<Vec<Open>, OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    let mut open: Vec<Open> = blobs
        .sessions()
        .await?
        .into_iter()
        .filter_map(|session| {
            let target = target_of(&session)?;
            (target.model == *model && target.version == *version).then_some(Open { session, target })
        })
        .collect();
    open.sort_by(|a, b| a.target.path.as_str().cmp(b.target.path.as_str()));
    Ok(open)
}

/// One session of the draft.
pub async fn get(
    blobs: &BlobStore,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
    id: uuid::Uuid,
) -> Result<Open, OpsError> {
    caller.require_on(Role::Maintainer, model)?;
    let session = blobs.session(id).await?;
    match target_of(&session) {
        Some(target) if target.model == *model && target.version == *version => Ok(Open { session, target }),
        _ => Err(SessionError::NotFound(id).into()),
    }
}

/// Writes one part, verified against its sha256 when the client sends it.
#[expect(clippy::too_many_arguments, reason = "the session's place, the part, and who sends it")]
pub async fn put_part<S, E>(
    blobs: &BlobStore,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
    id: uuid::Uuid,
    part: u64,
    body: S,
    expected: Option<Digest>,
) -> Result<Open, OpsError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let open = get(blobs, caller, model, version, id).await?;
    let session = blobs.write_part(id, part, body, expected).await?;
    Ok(Open { session, target: open.target })
}

/// Checks every part is in and the whole file's digest, then names it in the draft.
pub async fn complete(
    pool: &Db,
    blobs: &BlobStore,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
    id: uuid::Uuid,
) -> Result<(Target, Put, Ingested), OpsError> {
    let open = get(blobs, caller, model, version, id).await?;
    // Refused before the whole file is read when the draft is gone or published meanwhile.
    catalog::files::ensure_draft(pool, model, version).await?;
    let (_, blob) = blobs.complete_session(id).await?;
    // `blob` holds off garbage collection until its row is committed.
    let put =
        catalog::files::put(pool, &caller.actor(), model, version, &open.target.path, &blob.digest, blob.size).await?;
    Ok((open.target, put, blob))
}

/// Drops a session and the parts it holds.
pub async fn abort(
    blobs: &BlobStore,
    caller: &Caller,
    model: &ModelName,
    version: &VersionName,
    id: uuid::Uuid,
) -> Result<(), OpsError> {
    get(blobs, caller, model, version, id).await?;
    Ok(blobs.abort_session(id).await?)
}
