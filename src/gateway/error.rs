//! Errors on `/v1/*` in OpenAI's shape: `{"error": {"message", "type", "code"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: &'static str,
}

impl OpenAiError {
    pub fn invalid_request(message: String) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message, kind: "invalid_request_error", code: "invalid_request" }
    }

    pub fn model_not_found(message: String) -> Self {
        Self { status: StatusCode::NOT_FOUND, message, kind: "invalid_request_error", code: "model_not_found" }
    }

    pub fn unavailable(message: String) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, message, kind: "server_error", code: "deployment_unavailable" }
    }

    /// The model server could not be reached (502) or did not answer in time (504).
    pub fn upstream(deployment: &impl std::fmt::Display, err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Self {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: format!("deployment '{deployment}' did not answer in time"),
                kind: "server_error",
                code: "upstream_timeout",
            }
        } else {
            Self {
                status: StatusCode::BAD_GATEWAY,
                message: format!("deployment '{deployment}' refused the connection or broke it: {err}"),
                kind: "server_error",
                code: "upstream_unreachable",
            }
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(err: ApiError) -> Self {
        let status = err.status_code();
        let (kind, code) = match status {
            StatusCode::UNAUTHORIZED => ("authentication_error", "invalid_api_key"),
            StatusCode::FORBIDDEN => ("permission_error", "forbidden"),
            StatusCode::NOT_FOUND => ("invalid_request_error", "not_found"),
            s if s.is_client_error() => ("invalid_request_error", "invalid_request"),
            _ => ("server_error", "internal_error"),
        };
        let message = match &err {
            // The same generic text and log line as everywhere else.
            ApiError::Internal(_) => {
                let _ = err.error_response();
                "the server failed to handle this request; the error is in its log".to_owned()
            }
            other => other.to_string(),
        };
        Self { status, message, kind, code }
    }
}

impl ResponseError for OpenAiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer realm=\"hangar\""));
        }
        response.json(serde_json::json!({
            "error": { "message": self.message, "type": self.kind, "code": self.code, "param": null }
        }))
    }
}
