//! The write side's handlers: `create_repo`, preupload, the Git LFS batch API with its
//! transfers (`basic`: one `PUT`; `multipart`: parts into a native upload session, then a
//! completion `POST`), LFS verify, and the NDJSON commit. Each parses the Hub's request, checks
//! the repo is visible (else `RepoNotFound`, as the read side answers) and calls `ops::hub`.
//!
//! Wire decisions: preupload answers `lfs` for every file, so every byte arrives through
//! the streaming ingest with its sha256 checked and the commit stays small (the client sends
//! an empty file inline whatever we answer). Upload URLs carry a signed [`Ticket`], since the
//! client sends no credential with them; verify is called with the client's token.

use crate::catalog::Db;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::revision::{self, HfError, commit_id};
use super::ticket::{Ticket, TicketKey};
use crate::auth::Caller;
use crate::blobs::{BlobStore, MAX_PART_SIZE};
use crate::catalog::{self, CatalogError};
use crate::config::Settings;
use crate::domain::{AliasName, Digest, ModelName, RelPath, Role};
use crate::error::ApiError;
use crate::ops::{self, error::OpsError, hub::Change, hub::Commit};
use crate::runtime::supervisor::Supervisor;

/// The content type of Git LFS requests and answers.
const LFS_JSON: &str = "application/vnd.git-lfs+json";
/// Objects up to this size go up in one `PUT`; bigger ones in parts of at least this size.
pub const MULTIPART_PART_SIZE: u64 = 16 << 20;
/// A multipart object is cut in at most about this many parts (each part is a URL in the
/// batch answer), so parts grow with the object beyond 16 GiB.
const MAX_PARTS: u64 = 1000;

/// The URL the client reached us at (its `Host`, and the scheme as `forwarded` decides it),
/// with `/hf`: where the URLs we hand out point.
fn endpoint(req: &HttpRequest) -> String {
    let scheme = if crate::forwarded::client_origin(req).https { "https" } else { "http" };
    format!("{scheme}://{}/hf", req.connection_info().host())
}

/// The repo of the request (`{team}/{name}` or `{name}`), if the caller may read it, and the
/// caller may write it: a reader who may not write is refused 403, as the Hub does.
pub(super) async fn writable_repo(pool: &Db, caller: &Caller, req: &HttpRequest) -> Result<ModelName, HfError> {
    let info = req.match_info();
    let name = info.get("name").ok_or(HfError::Repo)?;
    let model = revision::visible_repo(pool, caller, info.get("team"), name).await?;
    caller.require_on(Role::Maintainer, &model).map_err(HfError::refused)?;
    Ok(model)
}

/// A JSON body whatever its content type (LFS sends `application/vnd.git-lfs+json`).
pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HfError> {
    serde_json::from_slice(body)
        .map_err(|e| HfError::refused(ApiError::BadRequest(format!("the JSON body is invalid: {e}"))))
}

fn oid_of(hex: &str) -> Result<Digest, HfError> {
    Digest::parse_hex(hex)
        .ok_or_else(|| HfError::refused(ApiError::BadRequest(format!("'{hex}' is not a sha256 oid (64 hex digits)"))))
}

