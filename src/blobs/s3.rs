//! Blobs in an S3-compatible bucket (`blob_store = "s3://bucket/prefix"`), with the data dir's
//! `blobs/` kept as a verified local cache of the blobs deployments use.
//!
//! This module owns the bucket's keys (`<prefix>/blobs/sha256/ab/<hex>`, staging objects under
//! `<prefix>/tmp/`), the streamed upload (hashed in the same pass as it is sent; see `Route`:
//! a multipart upload to a staging key, then a copy to the digest's key that never overwrites,
//! or, when the client named the digest, straight to that key, completed only if the bytes
//! match) and filling and trimming the cache. Endpoint, region and credentials come the AWS
//! way (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, … through `object_store`'s
//! `AmazonS3Builder::from_env`), with the config file's `[s3]` table over them.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::signer::{Method, Signer as _, Url};
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload, WriteMultipart};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::ingest::hash_all;
use super::{BlobError, BlobStore, Ingested};
use crate::domain::Digest;

/// Bytes per multipart part. S3 allows 10,000 parts, so one blob may be up to 160 GB.
const PART_SIZE: usize = 16 << 20;
/// Parts sent at once. With the part being filled, an upload holds at most
/// `(PARTS_IN_FLIGHT + 1) * PART_SIZE` bytes whatever the file's size.
const PARTS_IN_FLIGHT: usize = 3;
/// Chunks queued for the hashing thread (and the cache writer).
const QUEUE_CHUNKS: usize = 32;
/// The default size budget of the local cache.
pub const DEFAULT_CACHE_GIB: f64 = 200.0;
/// How long a presigned download URL works. The bucket checks it when a request starts, so
/// this bounds when a download (or a resumed range) may begin, not how long it may take.
const PRESIGNED_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where the bucket is and how to reach it, from the settings.
#[derive(Clone, PartialEq)]
pub struct BucketSettings {
    pub bucket: String,
    /// Keys start with this (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// `object_store` S3 settings (`endpoint`, `region`, `allow_http`, …) applied over the
    /// `AWS_*` environment: the config file's `[s3]` table.
    pub options: Vec<(AmazonS3ConfigKey, String)>,
    /// The local cache's size budget in bytes.
    pub cache_bytes: u64,
    /// Downloads are answered with a redirect to a presigned URL in the bucket.
    pub presign_downloads: bool,
}

impl std::fmt::Debug for BucketSettings {
    /// Option values may be credentials: only their keys are printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<_> = self.options.iter().map(|(key, _)| key.as_ref()).collect();
        f.debug_struct("BucketSettings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("options", &keys)
            .field("cache_bytes", &self.cache_bytes)
            .field("presign_downloads", &self.presign_downloads)
            .finish()
    }
}

impl BucketSettings {
    /// Parses `s3://bucket/prefix` (the prefix optional).
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not a blob store; expected \"local\" or s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket; expected s3://BUCKET/PREFIX"));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty()
            && prefix.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(format!("{url:?} has an empty, '.' or '..' segment in its prefix"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            options: Vec::new(),
            cache_bytes: gib_to_bytes(DEFAULT_CACHE_GIB),
            presign_downloads: false,
        })
    }

    /// Adds an `object_store` S3 setting by its name (`endpoint`, `aws_region`, …).
    pub fn with_option(mut self, key: &str, value: String) -> Result<Self, String> {
        let parsed = key.to_ascii_lowercase().parse().map_err(|_| format!("{key:?} is not an S3 setting"))?;
        self.options.push((parsed, value));
        Ok(self)
    }
}

pub fn gib_to_bytes(gib: f64) -> u64 {
    // Saturates on overflow, which is what a budget that large means.
    (gib * f64::from(1u32 << 30)) as u64
}

/// The bucket of a store opened with `BucketSettings`.
pub(super) struct Bucket {
    store: Arc<AmazonS3>,
    prefix: String,
    /// Whether the server is configured to refuse a copy onto an existing key
    /// (`AWS_COPY_IF_NOT_EXISTS`); without it, a head then a plain copy.
    copy_if_not_exists: bool,
    cache_bytes: u64,
    presign_downloads: bool,
    /// One cache fill or trim at a time: two snapshots of one version fetch its blobs once.
    cache_lock: tokio::sync::Mutex<()>,
    /// Uploads streaming to the bucket now (they have nothing in the local `tmp/`).
    in_flight: Arc<AtomicUsize>,
}

