//! `hangar push`: a file or directory becomes a version. Files are hashed locally first;
//! then only what the server lacks is sent. A file already in the draft with the same
//! digest is left alone, a blob the store already has is linked by digest (no bytes sent),
//! and the rest is streamed with `?digest=` so the server refuses bytes that changed on the
//! way; a file bigger than the part size goes in parts through an upload session
//! (`parts.rs`). A push that was interrupted continues its draft, and its files' sessions,
//! when run again, so nothing that arrived the first time is sent twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use indicatif::HumanBytes;
use reqwest::{Method, header};
use serde_json::{Value, json};

use super::error::{ClientError, Result};
use super::http::{Client, model_path};
use super::local::{self, LocalFile};
use super::output::{Output, files};
use super::parts;
use super::progress::{FileProgress, Progress};
use super::views::{Items, RemoteFile, VersionInfo};
use crate::domain::{AliasName, Digest, ModelName, RelPath, VersionName};

/// Bytes per chunk of an upload body.
const UPLOAD_CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the socket per upload.
const UPLOAD_QUEUE: usize = 4;
/// Blob lookups, links and deletes in flight at once: small requests, so more of them.
const SMALL_REQUESTS: usize = 16;

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// A file, or a directory (walked; symbolic links are refused).
    pub path: PathBuf,
    /// The model, created if it does not exist yet.
    #[arg(long)]
    pub model: String,
    /// The version's name; without it, the next number, or the newest draft if it holds
    /// nothing but files of PATH (an interrupted push).
    #[arg(long)]
    pub version: Option<String>,
    /// Point this alias at the version once it is published.
    #[arg(long)]
    pub alias: Option<String>,
    /// Metadata: KEY=VALUE sets a string, KEY:=JSON any JSON value (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// A model card, pushed as the version's README.md.
    #[arg(long, value_name = "FILE")]
    pub card: Option<PathBuf>,
    /// Leave the version a draft.
    #[arg(long)]
    pub no_publish: bool,
    /// Files hashed and uploaded at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Files bigger than this go up in parts of this size through an upload session: a cut
    /// connection costs one part, and a push run again sends only the parts still missing.
    #[arg(long, value_name = "MIB", default_value_t = super::parts::DEFAULT_PART_SIZE_MIB,
        value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub part_size_mib: u64,
    #[command(flatten)]
    pub remote: super::Remote,
}

type Metadata = serde_json::Map<String, Value>;

/// The command line, parsed.
struct Request {
    model: ModelName,
    version: Option<VersionName>,
    alias: Option<AliasName>,
    metadata: Option<Metadata>,
    publish: bool,
    jobs: usize,
    /// Bytes: files bigger than this are sent in parts.
    part_size: u64,
}

impl Request {
    fn parse(args: &PushArgs) -> Result<Self> {
        let usage = |e: crate::domain::NameError| ClientError::Usage(e.to_string());
        let alias = args.alias.as_deref().map(AliasName::parse).transpose().map_err(usage)?;
        if alias.is_some() && args.no_publish {
            return Err(ClientError::Usage(
                "--alias points at a published version, and --no-publish leaves a draft; drop one".into(),
            ));
        }
        Ok(Self {
            model: ModelName::parse(&args.model).map_err(usage)?,
            version: args.version.as_deref().map(VersionName::parse).transpose().map_err(usage)?,
            alias,
            metadata: if args.meta.is_empty() { None } else { Some(parse_meta(&args.meta)?) },
            publish: !args.no_publish,
            jobs: usize::from(args.jobs),
            part_size: args.part_size_mib << 20,
        })
    }
}

/// `KEY=VALUE` (a string) and `KEY:=JSON` (any JSON value).
fn parse_meta(pairs: &[String]) -> Result<Metadata> {
    let mut metadata = Metadata::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(ClientError::Usage(format!(
                "--meta {pair:?}: write KEY=VALUE, or KEY:=JSON for a number, list …"
            )));
        };
        let (key, value) = match key.strip_suffix(':') {
            Some(key) => {
                let value = serde_json::from_str(value)
                    .map_err(|e| ClientError::Usage(format!("--meta {pair:?}: the value after := is not JSON: {e}")))?;
                (key, value)
            }
            None => (key, Value::String(value.to_owned())),
        };
        if key.is_empty() {
            return Err(ClientError::Usage(format!("--meta {pair:?}: the key is empty")));
        }
        if metadata.insert(key.to_owned(), value).is_some() {
            return Err(ClientError::Usage(format!("--meta {key} is given twice")));
        }
    }
    Ok(metadata)
}

