//! `hangar pull`: every file of a version into a directory, each verified against the
//! digest the server lists. A file already there with the right bytes is kept; a shorter
//! one (an interrupted pull) is continued with `Range`. The server's listing decides names
//! on this disk, so it is distrusted: every path must parse as a `RelPath` (no absolute
//! path, no `..`), and no folder on the way may be a symbolic link.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt as _, TryStreamExt as _};
use indicatif::HumanBytes;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::error::{ClientError, Result};
use super::http::{Client, model_path};
use super::output::{self, Output};
use super::progress::{FileProgress, Progress};
use super::target::{Selector, Target};
use super::views::{Items, RemoteFile};
use crate::domain::{Digest, RelPath};

/// Bytes per block handed to the writing and hashing threads.
const BLOCK: usize = 1 << 20;
/// Blocks queued for each of those threads.
const QUEUE_BLOCKS: usize = 3;
/// Block size for hashing what is already on disk.
const READ_BLOCK: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// MODEL (its newest published version), MODEL:VERSION or MODEL@ALIAS.
    pub target: String,
    /// Where the files go; default: a directory named after the model (without its team), here.
    pub dir: Option<PathBuf>,
    /// Files downloaded at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    #[command(flatten)]
    pub remote: super::Remote,
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetched {
    UpToDate,
    Downloaded { bytes: u64, resumed: bool },
}

/// A listed file whose path passed the checks.
struct Listed {
    path: RelPath,
    size: u64,
    digest: Digest,
}

pub async fn pull(client: &Client, args: &PullArgs, out: Output) -> Result<()> {
    let target = Target::parse(&args.target)?;
    let model = target.model.as_str();
    let version = resolve(client, &target).await?;
    let listing: Items<RemoteFile> = client.get(&model_path(model, &["versions", &version, "files"])).await?;
    let files = check_listing(listing.items)?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(model.rsplit('/').next().unwrap_or(model)));
    std::fs::create_dir_all(&dir).map_err(|e| ClientError::failed(format!("cannot create {}", dir.display()), &e))?;

    let total: u64 = files.iter().map(|f| f.size).sum();
    let started = Instant::now();
    let progress = Progress::new("downloading", "downloaded", total);
    let results: Vec<Fetched> = futures_util::stream::iter(files.iter().map(|file| {
        let bar = progress.file(file.path.as_str(), file.size);
        fetch(client, model, &version, &dir, file, bar)
    }))
    .buffered(usize::from(args.jobs))
    .try_collect()
    .await
    .inspect_err(|_| progress.finish())?;
    progress.finish();

    let mut downloaded_bytes = 0;
    let (mut downloaded, mut resumed, mut up_to_date) = (0, 0, 0);
    for result in &results {
        match result {
            Fetched::UpToDate => up_to_date += 1,
            Fetched::Downloaded { bytes, resumed: r } => {
                downloaded += 1;
                downloaded_bytes += bytes;
                if *r {
                    resumed += 1;
                }
            }
        }
    }
    let summary = json!({
        "model": model, "version": version, "dir": dir.display().to_string(), "files": files.len(), "bytes": total,
        "downloaded_files": downloaded, "downloaded_bytes": downloaded_bytes, "resumed_files": resumed,
        "up_to_date_files": up_to_date,
    });
    out.emit(&summary, || {
        format!(
            "pulled {model}:{version} into {}: {}, {}, all verified; {downloaded} downloaded ({}, {resumed} resumed) in {:.1} s, {up_to_date} already there",
            dir.display(),
            output::files(files.len() as u64),
            HumanBytes(total),
            HumanBytes(downloaded_bytes),
            started.elapsed().as_secs_f64()
        )
    });
    Ok(())
}

/// The version a target names.
pub async fn resolve(client: &Client, target: &Target) -> Result<String> {
    let model = target.model.as_str();
    match &target.selector {
        Selector::Version(version) => {
            let _: Value = client.get(&model_path(model, &["versions", version.as_str()])).await?;
            Ok(version.to_string())
        }
        Selector::Alias(alias) => {
            let found: Value = client.get(&model_path(model, &["aliases", alias.as_str()])).await?;
            found["version"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ClientError::Failed(format!("the server's answer for {target} names no version")))
        }
        Selector::Latest => {
            let found: Value = client.get(&model_path(model, &[])).await?;
            found["latest_version"].as_str().map(str::to_owned).ok_or_else(|| {
                ClientError::NotFound(format!("{model} has no published version yet; name a draft as {model}:VERSION"))
            })
        }
    }
}

