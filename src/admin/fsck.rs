//! `hangar admin fsck`: checks a data dir's catalog against its files and says what is wrong,
//! by kind.
//!
//! A server may hold the data dir meanwhile (its lock says so): the checks then only read,
//! `tmp/` is not judged (its entries are live uploads) and `--repair` is refused, since an
//! orphan or a staging file may be an upload about to commit. Repair does only what GC or a
//! server start would do (remove staging leftovers, orphans past the grace period, snapshots
//! of deleted versions); a catalog row is never deleted, its fix is said instead.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::catalog::Db;
use sha2::{Digest as _, Sha256};

use crate::blobs::{BlobStore, BucketSettings};
use crate::catalog;
use crate::domain::Digest;

/// What kind of thing is wrong; the report counts each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    MissingBlob,
    WrongSize,
    CorruptBlob,
    OrphanBlob,
    StaleSnapshot,
    IncompleteSnapshot,
    StagingLeftover,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::MissingBlob => "missing-blob",
            Self::WrongSize => "wrong-size",
            Self::CorruptBlob => "corrupt-blob",
            Self::OrphanBlob => "orphan-blob",
            Self::StaleSnapshot => "stale-snapshot",
            Self::IncompleteSnapshot => "incomplete-snapshot",
            Self::StagingLeftover => "staging-leftover",
        }
    }
}

/// One finding, and whether `--repair` fixed it.
#[derive(Debug)]
pub struct Finding {
    pub kind: Kind,
    pub detail: String,
    pub repaired: bool,
}

/// The options of one run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Hash every blob, not only its size.
    pub full: bool,
    pub repair: bool,
    /// Orphans younger than this are left to GC (an upload may be about to commit them).
    pub grace_secs: u64,
}

/// Checks `data_dir` (and `bucket`, where its blobs live there); `server_running` when another
/// process holds its lock.
pub async fn check(
    pool: &Db,
    data_dir: &Path,
    bucket: Option<&BucketSettings>,
    options: Options,
    server_running: bool,
) -> anyhow::Result<Vec<Finding>> {
    anyhow::ensure!(
        !(options.repair && server_running),
        "a server holds {}; stop it before --repair (checking alone works while it runs)",
        data_dir.display()
    );
    let mut findings = Vec::new();
    let store = BlobStore::open_with(data_dir, bucket)?;
    let rows = catalog::blobs::sizes(pool).await?;
    for (digest, size) in &rows {
        let Some(stored) = store.size_of(digest).await? else {
            // GC may have removed an unreferenced blob, row and bytes, since the rows were read.
            if catalog::blobs::exists(pool, digest).await? {
                let where_ = if store.is_remote() { "is not in the bucket" } else { "is not on disk" };
                findings.push(row_problem(Kind::MissingBlob, digest, where_));
            }
            continue;
        };
        if stored != *size {
            findings.push(row_problem(Kind::WrongSize, digest, &format!("has {stored} bytes, the row says {size}")));
        } else if options.full {
            let actual = hash_blob(&store, digest, stored).await?;
            if actual != *digest {
                findings.push(row_problem(Kind::CorruptBlob, digest, &format!("hashes to {actual}")));
            }
        }
    }

    let known: HashSet<Digest> = rows.iter().map(|(digest, _)| *digest).collect();
    for (digest, age_secs) in store.list_on_disk().await? {
        if known.contains(&digest) || catalog::blobs::exists(pool, &digest).await? {
            continue;
        }
        let old = age_secs >= options.grace_secs;
        let repaired = options.repair && old && {
            store.delete(&digest).await?;
            true
        };
        let detail = if old {
            format!("blob {digest} has no row ({age_secs}s old)")
        } else {
            format!("blob {digest} has no row; younger than the grace period ({age_secs}s), left to GC")
        };
        findings.push(Finding { kind: Kind::OrphanBlob, detail, repaired });
    }

    snapshots(pool, &store, data_dir, options, &mut findings).await?;

    if !server_running {
        for entry in std::fs::read_dir(data_dir.join("tmp"))? {
            let path = entry?.path();
            let repaired = options.repair && {
                remove_any(&path)?;
                true
            };
            findings.push(Finding {
                kind: Kind::StagingLeftover,
                detail: format!("{} is left from an upload or snapshot that never finished", path.display()),
                repaired,
            });
        }
    }
    Ok(findings)
}

