//! The seam between the supervisor and whatever runs containers. The supervisor asks an
//! [`Engine`] to create, inspect, stop and rename containers in Hangar's own types
//! ([`ContainerSpec`] in, [`Container`] out); `runtime::docker` is the engine the product
//! runs on (the only module that knows bollard), and `memory` is an engine held in a map,
//! for the supervisor's unit tests.

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;

use super::spec::ContainerSpec;

#[cfg(test)]
pub mod memory;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("Docker is not reachable at {socket}: {reason}")]
    Unreachable { socket: String, reason: String },
    #[error("image {0} is not present on this host; run `docker pull {0}` (or build it) first")]
    ImageMissing(String),
    #[error("Docker refused: {0}")]
    Api(String),
}

/// A container Hangar created, as the engine reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub deployment: String,
    pub instance: String,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// `host:port` to reach the server at, once running.
    pub address: Option<String>,
}

impl Container {
    /// What a container that is gone is taken for: exited, cause unknown.
    pub fn gone(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            deployment: String::new(),
            instance: String::new(),
            running: false,
            exit_code: None,
            oom_killed: false,
            address: None,
        }
    }
}

/// What the supervisor needs of a container engine. Only containers of this installation
/// (labelled with its owner) are ever listed or reported.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Where the engine is, for messages.
    fn socket(&self) -> &str;

    async fn ping(&self) -> Result<(), EngineError>;

    async fn image_exists(&self, image: &str) -> Result<bool, EngineError>;

    /// Every container of this installation, running or not.
    async fn list_managed(&self) -> Result<Vec<Container>, EngineError>;

    /// The container's state now; `None` if it is gone.
    async fn inspect(&self, id: &str) -> Result<Option<Container>, EngineError>;

    /// The image ID (`sha256:…`, the image's content digest) a container was created from;
    /// `None` when the container is gone or the engine does not say.
    async fn image_digest(&self, id: &str) -> Result<Option<String>, EngineError>;

    /// Creates and starts a container; returns its id and how to reach it. A container that
    /// was created but failed to start is removed again.
    async fn create_and_start(&self, spec: ContainerSpec) -> Result<(String, Option<String>), EngineError>;

    /// Renames a container (a rolled-out container takes the deployment's usual name).
    async fn rename(&self, id: &str, name: &str) -> Result<(), EngineError>;

    /// SIGTERM, up to `grace_secs` to exit, then SIGKILL; then the container is removed. One
    /// already gone is not an error.
    async fn stop_and_remove(&self, id: &str, grace_secs: i32) -> Result<(), EngineError>;

    /// Removes a named volume; one that does not exist is already gone.
    async fn remove_volume(&self, name: &str) -> Result<(), EngineError>;

    /// The container's output: the last `tail` lines, then (with `follow`) what comes until
    /// it stops.
    fn logs(&self, id: &str, tail: u32, follow: bool) -> BoxStream<'static, Result<Bytes, EngineError>>;

    /// Ticks whenever one of this installation's containers changes state; ends or fails
    /// when the engine goes away.
    fn changes(&self) -> BoxStream<'static, Result<(), EngineError>>;
}

/// The last lines a container printed, for a failure reason.
pub async fn last_lines(engine: &dyn Engine, id: &str, lines: u32) -> String {
    let chunks: Vec<_> = engine.logs(id, lines, false).collect().await;
    let text: Vec<u8> = chunks.into_iter().filter_map(Result::ok).flat_map(|b| b.to_vec()).collect();
    String::from_utf8_lossy(&text).trim().to_owned()
}
