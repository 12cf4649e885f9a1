//! Garbage collection: the sweep that joins the catalog (which blobs are named) and the
//! blob store (which bytes exist). Runs at startup and then periodically.

use std::collections::HashSet;

use crate::catalog::Db;

use crate::blobs::BlobStore;
use crate::catalog;

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Snapshots of versions that no longer exist (their hardlinks would pin the bytes).
    pub snapshots: usize,
    /// Blobs with a row that no file names any more.
    pub unreferenced: usize,
    /// Bytes in the store with no row: a crash between linking a blob and committing its row.
    pub orphaned: usize,
    /// Upload sessions past their expiry, with their parts.
    pub expired_uploads: usize,
    /// Staging objects a bucket kept past the grace period (uploads cut off before their copy).
    pub bucket_staging: usize,
}

/// Deletes snapshots of deleted versions, then blobs that no file refers to and that are
/// older than `grace_secs`. Holds the
/// store's GC lock throughout, so no upload commits a blob while it is being judged.
pub async fn sweep(pool: &Db, blobs: &BlobStore, grace_secs: u64) -> anyhow::Result<Swept> {
    let _exclusive = blobs.lock_for_gc().await;
    let mut swept = Swept::default();
    let versions = catalog::versions::all_names(pool).await?;
    for stale in blobs.snapshots_except(&versions).await? {
        tracing::info!(snapshot = %stale.display(), "removing the snapshot of a deleted version");
        tokio::fs::remove_dir_all(&stale).await?;
        swept.snapshots += 1;
    }
    for digest in catalog::blobs::take_unreferenced(pool, grace_secs).await? {
        blobs.delete(&digest).await?;
        swept.unreferenced += 1;
    }
    swept.expired_uploads = blobs.sweep_expired_sessions(crate::auth::now_unix()).await?;
    swept.bucket_staging = blobs.sweep_bucket(grace_secs).await?;
    let known: HashSet<_> = catalog::blobs::all_digests(pool).await?.into_iter().collect();
    for (digest, age_secs) in blobs.list_on_disk().await? {
        if age_secs >= grace_secs && !known.contains(&digest) {
            blobs.delete(&digest).await?;
            swept.orphaned += 1;
        }
    }
    Ok(swept)
}
