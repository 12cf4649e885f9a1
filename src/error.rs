//! The one error type that reaches HTTP. Every failure becomes `application/problem+json`
//! (`type`, `title`, `status`, `detail`) with a `detail` a person can act on. Client errors
//! carry their message; server errors answer a generic 500 and log the whole cause chain.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::auth::issue::IssueError;
use crate::auth::login::LoginError;
use crate::blobs::{BlobError, SessionError};
use crate::catalog::CatalogError;
use crate::domain::{DigestError, GlobError, NameError, RelPathError, RoleError, TextError, WebhookError};
use crate::ops::error::OpsError;
use crate::runtime::engine::EngineError;
use crate::runtime::supervisor::SupervisorError;

/// The body of every error answer (RFC 9457 problem details), as `application/problem+json`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "about:blank",
    "title": "Not Found",
    "status": 404,
    "detail": "model 'demo' does not exist",
    "request_id": "5f0c9a7e2b8d4c1fa3e6b9d2c4f1a8e7",
}))]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of failure it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The HTTP status code, repeated.
    pub status: u16,
    /// What went wrong, in words a person can act on.
    pub detail: String,
    /// The request's id, also sent as `X-Request-Id`: the server's log names it on every
    /// line about this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A `Range` that starts past the end of a file of `size` bytes.
    #[error("the requested range is outside the file, which is {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// A request body stopped arriving for longer than the body chunk timeout.
    #[error("{0}")]
    RequestTimeout(String),
    /// The data dir's disk cannot hold what was sent; the message says how much is free.
    #[error("{0}")]
    InsufficientStorage(String),
    /// A dependency (Docker) is not there; the message names what was tried.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }
}

/// What a 5xx body says: that it failed, and the request id to find the cause by in the log.
pub fn internal_detail() -> String {
    match crate::request_id::current() {
        Some(id) => format!("the server failed to handle this request; its log has the cause under request id {id}"),
        None => "the server failed to handle this request; the error is in its log".to_owned(),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed");
                internal_detail()
            }
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            Self::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"hangar\""));
            }
            Self::TooManyRequests { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            // Answered before the body was read to its end: the rest of it may still be on
            // the way, so the connection cannot carry a next request. Closing it tells the
            // client so, instead of leaving its pooled connection to time out.
            Self::InsufficientStorage(_) | Self::RequestTimeout(_) | Self::PayloadTooLarge(_) => {
                response.force_close();
            }
            _ => {}
        }
        if let Self::RangeNotSatisfiable { size } = self
            && let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            response.insert_header((header::CONTENT_RANGE, value));
        }
        response.json(Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            request_id: crate::request_id::current(),
        })
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::NotFound(msg) => Self::NotFound(msg),
            CatalogError::Conflict(msg) => Self::Conflict(msg),
            CatalogError::Db { source, at } if crate::catalog::is_disk_full(&source) => {
                tracing::warn!(error = %source, %at, "a catalog write failed: the data dir's disk is full");
                Self::InsufficientStorage(
                    "the data dir's disk is full, so nothing was changed; free some space and try again".into(),
                )
            }
            CatalogError::Db { source, at } if crate::catalog::is_transient(&source) => {
                tracing::warn!(error = %source, %at, "a catalog call gave up on a busy or unreachable database");
                Self::Unavailable(
                    "the catalog's database is busy or unreachable; nothing was changed, try again".into(),
                )
            }
            CatalogError::Db { source, at } => {
                Self::Internal(anyhow::Error::new(source).context(format!("database error at {at}")))
            }
        }
    }
}

impl From<BlobError> for ApiError {
    fn from(err: BlobError) -> Self {
        match err {
            BlobError::DigestMismatch { .. } | BlobError::Interrupted { .. } => Self::BadRequest(err.to_string()),
            BlobError::StorageFull { .. } => Self::InsufficientStorage(err.to_string()),
            other => Self::internal(other),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::NotFound(_) | SessionError::NoSuchPart { .. } => Self::NotFound(err.to_string()),
            SessionError::PartSize { .. } | SessionError::PartDigest { .. } => Self::BadRequest(err.to_string()),
            SessionError::Incomplete(_) => Self::Conflict(err.to_string()),
            SessionError::Blob(e) => e.into(),
        }
    }
}

impl From<SupervisorError> for ApiError {
    fn from(err: SupervisorError) -> Self {
        match err {
            SupervisorError::Engine(e @ EngineError::Unreachable { .. }) => Self::Unavailable(e.to_string()),
            SupervisorError::Engine(e) => Self::internal(e),
            SupervisorError::Catalog(e) => e.into(),
            SupervisorError::Admission(e) => Self::Conflict(e.to_string()),
            SupervisorError::Invalid(msg) => Self::BadRequest(msg),
            SupervisorError::NodeDown(msg) => Self::Conflict(msg),
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(err: IssueError) -> Self {
        match err {
            IssueError::Invalid(msg) => Self::BadRequest(msg),
            IssueError::Forbidden(msg) => Self::Forbidden(msg),
            IssueError::Catalog(e) => e.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        match err {
            LoginError::Limited(e) => e.into(),
            LoginError::Refused => Self::Unauthorized(err.to_string()),
            LoginError::Disabled(_) => Self::Forbidden(err.to_string()),
            LoginError::Catalog(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Unauthenticated(msg) => Self::Unauthorized(msg),
            AuthError::Forbidden(msg) => Self::Forbidden(msg),
            AuthError::TooManyAttempts { retry_after_secs } => Self::TooManyRequests { retry_after_secs },
            AuthError::Unavailable(msg) => Self::Unavailable(msg),
        }
    }
}

impl From<OpsError> for ApiError {
    fn from(err: OpsError) -> Self {
        match err {
            OpsError::Auth(e) => e.into(),
            OpsError::Catalog(e) => e.into(),
            OpsError::Blob(e) => e.into(),
            OpsError::Session(e) => e.into(),
            OpsError::Supervisor(e) => e.into(),
            OpsError::Invalid(msg) => Self::BadRequest(msg),
            OpsError::Unavailable(msg) => Self::Unavailable(msg),
        }
    }
}

macro_rules! bad_request_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for ApiError {
            fn from(err: $ty) -> Self {
                Self::BadRequest(err.to_string())
            }
        }
    )*};
}
bad_request_from!(NameError, RelPathError, DigestError, RoleError, GlobError, WebhookError, TextError);
