//! Why an operation failed, in terms each front end maps once: `ApiError` for the REST API
//! (`src/error.rs`), and through it the dashboard's error page.

use crate::auth::AuthError;
use crate::blobs::{BlobError, SessionError};
use crate::catalog::CatalogError;
use crate::domain::{DigestError, LimitError, NameError, RelPathError};
use crate::runtime::supervisor::SupervisorError;

/// What went wrong in an operation; each variant keeps the message a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The caller may not do this (401/403/429).
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    /// The request does not make sense as given (400); the message says why.
    #[error("{0}")]
    Invalid(String),
    /// A dependency (Docker) does not answer (503); the message names what was tried.
    #[error("{0}")]
    Unavailable(String),
}

macro_rules! invalid_from {
    ($($ty:ty),*) => {$(
        impl From<$ty> for OpsError {
            fn from(err: $ty) -> Self {
                Self::Invalid(err.to_string())
            }
        }
    )*};
}
invalid_from!(NameError, RelPathError, DigestError, LimitError);