/// Refuses a listing with a path that could land outside the directory, a path twice, or
/// a path that is both a file and a folder: before anything is written.
fn check_listing(files: Vec<RemoteFile>) -> Result<Vec<Listed>> {
    let unsafe_path = |path: &str, why: String| {
        ClientError::Failed(format!(
            "the server listed the file {path:?}, which pull will not write: {why}; nothing was downloaded"
        ))
    };
    let mut seen = HashSet::new();
    let mut listed = Vec::with_capacity(files.len());
    for file in files {
        let path = RelPath::parse(&file.path).map_err(|e| unsafe_path(&file.path, e.to_string()))?;
        if !seen.insert(path.as_str().to_owned()) {
            return Err(unsafe_path(&file.path, "it is listed twice".into()));
        }
        listed.push(Listed { path, size: file.size, digest: file.digest });
    }
    for file in &listed {
        let mut folder = String::new();
        for segment in file.path.as_str().split('/').collect::<Vec<_>>().split_last().map_or(&[][..], |(_, f)| f) {
            if !folder.is_empty() {
                folder.push('/');
            }
            folder.push_str(segment);
            if seen.contains(&folder) {
                return Err(unsafe_path(file.path.as_str(), format!("{folder} is listed as a file too")));
            }
        }
    }
    Ok(listed)
}

/// `dir/path`, with the folders on the way created. Refuses to go through anything that
/// is not a real folder (a symbolic link could point anywhere), or to replace a link.
fn prepare(dir: &Path, path: &RelPath) -> Result<PathBuf> {
    let refuse = |at: &Path, why: &str| ClientError::Failed(format!("will not write {path}: {} {why}", at.display()));
    let segments: Vec<&str> = path.as_str().split('/').collect();
    let mut at = dir.to_path_buf();
    for (i, segment) in segments.iter().enumerate() {
        at.push(segment);
        let last = i + 1 == segments.len();
        loop {
            match std::fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(refuse(&at, "is a symbolic link, which could lead outside the directory"));
                }
                Ok(meta) if last && meta.is_dir() => return Err(refuse(&at, "is a folder")),
                Ok(meta) if !last && !meta.is_dir() => return Err(refuse(&at, "is a file, not a folder")),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if last {
                        break;
                    }
                    if let Err(e) = std::fs::create_dir(&at)
                        && e.kind() != io::ErrorKind::AlreadyExists
                    {
                        return Err(ClientError::failed(format!("cannot create {}", at.display()), &e));
                    }
                    // Made now, by us or by another file's download at the same moment: the
                    // next look checks what it is.
                }
                Err(e) => return Err(ClientError::failed(format!("cannot look at {}", at.display()), &e)),
            }
        }
    }
    Ok(at)
}

/// Opens `dest` for writing without following a link at its last component.
fn open_dest(dest: &Path) -> io::Result<File> {
    let no_follow = i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0);
    OpenOptions::new().read(true).write(true).create(true).truncate(false).custom_flags(no_follow).open(dest)
}

async fn fetch(
    client: &Client,
    model: &str,
    version: &str,
    dir: &Path,
    file: &Listed,
    bar: FileProgress,
) -> Result<Fetched> {
    let path = file.path.as_str();
    let dest = prepare(dir, &file.path)?;
    let result = fetch_into(client, model, version, &dest, file, &bar).await;
    match &result {
        Ok(Fetched::Downloaded { .. }) => bar.finish(),
        _ => bar.abandon(),
    }
    result.map_err(|e| e.context(path))
}

async fn fetch_into(
    client: &Client,
    model: &str,
    version: &str,
    dest: &Path,
    file: &Listed,
    bar: &FileProgress,
) -> Result<Fetched> {
    let io_error = |doing: &str, e: io::Error| ClientError::failed(format!("cannot {doing} {}", dest.display()), &e);
    // What is there already: its length, and the hash state over the bytes kept.
    let (kept, mut hasher) = {
        let dest = dest.to_owned();
        let size = file.size;
        let bar = bar.clone();
        tokio::task::spawn_blocking(move || hash_prefix(&dest, size, &bar))
            .await
            .map_err(|e| ClientError::Failed(format!("reading stopped: {e}")))?
            .map_err(|e| io_error("read", e))?
    };
    if let Some(kept) = kept
        && kept == file.size
        && Digest::from_bytes(hasher.clone().finalize().into()) == file.digest
    {
        return Ok(Fetched::UpToDate);
    }
    let mut kept = kept.unwrap_or(0);
    if kept == file.size {
        // Full length but other bytes: start again.
        bar.rewind(kept);
        kept = 0;
        hasher = Sha256::new();
    }
    loop {
        let done = download(client, model, version, dest, file, kept, hasher, bar).await?;
        if done.digest == file.digest {
            return Ok(Fetched::Downloaded { bytes: done.received, resumed: done.from > 0 });
        }
        if done.from > 0 {
            // The kept part was not the start of this file after all: once more, whole.
            bar.rewind(file.size);
            kept = 0;
            hasher = Sha256::new();
            continue;
        }
        let _ = std::fs::remove_file(dest);
        return Err(ClientError::Failed(format!(
            "the bytes received hash to {}, not the {} the server lists; the file was removed",
            done.digest, file.digest
        )));
    }
}

