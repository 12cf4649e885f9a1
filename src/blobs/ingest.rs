//! Streaming ingest: the body goes to a file in `tmp/` and through sha256 at the same time,
//! on two threads fed from one pass over the stream, in constant memory. The file is
//! fsynced once at the end, checked against the client's digest, and linked into place
//! under its digest. A drop guard removes the staging file on every path that does not
//! commit, including a client that goes away mid-body.

use std::fs::File;
use std::io::{self, IoSlice, Write as _};
use std::path::PathBuf;

use bytes::{Buf as _, Bytes};
use futures_util::{Stream, StreamExt as _};
use object_store::ObjectStoreExt as _;
use object_store::path::Path as Key;
use sha2::{Digest as _, Sha256};
use tokio::sync::{OwnedRwLockReadGuard, mpsc};

use super::{BlobError, BlobStore};
use crate::domain::Digest;

/// Chunks queued per worker. Bounded so a fast client cannot outrun the disk by more than
/// this many chunks: memory per upload stays at a few MiB whatever the file size.
const QUEUE_CHUNKS: usize = 32;
/// Writes are gathered into blocks this big, so small network chunks do not become small
/// syscalls.
const WRITE_BLOCK: usize = 1 << 20;
/// At most this many buffers per vectored write (the kernel's IOV_MAX is 1024).
const MAX_SLICES: usize = 512;
/// Writeback is started after every this many bytes.
const FLUSH_EVERY: usize = 64 << 20;

/// A blob that is durable in the store. While this value lives, garbage collection cannot
/// remove it: drop it only after the catalog row naming it has committed (or failed).
pub struct Ingested {
    pub digest: Digest,
    pub size: u64,
    /// Whether the store already had these bytes (and this upload's copy was dropped).
    pub deduplicated: bool,
    _gc_guard: OwnedRwLockReadGuard<()>,
}

impl Ingested {
    /// A blob linked into place by another path than `ingest` (an upload session's).
    pub(super) fn new(digest: Digest, size: u64, deduplicated: bool, gc_guard: OwnedRwLockReadGuard<()>) -> Self {
        Self { digest, size, deduplicated, _gc_guard: gc_guard }
    }
}

/// Deletes the staging file unless disarmed.
struct StagingFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for StagingFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort; whatever survives is swept at the next start.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl BlobStore {
    /// Streams `body` into the store. With `expected`, bytes that hash differently are
    /// refused and nothing is stored.
    pub async fn ingest<S, E>(&self, body: S, expected: Option<Digest>) -> Result<Ingested, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        if let Some(bucket) = &self.bucket {
            return self.ingest_to_bucket(bucket, body, expected, true).await;
        }
        let name = format!("{}.part", uuid::Uuid::new_v4());
        let mut staging = StagingFile { path: self.tmp_dir.join(&name), armed: true };
        let file = File::create_new(&staging.path)?;

        let (to_disk, disk_rx) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
        let (to_hash, hash_rx) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
        let writer = tokio::task::spawn_blocking(move || write_all(file, disk_rx));
        let hasher = tokio::task::spawn_blocking(move || hash_all(hash_rx));

        let mut received: u64 = 0;
        let mut interrupted = None;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    interrupted = Some(e.to_string());
                    break;
                }
            };
            // An empty chunk would be an empty write, which the writer takes for a full disk.
            if chunk.is_empty() {
                continue;
            }
            received += chunk.len() as u64;
            // A send fails only when a worker has stopped, i.e. the disk write failed;
            // its error is reported below.
            if to_hash.send(chunk.clone()).await.is_err() || to_disk.send(chunk).await.is_err() {
                break;
            }
        }
        drop((to_disk, to_hash));
        self.received.fetch_add(received, std::sync::atomic::Ordering::Relaxed);
        let written = writer.await.map_err(io::Error::other)?;
        let (actual, hashed) = hasher.await.map_err(io::Error::other)?;
        if let Some(reason) = interrupted {
            return Err(BlobError::Interrupted { received, reason });
        }
        match written {
            Err(e) if e.kind() == io::ErrorKind::StorageFull => {
                // What this upload has sent so far is a lower bound of what it needs.
                return Err(BlobError::StorageFull { free: self.free_bytes()?, needed: received });
            }
            written => written?,
        }
        debug_assert_eq!(hashed, received);
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(BlobError::DigestMismatch { expected, actual });
        }

        let guard = self.gc_lock.clone().read_owned().await;
        let staged = Key::from(format!("tmp/{name}"));
        let deduplicated = match self.store.rename_if_not_exists(&staged, &Self::key(&actual)).await {
            Ok(()) => {
                staging.armed = false;
                false
            }
            // Same name, same bytes: the copy we staged is redundant and the guard removes it.
            Err(object_store::Error::AlreadyExists { .. }) => true,
            Err(e) => return Err(e.into()),
        };
        Ok(Ingested { digest: actual, size: received, deduplicated, _gc_guard: guard })
    }
}