fn row_problem(kind: Kind, digest: &Digest, what: &str) -> Finding {
    Finding {
        kind,
        detail: format!(
            "blob {digest} {what}; restore it from a backup, or delete the versions that name it \
             (fsck never deletes catalog rows)"
        ),
        repaired: false,
    }
}

/// Snapshots of deleted versions (repairable: GC removes them too) and snapshots that lack a
/// file of their version or hold one of the wrong size (said, not removed: a container may
/// mount it).
async fn snapshots(
    pool: &Db,
    store: &BlobStore,
    data_dir: &Path,
    options: Options,
    findings: &mut Vec<Finding>,
) -> anyhow::Result<()> {
    let versions = catalog::versions::all_names(pool).await?;
    for stale in store.snapshots_except(&versions).await? {
        let repaired = options.repair && {
            remove_any(&stale)?;
            true
        };
        findings.push(Finding {
            kind: Kind::StaleSnapshot,
            detail: format!("{} is the snapshot of a deleted version", stale.display()),
            repaired,
        });
    }
    let mut expected: BTreeMap<(String, String), Vec<(String, i64)>> = BTreeMap::new();
    for file in catalog::blobs::ready_files(pool).await? {
        expected.entry((file.model, file.version)).or_default().push((file.path, file.size));
    }
    let deployed = catalog::blobs::deployed_versions(pool).await?;
    let root = data_dir.join("snapshots");
    for ((model, version), files) in &expected {
        let dir = root.join(model).join(version);
        if !dir.is_dir() {
            continue;
        }
        let wrong: Vec<&str> = files
            .iter()
            .filter(|(path, size)| {
                let on_disk = std::fs::metadata(dir.join(path)).ok().and_then(|meta| i64::try_from(meta.len()).ok());
                on_disk != Some(*size)
            })
            .map(|(path, _)| path.as_str())
            .collect();
        if !wrong.is_empty() {
            let used = if deployed.contains(&(model.clone(), version.clone())) { "deployed" } else { "not deployed" };
            findings.push(Finding {
                kind: Kind::IncompleteSnapshot,
                detail: format!(
                    "{} ({used}) lacks or has the wrong size of: {}; stop its deployments, remove the directory, \
                     and the next deploy rebuilds it",
                    dir.display(),
                    wrong.join(", ")
                ),
                repaired: false,
            });
        }
    }
    Ok(())
}

/// Reads a whole blob from the store (the disk or the bucket) and hashes it.
async fn hash_blob(store: &BlobStore, digest: &Digest, size: u64) -> anyhow::Result<Digest> {
    use futures_util::TryStreamExt as _;
    let mut hasher = Sha256::new();
    let mut bytes = store.read(digest, 0..size).await?;
    while let Some(chunk) = bytes.try_next().await? {
        hasher.update(&chunk);
    }
    Ok(Digest::from_bytes(hasher.finalize().into()))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
}

/// Prints every finding and the counts by kind; `Ok(false)` when something is left unfixed.
pub fn report(findings: &[Finding]) -> bool {
    let mut counts: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    for finding in findings {
        let mark = if finding.repaired { "repaired" } else { "problem" };
        println!("{mark}\t{}\t{}", finding.kind.as_str(), finding.detail);
        let count = counts.entry(finding.kind).or_default();
        count.0 += 1;
        count.1 += usize::from(finding.repaired);
    }
    if counts.is_empty() {
        println!("fsck: clean");
        return true;
    }
    let summary: Vec<String> =
        counts.iter().map(|(kind, (found, fixed))| format!("{} {found} ({fixed} repaired)", kind.as_str())).collect();
    println!("fsck: {}", summary.join(", "));
    findings.iter().all(|finding| finding.repaired)
}