/// A local file and its digest.
#[derive(Debug, Clone)]
struct Hashed {
    file: LocalFile,
    digest: Digest,
}

/// What the server must be told, given the draft's files.
#[derive(Debug, Default)]
struct Plan<'a> {
    /// Already in the draft, same bytes.
    unchanged: Vec<&'a Hashed>,
    /// In the draft, not in PATH.
    stale: Vec<String>,
    /// Files to link or upload, grouped by digest so the same bytes go up once.
    needed: Vec<Group<'a>>,
}

#[derive(Debug)]
struct Group<'a> {
    digest: Digest,
    size: u64,
    files: Vec<&'a Hashed>,
}

fn plan<'a>(local: &'a [Hashed], draft: &[RemoteFile]) -> Plan<'a> {
    let in_draft: HashMap<&str, &RemoteFile> = draft.iter().map(|f| (f.path.as_str(), f)).collect();
    let local_paths: HashSet<&str> = local.iter().map(|h| h.file.path.as_str()).collect();
    let mut plan = Plan::default();
    let mut groups: BTreeMap<String, Group<'a>> = BTreeMap::new();
    for hashed in local {
        match in_draft.get(hashed.file.path.as_str()) {
            Some(remote) if remote.digest == hashed.digest && remote.size == hashed.file.size => {
                plan.unchanged.push(hashed);
            }
            _ => groups
                .entry(hashed.digest.to_string())
                .or_insert_with(|| Group { digest: hashed.digest, size: hashed.file.size, files: Vec::new() })
                .files
                .push(hashed),
        }
    }
    plan.stale = draft.iter().filter(|f| !local_paths.contains(f.path.as_str())).map(|f| f.path.clone()).collect();
    plan.needed = groups.into_values().collect();
    plan
}

/// The server's manifest digest of these files, to tell whether a published version holds
/// exactly them.
fn manifest(local: &[Hashed]) -> Digest {
    let mut lines: Vec<(&str, String, i64)> = local
        .iter()
        .map(|h| (h.file.path.as_str(), h.digest.to_string(), i64::try_from(h.file.size).unwrap_or(i64::MAX)))
        .collect();
    lines.sort();
    crate::catalog::versions::manifest_digest(lines.iter().map(|(p, d, s)| (*p, d.as_str(), *s)))
}

/// Whether every file of a draft is one of PATH's, unchanged: then the draft is what an
/// earlier, interrupted push of PATH left, and it can be continued.
fn continues(draft: &[RemoteFile], local: &[Hashed]) -> bool {
    let local: HashMap<&str, &Hashed> = local.iter().map(|h| (h.file.path.as_str(), h)).collect();
    draft.iter().all(|f| local.get(f.path.as_str()).is_some_and(|h| h.digest == f.digest && h.file.size == f.size))
}

/// Where the files go.
enum Destination {
    Draft {
        version: String,
        files: Vec<RemoteFile>,
        resumed: bool,
    },
    /// `--version` names a published version with exactly these files.
    Published(VersionInfo),
}

#[derive(Debug, Default)]
struct Counts {
    uploaded_files: usize,
    uploaded_bytes: u64,
    linked_files: usize,
}

