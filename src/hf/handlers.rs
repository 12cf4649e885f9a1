//! The handlers: each parses the repo and revision, checks the caller may read the repo
//! (through [`revision::visible_repo`]), and answers with the Hub's JSON and headers.

use crate::catalog::Db;
use actix_web::body::SizedStream;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::revision::{self, HfError, commit_id};
use crate::api::range;
use crate::auth::Caller;
use crate::blobs::BlobStore;
use crate::catalog::{self, aliases, files::File, versions::Version};
use crate::domain::{RelPath, Role};
use crate::error::ApiError;

/// The size the Hub reports for the Git LFS pointer file standing in for a file.
const POINTER_SIZE: u64 = 134;

/// The repo of the request (`{team}/{name}` or `{name}`), if the caller may read it.
async fn repo(pool: &Db, caller: &Caller, req: &HttpRequest) -> Result<crate::domain::ModelName, HfError> {
    let info = req.match_info();
    let name = info.get("name").ok_or(HfError::Repo)?;
    revision::visible_repo(pool, caller, info.get("team"), name).await
}

/// A file as the Hub's LFS metadata: `oid` and `lfs.oid` are the sha256 of its bytes.
fn lfs(file: &File) -> Value {
    json!({ "oid": file.digest.hex(), "sha256": file.digest.hex(), "size": file.size, "pointerSize": POINTER_SIZE })
}

/// `GET /hf/api/whoami-v2`: the caller's user name and whether its token may write.
pub async fn whoami(caller: Caller) -> Result<HttpResponse, HfError> {
    let user = caller.user().map_err(ApiError::from)?;
    let role = if caller.role >= Role::Maintainer { "write" } else { "read" };
    Ok(HttpResponse::Ok().json(json!({
        "type": "user",
        "id": user.to_string(),
        "name": user.to_string(),
        "fullname": user.to_string(),
        "orgs": [],
        "auth": { "type": "access_token", "accessToken": { "displayName": "hangar", "role": role } },
    })))
}

/// `GET /hf/api/models/{repo}[/revision/{rev}]`: the version's commit id, and every file as
/// a sibling with its size and LFS metadata (sent whether or not `blobs=true` asks for them).
pub async fn model_info(pool: web::Data<Db>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, HfError> {
    let model = repo(&pool, &caller, &req).await?;
    let rev = req.match_info().get("rev").unwrap_or("main");
    let version = revision::resolve(&pool, &model, rev).await?;
    let files = catalog::files::list(&pool, &model, &version.name).await?;
    let siblings: Vec<Value> = files
        .iter()
        .map(
            |f| json!({ "rfilename": f.path.as_str(), "size": f.size, "blobId": &f.digest.hex()[..40], "lfs": lfs(f) }),
        )
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "_id": model.as_str(),
        "id": model.as_str(),
        "modelId": model.as_str(),
        "author": model.team(),
        "sha": commit_id(&version),
        "lastModified": version.published_at,
        "createdAt": version.created_at,
        "private": true,
        "gated": false,
        "disabled": false,
        "tags": [],
        "library_name": null,
        "siblings": siblings,
        "usedStorage": version.size,
    })))
}

/// The Hub's page size for tree listings.
const TREE_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct TreeQuery {
    #[serde(default)]
    recursive: bool,
    /// Where the page starts: the `cursor` of the previous page's `Link: rel="next"`.
    cursor: Option<usize>,
    /// Entries per page, at most (and by default) [`TREE_PAGE`].
    limit: Option<usize>,
}

/// `GET /hf/api/models/{repo}/tree/{rev}[/{path}]`: the files and folders under `path`,
/// all of them with `recursive=true`, folders first, in pages like the Hub's: while more
/// follow, `Link: <url>; rel="next"` names the next page.
pub async fn tree(
    pool: web::Data<Db>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<TreeQuery>,
) -> Result<HttpResponse, HfError> {
    let model = repo(&pool, &caller, &req).await?;
    let rev = req.match_info().get("rev").unwrap_or("main");
    let version = revision::resolve(&pool, &model, rev).await?;
    let under = req.match_info().get("path").unwrap_or("").trim_matches('/');
    let prefix = if under.is_empty() { String::new() } else { format!("{under}/") };
    let files = catalog::files::list(&pool, &model, &version.name).await?;
    let mut folders = std::collections::BTreeSet::new();
    let mut entries = Vec::new();
    for file in files.iter().filter(|f| f.path.as_str().starts_with(&prefix)) {
        let rest = &file.path.as_str()[prefix.len()..];
        let mut parts: Vec<&str> = rest.split('/').collect();
        parts.pop();
        // The folders between `under` and the file: all of them when recursive, else the first.
        let depth = if query.recursive { parts.len() } else { parts.len().min(1) };
        for end in 1..=depth {
            folders.insert(format!("{prefix}{}", parts[..end].join("/")));
        }
        if query.recursive || parts.is_empty() {
            entries.push(json!({
                "type": "file", "oid": &file.digest.hex()[..40], "size": file.size, "path": file.path.as_str(), "lfs": lfs(file),
            }));
        }
    }
    if !prefix.is_empty() && entries.is_empty() && folders.is_empty() {
        return Err(HfError::Entry(format!("'{under}' is not a folder of this revision")));
    }
    let tree_oid = commit_id(&version);
    let mut listing: Vec<Value> = folders
        .into_iter()
        .map(|path| json!({ "type": "directory", "oid": tree_oid, "size": 0, "path": path }))
        .collect();
    listing.extend(entries);
    let start = query.cursor.unwrap_or(0).min(listing.len());
    let limit = query.limit.unwrap_or(TREE_PAGE).clamp(1, TREE_PAGE);
    let end = start.saturating_add(limit).min(listing.len());
    let mut response = HttpResponse::Ok();
    if end < listing.len() {
        let mut next = req.full_url();
        let kept: Vec<(String, String)> =
            next.query_pairs().filter(|(k, _)| k != "cursor").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        next.query_pairs_mut().clear().extend_pairs(kept).append_pair("cursor", &end.to_string());
        response.insert_header((header::LINK, format!("<{next}>; rel=\"next\"")));
    }
    Ok(response.json(&listing[start..end]))
}

