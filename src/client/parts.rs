//! `hangar push` for big files: one file sent in parts through an upload session, so a cut
//! connection costs one part, not the file. Each part is tried a few times before the push
//! gives up; a push run again finds the draft's session for the same file (path, size and
//! digest) and sends only the parts it lacks. The server hashes the whole once at the end.

use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use reqwest::{Method, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ClientError, Result};
use super::http::{Client, model_path};
use super::progress::FileProgress;
use crate::domain::{Digest, RelPath};

/// Files bigger than this many MiB go in parts when `--part-size-mib` is not given.
pub const DEFAULT_PART_SIZE_MIB: u64 = 64;
/// Tries per part before the push fails (and can be run again to continue).
const TRIES: u32 = 4;
/// Bytes per chunk of a part's body.
const CHUNK: usize = 256 * 1024;

/// A session as the server shows it.
#[derive(Debug, Deserialize)]
struct Session {
    id: String,
    path: String,
    size: u64,
    digest: Digest,
    part_size: u64,
    missing: Vec<u64>,
}

#[derive(Deserialize)]
struct Sessions {
    items: Vec<Session>,
}

/// The file to send.
pub struct Part<'a> {
    pub path: &'a RelPath,
    pub source: &'a PathBuf,
    pub size: u64,
    pub digest: &'a Digest,
}

/// Sends `file` in parts of `part_size` bytes, continuing a session the draft already has for
/// it, then completes the session.
pub async fn upload(
    client: &Client,
    model: &str,
    version: &str,
    file: &Part<'_>,
    part_size: u64,
    bar: &FileProgress,
) -> Result<()> {
    let uploads = model_path(model, &["versions", version, "uploads"]);
    let existing: Sessions = client.get(&uploads).await?;
    let session = match existing
        .items
        .into_iter()
        .find(|s| s.path == file.path.as_str() && s.size == file.size && s.digest == *file.digest)
    {
        Some(session) => session,
        None => {
            let body = json!({
                "path": file.path.as_str(), "size": file.size, "digest": file.digest, "part_size": part_size,
            });
            client.post(&uploads, &body).await?
        }
    };
    let missing_bytes: u64 = session.missing.iter().map(|&n| part_len(&session, n)).sum();
    bar.inc(file.size - missing_bytes);
    for &n in &session.missing {
        send_part(client, model, version, file, &session, n, bar).await?;
    }
    let complete = model_path(model, &["versions", version, "uploads", &session.id, "complete"]);
    let _: Value = client.post(&complete, &json!(null)).await?;
    Ok(())
}

fn part_len(session: &Session, n: u64) -> u64 {
    let start = n * session.part_size;
    (start + session.part_size).min(session.size) - start
}

/// Sends part `n`, trying again after a failure the server or the network may get over.
async fn send_part(
    client: &Client,
    model: &str,
    version: &str,
    file: &Part<'_>,
    session: &Session,
    n: u64,
    bar: &FileProgress,
) -> Result<()> {
    let number = n.to_string();
    let url = client.url(model_path(model, &["versions", version, "uploads", &session.id, "parts", &number]));
    let (offset, len) = (n * session.part_size, part_len(session, n));
    let mut tries = 0;
    loop {
        tries += 1;
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let request = client
            .request(Method::PUT, url.clone())
            .header(header::CONTENT_LENGTH, len)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(part_body(file.source.clone(), offset, len, bar.clone(), sent.clone()));
        match client.send(request).await {
            Ok(_) => return Ok(()),
            // A refusal (a part that does not fit, a session gone) will not change on a retry.
            Err(e @ (ClientError::NotFound(_) | ClientError::Auth(_) | ClientError::Usage(_))) => {
                return Err(e.context(format!("sending part {n} of {}", file.path)));
            }
            Err(e) if tries >= TRIES => {
                return Err(e.context(format!(
                    "sending part {n} of {} failed {TRIES} times; run push again to continue from there",
                    file.path
                )));
            }
            Err(_) => {
                bar.rewind(sent.load(std::sync::atomic::Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(500 << tries)).await;
            }
        }
    }
}

/// `len` bytes of the file from `offset`, read on a blocking thread as the socket takes them.
fn part_body(
    source: PathBuf,
    offset: u64,
    len: u64,
    bar: FileProgress,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = read_part(&source, offset, len, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
        .inspect_ok(move |chunk| {
            bar.inc(chunk.len() as u64);
            sent.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        });
    reqwest::Body::wrap_stream(stream)
}

fn read_part(
    source: &PathBuf,
    offset: u64,
    len: u64,
    tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut file = std::fs::File::open(source)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut remaining = len;
    while remaining > 0 {
        let mut buf = Vec::with_capacity(CHUNK);
        let n = (&mut file).take(remaining.min(CHUNK as u64)).read_to_end(&mut buf)?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "{} changed while it was being pushed; run push again",
                source.display()
            )));
        }
        remaining -= n as u64;
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
