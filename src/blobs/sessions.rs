//! Upload sessions: one big file sent in parts that survive a dropped connection and a
//! server restart, so a 50 GB upload over a flaky link never starts over.
//!
//! A session is a folder `uploads/<id>/`: `session.json` (the file's size and digest, the
//! part size, when it expires, and an opaque `target` its owner gives it), `data` (the file,
//! each part written at its offset) and `parts/<n>`, a marker written only after part `n`'s
//! bytes are synced, holding their sha256. A part is therefore recorded whole or not at all;
//! one cut mid-way is simply sent again. Completion hashes `data` once, checks the file's
//! digest and links it into the store as a streamed upload is linked; for a store in a bucket,
//! it sends the file there as a streamed upload is sent, hashing it on the way. Expired sessions are
//! removed by `sweep_expired_sessions`, called with the garbage collection.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use object_store::ObjectStoreExt as _;
use object_store::path::Path as Key;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::{BlobError, BlobStore, Ingested};
use crate::domain::Digest;

/// The smallest part a client may ask for, but for a file's last part.
pub const MIN_PART_SIZE: u64 = 1 << 20;
/// The largest part: one request's worth of bytes to send again after a cut.
pub const MAX_PART_SIZE: u64 = 1 << 30;
/// The part size when the client does not ask for one.
pub const DEFAULT_PART_SIZE: u64 = 64 << 20;
/// Chunks queued for the part's writer: a few MiB at most in memory.
const QUEUE_CHUNKS: usize = 32;

/// What a session will store, as its owner described it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionSpec {
    pub size: u64,
    pub digest: Digest,
    pub part_size: u64,
    /// Unix seconds after which the session and its bytes are removed.
    pub expires_at: i64,
    /// What the owner needs to finish it (model, version, path, who): not read here.
    pub target: serde_json::Value,
}

impl SessionSpec {
    /// How many parts the file is sent in.
    pub fn parts(&self) -> u64 {
        self.size.div_ceil(self.part_size)
    }

    /// The byte range of part `n` (counted from 0) in the file.
    fn span(&self, n: u64) -> std::ops::Range<u64> {
        let start = n * self.part_size;
        start..(start + self.part_size).min(self.size)
    }
}

/// A session and the parts it has.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: uuid::Uuid,
    pub spec: SessionSpec,
    /// The parts received, in order.
    pub received: Vec<u64>,
}

impl Session {
    pub fn missing(&self) -> Vec<u64> {
        (0..self.spec.parts()).filter(|n| self.received.binary_search(n).is_err()).collect()
    }
}

/// Why a session call failed, beyond the store's own errors.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no upload session {0} (it may have expired or been completed)")]
    NotFound(uuid::Uuid),
    #[error("part {part} does not exist: this file is sent in {parts} parts, numbered from 0")]
    NoSuchPart { part: u64, parts: u64 },
    #[error("part {part} must be {expected} bytes; {received} arrived{}", if *.received > *.expected { " (or more)" } else { "" })]
    PartSize { part: u64, expected: u64, received: u64 },
    #[error("part {part}'s sha256 is {actual}, not the {expected} sent with it; the part was not kept")]
    PartDigest { part: u64, expected: Digest, actual: Digest },
    #[error("parts {0:?} have not been received yet")]
    Incomplete(Vec<u64>),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

impl From<io::Error> for SessionError {
    fn from(e: io::Error) -> Self {
        Self::Blob(e.into())
    }
}

impl BlobStore {
    fn sessions_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    fn session_dir(&self, id: uuid::Uuid) -> PathBuf {
        self.sessions_dir().join(id.simple().to_string())
    }