/// Length of `dest` (`None` if absent; a file longer than `size` counts as empty) and the
/// sha256 state over those bytes.
fn hash_prefix(dest: &Path, size: u64, bar: &FileProgress) -> io::Result<(Option<u64>, Sha256)> {
    let mut hasher = Sha256::new();
    let mut file = match File::open(dest) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, hasher)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len > size {
        return Ok((Some(0), hasher));
    }
    let mut buf = vec![0; READ_BLOCK];
    let mut done = 0;
    while done < len {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let n = n.min(usize::try_from(len - done).unwrap_or(n));
        hasher.update(&buf[..n]);
        done += n as u64;
        bar.inc(n as u64);
    }
    Ok((Some(done), hasher))
}

/// A finished download: where it started, what it received, the whole file's digest.
struct Downloaded {
    from: u64,
    received: u64,
    digest: Digest,
}

/// GETs the file from byte `from` (with `If-Range`, so a file that changed comes whole),
/// writes it at that offset and hashes it on two threads.
#[expect(clippy::too_many_arguments, reason = "one download: where from, where to, and how far it is")]
async fn download(
    client: &Client,
    model: &str,
    version: &str,
    dest: &Path,
    file: &Listed,
    from: u64,
    hasher: Sha256,
    bar: &FileProgress,
) -> Result<Downloaded> {
    let mut segments = model_path(model, &["versions", version, "files"]);
    segments.extend(file.path.as_str().split('/'));
    let mut request = client.request(Method::GET, client.url(segments));
    if from > 0 {
        request = request
            .header(header::RANGE, format!("bytes={from}-"))
            .header(header::IF_RANGE, format!("\"{}\"", file.digest));
    }
    let response = client.send(request).await?;
    let (from, hasher) = match response.status() {
        StatusCode::PARTIAL_CONTENT => {
            let expected = format!("bytes {from}-{}/{}", file.size.saturating_sub(1), file.size);
            let got = response.headers().get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
            if got != expected {
                return Err(ClientError::Failed(format!(
                    "asked for bytes {from}- and the server sent {got:?}, not {expected:?}"
                )));
            }
            (from, hasher)
        }
        _ => {
            // The whole file: what was kept does not count.
            bar.rewind(from);
            (0, Sha256::new())
        }
    };
    let want = file.size - from;
    let mut sink = Sink::open(dest, from, hasher)
        .map_err(|e| ClientError::failed(format!("cannot write {}", dest.display()), &e))?;
    let mut stream = response.bytes_stream();
    let mut received = 0u64;
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                failure = Some(ClientError::failed("the download broke off", &e));
                break;
            }
        };
        received += chunk.len() as u64;
        if received > want {
            failure = Some(ClientError::Failed(format!(
                "the server sent more than the {} bytes it lists for this file",
                file.size
            )));
            break;
        }
        bar.inc(chunk.len() as u64);
        if !sink.push(&chunk).await {
            break;
        }
    }
    let digest = sink.finish().await.map_err(|e| ClientError::failed(format!("cannot write {}", dest.display()), &e));
    if let Some(failure) = failure {
        return Err(failure);
    }
    let digest = digest?;
    if received < want {
        return Err(ClientError::Failed(format!(
            "the download stopped after {} of {}; run pull again to continue it",
            HumanBytes(from + received),
            HumanBytes(file.size)
        )));
    }
    Ok(Downloaded { from, received, digest })
}

