//! The fields of the server's JSON answers that the client's logic reads. Everything else
//! a command prints comes from the answer as sent (`serde_json::Value`), so `--json` shows
//! the server's whole view, not this client's subset of it.

use serde::Deserialize;

use crate::domain::Digest;

/// A version: `GET …/versions/{version}` and list items.
#[derive(Debug, Clone, Deserialize)]
pub struct VersionInfo {
    pub version: String,
    pub state: String,
    #[serde(default)]
    pub manifest_digest: Option<Digest>,
}

impl VersionInfo {
    pub fn is_draft(&self) -> bool {
        self.state == "draft"
    }
}

/// A file of a version, as listed. The path is the server's word only: it is parsed as a
/// `RelPath` before anything is written under it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RemoteFile {
    pub path: String,
    pub size: u64,
    pub digest: Digest,
}

/// `{"items": [...]}`.
#[derive(Debug, Deserialize)]
pub struct Items<T> {
    pub items: Vec<T>,
}
