//! The local side of a push: walking a file or directory into version paths (the server's
//! `RelPath` rules, checked here first; symlinks and special files refused), and hashing
//! the files, several at a time, each one streamed through sha256 with its reads on a
//! second thread so the disk and the hash work at the same time.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use super::error::{ClientError, Result};
use crate::domain::{Digest, RelPath};

/// Blocks read at a time while hashing.
const HASH_BLOCK: usize = 1 << 20;
/// Blocks in flight between the reading and the hashing thread of one file.
const HASH_BLOCKS: usize = 3;
/// Files smaller than this are hashed on the worker's own thread: a second thread would
/// cost more than it saves.
const PIPELINE_FROM: u64 = 4 << 20;

/// A file to push: where it is, and the path it gets in the version.
#[derive(Debug, Clone)]
pub struct LocalFile {
    pub path: RelPath,
    pub source: PathBuf,
    pub size: u64,
}

/// The files under `root` (or `root` itself, named by its file name), sorted by path.
pub fn walk(root: &Path) -> Result<Vec<LocalFile>> {
    let meta = std::fs::symlink_metadata(root)
        .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", root.display())))?;
    let mut files = Vec::new();
    if meta.file_type().is_symlink() {
        return Err(ClientError::Usage(format!(
            "{} is a symbolic link; push the file or directory it points at",
            root.display()
        )));
    } else if meta.is_file() {
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ClientError::Usage(format!("{} has no UTF-8 file name", root.display())))?;
        files.push(LocalFile { path: rel_path(name, root)?, source: root.to_owned(), size: meta.len() });
    } else if meta.is_dir() {
        walk_dir(root, "", &mut files)?;
        if files.is_empty() {
            return Err(ClientError::Usage(format!("{} has no files to push", root.display())));
        }
    } else {
        return Err(ClientError::Usage(format!("{} is neither a file nor a directory", root.display())));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk_dir(dir: &Path, prefix: &str, files: &mut Vec<LocalFile>) -> Result<()> {
    let read_error = |e: io::Error| ClientError::failed(format!("cannot read directory {}", dir.display()), &e);
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let source = entry.path();
        let name = entry.file_name();
        let name = name.to_str().ok_or_else(|| {
            ClientError::Usage(format!("{} has a name that is not UTF-8; rename it to push it", source.display()))
        })?;
        let path = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}/{name}") };
        let meta = std::fs::symlink_metadata(&source)
            .map_err(|e| ClientError::failed(format!("cannot read {}", source.display()), &e))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(ClientError::Usage(format!(
                "{} is a symbolic link; a version holds plain files only: copy what it points at, or remove it",
                source.display()
            )));
        } else if kind.is_dir() {
            walk_dir(&source, &path, files)?;
        } else if kind.is_file() {
            files.push(LocalFile { path: rel_path(&path, &source)?, source, size: meta.len() });
        } else {
            return Err(ClientError::Usage(format!(
                "{} is not a regular file (a socket, pipe or device); remove it to push this directory",
                source.display()
            )));
        }
    }
    Ok(())
}

fn rel_path(path: &str, source: &Path) -> Result<RelPath> {
    RelPath::parse(path).map_err(|e| ClientError::Usage(format!("cannot push {}: {e}", source.display())))
}