pub async fn push(client: &Client, args: &PushArgs, out: Output) -> Result<()> {
    let request = Request::parse(args)?;
    let mut tree = local::walk(&args.path)?;
    if let Some(card) = &args.card {
        add_card(&mut tree, card)?;
    }
    let local = hash(tree, request.jobs).await?;
    let total_bytes: u64 = local.iter().map(|h| h.file.size).sum();
    ensure_model(client, &request.model).await?;
    let model = request.model.as_str();

    let (version, draft_files, resumed) = match destination(client, &request, &local).await? {
        Destination::Published(info) => {
            eprintln!("{model}:{} is already published with exactly these files", info.version);
            if request.metadata.is_some() {
                eprintln!("warning: --meta is not applied; a published version's metadata never changes");
            }
            if let Some(alias) = &request.alias {
                set_alias(client, model, alias, &info.version).await?;
            }
            let summary = json!({
                "model": model, "version": info.version, "state": info.state,
                "manifest_digest": info.manifest_digest, "files": local.len(), "bytes": total_bytes,
                "uploaded_files": 0, "uploaded_bytes": 0, "linked_files": 0, "unchanged_files": local.len(),
                "deleted_files": 0, "resumed": false, "alias": request.alias,
            });
            out.emit(&summary, || text_summary(&summary));
            return Ok(());
        }
        Destination::Draft { version, files, resumed } => (version, files, resumed),
    };
    if resumed {
        eprintln!("continuing draft {model}:{version} ({} already there)", files(draft_files.len() as u64));
        if let Some(metadata) = &request.metadata {
            let _: Value =
                client.patch(&model_path(model, &["versions", &version]), &json!({ "metadata": metadata })).await?;
        }
    }

    let plan = plan(&local, &draft_files);
    let counts = send(client, model, &version, &plan, &request).await?;
    let info: VersionInfo = if request.publish {
        client.post(&model_path(model, &["versions", &version, "publish"]), &json!({})).await?
    } else {
        client.get(&model_path(model, &["versions", &version])).await?
    };
    if let Some(alias) = &request.alias {
        set_alias(client, model, alias, &version).await?;
    }
    let summary = json!({
        "model": model, "version": version, "state": info.state, "manifest_digest": info.manifest_digest,
        "files": local.len(), "bytes": total_bytes,
        "uploaded_files": counts.uploaded_files, "uploaded_bytes": counts.uploaded_bytes,
        "linked_files": counts.linked_files, "unchanged_files": plan.unchanged.len(),
        "deleted_files": plan.stale.len(), "resumed": resumed, "alias": request.alias,
    });
    out.emit(&summary, || text_summary(&summary));
    Ok(())
}

