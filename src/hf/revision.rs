//! Which published version a Hub revision names, a version's commit id, and the Hub's
//! errors: a repo, revision or file that is missing — or that the caller may not see —
//! answers 404 with the `X-Error-Code` the client maps to its own exception.

use crate::catalog::Db;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sha2::{Digest as _, Sha256};

use crate::auth::Caller;
use crate::catalog::{self, CatalogError, versions::Version, versions::VersionState};
use crate::domain::{AliasName, ModelName, Role, VersionName};
use crate::error::ApiError;

/// An answer in the Hub's terms.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// No such repo, or one the caller may not read: the same answer for both.
    #[error("Repository not found")]
    Repo,
    #[error("{0}")]
    Revision(String),
    #[error("{0}")]
    Entry(String),
    /// A write refused (or a request not understood), answered in the Hub's shape — `{"error":
    /// …}` and `X-Error-Message` — which the client shows its user.
    #[error("{1}")]
    Refused(StatusCode, String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl HfError {
    /// An operation's refusal in the Hub's shape; a server fault stays as the API answers it
    /// (its detail is in the log, not in the answer).
    pub fn refused(err: impl Into<ApiError>) -> Self {
        let err = err.into();
        match err.status_code() {
            status if status.is_server_error() => Self::Api(err),
            status => Self::Refused(status, err.to_string()),
        }
    }
}

impl From<CatalogError> for HfError {
    fn from(err: CatalogError) -> Self {
        Self::Api(err.into())
    }
}

impl ResponseError for HfError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Repo | Self::Revision(_) | Self::Entry(_) => StatusCode::NOT_FOUND,
            Self::Refused(status, _) => *status,
            Self::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            Self::Repo => "RepoNotFound",
            Self::Revision(_) => "RevisionNotFound",
            Self::Entry(_) => "EntryNotFound",
            Self::Refused(status, message) => {
                // A header value is printable ASCII; the body keeps the whole message.
                let header: String =
                    message.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { ' ' }).collect();
                return HttpResponse::build(*status)
                    .insert_header(("X-Error-Message", header))
                    .json(serde_json::json!({ "error": message }));
            }
            Self::Api(e) => return e.error_response(),
        };
        HttpResponse::NotFound()
            .insert_header(("X-Error-Code", code))
            .insert_header(("X-Error-Message", self.to_string()))
            .json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// The repo `team/name` or `name` of a request, if the caller may read it; else [`HfError::Repo`].
pub async fn visible_repo(pool: &Db, caller: &Caller, team: Option<&str>, name: &str) -> Result<ModelName, HfError> {
    let raw = match team {
        Some(team) => format!("{team}/{name}"),
        None => name.to_owned(),
    };
    let model = ModelName::parse(&raw).map_err(|_| HfError::Repo)?;
    caller.require_on(Role::Viewer, &model).map_err(|_| HfError::Repo)?;
    match catalog::models::get(pool, &model).await {
        Ok(_) => Ok(model),
        Err(CatalogError::NotFound(_)) => Err(HfError::Repo),
        Err(e) => Err(e.into()),
    }
}

/// A published version's commit id: the first 40 hex digits of sha256 over
/// `model\nversion\nmanifest digest`. Stable, since a published version never changes, and
/// different for the same files published again under another name.
pub fn commit_id(version: &Version) -> String {
    let manifest = version.manifest_digest.as_ref().map(ToString::to_string).unwrap_or_default();
    let hash = Sha256::digest(format!("{}\n{}\n{manifest}", version.model, version.name).as_bytes());
    hex::encode(hash)[..40].to_owned()
}

/// The published versions of `model`, newest first.
pub async fn published(pool: &Db, model: &ModelName) -> Result<Vec<Version>, HfError> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = catalog::versions::list(pool, model, cursor, 500).await?;
        all.extend(page.items.into_iter().filter(|v| v.state == VersionState::Ready));
        match page.next.and_then(|n| n.parse().ok()) {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// The published version `rev` names: an alias, `main` (the newest published version
/// unless an alias is called that), a version's name, or a commit id.
pub async fn resolve(pool: &Db, model: &ModelName, rev: &str) -> Result<Version, HfError> {
    let missing = || HfError::Revision(format!("model '{model}' has no published revision '{rev}'"));
    if let Ok(alias) = AliasName::parse(rev) {
        match catalog::aliases::get(pool, model, &alias).await {
            Ok(alias) => return Ok(catalog::versions::get(pool, model, &alias.version).await?),
            Err(CatalogError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let published = published(pool, model).await?;
    if rev == "main" {
        return published.into_iter().next().ok_or_else(missing);
    }
    if let Ok(name) = VersionName::parse(rev)
        && let Some(version) = published.iter().find(|v| v.name == name)
    {
        return Ok(version.clone());
    }
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        let rev = rev.to_ascii_lowercase();
        if let Some(version) = published.into_iter().find(|v| commit_id(v) == rev) {
            return Ok(version);
        }
    }
    Err(missing())
}