/// `GET /hf/api/models/{repo}/refs`: aliases as branches (with `main` the newest version
/// when no alias is called that), published versions as tags.
pub async fn refs(pool: web::Data<Db>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, HfError> {
    let model = repo(&pool, &caller, &req).await?;
    let published = revision::published(&pool, &model).await?;
    let git_ref = |name: &str, kind: &str, version: &Version| json!({ "name": name, "ref": format!("refs/{kind}/{name}"), "targetCommit": commit_id(version) });
    let mut branches = Vec::new();
    for alias in aliases::list(&pool, &model).await? {
        if let Some(version) = published.iter().find(|v| v.name == alias.version) {
            branches.push(git_ref(alias.name.as_str(), "heads", version));
        }
    }
    if !branches.iter().any(|b| b["name"] == "main")
        && let Some(newest) = published.first()
    {
        branches.push(git_ref("main", "heads", newest));
    }
    let tags: Vec<Value> = published.iter().map(|v| git_ref(v.name.as_str(), "tags", v)).collect();
    Ok(HttpResponse::Ok().json(json!({ "branches": branches, "tags": tags, "converts": [], "pullRequests": [] })))
}

/// `GET`/`HEAD /hf/{repo}/resolve/{rev}/{path}`: the file, or the one range asked for,
/// streamed from the blob store, with the headers `hf_hub_download` reads: `X-Repo-Commit`,
/// `ETag` and `X-Linked-Etag` (the quoted sha256), `X-Linked-Size` and `Content-Length`. With
/// `presign_downloads`, a `GET` is redirected to the file's presigned URL in the bucket.
pub async fn resolve(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, HfError> {
    let model = repo(&pool, &caller, &req).await?;
    let rev = req.match_info().get("rev").unwrap_or("main");
    let version = revision::resolve(&pool, &model, rev).await?;
    let raw_path = req.match_info().get("path").unwrap_or("");
    let entry = || HfError::Entry(format!("revision '{rev}' of '{model}' has no file '{raw_path}'"));
    let path = RelPath::parse(raw_path).map_err(|_| entry())?;
    let file = match catalog::files::get(&pool, &model, &version.name, &path).await {
        Ok(file) => file,
        Err(catalog::CatalogError::NotFound(_)) => return Err(entry()),
        Err(e) => return Err(e.into()),
    };
    let size = u64::try_from(file.size).map_err(ApiError::internal)?;
    let etag = format!("\"{}\"", file.digest.hex());
    if req.method() == Method::GET
        && let Some(url) = blobs.download_url(&file.digest).await.map_err(ApiError::from)?
    {
        // As the Hub redirects a large file to its CDN: the client follows it with its Range.
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::ETAG, etag.clone()))
            .insert_header(("X-Linked-Etag", etag))
            .insert_header(("X-Linked-Size", size.to_string()))
            .insert_header(("X-Repo-Commit", commit_id(&version)))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    }
    let header_str = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    // A range is honoured only if the client's copy is still this file (If-Range).
    let range_header = match header_str(header::IF_RANGE) {
        Some(tag) if tag.trim() != etag => None,
        _ => header_str(header::RANGE),
    };
    let span = range::parse(range_header, size)?;
    let mut response = HttpResponse::build(if span.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK });
    response
        .content_type("application/octet-stream")
        .insert_header((header::ETAG, etag.clone()))
        .insert_header(("X-Linked-Etag", etag))
        .insert_header(("X-Linked-Size", size.to_string()))
        .insert_header(("X-Repo-Commit", commit_id(&version)))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=31536000, immutable"));
    let span = match span {
        Some(span) => {
            response.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{size}", span.start, span.end - 1)));
            span
        }
        None => 0..size,
    };
    let length = span.end - span.start;
    let body = if req.method() == Method::HEAD {
        futures_util::StreamExt::boxed_local(futures_util::stream::empty())
    } else {
        futures_util::StreamExt::boxed_local(blobs.read(&file.digest, span).await.map_err(ApiError::from)?)
    };
    Ok(response.body(SizedStream::new(length, body)))
}

/// `GET /hf/api/models/{repo}/commits/{rev}`: the published versions up to the revision's,
/// newest first, one commit each, with the version's description as the message.
pub async fn commits(pool: web::Data<Db>, caller: Caller, req: HttpRequest) -> Result<HttpResponse, HfError> {
    let model = repo(&pool, &caller, &req).await?;
    let rev = req.match_info().get("rev").unwrap_or("main");
    let version = revision::resolve(&pool, &model, rev).await?;
    let history: Vec<Value> = revision::published(&pool, &model)
        .await?
        .iter()
        .filter(|v| v.id <= version.id)
        .map(|v| {
            let title = v
                .description
                .lines()
                .next()
                .filter(|l| !l.is_empty())
                .map_or_else(|| format!("version {}", v.name), str::to_owned);
            json!({
                "id": commit_id(v),
                "title": title,
                "message": v.description,
                "authors": [{ "user": v.published_by.clone().unwrap_or_default() }],
                "date": v.published_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(history))
}