impl Bucket {
    pub(super) fn open(settings: &BucketSettings) -> Result<Self, object_store::Error> {
        // The S3 client is a reqwest client, and reqwest here has no TLS provider of its own.
        crate::tls::install_provider();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&settings.bucket);
        for (key, value) in &settings.options {
            builder = builder.with_config(*key, value);
        }
        let copy_if_not_exists = builder.get_config_value(&AmazonS3ConfigKey::CopyIfNotExists).is_some();
        Ok(Self {
            store: Arc::new(builder.build()?),
            prefix: settings.prefix.clone(),
            copy_if_not_exists,
            cache_bytes: settings.cache_bytes,
            presign_downloads: settings.presign_downloads,
            cache_lock: tokio::sync::Mutex::new(()),
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn under_prefix(&self, rest: &str) -> Key {
        if self.prefix.is_empty() { Key::from(rest) } else { Key::from(format!("{}/{rest}", self.prefix)) }
    }

    pub(super) fn key(&self, digest: &Digest) -> Key {
        let hex = digest.hex();
        self.under_prefix(&format!("blobs/sha256/{}/{hex}", &hex[..2]))
    }

    pub(super) fn blobs_prefix(&self) -> Key {
        self.under_prefix("blobs/sha256")
    }

    fn staging_prefix(&self) -> Key {
        self.under_prefix("tmp")
    }

    pub(super) fn store(&self) -> &AmazonS3 {
        &self.store
    }

    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A presigned GET of a blob, when downloads are presigned.
    pub(super) async fn download_url(&self, digest: &Digest) -> Result<Option<Url>, object_store::Error> {
        if !self.presign_downloads {
            return Ok(None);
        }
        self.store.signed_url(Method::GET, &self.key(digest), PRESIGNED_FOR).await.map(Some)
    }

    /// Makes `staging` the object of `digest` without ever replacing one that exists. Returns
    /// whether it existed already (the bytes are the same: the key is their digest).
    async fn commit(&self, staging: &Key, digest: &Digest) -> Result<bool, object_store::Error> {
        let target = self.key(digest);
        if self.copy_if_not_exists {
            return match self.store.copy_if_not_exists(staging, &target).await {
                Ok(()) => Ok(false),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(true),
                Err(e) => Err(e),
            };
        }
        // Two uploads of one file may both find the key absent and both copy; the second
        // then writes the same bytes over the first, which readers cannot tell apart.
        match self.store.head(&target).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => self.store.copy(staging, &target).await.map(|()| false),
            Err(e) => Err(e),
        }
    }
}

/// Where an upload's bytes go, decided before the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The digest is known only after the last byte: a staging key, then a copy to the
    /// digest's key that never replaces one there.
    Staged,
    /// The client named the digest and the bucket lacks it: a multipart upload to the digest's
    /// key itself, completed only once the bytes hash to it (until then the bucket shows
    /// nothing). No copy, so no second write and no 5 GiB limit of a single S3 copy.
    Direct,
    /// The client named the digest and the bucket has it: the body is only hashed, to check.
    Present,
}

/// An upload in the making: its multipart upload while the body streams, then, on the staged
/// route, the completed staging object until it is copied. What it leaves when dropped is
/// removed: the multipart upload aborted, the staging object deleted (never a digest's key).
struct Staging {
    store: Arc<AmazonS3>,
    /// The staging key, or the digest's key on the direct and present routes.
    key: Key,
    writer: Option<WriteMultipart>,
    /// Whether a staging object may exist under `key`.
    written: bool,
    in_flight: Arc<AtomicUsize>,
}

impl Staging {
    /// Aborts the multipart upload or deletes the object, and waits for it.
    async fn discard(mut self) {
        if let Some(writer) = self.writer.take() {
            let _ = writer.abort().await;
        }
        if std::mem::take(&mut self.written) {
            let _ = self.store.delete(&self.key).await;
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let writer = self.writer.take();
        let written = self.written.then(|| self.key.clone());
        if writer.is_none() && written.is_none() {
            return;
        }
        // Dropped mid-upload (the client went away): a destructor cannot wait, so the cleanup
        // runs on its own task. A staging object it misses is removed by garbage collection.
        let store = Arc::clone(&self.store);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Some(writer) = writer {
                    let _ = writer.abort().await;
                }
                if let Some(key) = written {
                    let _ = store.delete(&key).await;
                }
            });
        }
    }
}

