//! Upload sessions: a big file sent in parts, each its own request, so a cut connection
//! costs one part and a client that comes back sends only what is missing. Open a session
//! for a path of a draft, `PUT` its parts (in any order, with `?digest=` or
//! `Content-Digest` to have each verified), `POST …/complete`: the whole is hashed once and
//! named in the draft as a streamed upload is.

use crate::catalog::Db;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::VersionPath;
use super::files::{FileView, UploadQuery, expected_digest, put_response};
use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, RawBytes, Unauthorized, UnsupportedMediaType,
};
use super::page::Items;
use crate::auth::Caller;
use crate::blobs::BlobStore;
use crate::config::Settings;
use crate::domain::{Digest, ModelName, RelPath, VersionName};
use crate::error::{ApiError, Problem};
use crate::ops;
use crate::ops::uploads::{NewSession, Open};

/// A file to send in parts.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUpload {
    /// Where the file goes in the draft.
    #[schema(value_type = RelPath)]
    path: String,
    /// Its size in bytes (at least 1).
    size: u64,
    /// Its sha256, checked when the session completes.
    digest: Digest,
    /// Bytes per part, from 1 MiB to 1 GiB (default 64 MiB); the last part is the rest.
    part_size: Option<u64>,
}

/// An upload session and the parts it has.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadView {
    /// The session's id, in the URLs of its parts.
    id: String,
    path: RelPath,
    size: u64,
    digest: Digest,
    part_size: u64,
    /// How many parts: `ceil(size / part_size)`, numbered from 0.
    parts: u64,
    /// The parts received whole, in order.
    received: Vec<u64>,
    /// The parts still to send.
    missing: Vec<u64>,
    /// Seconds until the session and its parts are removed, unless completed.
    expires_in_secs: i64,
}

impl From<Open> for UploadView {
    fn from(open: Open) -> Self {
        let spec = &open.session.spec;
        Self {
            id: open.session.id.simple().to_string(),
            path: open.target.path,
            size: spec.size,
            digest: spec.digest,
            part_size: spec.part_size,
            parts: spec.parts(),
            missing: open.session.missing(),
            received: open.session.received,
            expires_in_secs: (spec.expires_at - crate::auth::now_unix()).max(0),
        }
    }
}

/// `{model}/versions/{version}/uploads/{id}` of a URL.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UploadPath {
    #[param(value_type = ModelName)]
    model: String,
    #[param(value_type = VersionName)]
    version: String,
    /// The session's id.
    id: String,
}

impl UploadPath {
    fn parse(&self) -> Result<(ModelName, VersionName, uuid::Uuid), ApiError> {
        let id = uuid::Uuid::try_parse(&self.id)
            .map_err(|_| ApiError::NotFound(format!("no upload session {:?}", self.id)))?;
        Ok((ModelName::parse(&self.model)?, VersionName::parse(&self.version)?, id))
    }
}

/// `{model}/versions/{version}/uploads/{id}/parts/{part}` of a URL.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PartPath {
    #[param(value_type = ModelName)]
    model: String,
    #[param(value_type = VersionName)]
    version: String,
    /// The session's id.
    id: String,
    /// The part's number, from 0.
    part: u64,
}

/// Opens a session to send one file of a draft in parts.
#[utoipa::path(
    post,
    path = "/api/v1/models/{model}/versions/{version}/uploads",
    params(VersionPath),
    request_body = CreateUpload,
    responses(
        (status = 201, description = "Opened; send its parts", body = UploadView),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
        (status = 507, description = "The data dir's disk cannot hold the file; the detail says how much is free",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn create_upload(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    settings: web::Data<Settings>,
    caller: Caller,
    path: web::Path<VersionPath>,
    body: web::Json<CreateUpload>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    let body = body.into_inner();
    let request = NewSession {
        path: RelPath::parse(&body.path)?,
        size: body.size,
        digest: body.digest,
        part_size: body.part_size,
    };
    let lifetime = std::time::Duration::from_secs(settings.upload_session_ttl_secs);
    let open = ops::uploads::start(&pool, &blobs, &caller, &model, &version, request, lifetime).await?;
    Ok(HttpResponse::Created().json(UploadView::from(open)))
}

/// The draft's open sessions: what a client that was cut off comes back to finish.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions/{version}/uploads",
    params(VersionPath),
    responses(
        (status = 200, description = "Open sessions, by path", body = Items<UploadView>),
        BadRequest, Unauthorized, Forbidden, NotFound,
    ),
)]
pub async fn list_uploads(
    blobs: web::Data<BlobStore>,
    caller: Caller,
    path: web::Path<VersionPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version) = path.parse()?;
    let open = ops::uploads::list(&blobs, &caller, &model, &version).await?;
    Ok(HttpResponse::Ok().json(Items::new(open, UploadView::from)))
}