/// Writes the chunks as they come, gathering them into ~1 MiB vectored writes (no copy
/// into a buffer), and has a second thread start writeback every `FLUSH_EVERY` bytes so
/// the disk works while the body is still arriving and the final fsync has little left.
fn write_all(file: File, mut chunks: mpsc::Receiver<Bytes>) -> io::Result<()> {
    let flusher_file = file.try_clone()?;
    let (flush_now, flush_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let flusher = std::thread::spawn(move || {
        while flush_rx.recv().is_ok() {
            // Errors surface in the final sync_all below; this one only keeps the disk busy.
            let _ = flusher_file.sync_data();
        }
    });
    let mut file = file;
    let result = (|| {
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_bytes = 0;
        let mut since_flush = 0;
        while let Some(chunk) = chunks.blocking_recv() {
            pending_bytes += chunk.len();
            pending.push(chunk);
            if pending_bytes >= WRITE_BLOCK || pending.len() >= MAX_SLICES {
                write_vectored_all(&mut file, &mut pending)?;
                since_flush += pending_bytes;
                pending_bytes = 0;
                if since_flush >= FLUSH_EVERY {
                    // A flush already queued covers this one too.
                    let _ = flush_now.try_send(());
                    since_flush = 0;
                }
            }
        }
        write_vectored_all(&mut file, &mut pending)
    })();
    drop(flush_now);
    let _ = flusher.join();
    result?;
    file.sync_all()
}

/// `write_all` for a list of buffers, in as few syscalls as the kernel allows.
fn write_vectored_all(file: &mut File, bufs: &mut Vec<Bytes>) -> io::Result<()> {
    let mut first = 0;
    while first < bufs.len() {
        let slices: Vec<IoSlice<'_>> = bufs[first..].iter().map(|b| IoSlice::new(b)).collect();
        let mut written = match file.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while written > 0 {
            let len = bufs[first].len();
            if written >= len {
                written -= len;
                first += 1;
            } else {
                bufs[first].advance(written);
                written = 0;
            }
        }
    }
    bufs.clear();
    Ok(())
}

/// Hashes the chunks as they come, on a blocking thread; the digest and the byte count.
pub(super) fn hash_all(mut chunks: mpsc::Receiver<Bytes>) -> (Digest, u64) {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = chunks.blocking_recv() {
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    (Digest::from_bytes(hasher.finalize().into()), size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, io::Error>> {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn stores_bytes_under_their_digest_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let first = store.ingest(body(&[b"hello ", b"world"]), None).await.expect("ingest");
        let expected = Digest::from_bytes(Sha256::digest(b"hello world").into());
        assert_eq!(first.digest, expected);
        assert_eq!(first.size, 11);
        assert!(!first.deduplicated);
        let second = store.ingest(body(&[b"hello world"]), Some(expected)).await.expect("ingest");
        assert!(second.deduplicated);
        assert_eq!(store.tmp_entries().expect("tmp"), 0);
        let hex = expected.hex();
        let on_disk = std::fs::read(dir.path().join(format!("blobs/sha256/{}/{hex}", &hex[..2]))).expect("blob");
        assert_eq!(on_disk, b"hello world");
    }

    #[tokio::test]
    async fn empty_chunks_make_an_empty_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let empty = store.ingest(body(&[b"", b""]), None).await.expect("ingest");
        assert_eq!((empty.digest, empty.size), (Digest::from_bytes(Sha256::digest(b"").into()), 0));
    }

    #[tokio::test]
    async fn a_wrong_digest_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let wrong = Digest::from_bytes([7; 32]);
        let err = store.ingest(body(&[b"abc"]), Some(wrong)).await.err().expect("refused");
        assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
        assert_eq!(store.tmp_entries().expect("tmp"), 0);
        assert!(store.list_on_disk().await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn an_interrupted_body_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let parts: Vec<Result<Bytes, io::Error>> =
            vec![Ok(Bytes::from_static(b"abc")), Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))];
        let err = store.ingest(futures_util::stream::iter(parts), None).await.err().expect("refused");
        assert!(matches!(err, BlobError::Interrupted { received: 3, .. }), "{err}");
        assert_eq!(store.tmp_entries().expect("tmp"), 0);
    }
}