impl BlobStore {
    /// `ingest` for a store in a bucket: the body goes through sha256 and, in the same pass, to
    /// the bucket (one PUT when it is smaller than a part, a multipart upload otherwise) by the
    /// `Route` its expected digest allows; only bytes with that digest are kept.
    pub(super) async fn ingest_to_bucket<S, E>(
        &self,
        bucket: &Bucket,
        body: S,
        expected: Option<Digest>,
        count_received: bool,
    ) -> Result<Ingested, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let route = match expected {
            None => Route::Staged,
            Some(digest) => match bucket.store.head(&bucket.key(&digest)).await {
                Ok(_) => Route::Present,
                Err(object_store::Error::NotFound { .. }) => Route::Direct,
                Err(e) => return Err(e.into()),
            },
        };
        let key = match (route, expected) {
            (Route::Direct | Route::Present, Some(digest)) => bucket.key(&digest),
            _ => bucket.under_prefix(&format!("tmp/{}.part", uuid::Uuid::new_v4())),
        };
        bucket.in_flight.fetch_add(1, Ordering::Relaxed);
        let mut staging = Staging {
            store: Arc::clone(&bucket.store),
            key,
            writer: None,
            written: false,
            in_flight: Arc::clone(&bucket.in_flight),
        };
        let (to_hash, hash_rx) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
        let hasher = tokio::task::spawn_blocking(move || hash_all(hash_rx));
        // The start of the body, held until it is clear whether one PUT will do.
        let mut head: Vec<Bytes> = Vec::new();
        let mut head_bytes = 0;
        let mut received: u64 = 0;
        let mut body = std::pin::pin!(body);
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    failure = Some(BlobError::Interrupted { received, reason: e.to_string() });
                    break;
                }
            };
            if chunk.is_empty() {
                continue;
            }
            received += chunk.len() as u64;
            if count_received {
                self.received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            if to_hash.send(chunk.clone()).await.is_err() {
                failure = Some(io::Error::other("the hashing thread stopped").into());
                break;
            }
            if route != Route::Present
                && let Err(e) = staging.put(chunk, &mut head, &mut head_bytes).await
            {
                failure = Some(e.into());
                break;
            }
        }
        drop(to_hash);
        let hashed = hasher.await.map_err(io::Error::other);
        if let Some(failure) = failure {
            staging.discard().await;
            return Err(failure);
        }
        let (actual, _) = hashed?;
        if let Some(expected) = expected
            && expected != actual
        {
            staging.discard().await;
            return Err(BlobError::DigestMismatch { expected, actual });
        }
        match route {
            Route::Present => {
                let guard = self.gc_lock.clone().read_owned().await;
                // Garbage collection may have taken an unnamed copy since it was looked at.
                return match bucket.store.head(&staging.key).await {
                    Ok(_) => Ok(Ingested::new(actual, received, true, guard)),
                    Err(object_store::Error::NotFound { .. }) => Err(BlobError::Missing(actual)),
                    Err(e) => Err(e.into()),
                };
            }
            Route::Direct => {
                // Held from before the object appears, so GC never judges it an orphan. Never
                // `written`: a failure must not delete the blob's own key, which another
                // upload of the same bytes may have filled meanwhile.
                let guard = self.gc_lock.clone().read_owned().await;
                let completed = match staging.writer.take() {
                    Some(writer) => writer.finish().await,
                    None => staging.store.put(&staging.key, PutPayload::from_iter(head)).await,
                };
                return match completed {
                    Ok(_) => Ok(Ingested::new(actual, received, false, guard)),
                    Err(e) => Err(e.into()),
                };
            }
            Route::Staged => {}
        }
        staging.written = true;
        let completed = match staging.writer.take() {
            Some(writer) => writer.finish().await,
            None => staging.store.put(&staging.key, PutPayload::from_iter(head)).await,
        };
        if let Err(e) = completed {
            staging.discard().await;
            return Err(e.into());
        }
        let guard = self.gc_lock.clone().read_owned().await;
        let deduplicated = match bucket.commit(&staging.key, &actual).await {
            Ok(existed) => existed,
            Err(e) => {
                staging.discard().await;
                return Err(e.into());
            }
        };
        staging.discard().await;
        Ok(Ingested::new(actual, received, deduplicated, guard))
    }

    /// Makes sure every blob of `digests` is in the local cache, fetching the missing ones from
    /// the bucket and checking each against its digest, and marks them all used now.
    pub(super) async fn fill_cache(&self, bucket: &Bucket, digests: &[Digest]) -> Result<(), BlobError> {
        let _one_at_a_time = bucket.cache_lock.lock().await;
        for digest in digests {
            let cached = self.cached_path(digest);
            let touched = cached.clone();
            // The modification time is the cache's "last used".
            let found = tokio::task::spawn_blocking(move || touch(&touched)).await.map_err(io::Error::other)??;
            if !found {
                self.fetch_into_cache(bucket, digest, cached).await?;
            }
        }
        Ok(())
    }

    async fn fetch_into_cache(&self, bucket: &Bucket, digest: &Digest, cached: PathBuf) -> Result<(), BlobError> {
        let mut stream = match bucket.store.get(&bucket.key(digest)).await {
            Ok(result) => result.into_stream(),
            Err(object_store::Error::NotFound { .. }) => return Err(BlobError::Missing(*digest)),
            Err(e) => return Err(e.into()),
        };
        let staging = self.tmp_dir.join(format!("cache-{}", uuid::Uuid::new_v4()));
        let renamed = staging.clone();
        let (to_disk, chunks) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
        let written = staging.clone();
        let writer = tokio::task::spawn_blocking(move || write_hashing(&written, chunks));
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    // Fails only when the writer stopped on an error, reported below.
                    if to_disk.send(chunk).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(to_disk);
        let actual = writer.await.map_err(io::Error::other)?;
        let result = match (failed, actual) {
            (Some(e), _) => Err(e.into()),
            (None, Err(e)) => Err(e.into()),
            (None, Ok(actual)) if actual != *digest => Err(BlobError::Corrupt { digest: *digest, actual }),
            (None, Ok(_)) => tokio::task::spawn_blocking(move || -> io::Result<()> {
                if let Some(parent) = cached.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::rename(&renamed, &cached)
            })
            .await
            .map_err(io::Error::other)?
            .map_err(Into::into),
        };
        if result.is_err() {
            let _ = tokio::fs::remove_file(&staging).await;
        }
        result
    }

    /// Removes the least recently used cached blobs that no snapshot links to until the cache
    /// fits its budget. Blobs a snapshot links to stay: removing them would free nothing.
    pub(super) async fn trim_cache(&self, bucket: &Bucket) -> io::Result<usize> {
        let _one_at_a_time = bucket.cache_lock.lock().await;
        let root = self.root.join("blobs/sha256");
        let budget = bucket.cache_bytes;
        tokio::task::spawn_blocking(move || trim(&root, budget)).await.map_err(io::Error::other)?
    }

    /// Removes staging objects older than `grace_secs` from the bucket: uploads cut off before
    /// they were copied. Younger ones may be another node's upload in progress.
    pub(super) async fn sweep_bucket_staging(&self, bucket: &Bucket, grace_secs: u64) -> Result<usize, BlobError> {
        let now = std::time::SystemTime::now();
        let stale: Vec<Key> = bucket
            .store
            .list(Some(&bucket.staging_prefix()))
            .try_filter_map(|meta| async move {
                let age = now.duration_since(meta.last_modified.into()).unwrap_or_default().as_secs();
                Ok((age >= grace_secs).then_some(meta.location))
            })
            .try_collect()
            .await?;
        for key in &stale {
            match bucket.store.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(stale.len())
    }

    /// Where a blob is (or would be) in the local cache: where the local store keeps blobs.
    pub(super) fn cached_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }
}

