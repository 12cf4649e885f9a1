//! Snapshots: a ready version laid out by file path under `snapshots/<model>/<version>/`, as
//! hardlinks into `blobs/`. Built once, in `tmp/`, then renamed into place, so a snapshot
//! that exists is complete; no byte of a model is copied to deploy it. When the blobs live in a
//! bucket, `blobs/` is their local cache: a snapshot first fetches what it lacks there.

use std::io;
use std::path::{Path, PathBuf};

use super::{BlobError, BlobStore};
use crate::domain::{Digest, ModelName, RelPath, VersionName};

impl BlobStore {
    /// Where the snapshot of `model:version` lives (whether or not it exists yet).
    pub fn snapshot_path(&self, model: &ModelName, version: &VersionName) -> PathBuf {
        self.root.join("snapshots").join(model.as_str()).join(version.as_str())
    }

    /// Returns the snapshot of a ready version, building it first if needed. `files` must be
    /// the version's complete, immutable file list.
    pub async fn snapshot(
        &self,
        model: &ModelName,
        version: &VersionName,
        files: Vec<(RelPath, Digest)>,
    ) -> Result<PathBuf, BlobError> {
        let target = self.snapshot_path(model, version);
        if target.is_dir() {
            return Ok(target);
        }
        if let Some(bucket) = &self.bucket {
            let mut seen = std::collections::HashSet::new();
            let digests: Vec<Digest> = files.iter().map(|(_, digest)| *digest).filter(|d| seen.insert(*d)).collect();
            self.fill_cache(bucket, &digests).await?;
        }
        let staging = self.tmp_dir.join(format!("snapshot-{}", uuid::Uuid::new_v4()));
        let blobs = self.root.join("blobs");
        let built = target.clone();
        let (count, started) = (files.len(), std::time::Instant::now());
        let missing = tokio::task::spawn_blocking(move || build(&staging, &built, &blobs, &files))
            .await
            .map_err(io::Error::other)??;
        match missing {
            Some(digest) => Err(BlobError::Missing(digest)),
            None => {
                // What a first deploy of a large version spends here, for operators and
                // benches/deploy.sh alike.
                let took_ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(%model, %version, files = count, took_ms, "built snapshot");
                if let Some(bucket) = &self.bucket {
                    // The new snapshot links its blobs, so trimming cannot take them.
                    let removed = self.trim_cache(bucket).await?;
                    if removed > 0 {
                        tracing::info!(removed, "removed least recently used blobs from the local cache");
                    }
                }
                Ok(target)
            }
        }
    }
}

impl BlobStore {
    /// Snapshot directories whose (model, version) is not in `live`. Model names are one or
    /// two segments (`team/name`), so a directory two levels down is a version of a
    /// one-segment model if `live` says so, and otherwise holds the versions of a team's model.
    pub async fn snapshots_except(
        &self,
        live: &std::collections::HashSet<(String, String)>,
    ) -> io::Result<Vec<PathBuf>> {
        let root = self.root.join("snapshots");
        let live = live.clone();
        tokio::task::spawn_blocking(move || {
            let mut stale = Vec::new();
            for (first, first_path) in subdirs(&root)? {
                for (second, second_path) in subdirs(&first_path)? {
                    if live.contains(&(first.clone(), second.clone())) {
                        continue;
                    }
                    let model = format!("{first}/{second}");
                    let versions = subdirs(&second_path)?;
                    let is_team_model = live.iter().any(|(m, _)| *m == model);
                    if !is_team_model {
                        stale.push(second_path);
                        continue;
                    }
                    for (version, version_path) in versions {
                        if !live.contains(&(model.clone(), version)) {
                            stale.push(version_path);
                        }
                    }
                }
            }
            Ok(stale)
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// The subdirectories of `dir` by name; none if it does not exist.
fn subdirs(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            dirs.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
        }
    }
    Ok(dirs)
}

/// Links every file under `staging`, then renames it to `target`. Returns the first blob that
/// is missing, if any (and leaves nothing behind).
fn build(staging: &Path, target: &Path, blobs: &Path, files: &[(RelPath, Digest)]) -> io::Result<Option<Digest>> {
    let result = (|| {
        std::fs::create_dir_all(staging)?;
        for (path, digest) in files {
            let hex = digest.hex();
            let source = blobs.join("sha256").join(&hex[..2]).join(&hex);
            let link = staging.join(path.as_str());
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent)?;
            }
            match std::fs::hard_link(&source, &link) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(*digest)),
                Err(e) => return Err(e),
            }
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::rename(staging, target) {
            Ok(()) => Ok(None),
            // Someone else built the same snapshot first; theirs is as good as ours.
            Err(_) if target.is_dir() => Ok(None),
            Err(e) => Err(e),
        }
    })();
    if staging.exists() {
        let _ = std::fs::remove_dir_all(staging);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn a_snapshot_links_every_file_without_copying() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let body = futures_util::stream::iter([Ok::<_, io::Error>(Bytes::from_static(b"weights"))]);
        let blob = store.ingest(body, None).await.expect("ingest");
        let files = vec![
            (RelPath::parse("model.safetensors").expect("path"), blob.digest),
            (RelPath::parse("nested/copy.bin").expect("path"), blob.digest),
        ];
        let (model, version) = (ModelName::parse("team/m").expect("model"), VersionName::parse("1").expect("version"));
        let path = store.snapshot(&model, &version, files.clone()).await.expect("snapshot");
        assert_eq!(path, dir.path().join("snapshots/team/m/1"));
        let linked = std::fs::metadata(path.join("nested/copy.bin")).expect("linked");
        assert_eq!(linked.nlink(), 3, "the blob and two links share one inode");
        assert_eq!(std::fs::read(path.join("model.safetensors")).expect("read"), b"weights");
        // A second call finds it built.
        assert_eq!(store.snapshot(&model, &version, files).await.expect("again"), path);
        let live = std::collections::HashSet::from([("team/m".to_owned(), "1".to_owned())]);
        assert!(store.snapshots_except(&live).await.expect("walk").is_empty(), "a live snapshot is kept");
        let stale = store.snapshots_except(&std::collections::HashSet::new()).await.expect("walk");
        assert_eq!(stale, vec![dir.path().join("snapshots/team/m")], "a deleted model's snapshots are stale");
        assert_eq!(store.tmp_entries().expect("tmp"), 0);
    }

    #[tokio::test]
    async fn a_missing_blob_fails_and_leaves_no_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let files = vec![(RelPath::parse("a").expect("path"), Digest::from_bytes([1; 32]))];
        let (model, version) = (ModelName::parse("m").expect("model"), VersionName::parse("1").expect("version"));
        let err = store.snapshot(&model, &version, files).await.expect_err("missing");
        assert!(matches!(err, BlobError::Missing(_)));
        assert!(!store.snapshot_path(&model, &version).exists());
        assert_eq!(store.tmp_entries().expect("tmp"), 0);
    }
}
