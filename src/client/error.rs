//! What a client command can fail with, and the exit code of each kind: 0 ok, 1 failed,
//! 2 usage, 3 not found, 4 conflict, 5 auth. Server errors are mapped from the HTTP status
//! of their problem+json answer, and keep its `detail`, which says what to do.

use std::fmt::Write as _;

use reqwest::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The command line cannot be done as written (a bad name, conflicting flags).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// No token, a wrong one, or one without the role the call needs.
    #[error("{0}")]
    Auth(String),
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Failed(_) => 1,
            Self::Usage(_) => 2,
            Self::NotFound(_) => 3,
            Self::Conflict(_) => 4,
            Self::Auth(_) => 5,
        }
    }

    /// A stable name for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Failed(_) => "failed",
            Self::Usage(_) => "usage",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Auth(_) => "auth",
        }
    }

    /// The error for a server answer with a non-success `status` and its `detail`.
    pub fn from_status(status: StatusCode, detail: String) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound(detail),
            StatusCode::CONFLICT => Self::Conflict(detail),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Self::Auth(detail),
            _ => Self::Failed(detail),
        }
    }

    /// The same error, its message prefixed with what it concerns (a file, a version).
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        let wrap = |msg: String| format!("{what}: {msg}");
        match self {
            Self::Usage(m) => Self::Usage(wrap(m)),
            Self::NotFound(m) => Self::NotFound(wrap(m)),
            Self::Conflict(m) => Self::Conflict(wrap(m)),
            Self::Auth(m) => Self::Auth(wrap(m)),
            Self::Failed(m) => Self::Failed(wrap(m)),
        }
    }

    /// A local failure (I/O, a broken connection), with what was being done.
    pub fn failed(doing: impl std::fmt::Display, err: &(dyn std::error::Error + 'static)) -> Self {
        Self::Failed(format!("{doing}: {}", chain(err)))
    }
}

/// An error and its sources on one line: reqwest's own message leaves out why a
/// connection failed, which is the part a person needs.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_documented_exit_codes() {
        let code = |status| ClientError::from_status(status, String::new()).exit_code();
        assert_eq!(code(StatusCode::NOT_FOUND), 3);
        assert_eq!(code(StatusCode::CONFLICT), 4);
        assert_eq!(code(StatusCode::UNAUTHORIZED), 5);
        assert_eq!(code(StatusCode::FORBIDDEN), 5);
        assert_eq!(code(StatusCode::BAD_REQUEST), 1);
        assert_eq!(code(StatusCode::INTERNAL_SERVER_ERROR), 1);
        assert_eq!(ClientError::Usage(String::new()).exit_code(), 2);
    }
}