/// Brings the draft in line with the plan: stale paths removed, known blobs linked, the
/// rest uploaded, `jobs` digests at a time.
async fn send(client: &Client, model: &str, version: &str, plan: &Plan<'_>, request: &Request) -> Result<Counts> {
    futures_util::stream::iter(plan.stale.iter().map(|path| {
        let segments = file_segments(model, version, path);
        async move { client.delete(&segments).await.map_err(|e| e.context(format!("removing {path} from the draft"))) }
    }))
    .buffer_unordered(SMALL_REQUESTS)
    .try_collect::<Vec<()>>()
    .await?;

    let known: Vec<bool> = futures_util::stream::iter(plan.needed.iter().map(|g| blob_exists(client, &g.digest)))
        .buffered(SMALL_REQUESTS)
        .try_collect()
        .await?;
    let to_upload: u64 = plan.needed.iter().zip(&known).filter(|(_, k)| !**k).map(|(g, _)| g.size).sum();
    let started = Instant::now();
    let progress = Progress::new("uploading", "uploaded", to_upload);
    let counts: Vec<Counts> = futures_util::stream::iter(
        plan.needed
            .iter()
            .zip(known)
            .map(|(group, known)| send_group(client, model, version, group, known, request.part_size, &progress)),
    )
    .buffer_unordered(request.jobs)
    .try_collect()
    .await
    .inspect_err(|_| progress.finish())?;
    progress.finish();
    let counts = counts.into_iter().fold(Counts::default(), |mut sum, c| {
        sum.uploaded_files += c.uploaded_files;
        sum.uploaded_bytes += c.uploaded_bytes;
        sum.linked_files += c.linked_files;
        sum
    });
    if counts.uploaded_files > 0 {
        eprintln!(
            "uploaded {} ({}) in {:.1} s",
            files(counts.uploaded_files as u64),
            HumanBytes(counts.uploaded_bytes),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(counts)
}

fn text_summary(s: &Value) -> String {
    let n = |key: &str| s[key].as_u64().unwrap_or(0);
    let mut text = format!(
        "{}:{} is {}: {}, {}; {} uploaded ({}), {} linked to bytes the server had, {} already there",
        s["model"].as_str().unwrap_or_default(),
        s["version"].as_str().unwrap_or_default(),
        s["state"].as_str().unwrap_or_default(),
        files(n("files")),
        HumanBytes(n("bytes")),
        n("uploaded_files"),
        HumanBytes(n("uploaded_bytes")),
        n("linked_files"),
        n("unchanged_files"),
    );
    if n("deleted_files") > 0 {
        text.push_str(&format!(", {} removed from the draft", n("deleted_files")));
    }
    if let Some(manifest) = s["manifest_digest"].as_str() {
        text.push_str(&format!("\nmanifest {manifest}"));
    }
    if let Some(alias) = s["alias"].as_str() {
        text.push_str(&format!(
            "\n{}@{alias} -> {}",
            s["model"].as_str().unwrap_or_default(),
            s["version"].as_str().unwrap_or_default()
        ));
    }
    text
}

/// `--card FILE` becomes the version's `README.md`.
fn add_card(tree: &mut Vec<LocalFile>, card: &Path) -> Result<()> {
    let meta = std::fs::metadata(card).map_err(|e| ClientError::Usage(format!("--card {}: {e}", card.display())))?;
    if !meta.is_file() {
        return Err(ClientError::Usage(format!("--card {} is not a file", card.display())));
    }
    let readme = RelPath::parse("README.md").map_err(|e| ClientError::Failed(e.to_string()))?;
    if tree.iter().any(|f| f.path == readme) {
        return Err(ClientError::Usage(format!(
            "the pushed files include a README.md, and --card {} would replace it; drop one of them",
            card.display()
        )));
    }
    tree.push(LocalFile { path: readme, source: card.to_owned(), size: meta.len() });
    tree.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(())
}

async fn hash(tree: Vec<LocalFile>, jobs: usize) -> Result<Vec<Hashed>> {
    let total: u64 = tree.iter().map(|f| f.size).sum();
    let count = tree.len();
    let progress = Progress::new("hashing", "hashed", total);
    let started = Instant::now();
    let bar = progress.clone();
    let (tree, digests) = tokio::task::spawn_blocking(move || {
        let digests = local::hash_all(&tree, jobs, &|n| bar.inc(n));
        (tree, digests)
    })
    .await
    .map_err(|e| ClientError::Failed(format!("hashing stopped: {e}")))?;
    progress.finish();
    let digests = digests?;
    eprintln!("hashed {} ({}) in {:.1} s", files(count as u64), HumanBytes(total), started.elapsed().as_secs_f64());
    Ok(tree.into_iter().zip(digests).map(|(file, digest)| Hashed { file, digest }).collect())
}

async fn ensure_model(client: &Client, model: &ModelName) -> Result<()> {
    match client.get::<Value>(&model_path(model.as_str(), &[])).await {
        Ok(_) => Ok(()),
        Err(ClientError::NotFound(_)) => {
            match client.post::<_, Value>(&["api", "v1", "models"], &json!({ "name": model })).await {
                Ok(_) => {
                    eprintln!("created model {model}");
                    Ok(())
                }
                // Someone else created it in between: just as good.
                Err(ClientError::Conflict(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

async fn destination(client: &Client, request: &Request, local: &[Hashed]) -> Result<Destination> {
    let model = request.model.as_str();
    let list_files = |version: String| async move {
        let files: Items<RemoteFile> = client.get(&model_path(model, &["versions", &version, "files"])).await?;
        Ok::<_, ClientError>(files.items)
    };
    if let Some(version) = &request.version {
        return match client.get::<VersionInfo>(&model_path(model, &["versions", version.as_str()])).await {
            Ok(info) if info.is_draft() => Ok(Destination::Draft {
                files: list_files(info.version.clone()).await?,
                version: info.version,
                resumed: true,
            }),
            Ok(info) => {
                let ours = manifest(local);
                if info.manifest_digest == Some(ours) {
                    Ok(Destination::Published(info))
                } else {
                    Err(ClientError::Conflict(format!(
                        "{model}:{version} is published with other files (its manifest is {}, this push's is {ours}); \
                         published versions never change: push under another --version, or without one",
                        info.manifest_digest.map_or_else(|| "unknown".to_owned(), |d| d.to_string())
                    )))
                }
            }
            Err(ClientError::NotFound(_)) => create_version(client, request, Some(version)).await,
            Err(e) => Err(e),
        };
    }
    let mut url = client.url(model_path(model, &["versions"]));
    url.query_pairs_mut().append_pair("limit", "1");
    let newest: Items<VersionInfo> = client.json(client.request(Method::GET, url)).await?;
    if let Some(newest) = newest.items.into_iter().next().filter(VersionInfo::is_draft) {
        let files = list_files(newest.version.clone()).await?;
        if continues(&files, local) {
            return Ok(Destination::Draft { version: newest.version, files, resumed: true });
        }
    }
    create_version(client, request, None).await
}

async fn create_version(client: &Client, request: &Request, version: Option<&VersionName>) -> Result<Destination> {
    let mut body = json!({ "metadata": request.metadata.clone().unwrap_or_default() });
    if let Some(version) = version {
        body["version"] = json!(version);
    }
    let info: VersionInfo = client.post(&model_path(request.model.as_str(), &["versions"]), &body).await?;
    eprintln!("created draft {}:{}", request.model, info.version);
    Ok(Destination::Draft { version: info.version, files: Vec::new(), resumed: false })
}

async fn set_alias(client: &Client, model: &str, alias: &AliasName, version: &str) -> Result<()> {
    let _: Value = client.put(&model_path(model, &["aliases", alias.as_str()]), &json!({ "version": version })).await?;
    Ok(())
}

fn file_segments<'a>(model: &'a str, version: &'a str, path: &'a str) -> Vec<&'a str> {
    let mut segments = model_path(model, &["versions", version, "files"]);
    segments.extend(path.split('/'));
    segments
}

async fn blob_exists(client: &Client, digest: &Digest) -> Result<bool> {
    let digest = digest.to_string();
    let request = client.request(Method::HEAD, client.url(["api", "v1", "blobs", digest.as_str()]));
    match client.send(request).await {
        Ok(_) => Ok(true),
        Err(ClientError::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Links or uploads one group of files with the same bytes: the bytes go up at most once.
async fn send_group(
    client: &Client,
    model: &str,
    version: &str,
    group: &Group<'_>,
    known: bool,
    part_size: u64,
    progress: &Progress,
) -> Result<Counts> {
    let mut counts = Counts::default();
    let mut stored = known;
    for hashed in &group.files {
        let path = hashed.file.path.as_str();
        if stored {
            let body = json!({ "digest": group.digest, "size": group.size });
            match client.post::<_, Value>(&file_segments(model, version, path), &body).await {
                Ok(_) => {
                    counts.linked_files += 1;
                    continue;
                }
                // Collected by the server's garbage collection since we asked: send the bytes.
                Err(ClientError::NotFound(_)) => {}
                Err(e) => return Err(e.context(format!("linking {path}"))),
            }
        }
        upload(client, model, version, hashed, part_size, progress.file(path, hashed.file.size)).await?;
        counts.uploaded_files += 1;
        counts.uploaded_bytes += hashed.file.size;
        stored = true;
    }
    Ok(counts)
}

async fn upload(
    client: &Client,
    model: &str,
    version: &str,
    hashed: &Hashed,
    part_size: u64,
    bar: FileProgress,
) -> Result<()> {
    let path = hashed.file.path.as_str();
    if hashed.file.size > part_size {
        let file = parts::Part {
            path: &hashed.file.path,
            source: &hashed.file.source,
            size: hashed.file.size,
            digest: &hashed.digest,
        };
        return match parts::upload(client, model, version, &file, part_size, &bar).await {
            Ok(()) => {
                bar.finish();
                Ok(())
            }
            Err(e) => {
                bar.abandon();
                Err(e.context(format!("uploading {path}")))
            }
        };
    }
    let mut url = client.url(file_segments(model, version, path));
    url.query_pairs_mut().append_pair("digest", &hashed.digest.to_string());
    let request = client
        .request(Method::PUT, url)
        .header(header::CONTENT_LENGTH, hashed.file.size)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(file_body(hashed.file.source.clone(), hashed.file.size, bar.clone()));
    match client.send(request).await {
        Ok(_) => {
            bar.finish();
            Ok(())
        }
        Err(e) => {
            bar.abandon();
            Err(e.context(format!("uploading {path}")))
        }
    }
}

/// The file's bytes as a request body, read on a blocking thread a few chunks ahead of the
/// socket. A file that is not `size` bytes any more ends the body with an error.
fn file_body(source: PathBuf, size: u64, bar: FileProgress) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(UPLOAD_QUEUE);
    tokio::task::spawn_blocking(move || {
        let result = read_chunks(&source, size, &tx);
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
        .inspect_ok(move |chunk| bar.inc(chunk.len() as u64));
    reqwest::Body::wrap_stream(stream)
}

fn read_chunks(source: &Path, size: u64, tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>) -> io::Result<()> {
    let changed =
        || io::Error::other(format!("{} changed while it was being pushed; run push again", source.display()));
    let mut file = std::fs::File::open(source)?;
    let mut remaining = size;
    while remaining > 0 {
        let want = remaining.min(UPLOAD_CHUNK as u64);
        // read_to_end fills spare capacity without zeroing it first.
        let mut buf = Vec::with_capacity(UPLOAD_CHUNK);
        let n = (&mut file).take(want).read_to_end(&mut buf)?;
        if n == 0 {
            return Err(changed());
        }
        remaining -= n as u64;
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            // The request was dropped (failed, or the push is ending): stop reading.
            return Ok(());
        }
    }
    if file.read(&mut [0u8; 1])? > 0 {
        return Err(changed());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(path: &str, bytes: &[u8]) -> Hashed {
        use sha2::Digest as _;
        Hashed {
            file: LocalFile {
                path: RelPath::parse(path).expect("path"),
                source: PathBuf::from(path),
                size: bytes.len() as u64,
            },
            digest: Digest::from_bytes(sha2::Sha256::digest(bytes).into()),
        }
    }

    fn remote(h: &Hashed) -> RemoteFile {
        RemoteFile { path: h.file.path.to_string(), size: h.file.size, digest: h.digest }
    }

    #[test]
    fn the_plan_sends_each_new_digest_once_and_drops_stale_paths() {
        let local = vec![hashed("a", b"same"), hashed("b", b"dup"), hashed("c/d", b"dup"), hashed("e", b"new")];
        let draft = vec![remote(&local[0]), remote(&hashed("e", b"old")), remote(&hashed("gone", b"x"))];
        let plan = plan(&local, &draft);
        assert_eq!(plan.unchanged.iter().map(|h| h.file.path.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(plan.stale, ["gone"]);
        let mut groups: Vec<Vec<&str>> =
            plan.needed.iter().map(|g| g.files.iter().map(|h| h.file.path.as_str()).collect()).collect();
        groups.sort();
        assert_eq!(groups, [vec!["b", "c/d"], vec!["e"]]);
    }

    #[test]
    fn a_draft_is_continued_only_if_it_holds_nothing_but_our_files() {
        let local = vec![hashed("a", b"1"), hashed("b", b"2")];
        assert!(continues(&[], &local));
        assert!(continues(&[remote(&local[1])], &local));
        assert!(!continues(&[remote(&hashed("a", b"other"))], &local));
        assert!(!continues(&[remote(&hashed("z", b"1"))], &local));
    }

    #[test]
    fn the_manifest_matches_the_servers_definition() {
        let local = vec![hashed("b/c", b""), hashed("a", b"")];
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let expected = crate::catalog::versions::manifest_digest([("a", empty, 0), ("b/c", empty, 0)].into_iter());
        assert_eq!(manifest(&local), expected);
    }

    #[test]
    fn metadata_takes_strings_and_json() {
        let meta =
            parse_meta(&["format=gguf".into(), "params:=8000000000".into(), "tags:=[\"a\"]".into(), "eq=a=b".into()])
                .expect("meta");
        assert_eq!(
            Value::Object(meta),
            json!({"format": "gguf", "params": 8_000_000_000_u64, "tags": ["a"], "eq": "a=b"})
        );
        for bad in ["novalue", "=x", "n:=not json", ":=1"] {
            assert!(matches!(parse_meta(&[bad.into()]), Err(ClientError::Usage(_))), "{bad}");
        }
        assert!(matches!(parse_meta(&["a=1".into(), "a=2".into()]), Err(ClientError::Usage(_))));
    }
}