/// One session: which parts it has and which it still needs.
#[utoipa::path(
    get,
    path = "/api/v1/models/{model}/versions/{version}/uploads/{id}",
    params(UploadPath),
    responses((status = 200, description = "The session", body = UploadView), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn get_upload(
    blobs: web::Data<BlobStore>,
    caller: Caller,
    path: web::Path<UploadPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version, id) = path.parse()?;
    let open = ops::uploads::get(&blobs, &caller, &model, &version, id).await?;
    Ok(HttpResponse::Ok().json(UploadView::from(open)))
}

/// Drops a session and the parts it holds.
#[utoipa::path(
    delete,
    path = "/api/v1/models/{model}/versions/{version}/uploads/{id}",
    params(UploadPath),
    responses((status = 204, description = "Dropped"), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn delete_upload(
    blobs: web::Data<BlobStore>,
    caller: Caller,
    path: web::Path<UploadPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version, id) = path.parse()?;
    ops::uploads::abort(&blobs, &caller, &model, &version, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends one part: exactly `part_size` bytes (the last part: the rest). Sent again, a part
/// replaces what it held; one cut off is not recorded.
#[utoipa::path(
    put,
    path = "/api/v1/models/{model}/versions/{version}/uploads/{id}/parts/{part}",
    params(
        PartPath,
        UploadQuery,
        (
            "Content-Digest" = Option<String>, Header, nullable = false, pattern = "^sha-256=:[A-Za-z0-9+/]{43}=:$",
            description = "The part's `sha-256=:<base64>:` (RFC 9530)",
        ),
    ),
    request_body(content = inline(RawBytes), content_type = "application/octet-stream", description = "The part's bytes"),
    responses(
        (status = 200, description = "Received; the session as it is now", body = UploadView),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 408, description = "The body stopped arriving for longer than the body chunk timeout",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn put_part(
    blobs: web::Data<BlobStore>,
    caller: Caller,
    path: web::Path<PartPath>,
    query: web::Query<UploadQuery>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let upload = UploadPath { model: path.model.clone(), version: path.version.clone(), id: path.id.clone() };
    let (model, version, id) = upload.parse()?;
    let expected = expected_digest(&query, &req)?;
    let open = ops::uploads::put_part(&blobs, &caller, &model, &version, id, path.part, body, expected).await?;
    Ok(HttpResponse::Ok().json(UploadView::from(open)))
}

/// Checks that every part is in and the file's digest, and names the file in the draft.
#[utoipa::path(
    post,
    path = "/api/v1/models/{model}/versions/{version}/uploads/{id}/complete",
    params(UploadPath),
    responses(
        (status = 201, description = "Stored at a new path", body = FileView),
        (status = 200, description = "Stored, replacing what the path named", body = FileView),
        BadRequest, Unauthorized, Forbidden, NotFound,
        (status = 409, description = "Parts are missing (named), or the version is no longer a draft",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn complete_upload(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    caller: Caller,
    path: web::Path<UploadPath>,
) -> Result<HttpResponse, ApiError> {
    let (model, version, id) = path.parse()?;
    let (target, put, blob) = ops::uploads::complete(&pool, &blobs, &caller, &model, &version, id).await?;
    let size = i64::try_from(blob.size).map_err(ApiError::internal)?;
    Ok(put_response(put, FileView::new(target.path, size, blob.digest)))
}
