//! Errors on `/v1/*` in OpenAI's shape: `{"error": {"message", "type", "code"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::error::ApiError;
use crate::runtime::engine::EngineError;
use crate::runtime::supervisor::SupervisorError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    code: &'static str,
    /// Seconds for `Retry-After` (a 429).
    retry_after: Option<i64>,
}

impl OpenAiError {
    pub fn invalid_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
            kind: "invalid_request_error",
            code: "invalid_request",
            retry_after: None,
        }
    }

    pub fn model_not_found(message: String) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message,
            kind: "invalid_request_error",
            code: "model_not_found",
            retry_after: None,
        }
    }

    /// Over a fair-use limit: OpenAI's 429, to be tried again after `retry_after` seconds.
    pub fn rate_limited(message: String, retry_after: i64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            message,
            kind: "requests",
            code: "rate_limit_exceeded",
            retry_after: Some(retry_after),
        }
    }

    pub fn unavailable(message: String) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
            kind: "server_error",
            code: "deployment_unavailable",
            retry_after: None,
        }
    }

    /// A deployment could not be readied for a request. Hangar's own refusals (no room on a
    /// GPU, a bad runtime) say why; Docker's and the database's words stay in the log.
    pub fn not_started(deployment: &impl std::fmt::Display, err: &SupervisorError) -> Self {
        tracing::warn!(%deployment, error = ?err, "could not start a deployment for a request");
        match err {
            SupervisorError::Admission(_)
            | SupervisorError::Invalid(_)
            | SupervisorError::NodeDown(_)
            | SupervisorError::Engine(EngineError::ImageMissing(_)) => {
                Self::unavailable(format!("could not start deployment '{deployment}': {err}"))
            }
            SupervisorError::Engine(_) | SupervisorError::Catalog(_) => Self::unavailable(format!(
                "could not start deployment '{deployment}'; GET /api/v1/deployments/{deployment} shows its state, \
                 and the server's log has the cause under request id {}",
                crate::request_id::current().unwrap_or_default()
            )),
        }
    }

    /// The model server could not be reached (502) or did not answer in time (504). The
    /// body names the deployment only: its address and the connection's error are logged.
    pub fn upstream(deployment: &impl std::fmt::Display, timed_out: bool, err: &dyn std::fmt::Debug) -> Self {
        tracing::warn!(%deployment, error = ?err, "upstream request failed");
        if timed_out {
            Self {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: format!("deployment '{deployment}' did not answer in time"),
                kind: "server_error",
                code: "upstream_timeout",
                retry_after: None,
            }
        } else {
            Self {
                status: StatusCode::BAD_GATEWAY,
                message: format!("deployment '{deployment}' refused the connection or broke it"),
                kind: "server_error",
                code: "upstream_unreachable",
                retry_after: None,
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
                crate::error::internal_detail()
            }
            other => other.to_string(),
        };
        Self { status, message, kind, code, retry_after: None }
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
        if let Some(secs) = self.retry_after {
            response.insert_header(("Retry-After", secs.to_string()));
        }
        response.json(serde_json::json!({
            "error": { "message": self.message, "type": self.kind, "code": self.code, "param": null }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[actix_web::test]
    async fn a_502_names_the_deployment_but_not_its_address_or_the_connection_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let upstream = super::super::upstream::Upstream::new(Duration::from_secs(1), Duration::from_secs(1));
        let request = hyper::http::Request::post("/v1/secret-upstream-path")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let Err(err) = upstream.send(&address.to_string(), request).await else { panic!("nothing listens there") };
        assert!(!err.is_timeout());
        let body = OpenAiError::upstream(&"chat", err.is_timeout(), &err).error_response();
        let bytes = actix_web::body::to_bytes(body.into_body()).await.expect("body");
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("deployment 'chat' refused the connection"), "{text}");
        for leak in [address.to_string().as_str(), "127.0.0.1", "secret-upstream-path", "error sending", "os error"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }

    #[tokio::test]
    async fn a_503_keeps_dockers_words_in_the_log() {
        let err = SupervisorError::Engine(EngineError::Unreachable {
            socket: "/var/run/secret-docker.sock".into(),
            reason: "connection refused by the daemon".into(),
        });
        let message = OpenAiError::not_started(&"chat", &err).to_string();
        assert!(message.contains("could not start deployment 'chat'"), "{message}");
        assert!(!message.contains("secret-docker") && !message.contains("daemon"), "{message}");
    }
}
