//! Dashboard errors are pages (or a redirect to sign in), never raw JSON.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No session: go sign in, then come back to `next`.
    #[error("sign in first")]
    SignIn { next: String },
    #[error("{message}")]
    Page { status: StatusCode, message: String },
}

impl WebError {
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Page { status: StatusCode::FORBIDDEN, message: message.into() }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl From<ApiError> for WebError {
    fn from(err: ApiError) -> Self {
        let status = err.status_code();
        let message = match &err {
            // The API's own response logs the cause; the page says as little as the API.
            ApiError::Internal(_) => {
                let _ = err.error_response();
                crate::error::internal_detail()
            }
            other => other.to_string(),
        };
        Self::Page { status, message }
    }
}

impl From<crate::catalog::CatalogError> for WebError {
    fn from(err: crate::catalog::CatalogError) -> Self {
        ApiError::from(err).into()
    }
}

impl From<crate::ops::error::OpsError> for WebError {
    fn from(err: crate::ops::error::OpsError) -> Self {
        ApiError::from(err).into()
    }
}

impl From<crate::auth::AuthError> for WebError {
    fn from(err: crate::auth::AuthError) -> Self {
        ApiError::from(err).into()
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn { .. } => StatusCode::SEE_OTHER,
            Self::Page { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn { next } => {
                let target = format!("/login?next={}", encode_query(next));
                HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish()
            }
            Self::Page { status, message } => {
                let page =
                    ErrorPage { status: status.as_u16(), title: status.canonical_reason().unwrap_or("Error"), message };
                let body = page.render().unwrap_or_else(|_| message.clone());
                HttpResponse::build(*status).content_type("text/html; charset=utf-8").body(body)
            }
        }
    }
}

/// Percent-encodes a value for a query string.
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
