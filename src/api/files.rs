//! Files of a version, and blobs by digest: streamed upload (PUT), link by digest (POST),
//! ranged download (GET/HEAD), delete, list; and `HEAD /api/v1/blobs/sha256:<hex>`.

use crate::catalog::Db;
use actix_web::body::SizedStream;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, RangeNotSatisfiable, RawBytes, Unauthorized,
    UnsupportedMediaType,
};
use super::page::Items;
use super::{FilePath, VersionPath, range};
use crate::auth::Caller;
use crate::blobs::BlobStore;
use crate::catalog::{self, files::File, files::Put};
use crate::domain::{Digest, RelPath, Role};
use crate::error::{ApiError, Problem};
use crate::ops;

/// A file of a version: its path and the blob it names.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    path: RelPath,
    /// Bytes.
    size: i64,
    digest: Digest,
}

/// A blob the store has.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlobView {
    digest: Digest,
    /// Bytes.
    size: u64,
}

impl FileView {
    pub(super) fn new(path: RelPath, size: i64, digest: Digest) -> Self {
        Self { path, size, digest }
    }
}

impl From<File> for FileView {
    fn from(f: File) -> Self {
        Self { path: f.path, size: f.size, digest: f.digest }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The bytes' digest: sent, they are verified, and bytes that hash differently are
    /// refused with nothing stored. `Content-Digest: sha-256=:<base64>:` (RFC 9530) does the same.
    #[param(value_type = Option<Digest>)]
    digest: Option<String>,
}

/// The headers a download honours.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "only documents headers the handler reads from the request")]
pub struct RangeHeaders {
    /// One range: `bytes=START-END`, `bytes=START-` or `bytes=-N`. Several ranges, or another
    /// unit, are answered with the whole file (RFC 9110 lets a server ignore a `Range`).
    #[param(rename = "Range", nullable = false, pattern = "^[ -~]{0,100}$", example = "bytes=0-3")]
    range: Option<String>,
    /// The ETag of the client's partial copy: the range is sent only if the file is still that one.
    #[param(rename = "If-Range", nullable = false, pattern = "^[ -~]{0,100}$")]
    if_range: Option<String>,
    /// ETags the client has; a match is answered 304.
    #[param(rename = "If-None-Match", nullable = false, pattern = "^[ -~]{0,100}$")]
    if_none_match: Option<String>,
}

/// A blob the store already has, to name at this path without sending its bytes again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkFile {
    digest: Digest,
    /// Its size in bytes, which must match.
    size: u64,
}

/// The digest the client vouches for, from `?digest=` or `Content-Digest`; both must agree.
pub(super) fn expected_digest(query: &UploadQuery, req: &HttpRequest) -> Result<Option<Digest>, ApiError> {
    let from_query = query.digest.as_deref().map(Digest::parse).transpose()?;
    let from_header = match req.headers().get("content-digest") {
        None => None,
        Some(value) => {
            let text =
                value.to_str().map_err(|_| ApiError::BadRequest("the Content-Digest header is not ASCII".into()))?;
            Digest::from_content_digest(text)?
        }
    };
    match (from_query, from_header) {
        (Some(q), Some(h)) if q != h => Err(ApiError::BadRequest(format!(
            "?digest={q} and Content-Digest ({h}) disagree; send one, or the same in both"
        ))),
        (q, h) => Ok(q.or(h)),
    }
}

