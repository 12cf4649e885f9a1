//! `hangar admin backup` and `restore`: a data dir copied while its server keeps writing.
//!
//! Both are one operation, "copy a data dir into an empty one": first a consistent copy of the
//! database (`VACUUM INTO`, one read snapshot), then every blob that copy names. Blobs are
//! immutable and GC keeps a blob for its grace period after the last file naming it goes, so
//! every blob the copied database names is still on disk when the copy reaches it. A blob is
//! hardlinked when both dirs share a filesystem (the same inode: its size is checked) and
//! copied otherwise (hashed while copied, and refused unless the sha256 matches its name).
//! A backup is laid out as a data dir, so restoring is the same copy back.

use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::catalog;
use crate::domain::Digest;

/// What one copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub blobs: u64,
    pub bytes: u64,
    /// Blobs that share their inode with the source (same filesystem).
    pub linked: u64,
    /// Blobs whose bytes were copied and their sha256 checked.
    pub copied: u64,
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} blobs, {} bytes ({} hardlinked, {} copied and verified)",
            self.blobs, self.bytes, self.linked, self.copied
        )
    }
}

/// Copies the data dir `source` into `dest`, which must be empty or absent. Progress goes to
/// stderr at most once a second.
pub async fn copy_data_dir(source: &Path, dest: &Path) -> anyhow::Result<Copied> {
    let source_db = source.join("hangar.db");
    anyhow::ensure!(source_db.is_file(), "no Hangar database at {}", source_db.display());
    prepare_empty(dest)?;
    let dest_db = dest.join("hangar.db");
    catalog::copy_consistent(&source_db, &dest_db).await?;
    // The installation id names this installation's containers; a restore is the same one.
    let id = source.join("installation-id");
    if id.is_file() {
        copy_private(&id, &dest.join("installation-id"))?;
    }
    let pool = catalog::open(&dest_db).await.map(catalog::Db::Sqlite).context("cannot open the copied database")?;
    let blobs = catalog::blobs::sizes(&pool).await?;
    pool.close().await;
    let (source, dest) = (source.to_owned(), dest.to_owned());
    tokio::task::spawn_blocking(move || copy_blobs(&source, &dest, &blobs)).await?
}

/// Creates `dir` (0700) if absent; refuses one that holds anything.
fn prepare_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            anyhow::ensure!(
                entries.next().is_none(),
                "{} is not empty; give an empty or absent directory",
                dir.display()
            );
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
    Ok(())
}

fn copy_blobs(source: &Path, dest: &Path, blobs: &[(Digest, u64)]) -> anyhow::Result<Copied> {
    let total: u64 = blobs.iter().map(|(_, size)| size).sum();
    let mut done = Copied::default();
    let mut progress = Progress::new(total, blobs.len());
    for (digest, size) in blobs {
        let relative = blob_path(digest);
        let (from, to) = (source.join(&relative), dest.join(&relative));
        if let Some(parent) = to.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
        }
        let linked = match std::fs::hard_link(&from, &to) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                anyhow::bail!("blob {digest} is named by the database but missing from {}", from.display())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot link {}", to.display())),
        };
        if linked {
            let on_disk = std::fs::metadata(&to)?.len();
            anyhow::ensure!(on_disk == *size, "blob {digest} has {on_disk} bytes on disk; the database says {size}");
            done.linked += 1;
        } else {
            copy_verified(&from, &to, digest, *size)?;
            done.copied += 1;
        }
        done.blobs += 1;
        done.bytes += size;
        progress.tick(done.bytes, done.blobs);
    }
    progress.finish(done.bytes, done.blobs);
    Ok(done)
}

/// `blobs/sha256/ab/<hex>`, relative to a data dir.
pub(super) fn blob_path(digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    PathBuf::from("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Copies `from` to `to` (0600), hashing on the way; a copy whose sha256 or size differs from
/// what it must be is removed and an error.
fn copy_verified(from: &Path, to: &Path, digest: &Digest, size: u64) -> anyhow::Result<()> {
    let mut input = std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut output = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        let read = input.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        output.write_all(&buffer[..read])?;
        written += read as u64;
    }
    output.sync_all()?;
    let actual = Digest::from_bytes(hasher.finalize().into());
    if actual != *digest || written != size {
        let _ = std::fs::remove_file(to);
        anyhow::bail!("blob {digest} is corrupt in {}: {written} bytes hashing to {actual}", from.display());
    }
    Ok(())
}

fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(from)?;
    let mut file = std::fs::File::options().write(true).create_new(true).mode(0o600).open(to)?;
    file.write_all(&bytes)?;
    Ok(())
}

/// Bytes done of the total on stderr, at most once a second, so a big store shows it moves.
struct Progress {
    total: u64,
    count: usize,
    last: Instant,
    printed: bool,
}

impl Progress {
    fn new(total: u64, count: usize) -> Self {
        Self { total, count, last: Instant::now(), printed: false }
    }

    fn tick(&mut self, bytes: u64, blobs: u64) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            self.printed = true;
            eprintln!("{bytes} / {} bytes ({blobs} / {} blobs)", self.total, self.count);
        }
    }

    /// The last line, only when earlier ones were printed: a small store stays quiet.
    fn finish(&self, bytes: u64, blobs: u64) {
        if self.printed {
            eprintln!("{bytes} / {} bytes ({blobs} / {} blobs)", self.total, self.count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_with_the_wrong_bytes_is_refused_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::write(&from, b"weights").expect("write");
        let right = Digest::from_bytes(Sha256::digest(b"weights").into());
        copy_verified(&from, &to, &right, 7).expect("a good copy");
        assert_eq!(std::fs::read(&to).expect("read"), b"weights");
        std::fs::remove_file(&to).expect("remove");
        let wrong = Digest::from_bytes([7; 32]);
        let err = copy_verified(&from, &to, &wrong, 7).expect_err("corrupt");
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(!to.exists(), "a bad copy is not left behind");
    }

    #[test]
    fn a_non_empty_destination_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("x"), b"x").expect("write");
        let err = prepare_empty(dir.path()).expect_err("not empty");
        assert!(err.to_string().contains("is not empty"), "{err}");
        prepare_empty(&dir.path().join("new/dir")).expect("an absent dir is created");
    }
}