    /// Opens a session for a file of `spec.size` bytes, reserving its room on the disk now so
    /// that a full disk is said at the start, not after hours of sending.
    pub async fn create_session(&self, spec: SessionSpec) -> Result<Session, SessionError> {
        self.ensure_local_room(spec.size)?;
        let id = uuid::Uuid::new_v4();
        let dir = self.session_dir(id);
        let free = self.clone();
        let written = spec.clone();
        let made = tokio::task::spawn_blocking(move || -> io::Result<()> {
            std::fs::create_dir_all(dir.join("parts"))?;
            let data = File::create_new(dir.join("data"))?;
            reserve(&data, written.size)?;
            write_durably(&dir.join("session.json"), &serde_json::to_vec(&written).map_err(io::Error::other)?)
        })
        .await
        .map_err(io::Error::other)?;
        if let Err(e) = made {
            let _ = tokio::fs::remove_dir_all(self.session_dir(id)).await;
            if e.kind() == io::ErrorKind::StorageFull {
                return Err(BlobError::StorageFull { free: free.free_bytes()?, needed: spec.size }.into());
            }
            return Err(e.into());
        }
        Ok(Session { id, spec, received: Vec::new() })
    }

    /// A session and the parts it has.
    pub async fn session(&self, id: uuid::Uuid) -> Result<Session, SessionError> {
        let dir = self.session_dir(id);
        tokio::task::spawn_blocking(move || read_session(&dir, id)).await.map_err(io::Error::other)?
    }