#[derive(Debug, Deserialize)]
pub struct CreateRepo {
    name: String,
    organization: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `POST /hf/api/repos/create`: a model named `organization/name` (or `name`).
pub async fn create_repo(
    pool: web::Data<Db>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, HfError> {
    let body: CreateRepo = parse(&body)?;
    if let Some(kind) = body.kind.as_deref().filter(|k| *k != "model") {
        return Err(HfError::refused(ApiError::BadRequest(format!(
            "Hangar hosts models only; a repo of type '{kind}' cannot be created"
        ))));
    }
    let raw = match body.organization.as_deref().filter(|o| !o.is_empty()) {
        Some(org) => format!("{org}/{}", body.name),
        None => body.name,
    };
    let name = ModelName::parse(&raw).map_err(HfError::refused)?;
    let url = format!("{}/{name}", endpoint(&req));
    match ops::hub::create_repo(&pool, &caller, &name).await {
        Ok(_) => Ok(HttpResponse::Ok().json(json!({ "url": url, "name": name.as_str(), "id": name.as_str() }))),
        Err(OpsError::Catalog(CatalogError::Conflict(_))) => Ok(HttpResponse::Conflict()
            .insert_header(("X-Error-Message", "You already created this model repo"))
            .json(json!({ "error": "You already created this model repo", "url": url }))),
        Err(e) => Err(HfError::refused(e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct Preupload {
    files: Vec<PreuploadFile>,
}

#[derive(Debug, Deserialize)]
pub struct PreuploadFile {
    path: String,
    #[serde(default)]
    size: u64,
}

/// The git blob id (sha1) of an empty file: what the client compares an empty file's
/// remote oid with, since it always sends empty files inline ("regular"), not through LFS.
const EMPTY_GIT_BLOB: &str = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";

/// `POST /hf/api/models/{repo}/preupload/{rev}`: every file goes the LFS way, with the oid
/// (sha256) of the file at that path in the revision, so the client skips unchanged files
/// (for an empty file, which it sends inline, the oid it compares is the git blob id).
pub async fn preupload_files(
    pool: web::Data<Db>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, HfError> {
    let model = writable_repo(&pool, &caller, &req).await?;
    let body: Preupload = parse(&body)?;
    let rev = req.match_info().get("rev").unwrap_or("main");
    // A revision with nothing published yet (a new repo's `main`) has no files to compare.
    let current = match revision::resolve(&pool, &model, rev).await {
        Ok(version) => catalog::files::list(&pool, &model, &version.name).await?,
        Err(HfError::Revision(_)) => Vec::new(),
        Err(e) => return Err(e),
    };
    let files: Vec<Value> = body
        .files
        .iter()
        .map(|f| {
            let oid = current.iter().find(|c| c.path.as_str() == f.path).map(|c| match (f.size, c.size) {
                (0, 0) => EMPTY_GIT_BLOB.to_owned(),
                _ => c.digest.hex(),
            });
            json!({ "path": f.path, "uploadMode": "lfs", "shouldIgnore": false, "oid": oid })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "files": files })))
}

#[derive(Debug, Deserialize)]
pub struct Batch {
    operation: String,
    #[serde(default)]
    transfers: Vec<String>,
    objects: Vec<BatchObject>,
    hash_algo: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct BatchObject {
    oid: String,
    size: u64,
}

/// The part size of a multipart object: [`MULTIPART_PART_SIZE`], more for objects so big
/// they would need more than [`MAX_PARTS`] parts.
fn part_size(size: u64) -> u64 {
    size.div_ceil(MAX_PARTS).next_multiple_of(1 << 20).clamp(MULTIPART_PART_SIZE, MAX_PART_SIZE)
}

/// `POST /hf/{repo}.git/info/lfs/objects/batch` (upload only): objects the commit may name
/// already get no action; others an upload URL (one `PUT`, or parts and a completion `POST`
/// when the client takes `multipart` and the object is bigger than a part) and a verify URL.
pub async fn batch_objects(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    settings: web::Data<Settings>,
    key: web::Data<TicketKey>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, HfError> {
    let model = writable_repo(&pool, &caller, &req).await?;
    let batch: Batch = parse(&body)?;
    if batch.operation != "upload" {
        return Err(HfError::refused(ApiError::BadRequest(format!(
            "only the 'upload' operation is served here, not '{}'; downloads go through /resolve",
            batch.operation
        ))));
    }
    if batch.hash_algo.as_deref().is_some_and(|a| a != "sha256") {
        return Err(HfError::refused(ApiError::BadRequest("oids are sha256 here".into())));
    }
    let multipart = batch.transfers.iter().any(|t| t == "multipart");
    let base = endpoint(&req);
    let ttl = settings.upload_session_ttl_secs;
    let repo = format!("{base}/{model}.git/info/lfs/objects/verify");
    let mut objects = Vec::new();
    let mut chose_multipart = false;
    for object in batch.objects {
        let Some(oid) = Digest::parse_hex(&object.oid) else {
            objects.push(json!({ "oid": object.oid, "size": object.size,
                "error": { "code": 422, "message": "the oid is not a sha256 (64 lowercase hex digits)" } }));
            continue;
        };
        match ops::hub::known_blob(&pool, &caller, &model, &oid).await.map_err(HfError::refused)? {
            Some(stored) if stored == object.size => {
                objects.push(json!({ "oid": object.oid, "size": object.size }));
                continue;
            }
            Some(stored) => {
                objects.push(json!({ "oid": object.oid, "size": object.size,
                    "error": { "code": 422, "message": format!("this object is {stored} bytes, not {}", object.size) } }));
                continue;
            }
            None => {}
        }
        let verify = json!({ "href": repo, "header": {} });
        let upload = if multipart && object.size > MULTIPART_PART_SIZE {
            chose_multipart = true;
            let part = part_size(object.size);
            let session = ops::hub::start_parts(&blobs, &settings, &model, &oid, object.size, part)
                .await
                .map_err(HfError::refused)?;
            let id = session.id.simple().to_string();
            let ticket =
                Ticket::new(&caller, model.as_str(), &object.oid, object.size, Some(id.clone()), ttl).seal(&key);
            let mut header = serde_json::Map::new();
            header.insert("chunk_size".into(), json!(part.to_string()));
            for n in 1..=session.spec.parts() {
                header.insert(n.to_string(), json!(format!("{base}/lfs/sessions/{id}/parts/{n}?ticket={ticket}")));
            }
            json!({ "href": format!("{base}/lfs/sessions/{id}/complete?ticket={ticket}"), "header": header, "expires_in": ttl })
        } else {
            let ticket = Ticket::new(&caller, model.as_str(), &object.oid, object.size, None, ttl).seal(&key);
            json!({ "href": format!("{base}/lfs/objects/{}?ticket={ticket}", object.oid), "expires_in": ttl })
        };
        objects.push(json!({ "oid": object.oid, "size": object.size, "authenticated": true,
            "actions": { "upload": upload, "verify": verify } }));
    }
    let transfer = if chose_multipart { "multipart" } else { "basic" };
    Ok(HttpResponse::Ok()
        .content_type(LFS_JSON)
        .json(json!({ "transfer": transfer, "objects": objects, "hash_algo": "sha256" })))
}

#[derive(Debug, Deserialize)]
pub struct TicketQuery {
    ticket: Option<String>,
}

/// The ticket of an upload URL, if valid and for this object (and session).
fn ticket(key: &TicketKey, query: &TicketQuery, oid: Option<&str>, session: Option<&str>) -> Result<Ticket, HfError> {
    let unauthorized = |why: &str| HfError::refused(ApiError::Unauthorized(why.to_owned()));
    let raw =
        query.ticket.as_deref().ok_or_else(|| unauthorized("this URL needs the ticket the batch endpoint gave"))?;
    let ticket = Ticket::open(raw, key).map_err(unauthorized)?;
    if oid.is_some_and(|o| o != ticket.oid) || session.is_some_and(|s| Some(s) != ticket.session.as_deref()) {
        return Err(unauthorized("this ticket is for another object"));
    }
    Ok(ticket)
}

fn ticket_model(ticket: &Ticket) -> Result<(ModelName, Digest), HfError> {
    let model = ModelName::parse(&ticket.model).map_err(HfError::refused)?;
    Ok((model, oid_of(&ticket.oid)?))
}

/// `PUT /hf/lfs/objects/{oid}?ticket=…` (basic transfer): the object's bytes, stored if
/// their sha256 is the oid; else 400 naming it, and nothing stored.
pub async fn put_object(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    key: web::Data<TicketKey>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<TicketQuery>,
    body: web::Payload,
) -> Result<HttpResponse, HfError> {
    let ticket = ticket(&key, &query, Some(path.as_str()), None)?;
    let (model, oid) = ticket_model(&ticket)?;
    let actor = ticket.actor(crate::forwarded::client_origin(&req).addr_string());
    match ops::hub::store_object(&pool, &blobs, &actor, &model, &oid, ticket.size, body).await {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(OpsError::Blob(crate::blobs::BlobError::DigestMismatch { actual, .. })) => {
            Err(HfError::refused(ApiError::BadRequest(format!(
                "the bytes sent hash to {}, not to the oid {}; nothing was stored",
                actual.hex(),
                oid.hex()
            ))))
        }
        Err(e) => Err(HfError::refused(e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct PartPath {
    id: String,
    part: u64,
}

fn session_id(raw: &str) -> Result<uuid::Uuid, HfError> {
    uuid::Uuid::try_parse(raw).map_err(|_| HfError::refused(ApiError::NotFound(format!("no upload session {raw:?}"))))
}

/// `PUT /hf/lfs/sessions/{id}/parts/{part}?ticket=…`: part `part` (from 1) of a multipart
/// object, answered with the `ETag` the client puts in its completion request.
pub async fn put_part(
    blobs: web::Data<BlobStore>,
    key: web::Data<TicketKey>,
    path: web::Path<PartPath>,
    query: web::Query<TicketQuery>,
    body: web::Payload,
) -> Result<HttpResponse, HfError> {
    let ticket = ticket(&key, &query, None, Some(&path.id))?;
    let (model, oid) = ticket_model(&ticket)?;
    let id = session_id(&path.id)?;
    let part =
        path.part.checked_sub(1).ok_or_else(|| HfError::refused(ApiError::NotFound("parts count from 1".into())))?;
    ops::hub::put_part(&blobs, id, &model, &oid, part, body).await.map_err(HfError::refused)?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, format!("\"{}-{}\"", path.id, path.part))).finish())
}

/// `POST /hf/lfs/sessions/{id}/complete?ticket=…`: every part is in; the whole is hashed
/// once against the oid and stored.
pub async fn complete_parts(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    key: web::Data<TicketKey>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<TicketQuery>,
) -> Result<HttpResponse, HfError> {
    let ticket = ticket(&key, &query, None, Some(path.as_str()))?;
    let (model, oid) = ticket_model(&ticket)?;
    let id = session_id(&path)?;
    let actor = ticket.actor(crate::forwarded::client_origin(&req).addr_string());
    ops::hub::complete_parts(&pool, &blobs, &actor, id, &model, &oid).await.map_err(HfError::refused)?;
    Ok(HttpResponse::Ok().content_type(LFS_JSON).json(json!({ "oid": ticket.oid, "size": ticket.size })))
}

/// `POST /hf/{repo}.git/info/lfs/objects/verify` `{oid, size}`: 200 once the object is
/// stored for this commit to name, 404 before.
pub async fn verify_object(
    pool: web::Data<Db>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, HfError> {
    let model = writable_repo(&pool, &caller, &req).await?;
    let object: BatchObject = parse(&body)?;
    let oid = oid_of(&object.oid)?;
    match ops::hub::known_blob(&pool, &caller, &model, &oid).await.map_err(HfError::refused)? {
        Some(size) if size == object.size => Ok(HttpResponse::Ok().content_type(LFS_JSON).json(json!({}))),
        _ => Err(HfError::Refused(
            StatusCode::NOT_FOUND,
            format!("object {} of {} bytes is not stored", object.oid, object.size),
        )),
    }
}

/// One line of the NDJSON commit.
#[derive(Debug, Deserialize)]
#[serde(tag = "key", content = "value", rename_all = "camelCase")]
enum Line {
    Header {
        #[serde(default)]
        summary: String,
        #[serde(default)]
        description: String,
        #[serde(rename = "parentCommit")]
        parent_commit: Option<String>,
    },
    File {
        path: String,
        content: String,
        encoding: Option<String>,
    },
    LfsFile {
        path: String,
        oid: String,
        algo: Option<String>,
        size: Option<u64>,
    },
    DeletedFile {
        path: String,
    },
    DeletedFolder {
        path: String,
    },
}

/// `POST /hf/api/models/{repo}/commit/{rev}` (NDJSON): a new published version from the
/// revision's files and the changes; an alias as the revision is moved to it.
pub async fn create_commit(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    settings: web::Data<Settings>,
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, HfError> {
    let model = writable_repo(&pool, &caller, &req).await?;
    if req.query_string().contains("create_pr=1") {
        return Err(HfError::refused(ApiError::BadRequest("pull requests are not supported by Hangar".into())));
    }
    let bad = |why: String| HfError::refused(ApiError::BadRequest(why));
    let mut summary = String::new();
    let mut description = String::new();
    let mut parent_commit = None;
    let mut changes = Vec::new();
    for (n, line) in body.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.trim_ascii().is_empty()) {
        let line: Line = serde_json::from_slice(line).map_err(|e| bad(format!("line {} of the commit: {e}", n + 1)))?;
        let path_of = |raw: &str| RelPath::parse(raw).map_err(|e| bad(format!("line {}: {e}", n + 1)));
        match line {
            Line::Header { summary: s, description: d, parent_commit: p } => {
                (summary, description, parent_commit) = (s, d, p);
            }
            Line::File { path, content, encoding } => {
                let bytes = match encoding.as_deref() {
                    Some("base64") => base64::engine::general_purpose::STANDARD
                        .decode(content.as_bytes())
                        .map_err(|e| bad(format!("line {}: the content of '{path}' is not base64: {e}", n + 1)))?,
                    None | Some("utf-8") => content.into_bytes(),
                    Some(other) => return Err(bad(format!("line {}: unknown encoding '{other}'", n + 1))),
                };
                changes.push(Change::Inline { path: path_of(&path)?, bytes: bytes.into() });
            }
            Line::LfsFile { path, oid, algo, size } => {
                if algo.as_deref().is_some_and(|a| a != "sha256") {
                    return Err(bad(format!("line {}: oids are sha256 here", n + 1)));
                }
                changes.push(Change::Lfs { path: path_of(&path)?, oid: oid_of(&oid)?, size });
            }
            Line::DeletedFile { path } => changes.push(Change::DeleteFile(path_of(&path)?)),
            Line::DeletedFolder { path } => changes.push(Change::DeleteFolder(path.trim_matches('/').to_owned())),
        }
    }
    let rev = req.match_info().get("rev").unwrap_or("main");
    let alias = match AliasName::parse(rev) {
        Ok(alias) => match catalog::aliases::get(&pool, &model, &alias).await {
            Ok(_) => Some(alias),
            Err(CatalogError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        },
        Err(_) => None,
    };
    let parent = match revision::resolve(&pool, &model, rev).await {
        Ok(version) => Some(version),
        // A repo with nothing published yet: the first commit to `main` has no parent.
        Err(HfError::Revision(_)) if rev == "main" && revision::published(&pool, &model).await?.is_empty() => None,
        Err(e) => return Err(e),
    };
    if let Some(expected) = parent_commit
        && parent.as_ref().map(commit_id).as_deref() != Some(expected.as_str())
    {
        return Err(HfError::Refused(
            StatusCode::PRECONDITION_FAILED,
            format!("'{rev}' is no longer at commit {expected}; fetch it again and retry"),
        ));
    }
    let commit = Commit { summary, description, changes, parent, alias };
    let version = match ops::hub::commit(&pool, &blobs, &settings, &supervisor, &caller, &model, commit).await {
        Ok(version) => version,
        Err(OpsError::Catalog(CatalogError::NotFound(msg))) => return Err(HfError::Entry(msg)),
        Err(e) => return Err(HfError::refused(e)),
    };
    let oid = commit_id(&version);
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "commitOid": oid,
        "commitUrl": format!("{}/{model}/commit/{oid}", endpoint(&req)),
        "commitMessage": version.description,
        "hookOutput": "",
        "pullRequestUrl": null,
    })))
}