/// The body size the client announced, if it did.
fn content_length(req: &HttpRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

pub(super) fn put_response(put: Put, view: FileView) -> HttpResponse {
    match put {
        Put::Created => HttpResponse::Created().json(view),
        Put::Replaced => HttpResponse::Ok().json(view),
    }
}

/// Streams the request body into the blob store and names it at `path` in a draft. With a
/// digest, bytes that hash differently are refused and nothing is stored.
#[utoipa::path(
    put,
    path = "/api/v1/models/{model}/versions/{version}/files/{path}",
    params(
        FilePath,
        UploadQuery,
        (
            "Content-Digest" = Option<String>, Header, nullable = false, pattern = "^sha-256=:[A-Za-z0-9+/]{43}=:$",
            description = "`sha-256=:<base64 of the 32 bytes>:` (RFC 9530)",
        ),
    ),
    request_body(content = inline(RawBytes), content_type = "application/octet-stream", description = "The file's bytes"),
    responses(
        (status = 201, description = "Stored at a new path", body = FileView),
        (status = 200, description = "Stored, replacing what the path named", body = FileView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
        (status = 408, description = "The body stopped arriving for longer than the body chunk timeout",
            body = Problem, content_type = "application/problem+json"),
        (status = 507, description = "The data dir's disk cannot hold the file; the detail says how much is free",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn upload_file(
    pool: web::Data<Db>,
    caller: Caller,
    blobs: web::Data<BlobStore>,
    path: web::Path<FilePath>,
    query: web::Query<UploadQuery>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (model, version, path) = path.parse()?;
    let expected = expected_digest(&query, &req)?;
    let (put, blob) =
        ops::files::upload(&pool, &blobs, &caller, &model, &version, &path, body, expected, content_length(&req))
            .await?;
    let view = FileView { path, size: i64::try_from(blob.size).map_err(ApiError::internal)?, digest: blob.digest };
    Ok(put_response(put, view))
}

/// Names a blob the store already has at `path`, without sending its bytes again.
#[utoipa::path(
    post,
    path = "/api/v1/models/{model}/versions/{version}/files/{path}",
    params(FilePath),
    request_body = LinkFile,
    responses(
        (status = 201, description = "Named at a new path", body = FileView),
        (status = 200, description = "Named, replacing what the path named", body = FileView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn link_file(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<FilePath>,
    body: web::Json<LinkFile>,
) -> Result<HttpResponse, ApiError> {
    let (model, version, path) = path.parse()?;
    let put = ops::files::link(&pool, &caller, &model, &version, &path, &body.digest, body.size).await?;
    let view = FileView { path, size: i64::try_from(body.size).map_err(ApiError::internal)?, digest: body.digest };
    Ok(put_response(put, view))
}

/// Sends a file, or the one byte range asked for; `ETag` is the digest.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions/{version}/files/{path}",
    params(FilePath, RangeHeaders),
    responses(
        (status = 200, description = "The file", content((inline(RawBytes) = "application/octet-stream")), headers(
            ("ETag" = String, description = "The digest, quoted"),
            ("Repr-Digest" = String, description = "`sha-256=:<base64>:` (RFC 9530)"),
            ("Accept-Ranges" = String),
        )),
        (status = 206, description = "The range asked for", content((inline(RawBytes) = "application/octet-stream")), headers(
            ("Content-Range" = String, description = "`bytes START-END/SIZE`"),
            ("ETag" = String, description = "The digest, quoted"),
        )),
        (status = 302, description = "With `presign_downloads`: the file's presigned URL in the bucket, in `Location`", headers(
            ("Location" = String, description = "A presigned GET, valid for an hour"),
            ("ETag" = String, description = "The digest, quoted"),
        )),
        (status = 304, description = "The client's copy (`If-None-Match`) is this file"),
        BadRequest, Unauthorized, Forbidden, NotFound, RangeNotSatisfiable,
    ),
)]
pub async fn download_file(
    pool: web::Data<Db>,
    caller: Caller,
    blobs: web::Data<BlobStore>,
    path: web::Path<FilePath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (model, version, path) = path.parse()?;
    caller.require_on(Role::Viewer, &model)?;
    let file = catalog::files::get(&pool, &model, &version, &path).await?;
    let size = u64::try_from(file.size).map_err(ApiError::internal)?;
    let etag = format!("\"{}\"", file.digest);
    let header_str = |name| req.headers().get(name).and_then(|v| v.to_str().ok());

    if header_str(header::IF_NONE_MATCH).is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    if req.method() == Method::GET
        && let Some(url) = blobs.download_url(&file.digest).await?
    {
        // The bucket sends the bytes, and honours the Range the client sends it again.
        return Ok(HttpResponse::Found()
            .insert_header((header::LOCATION, url.as_str()))
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    }
    // A range is honoured only if the client's copy is still this file (If-Range).
    let range_header = match header_str(header::IF_RANGE) {
        Some(tag) if tag.trim() != etag => None,
        _ => header_str(header::RANGE),
    };
    let range = range::parse(range_header, size)?;

    let mut response = HttpResponse::build(if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK });
    response
        .content_type("application/octet-stream")
        .insert_header((header::ETAG, etag))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=31536000, immutable"));
    let span = match range {
        Some(span) => {
            response.insert_header((header::CONTENT_RANGE, format!("bytes {}-{}/{size}", span.start, span.end - 1)));
            span
        }
        None => {
            let raw = hex::decode(file.digest.hex()).map_err(ApiError::internal)?;
            let digest = base64::engine::general_purpose::STANDARD.encode(raw);
            response.insert_header(("Repr-Digest", format!("sha-256=:{digest}:")));
            0..size
        }
    };
    let length = span.end - span.start;
    let body = if req.method() == Method::HEAD {
        futures_util::stream::empty().boxed_local_stream()
    } else {
        blobs.read(&file.digest, span).await?.boxed_local_stream()
    };
    Ok(response.body(SizedStream::new(length, body)))
}

/// The headers a GET would answer with (size, ETag, digest), without the bytes.
#[utoipa::path(
    head,
    path = "/api/v1/models/{model}/versions/{version}/files/{path}",
    params(FilePath, RangeHeaders),
    responses(
        (status = 200, description = "The file is there", headers(
            ("Content-Length" = u64),
            ("ETag" = String, description = "The digest, quoted"),
            ("Repr-Digest" = String, description = "`sha-256=:<base64>:` (RFC 9530)"),
        )),
        (status = 206, description = "The range is there", headers(("Content-Range" = String))),
        (status = 304, description = "The client's copy (`If-None-Match`) is this file"),
        (status = 400, description = "A path or header does not parse"),
        (status = 401, description = "No usable credentials"),
        (status = 403, description = "The caller may not read this model"),
        (status = 404, description = "No such file"),
        (status = 416, description = "The range starts past the end"),
    ),
)]
pub async fn head_file(
    pool: web::Data<Db>,
    caller: Caller,
    blobs: web::Data<BlobStore>,
    path: web::Path<FilePath>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    download_file(pool, caller, blobs, path, req).await
}

/// Removes a path from a draft.
#[utoipa::path(
    delete,
    path = "/api/v1/models/{model}/versions/{version}/files/{path}",
    params(FilePath),
    responses((status = 204, description = "Removed"), BadRequest, Unauthorized, Forbidden, NotFound, Conflict),
)]
pub async fn delete_file(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<FilePath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version, path) = path.parse()?;
    ops::files::delete(&pool, &caller, &model, &version, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every file of a version, sorted by path.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions/{version}/files",
    params(VersionPath),
    responses((status = 200, description = "The files", body = Items<FileView>), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn list_files(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<VersionPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    caller.require_on(Role::Viewer, &model)?;
    let files = catalog::files::list(&pool, &model, &version).await?;
    Ok(HttpResponse::Ok().json(Items::new(files, FileView::from)))
}

/// The size of a blob the caller may see, or 404: lets a client skip uploading bytes the
/// store has. A blob held only by versions the caller may not read is answered as not stored.
async fn stored_blob(pool: &Db, caller: &Caller, digest: &str) -> Result<(Digest, u64), ApiError> {
    let digest = Digest::parse(digest)?;
    let size = ops::files::blob_size(pool, caller, &digest).await?;
    Ok((digest, size))
}

/// 200 with the blob's size in `Content-Length` if a version the caller may read holds it,
/// else 404, whether or not the store has it.
#[utoipa::path(
    head,
    path = "/api/v1/blobs/{digest}",
    params(("digest" = Digest, Path)),
    responses(
        (status = 200, description = "Stored", headers(("Content-Length" = u64), ("ETag" = String))),
        (status = 400, description = "Not a `sha256:<hex>` digest"),
        (status = 401, description = "No usable credentials"),
        (status = 403, description = "The caller may not read"),
        (status = 404, description = "Not stored, or held only by versions the caller may not read"),
    ),
)]
pub async fn head_blob(
    pool: web::Data<Db>,
    caller: Caller,
    digest: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (digest, size) = stored_blob(&pool, &caller, &digest).await?;
    let empty = futures_util::stream::empty().boxed_local_stream();
    Ok(HttpResponse::Ok().insert_header((header::ETAG, format!("\"{digest}\""))).body(SizedStream::new(size, empty)))
}

/// The blob's digest and size if a version the caller may read holds it, else 404.
#[utoipa::path(
    get,
    path = "/api/v1/blobs/{digest}",
    params(("digest" = Digest, Path)),
    responses((status = 200, description = "Stored", body = BlobView), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn get_blob(
    pool: web::Data<Db>,
    caller: Caller,
    digest: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (digest, size) = stored_blob(&pool, &caller, &digest).await?;
    Ok(HttpResponse::Ok().json(BlobView { digest, size }))
}

/// Erases a stream's concrete type, for responses that send either of two streams.
trait BoxedBody {
    fn boxed_local_stream(self) -> futures_util::stream::LocalBoxStream<'static, std::io::Result<bytes::Bytes>>;
}

impl<S> BoxedBody for S
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + 'static,
{
    fn boxed_local_stream(self) -> futures_util::stream::LocalBoxStream<'static, std::io::Result<bytes::Bytes>> {
        futures_util::StreamExt::boxed_local(self)
    }
}