    /// Every open session, for a client that comes back to finish what it started.
    pub async fn sessions(&self) -> Result<Vec<Session>, SessionError> {
        let root = self.sessions_dir();
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            let entries = match std::fs::read_dir(&root) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
                entries => entries?,
            };
            for entry in entries {
                let entry = entry?;
                let Some(id) = entry.file_name().to_str().and_then(|n| uuid::Uuid::try_parse(n).ok()) else { continue };
                // One being removed as we look is simply not there.
                if let Ok(session) = read_session(&entry.path(), id) {
                    found.push(session);
                }
            }
            Ok(found)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Writes part `n` from `body`, verified against `expected` when the client sent its
    /// sha256, and records it once its bytes are on disk.
    pub async fn write_part<S, E>(
        &self,
        id: uuid::Uuid,
        n: u64,
        body: S,
        expected: Option<Digest>,
    ) -> Result<Session, SessionError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let session = self.session(id).await?;
        let parts = session.spec.parts();
        if n >= parts {
            return Err(SessionError::NoSuchPart { part: n, parts });
        }
        let span = session.spec.span(n);
        let length = span.end - span.start;
        let dir = self.session_dir(id);
        // A part sent again is no longer recorded while its bytes are rewritten.
        let marker = dir.join("parts").join(n.to_string());
        match std::fs::remove_file(&marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let mut file = OpenOptions::new().write(true).open(dir.join("data"))?;
        file.seek(SeekFrom::Start(span.start))?;

        let (to_disk, mut chunks) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
        let writer = tokio::task::spawn_blocking(move || -> io::Result<File> {
            while let Some(chunk) = chunks.blocking_recv() {
                file.write_all(&chunk)?;
            }
            file.sync_data()?;
            Ok(file)
        });
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let mut failed = None;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    failed = Some(SessionError::from(BlobError::Interrupted { received, reason: e.to_string() }));
                    break;
                }
            };
            received += chunk.len() as u64;
            self.received.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if received > length {
                failed = Some(SessionError::PartSize { part: n, expected: length, received });
                break;
            }
            hasher.update(&chunk);
            // Fails only when the writer stopped on an error, reported below.
            if to_disk.send(chunk).await.is_err() {
                break;
            }
        }
        drop(to_disk);
        let written = writer.await.map_err(io::Error::other)?;
        if let Some(failed) = failed {
            return Err(failed);
        }
        if let Err(e) = written {
            if e.kind() == io::ErrorKind::StorageFull {
                return Err(BlobError::StorageFull { free: self.free_bytes()?, needed: length }.into());
            }
            return Err(e.into());
        }
        if received != length {
            return Err(SessionError::PartSize { part: n, expected: length, received });
        }
        let actual = Digest::from_bytes(hasher.finalize().into());
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(SessionError::PartDigest { part: n, expected, actual });
        }
        tokio::task::spawn_blocking(move || write_durably(&marker, actual.hex().as_bytes()))
            .await
            .map_err(io::Error::other)??;
        self.session(id).await
    }

    /// Checks that every part is in, hashes the file once, and links it into the store under
    /// its digest. A file whose digest is not the session's is refused and the session
    /// removed: which part was wrong cannot be told (send parts with their sha256 to know).
    pub async fn complete_session(&self, id: uuid::Uuid) -> Result<(SessionSpec, Ingested), SessionError> {
        let session = self.session(id).await?;
        let missing = session.missing();
        if !missing.is_empty() {
            return Err(SessionError::Incomplete(missing));
        }
        let dir = self.session_dir(id);
        let data = dir.join("data");
        if let Some(bucket) = &self.bucket {
            // One pass over the file hashes it and sends it; the bytes were counted as received
            // when their parts arrived.
            let body = super::read::read_file(File::open(&data)?, 0..session.spec.size);
            let ingested = match self.ingest_to_bucket(bucket, body, Some(session.spec.digest), false).await {
                Err(e @ BlobError::DigestMismatch { .. }) => {
                    let _ = tokio::fs::remove_dir_all(&dir).await;
                    return Err(e.into());
                }
                ingested => ingested?,
            };
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Ok((session.spec, ingested));
        }
        let actual = tokio::task::spawn_blocking(move || hash_file(&data)).await.map_err(io::Error::other)??;
        if actual != session.spec.digest {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(BlobError::DigestMismatch { expected: session.spec.digest, actual }.into());
        }
        let guard = self.gc_lock.clone().read_owned().await;
        let staged = Key::from(format!("uploads/{}/data", id.simple()));
        let deduplicated = match self.store.rename_if_not_exists(&staged, &Self::key(&actual)).await {
            Ok(()) => false,
            Err(object_store::Error::AlreadyExists { .. }) => true,
            Err(e) => return Err(BlobError::from(e).into()),
        };
        let _ = tokio::fs::remove_dir_all(&dir).await;
        let ingested = Ingested::new(actual, session.spec.size, deduplicated, guard);
        Ok((session.spec, ingested))
    }

    /// Removes a session and its bytes.
    pub async fn abort_session(&self, id: uuid::Uuid) -> Result<(), SessionError> {
        match tokio::fs::remove_dir_all(self.session_dir(id)).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SessionError::NotFound(id)),
            removed => Ok(removed?),
        }
    }

    /// Removes sessions that expired before `now` (Unix seconds), and folders left without a
    /// readable `session.json` (a crash while one was being made). Returns how many.
    pub async fn sweep_expired_sessions(&self, now: i64) -> Result<usize, SessionError> {
        let root = self.sessions_dir();
        tokio::task::spawn_blocking(move || -> io::Result<usize> {
            let entries = match std::fs::read_dir(&root) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
                entries => entries?,
            };
            let mut removed = 0;
            for entry in entries {
                let path = entry?.path();
                let expired = match read_spec(&path) {
                    Ok(spec) => spec.expires_at < now,
                    // Made seconds ago and not written yet, or left by a crash: judged by age.
                    Err(_) => path.metadata()?.modified()?.elapsed().is_ok_and(|age| age.as_secs() > 3600),
                };
                if expired {
                    std::fs::remove_dir_all(&path)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(io::Error::other)?
        .map_err(Into::into)
    }
}

fn read_spec(dir: &Path) -> io::Result<SessionSpec> {
    serde_json::from_slice(&std::fs::read(dir.join("session.json"))?).map_err(io::Error::other)
}

fn read_session(dir: &Path, id: uuid::Uuid) -> Result<Session, SessionError> {
    let spec = match read_spec(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(SessionError::NotFound(id)),
        spec => spec?,
    };
    let mut received: Vec<u64> = std::fs::read_dir(dir.join("parts"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|n| *n < spec.parts())
        .collect();
    received.sort_unstable();
    Ok(Session { id, spec, received })
}

/// Takes the file's room on the disk now (`fallocate`), or only sets its length where the
/// filesystem cannot reserve.
fn reserve(file: &File, size: u64) -> io::Result<()> {
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOSPC) => Err(io::ErrorKind::StorageFull.into()),
        Err(_) => file.set_len(size),
    }
}

/// Writes a small file whole: to a temporary name, synced, then renamed into place.
fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = path.with_extension("new");
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(Digest::from_bytes(hasher.finalize().into()));
        }
        hasher.update(&buf[..n]);
    }
}
