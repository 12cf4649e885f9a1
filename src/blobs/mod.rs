//! The content-addressed blob store: bytes named by their sha256, written once, never
//! changed. It owns the keys (`blobs/sha256/ab/<hex>`), streaming ingest with in-pass
//! hashing, ranged reads and the deletion half of garbage collection. It knows nothing of
//! HTTP or SQL.
//!
//! By default the store is `object_store`'s `LocalFileSystem` rooted at the data dir, so
//! staging files in `tmp/` and blobs share a filesystem and committing a blob is an atomic
//! link. With `blob_store = "s3://…"` the blobs live in a bucket (`s3`) and the data dir's
//! `blobs/` is the local cache that snapshots link from; the rest of the program sees one
//! interface either way.

mod ingest;
mod read;
mod s3;
mod sessions;
mod snapshot;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tokio::sync::RwLock;

use crate::domain::Digest;

pub use ingest::Ingested;
pub use read::BlobStream;
pub use s3::{BucketSettings, gib_to_bytes};
pub use sessions::{DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE, Session, SessionError, SessionSpec};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the body's sha256 is {actual}, not the {expected} the client sent; nothing was stored")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("the upload was interrupted after {received} bytes: {reason}; nothing was stored")]
    Interrupted { received: u64, reason: String },
    #[error(
        "the data dir's disk has {free} bytes free and this upload needs at least {needed} bytes; nothing was stored"
    )]
    StorageFull { free: u64, needed: u64 },
    #[error("blob {0} is missing from the store")]
    Missing(Digest),
    #[error("blob {digest} in the store hashes to {actual}")]
    Corrupt { digest: Digest, actual: Digest },
    #[error("blob store I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error("blob store failed: {0}")]
    Store(#[from] object_store::Error),
}

/// The blob store. Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<LocalFileSystem>,
    /// Where the blobs live when not in the data dir; its `blobs/` is then their local cache.
    bucket: Option<Arc<s3::Bucket>>,
    /// The data dir: `blobs/`, `tmp/` and `snapshots/` are under it.
    root: PathBuf,
    tmp_dir: PathBuf,
    /// Ingest holds this shared from the moment a blob lands until its catalog row commits;
    /// garbage collection holds it exclusively, so it never deletes a blob about to be named.
    gc_lock: Arc<RwLock<()>>,
    /// Body bytes ingest has read since the store was opened, stored or not.
    received: Arc<AtomicU64>,
}