/// Writes bytes at an offset of a file and hashes them, each on its own thread, so neither
/// waits for the other. The bytes are copied out of the network buffers into a few blocks
/// used in turn: the network buffers are then free again at once and reused, where handing
/// them to the threads made the allocator fault in a fresh buffer per read (216,000 page
/// faults for a 2 GiB pull, against about 3,000 this way).
struct Sink {
    to_disk: mpsc::Sender<Arc<Vec<u8>>>,
    to_hash: mpsc::Sender<Arc<Vec<u8>>>,
    /// Blocks sent, oldest first. Each thread holds at most its queue and one more, so the
    /// oldest of `QUEUE_BLOCKS + 2` has been let go by both and can be filled again.
    sent: VecDeque<Arc<Vec<u8>>>,
    filling: Vec<u8>,
    writer: tokio::task::JoinHandle<io::Result<()>>,
    hasher: tokio::task::JoinHandle<Digest>,
}

impl Sink {
    fn open(dest: &Path, from: u64, mut hasher: Sha256) -> io::Result<Self> {
        let mut file = open_dest(dest)?;
        file.set_len(from)?;
        file.seek(SeekFrom::Start(from))?;
        let (to_disk, mut disk_rx) = mpsc::channel::<Arc<Vec<u8>>>(QUEUE_BLOCKS);
        let (to_hash, mut hash_rx) = mpsc::channel::<Arc<Vec<u8>>>(QUEUE_BLOCKS);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(block) = disk_rx.blocking_recv() {
                file.write_all(&block)?;
            }
            file.flush()
        });
        let hasher = tokio::task::spawn_blocking(move || {
            while let Some(block) = hash_rx.blocking_recv() {
                hasher.update(block.as_slice());
            }
            Digest::from_bytes(hasher.finalize().into())
        });
        let sent = VecDeque::with_capacity(QUEUE_BLOCKS + 2);
        Ok(Self { to_disk, to_hash, sent, filling: Vec::with_capacity(BLOCK), writer, hasher })
    }

    /// False when the writer stopped (a write failed; `finish` says why).
    async fn push(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            let n = (BLOCK - self.filling.len()).min(bytes.len());
            self.filling.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.filling.len() == BLOCK && !self.send().await {
                return false;
            }
        }
        true
    }

    async fn send(&mut self) -> bool {
        let mut next = None;
        if self.sent.len() >= QUEUE_BLOCKS + 2
            && let Some(oldest) = self.sent.pop_front()
        {
            // Should both threads still hold it after all, a new block is made instead.
            next = Arc::try_unwrap(oldest).ok();
        }
        let mut next = next.unwrap_or_else(|| Vec::with_capacity(BLOCK));
        next.clear();
        let block = Arc::new(std::mem::replace(&mut self.filling, next));
        self.sent.push_back(Arc::clone(&block));
        self.to_hash.send(Arc::clone(&block)).await.is_ok() && self.to_disk.send(block).await.is_ok()
    }

    async fn finish(mut self) -> io::Result<Digest> {
        if !self.filling.is_empty() {
            self.send().await;
        }
        drop((self.to_disk, self.to_hash));
        self.writer.await.map_err(io::Error::other)??;
        self.hasher.await.map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(path: &str) -> RemoteFile {
        RemoteFile { path: path.into(), size: 0, digest: Digest::from_bytes([0; 32]) }
    }

    #[test]
    fn listings_with_escaping_or_clashing_paths_are_refused_whole() {
        for bad in [
            vec!["ok.bin", "../escape"],
            vec!["/etc/passwd"],
            vec!["a/../../b"],
            vec!["a\\..\\b"],
            vec!["a", "a"],
            vec!["a", "a/b"],
            vec!["x/y/z", "x/y"],
        ] {
            let files = bad.iter().map(|p| listed(p)).collect();
            assert!(matches!(check_listing(files), Err(ClientError::Failed(_))), "{bad:?}");
        }
        assert_eq!(check_listing(vec![listed("a/b"), listed("a/c"), listed("ab")]).expect("fine").len(), 3);
    }

    #[test]
    fn no_folder_on_the_way_may_be_a_link() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("dir");
        let outside = root.path().join("outside");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::create_dir_all(&outside).expect("outside");
        std::os::unix::fs::symlink(&outside, dir.join("link")).expect("link");
        std::os::unix::fs::symlink(outside.join("target"), dir.join("file-link")).expect("link");
        for bad in ["link/x", "file-link"] {
            let err = prepare(&dir, &RelPath::parse(bad).expect("path")).expect_err(bad).to_string();
            assert!(err.contains("symbolic link"), "{err}");
        }
        let made = prepare(&dir, &RelPath::parse("a/b/c.bin").expect("path")).expect("fine");
        assert_eq!(made, dir.join("a/b/c.bin"));
        assert!(dir.join("a/b").is_dir());
        assert!(std::fs::read_dir(&outside).expect("read").next().is_none());
    }
}
