//! The only module that talks to Docker: the [`Engine`] the product runs on, a thin adapter
//! over bollard that speaks in Hangar's types (`ContainerSpec`, `Container`, `EngineError`),
//! so no bollard type leaves this module. `request` builds the create request.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::{
    EventsOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveVolumeOptions, RenameContainerOptionsBuilder, StartContainerOptions,
    StopContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;

use super::engine::{Container, Engine, EngineError};
use super::spec::{ContainerSpec, LABEL_DEPLOYMENT, LABEL_INSTANCE, LABEL_MANAGED, LABEL_OWNER, Reach};

mod request;

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

    fn docker(&self) -> Result<&Docker, EngineError> {
        self.docker.as_ref().ok_or_else(|| EngineError::Unreachable {
            socket: self.socket.clone(),
            reason: "the client could not be set up".into(),
        })
    }

    fn classify(&self, err: bollard::errors::Error) -> EngineError {
        match err {
            bollard::errors::Error::DockerResponseServerError { message, .. } => EngineError::Api(message),
            other => EngineError::Unreachable { socket: self.socket.clone(), reason: other.to_string() },
        }
    }

    async fn inspect_raw(&self, id: &str) -> Result<Option<ContainerInspectResponse>, EngineError> {
        match self.docker()?.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(r) => Ok(Some(r)),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// `ip:port` of a container on `network`; `None` if it is not attached (yet).
    async fn network_address(&self, id: &str, network: &str, port: u16) -> Result<Option<String>, EngineError> {
        let Some(response) = self.inspect_raw(id).await? else { return Ok(None) };
        let ip = response
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut networks| networks.remove(network))
            .and_then(|endpoint| endpoint.ip_address)
            .filter(|ip| !ip.is_empty());
        Ok(ip.map(|ip| format!("{ip}:{port}")))
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.docker()?.remove_container(id, Some(options)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.classify(e)),
        }
    }
}

#[async_trait]
impl Engine for DockerClient {
    fn socket(&self) -> &str {
        &self.socket
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.docker()?.ping().await.map(drop).map_err(|e| self.classify(e))
    }

    async fn image_exists(&self, image: &str) -> Result<bool, EngineError> {
        match self.docker()?.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(e) => Err(self.classify(e)),
        }
    }

    async fn list_managed(&self) -> Result<Vec<Container>, EngineError> {
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

    async fn inspect(&self, id: &str) -> Result<Option<Container>, EngineError> {
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

    async fn image_digest(&self, id: &str) -> Result<Option<String>, EngineError> {
        Ok(self.inspect_raw(id).await?.and_then(|r| r.image))
    }

    async fn create_and_start(&self, spec: ContainerSpec) -> Result<(String, Option<String>), EngineError> {
        let docker = self.docker()?;
        let created = docker
            .create_container(Some(request::options(&spec)), request::body(&spec))
            .await
            .map_err(|e| self.classify(e))?;
        if let Err(e) = docker.start_container(&created.id, None::<StartContainerOptions>).await {
            self.remove(&created.id).await?;
            return Err(self.classify(e));
        }
        let address = match &spec.reach {
            Reach::Network { network } => self.network_address(&created.id, network, spec.port).await?,
            Reach::Published => self.inspect(&created.id).await?.and_then(|c| c.address),
        };
        Ok((created.id, address))
    }

    async fn rename(&self, id: &str, name: &str) -> Result<(), EngineError> {
        let options = RenameContainerOptionsBuilder::default().name(name).build();
        self.docker()?.rename_container(id, options).await.map_err(|e| self.classify(e))
    }

    async fn stop_and_remove(&self, id: &str, grace_secs: i32) -> Result<(), EngineError> {
        let options = StopContainerOptionsBuilder::default().t(grace_secs).build();
        match self.docker()?.stop_container(id, Some(options)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304 | 404, .. }) => {}
            Err(e) => return Err(self.classify(e)),
        }
        self.remove(id).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        match self.docker()?.remove_volume(name, None::<RemoveVolumeOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.classify(e)),
        }
    }

    fn logs(&self, id: &str, tail: u32, follow: bool) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let options =
            LogsOptionsBuilder::default().stdout(true).stderr(true).follow(follow).tail(&tail.to_string()).build();
        let this = self.clone();
        let stream = self.docker.clone().map(|d| d.logs(id, Some(options)));
        futures_util::stream::iter(stream)
            .flatten()
            .map(move |item| match item {
                Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => {
                    Ok(message)
                }
                Ok(LogOutput::StdIn { .. }) => Ok(Bytes::new()),
                Err(e) => Err(this.classify(e)),
            })
            .boxed()
    }

    fn changes(&self) -> BoxStream<'static, Result<(), EngineError>> {
        let filters = HashMap::from([
            ("label".to_owned(), vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_OWNER}={}", self.owner)]),
            ("type".to_owned(), vec!["container".to_owned()]),
        ]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let this = self.clone();
        let stream = self.docker.clone().map(|d| d.events(Some(options)));
        futures_util::stream::iter(stream)
            .flatten()
            .map(move |item| item.map(drop).map_err(|e| this.classify(e)))
            .boxed()
    }
}