impl BlobStore {
    /// Opens the store under `data_dir`, creating `blobs/` and `tmp/`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        Self::open_with(data_dir, None)
    }

    /// Opens the store under `data_dir`, with the blobs in `bucket` when one is given (the
    /// bucket is not contacted: `check_bucket` does that).
    pub fn open_with(data_dir: &Path, bucket: Option<&BucketSettings>) -> io::Result<Self> {
        let bucket = bucket.map(s3::Bucket::open).transpose().map_err(io::Error::other)?.map(Arc::new);
        std::fs::create_dir_all(data_dir.join("blobs/sha256"))?;
        let tmp_dir = data_dir.join("tmp");
        std::fs::create_dir_all(&tmp_dir)?;
        let store = LocalFileSystem::new_with_prefix(data_dir)
            .map_err(io::Error::other)?
            // Fsyncs the directory after a blob is linked into place. File contents are
            // fsynced once, by ingest, before that.
            .with_fsync(true);
        Ok(Self {
            store: Arc::new(store),
            bucket,
            root: data_dir.to_owned(),
            tmp_dir,
            gc_lock: Arc::new(RwLock::new(())),
            received: Arc::new(AtomicU64::new(0)),
        })
    }

    fn key(digest: &Digest) -> Key {
        let hex = digest.hex();
        Key::from(format!("blobs/sha256/{}/{hex}", &hex[..2]))
    }

    /// The store that holds the blobs, and a blob's key in it.
    fn home(&self, digest: &Digest) -> (&dyn ObjectStore, Key) {
        match &self.bucket {
            Some(bucket) => (bucket.store(), bucket.key(digest)),
            None => (self.store.as_ref(), Self::key(digest)),
        }
    }

    /// Where a client may GET the bytes of `digest` itself, with `Range` as it would ask
    /// Hangar: a presigned URL in the bucket, valid for an hour, when the blobs live in one
    /// and `presign_downloads` is on; `None` otherwise (the bytes then come through `read`).
    pub async fn download_url(&self, digest: &Digest) -> Result<Option<url::Url>, BlobError> {
        match &self.bucket {
            Some(bucket) => Ok(bucket.download_url(digest).await?),
            None => Ok(None),
        }
    }

    /// Whether the blobs live in a bucket.
    pub fn is_remote(&self) -> bool {
        self.bucket.is_some()
    }

    /// Fails unless the bucket exists and answers a listing with these credentials (a listing,
    /// not a head: a missing object and a missing bucket both answer a head with 404).
    /// Nothing to check for a local store.
    pub async fn check_bucket(&self) -> Result<(), BlobError> {
        let Some(bucket) = &self.bucket else { return Ok(()) };
        bucket.store().list_with_delimiter(Some(&bucket.blobs_prefix())).await?;
        Ok(())
    }

    /// Refuses an upload of `size` bytes up front when the disk of `tmp/` has less free. A
    /// streamed upload to a bucket does not touch the disk, and a bucket says no free figure.
    pub fn ensure_room(&self, size: u64) -> Result<(), BlobError> {
        if self.bucket.is_some() {
            return Ok(());
        }
        self.ensure_local_room(size)
    }

    /// Refuses `size` bytes up front when the disk of `tmp/` has less free.
    fn ensure_local_room(&self, size: u64) -> Result<(), BlobError> {
        let free = self.free_bytes()?;
        if free < size {
            return Err(BlobError::StorageFull { free, needed: size });
        }
        Ok(())
    }

    /// Bytes the disk of `tmp/` (and so of `blobs/`) can still take.
    fn free_bytes(&self) -> io::Result<u64> {
        let stat = rustix::fs::statvfs(&self.tmp_dir)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Whether the data dir takes writes now: writes, then removes, a small file in `tmp/`
    /// (on a full disk this fails with the disk's error).
    pub async fn check_writable(&self) -> io::Result<()> {
        let probe = self.tmp_dir.join(format!("{}.ready", uuid::Uuid::new_v4()));
        tokio::task::spawn_blocking(move || {
            let written = std::fs::write(&probe, [0u8; 64 << 10]);
            let _ = std::fs::remove_file(&probe);
            written
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Removes everything in `tmp/`: uploads that were in flight when the last process died.
    /// Only safe before the server accepts requests.
    pub async fn sweep_tmp(&self) -> io::Result<usize> {
        let tmp_dir = self.tmp_dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&tmp_dir)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(entry.path())?;
                } else {
                    std::fs::remove_file(entry.path())?;
                }
                removed += 1;
            }
            Ok(removed)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Number of entries in `tmp/`, and uploads streaming to the bucket, for tests and
    /// `/api/v1/system`.
    pub fn tmp_entries(&self) -> io::Result<usize> {
        let streaming = self.bucket.as_ref().map_or(0, |bucket| bucket.in_flight());
        Ok(std::fs::read_dir(&self.tmp_dir)?.count() + streaming)
    }

    /// Removes staging objects the bucket has kept longer than `grace_secs` (uploads cut off
    /// between their last byte and their copy). Nothing to do for a local store, whose `tmp/`
    /// is swept at start.
    pub async fn sweep_bucket(&self, grace_secs: u64) -> Result<usize, BlobError> {
        match &self.bucket {
            Some(bucket) => self.sweep_bucket_staging(bucket, grace_secs).await,
            None => Ok(0),
        }
    }

    /// Upload bytes received since start, whether they were stored, deduplicated or
    /// dropped: what clients actually sent, which is what a client that skips known
    /// blobs saves.
    pub fn bytes_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Excludes ingest commits while the returned guard lives; see `gc_lock`.
    pub async fn lock_for_gc(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.gc_lock.write().await
    }

    /// Deletes a blob's bytes (from the bucket and the local cache, when in a bucket). Call
    /// only under `lock_for_gc`, for a digest nothing names.
    pub async fn delete(&self, digest: &Digest) -> Result<(), BlobError> {
        let (store, key) = self.home(digest);
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if self.bucket.is_some() {
            match tokio::fs::remove_file(self.cached_path(digest)).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Every blob in the store (on disk or in the bucket) with its age in seconds, to find
    /// bytes no row names (a crash between the link and the commit leaves those).
    pub async fn list_on_disk(&self) -> Result<Vec<(Digest, u64)>, BlobError> {
        use futures_util::TryStreamExt as _;
        let now = std::time::SystemTime::now();
        let listing = match &self.bucket {
            Some(bucket) => bucket.store().list(Some(&bucket.blobs_prefix())),
            None => self.store.list(Some(&Key::from("blobs/sha256"))),
        };
        let metas: Vec<_> = listing.try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| {
                let digest = Digest::parse_hex(meta.location.filename()?)?;
                let age = now.duration_since(meta.last_modified.into()).unwrap_or_default().as_secs();
                Some((digest, age))
            })
            .collect())
    }

    /// Holds a blob already on disk safe from garbage collection until the returned value is
    /// dropped, as ingest holds a blob it stored: for naming in the catalog bytes that arrived
    /// by another request (a Git LFS upload before its commit). `None` when it is not on disk.
    pub async fn pin(&self, digest: &Digest) -> Result<Option<Ingested>, BlobError> {
        let guard = self.gc_lock.clone().read_owned().await;
        let (store, key) = self.home(digest);
        match store.head(&key).await {
            Ok(meta) => Ok(Some(Ingested::new(*digest, meta.size, true, guard))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the bytes of `digest` are in the store.
    pub async fn contains(&self, digest: &Digest) -> Result<bool, BlobError> {
        Ok(self.size_of(digest).await?.is_some())
    }

    /// The size of the bytes of `digest` in the store; `None` when they are not there.
    pub async fn size_of(&self, digest: &Digest) -> Result<Option<u64>, BlobError> {
        let (store, key) = self.home(digest);
        match store.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