impl Staging {
    /// Sends one chunk on: kept in `head` until the body outgrows one part, then into the
    /// multipart upload, waiting while `PARTS_IN_FLIGHT` parts are being sent.
    async fn put(&mut self, chunk: Bytes, head: &mut Vec<Bytes>, head_bytes: &mut usize) -> object_store::Result<()> {
        if let Some(writer) = &mut self.writer {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            writer.put(chunk);
            return Ok(());
        }
        *head_bytes += chunk.len();
        head.push(chunk);
        if *head_bytes > PART_SIZE {
            let upload = self.store.put_multipart(&self.key).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            for chunk in head.drain(..) {
                writer.put(chunk);
            }
            *head_bytes = 0;
            self.writer = Some(writer);
        }
        Ok(())
    }
}

/// Writes the chunks to a new file at `path`, hashing them on the way, and syncs it. The file
/// is removed when anything fails.
fn write_hashing(path: &Path, mut chunks: mpsc::Receiver<Bytes>) -> io::Result<Digest> {
    let result = (|| {
        let mut file = io::BufWriter::with_capacity(1 << 20, std::fs::File::create_new(path)?);
        let mut hasher = Sha256::new();
        while let Some(chunk) = chunks.blocking_recv() {
            hasher.update(&chunk);
            file.write_all(&chunk)?;
        }
        file.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
        Ok(Digest::from_bytes(hasher.finalize().into()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Sets a cached blob's modification time to now; `false` when it is not cached.
fn touch(path: &Path) -> io::Result<bool> {
    match std::fs::File::options().append(true).open(path) {
        Ok(file) => file.set_modified(std::time::SystemTime::now()).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn trim(root: &Path, budget: u64) -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0u64;
    let mut removable = Vec::new();
    let shards = match std::fs::read_dir(root) {
        Ok(shards) => shards,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for shard in shards {
        for entry in std::fs::read_dir(shard?.path())? {
            let entry = entry?;
            let meta = entry.metadata()?;
            total += meta.len();
            if meta.nlink() == 1 {
                removable.push((meta.modified()?, meta.len(), entry.path()));
            }
        }
    }
    removable.sort();
    let mut removed = 0;
    for (_, size, path) in removable {
        if total <= budget {
            break;
        }
        std::fs::remove_file(&path)?;
        total -= size;
        removed += 1;
    }
    Ok(removed)
}
