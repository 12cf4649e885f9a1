//! The only module that talks to Docker: a thin adapter over bollard that speaks in our own
//! types (`Container`, `DockerError`) so the supervisor never sees bollard's.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptions, RenameContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};

use super::spec::{ContainerSpec, LABEL_DEPLOYMENT, LABEL_INSTANCE, LABEL_MANAGED, LABEL_OWNER, Reach};

#[derive(Debug, Clone, thiserror::Error)]
pub enum DockerError {
    #[error("Docker is not reachable at {socket}: {reason}")]
    Unreachable { socket: String, reason: String },
    #[error("image {0} is not present on this host; run `docker pull {0}` (or build it) first")]
    ImageMissing(String),
    #[error("Docker refused: {0}")]
    Api(String),
}

/// A container Hangar created, as Docker reports it now.
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

#[derive(Clone)]
pub struct DockerClient {
    docker: Option<Docker>,
    socket: String,
    /// Only containers labelled with this owner are ours.
    owner: String,
}

impl DockerClient {
    /// Connects, agreeing on the API version when the daemon answers. A missing daemon is
    /// reported by the first call, not here, so Hangar starts (and serves the catalog)
    /// without Docker.
    pub async fn connect(owner: &str) -> Self {
        let socket = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_owned());
        let docker = match Docker::connect_with_defaults() {
            Ok(docker) => {
                let negotiated = tokio::time::timeout(Duration::from_secs(5), docker.clone().negotiate_version()).await;
                match negotiated {
                    Ok(Ok(negotiated)) => Some(negotiated),
                    _ => Some(docker),
                }
            }
            Err(_) => None,
        };
        Self { docker, socket, owner: owner.to_owned() }
    }

    pub fn socket(&self) -> &str {
        &self.socket
    }

    fn docker(&self) -> Result<&Docker, DockerError> {
        self.docker.as_ref().ok_or_else(|| DockerError::Unreachable {
            socket: self.socket.clone(),
            reason: "the client could not be set up".into(),
        })
    }

    fn classify(&self, err: bollard::errors::Error) -> DockerError {
        match err {
            bollard::errors::Error::DockerResponseServerError { message, .. } => DockerError::Api(message),
            other => DockerError::Unreachable { socket: self.socket.clone(), reason: other.to_string() },
        }
    }

    pub async fn ping(&self) -> Result<(), DockerError> {
        self.docker()?.ping().await.map(drop).map_err(|e| self.classify(e))
    }

    pub async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        match self.docker()?.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Every container carrying Hangar's labels, running or not.
    pub async fn list_managed(&self) -> Result<Vec<Container>, DockerError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_OWNER}={}", self.owner)],
        )]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let summaries = self.docker()?.list_containers(Some(options)).await.map_err(|e| self.classify(e))?;
        let mut containers = Vec::new();
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            if let Some(container) = self.inspect(&id).await? {
                containers.push(container);
            }
        }
        Ok(containers)
    }

    /// The container's state now; `None` if it is gone.
    pub async fn inspect(&self, id: &str) -> Result<Option<Container>, DockerError> {
        let Some(response) = self.inspect_raw(id).await? else { return Ok(None) };
        let labels = response.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        let state = response.state.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let address = response.network_settings.and_then(|n| n.ports).and_then(|ports| {
            ports.values().flatten().flatten().find_map(|binding| {
                let port = binding.host_port.as_deref().filter(|p| !p.is_empty())?;
                Some(format!("127.0.0.1:{port}"))
            })
        });
        Ok(Some(Container {
            id: response.id.unwrap_or_else(|| id.to_owned()),
            deployment: labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
            instance: labels.get(LABEL_INSTANCE).cloned().unwrap_or_default(),
            running,
            exit_code: if running { None } else { state.exit_code },
            oom_killed: state.oom_killed.unwrap_or(false),
            address,
        }))
    }

    /// The image ID (`sha256:…`, the image's content digest) a container was created from;
    /// `None` when the container is gone or Docker does not say.
    pub async fn image_digest(&self, id: &str) -> Result<Option<String>, DockerError> {
        Ok(self.inspect_raw(id).await?.and_then(|r| r.image))
    }

    /// Creates and starts a container; returns its id and how to reach it. A container that
    /// was created but failed to start is removed again.
    pub async fn create_and_start(&self, spec: ContainerSpec) -> Result<(String, Option<String>), DockerError> {
        let docker = self.docker()?;
        let created = docker.create_container(Some(spec.options), spec.body).await.map_err(|e| self.classify(e))?;
        if let Err(e) = docker.start_container(&created.id, None::<StartContainerOptions>).await {
            self.remove(&created.id).await?;
            return Err(self.classify(e));
        }
        let address = match spec.reach {
            Reach::Network { network, port } => self.network_address(&created.id, &network, port).await?,
            Reach::Published { .. } => self.inspect(&created.id).await?.and_then(|c| c.address),
        };
        Ok((created.id, address))
    }

    async fn inspect_raw(&self, id: &str) -> Result<Option<ContainerInspectResponse>, DockerError> {
        match self.docker()?.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(r) => Ok(Some(r)),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// `ip:port` of a container on `network`; `None` if it is not attached (yet).
    async fn network_address(&self, id: &str, network: &str, port: u16) -> Result<Option<String>, DockerError> {
        let Some(response) = self.inspect_raw(id).await? else { return Ok(None) };
        let ip = response
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut networks| networks.remove(network))
            .and_then(|endpoint| endpoint.ip_address)
            .filter(|ip| !ip.is_empty());
        Ok(ip.map(|ip| format!("{ip}:{port}")))
    }

    /// Renames a container (a rolled-out container takes the deployment's usual name).
    pub async fn rename(&self, id: &str, name: &str) -> Result<(), DockerError> {
        let options = RenameContainerOptionsBuilder::default().name(name).build();
        self.docker()?.rename_container(id, options).await.map_err(|e| self.classify(e))
    }

    /// SIGTERM, up to `grace_secs` to exit, then SIGKILL; then the container is removed.
    pub async fn stop_and_remove(&self, id: &str, grace_secs: i32) -> Result<(), DockerError> {
        let options = StopContainerOptionsBuilder::default().t(grace_secs).build();
        match self.docker()?.stop_container(id, Some(options)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304 | 404, .. }) => {}
            Err(e) => return Err(self.classify(e)),
        }
        self.remove(id).await
    }

    async fn remove(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker()?.remove_container(id, Some(options)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// Removes a named volume; one that does not exist is already gone.
    pub async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        match self.docker()?.remove_volume(name, None::<RemoveVolumeOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// The container's output: the last `tail` lines, then (with `follow`) what comes until
    /// it stops.
    pub fn logs(&self, id: &str, tail: u32, follow: bool) -> impl Stream<Item = Result<Bytes, DockerError>> + use<> {
        let options =
            LogsOptionsBuilder::default().stdout(true).stderr(true).follow(follow).tail(&tail.to_string()).build();
        let this = self.clone();
        let stream = self.docker.clone().map(|d| d.logs(id, Some(options)));
        futures_util::stream::iter(stream).flatten().map(move |item| match item {
            Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => {
                Ok(message)
            }
            Ok(LogOutput::StdIn { .. }) => Ok(Bytes::new()),
            Err(e) => Err(this.classify(e)),
        })
    }

    /// The last lines a container printed, for a failure reason.
    pub async fn last_lines(&self, id: &str, lines: u32) -> String {
        let chunks: Vec<_> = self.logs(id, lines, false).collect().await;
        let text: Vec<u8> = chunks.into_iter().filter_map(Result::ok).flat_map(|b| b.to_vec()).collect();
        String::from_utf8_lossy(&text).trim().to_owned()
    }

    /// Ticks whenever one of Hangar's containers changes state (start, die, oom, destroy).
    pub fn changes(&self) -> impl Stream<Item = Result<(), DockerError>> + use<> {
        let filters = HashMap::from([
            ("label".to_owned(), vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_OWNER}={}", self.owner)]),
            ("type".to_owned(), vec!["container".to_owned()]),
        ]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let this = self.clone();
        let stream = self.docker.clone().map(|d| d.events(Some(options)));
        futures_util::stream::iter(stream).flatten().map(move |item| item.map(drop).map_err(|e| this.classify(e)))
    }
}