/// Sha256 of every file, `jobs` files at a time; `progress` is called with byte counts as
/// they are hashed. Fails if a file's size changed since the walk.
pub fn hash_all(files: &[LocalFile], jobs: usize, progress: &(dyn Fn(u64) + Sync)) -> Result<Vec<Digest>> {
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Digest>>>> =
        files.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, files.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let result = hash_file(file, progress);
                    let failed = result.is_err();
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                    if failed {
                        // Stop handing out work; the first error is reported.
                        next.store(files.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut digests = Vec::with_capacity(files.len());
    for (slot, file) in results.into_iter().zip(files) {
        let result = slot.into_inner().ok().flatten().ok_or_else(|| {
            ClientError::Failed(format!("{} was not hashed because another file failed", file.source.display()))
        });
        digests.push(result??);
    }
    Ok(digests)
}

fn hash_file(file: &LocalFile, progress: &(dyn Fn(u64) + Sync)) -> Result<Digest> {
    let io_error = |e: io::Error| ClientError::failed(format!("cannot read {}", file.source.display()), &e);
    let reader = File::open(&file.source).map_err(io_error)?;
    let mut hasher = Sha256::new();
    let hashed = if file.size < PIPELINE_FROM {
        let mut reader = reader;
        let mut buf = vec![0; HASH_BLOCK.min(usize::try_from(file.size).unwrap_or(HASH_BLOCK)).max(1)];
        let mut total = 0u64;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break total,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    total += n as u64;
                    progress(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            }
        }
    } else {
        pipelined(reader, &mut hasher, progress).map_err(io_error)?
    };
    if hashed != file.size {
        return Err(ClientError::Failed(format!(
            "{} changed while it was being pushed ({} bytes when listed, {hashed} when hashed); run push again",
            file.source.display(),
            file.size
        )));
    }
    Ok(Digest::from_bytes(hasher.finalize().into()))
}

/// Reads on a second thread into a few recycled blocks while this one hashes.
fn pipelined(mut reader: File, hasher: &mut Sha256, progress: &(dyn Fn(u64) + Sync)) -> io::Result<u64> {
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(HASH_BLOCKS);
    let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(HASH_BLOCKS);
    for _ in 0..HASH_BLOCKS {
        // Cannot fail: the channel has room for exactly these.
        let _ = empty_tx.send(vec![0; HASH_BLOCK]);
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                let item = loop {
                    match reader.read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        other => break other,
                    }
                };
                let done = !matches!(item, Ok(n) if n > 0);
                if full_tx.send(item.map(|n| (buf, n))).is_err() || done {
                    return;
                }
            }
        });
        let mut total = 0u64;
        loop {
            // The reader sends Ok((_, 0)) at the end; a closed channel means it stopped too.
            let Ok(item) = full_rx.recv() else { return Ok(total) };
            let (buf, n) = item?;
            if n == 0 {
                return Ok(total);
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            progress(n as u64);
            // The reader may have finished already, which is fine.
            let _ = empty_tx.send(buf);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn a_directory_becomes_sorted_slash_separated_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("b/c/deep.bin"), b"deep");
        write(&dir.path().join("a.txt"), b"");
        write(&dir.path().join("b/z.json"), b"{}");
        std::fs::create_dir_all(dir.path().join("empty/dir")).expect("mkdir");
        let files = walk(dir.path()).expect("walk");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.txt", "b/c/deep.bin", "b/z.json"]);
        assert_eq!(files[1].size, 4);
        let single = walk(&dir.path().join("b/z.json")).expect("file");
        assert_eq!(single[0].path.as_str(), "z.json");
    }

    #[test]
    fn symlinks_are_refused_wherever_they_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("real/a.bin"), b"a");
        std::os::unix::fs::symlink(dir.path().join("real/a.bin"), dir.path().join("real/link.bin")).expect("link");
        let err = walk(&dir.path().join("real")).expect_err("refused").to_string();
        assert!(err.contains("link.bin") && err.contains("symbolic link"), "{err}");
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("dirlink")).expect("link");
        assert!(matches!(walk(&dir.path().join("dirlink")), Err(ClientError::Usage(_))));
    }

    #[test]
    fn paths_the_server_would_refuse_are_refused_before_hashing() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("a\\b.bin"), b"x");
        let err = walk(dir.path()).expect_err("refused").to_string();
        assert!(err.contains("'\\'"), "{err}");
    }

    #[test]
    fn hashes_match_sha256_of_the_bytes_on_both_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = b"hello world".to_vec();
        let big: Vec<u8> = (0..(PIPELINE_FROM as usize * 2 + 123)).map(|i| (i % 251) as u8).collect();
        write(&dir.path().join("small"), &small);
        write(&dir.path().join("big"), &big);
        write(&dir.path().join("empty"), b"");
        let files = walk(dir.path()).expect("walk");
        let seen = std::sync::atomic::AtomicU64::new(0);
        let digests = hash_all(&files, 2, &|n| {
            seen.fetch_add(n, Ordering::Relaxed);
        })
        .expect("hash");
        let expect = |bytes: &[u8]| Digest::from_bytes(Sha256::digest(bytes).into());
        assert_eq!(digests, [expect(&big), expect(b""), expect(&small)]);
        assert_eq!(seen.into_inner(), (big.len() + small.len()) as u64);
    }
}
