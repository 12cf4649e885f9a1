//! An engine held in a map, for the supervisor's unit tests. A container that "runs" is a
//! listener on 127.0.0.1 answering 200 to every request, so the supervisor's own health
//! probe reaches it as it reaches a real server; what a start does (serve, exit at once) is
//! the test's choice, by the version in the snapshot path. The test can kill a container,
//! take the whole engine down and bring it back, and read every create it was asked for.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::broadcast;

use super::{Container, Engine, EngineError};
use crate::runtime::spec::{ContainerSpec, LABEL_DEPLOYMENT, LABEL_INSTANCE, Mount};
use crate::tasks::AbortOnDrop;

/// What a container does once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs and answers 200 to its health check.
    Serve,
    /// Exits at once with this code, printing a line that says so.
    Exit(i64),
}

type Decide = Box<dyn Fn(&ContainerSpec) -> Behaviour + Send + Sync>;

struct Running {
    container: Container,
    name: String,
    /// What it printed.
    output: String,
    /// The listener answering for it; dropped when it exits.
    server: Option<AbortOnDrop>,
}

#[derive(Default)]
struct State {
    up: bool,
    next_id: u64,
    containers: BTreeMap<String, Running>,
    creates: Vec<ContainerSpec>,
    removed_volumes: Vec<String>,
}

pub struct MemoryEngine {
    state: Mutex<State>,
    images: HashSet<String>,
    decide: Decide,
    changes: broadcast::Sender<()>,
}

impl MemoryEngine {
    /// An engine that has `images` and starts each container as `decide` says.
    pub fn new(images: &[&str], decide: impl Fn(&ContainerSpec) -> Behaviour + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State { up: true, ..State::default() }),
            images: images.iter().map(|i| (*i).to_owned()).collect(),
            decide: Box::new(decide),
            changes: broadcast::channel(64).0,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_up(&self) -> Result<(), EngineError> {
        if self.state().up {
            Ok(())
        } else {
            Err(EngineError::Unreachable { socket: "memory".into(), reason: "the engine is down".into() })
        }
    }

    /// The server in a container exits with `code` (a crash), as Docker would report it.
    pub fn kill(&self, id: &str, code: i64) {
        if let Some(running) = self.state().containers.get_mut(id) {
            running.server = None;
            running.container.running = false;
            running.container.exit_code = Some(code);
            running.output.push_str(&format!("killed, exit code {code}\n"));
        }
        let _ = self.changes.send(());
    }

    /// Takes the engine away (every call fails as if its socket were gone) or brings it back
    /// with its containers as they were.
    pub fn set_up(&self, up: bool) {
        self.state().up = up;
        let _ = self.changes.send(());
    }

    /// The containers of `deployment` now, by creation order.
    pub fn containers_of(&self, deployment: &str) -> Vec<Container> {
        let state = self.state();
        state
            .containers
            .values()
            .filter(|r| r.container.deployment == deployment)
            .map(|r| r.container.clone())
            .collect()
    }

    /// A container's current name.
    pub fn name_of(&self, id: &str) -> Option<String> {
        self.state().containers.get(id).map(|r| r.name.clone())
    }

    /// Every create the engine was asked for, in order.
    pub fn creates(&self) -> Vec<ContainerSpec> {
        self.state().creates.clone()
    }

    pub fn removed_volumes(&self) -> Vec<String> {
        self.state().removed_volumes.clone()
    }
}

/// The version a spec runs: the last component of its snapshot's path.
pub fn version_of(spec: &ContainerSpec) -> Option<&str> {
    spec.mounts.iter().find_map(|m| match m {
        Mount::Snapshot { source } => source.rsplit('/').next(),
        _ => None,
    })
}

/// Answers 200 to every connection until dropped.
async fn serve() -> std::io::Result<(String, AbortOnDrop)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").await;
            });
        }
    });
    Ok((address, AbortOnDrop(task)))
}

#[async_trait]
impl Engine for MemoryEngine {
    fn socket(&self) -> &str {
        "memory"
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.check_up()
    }

    async fn image_exists(&self, image: &str) -> Result<bool, EngineError> {
        self.check_up()?;
        Ok(self.images.contains(image))
    }

    async fn list_managed(&self) -> Result<Vec<Container>, EngineError> {
        self.check_up()?;
        Ok(self.state().containers.values().map(|r| r.container.clone()).collect())
    }

    async fn inspect(&self, id: &str) -> Result<Option<Container>, EngineError> {
        self.check_up()?;
        Ok(self.state().containers.get(id).map(|r| r.container.clone()))
    }

    async fn image_digest(&self, id: &str) -> Result<Option<String>, EngineError> {
        self.check_up()?;
        Ok(self.state().containers.contains_key(id).then(|| "sha256:memory".to_owned()))
    }

    async fn create_and_start(&self, spec: ContainerSpec) -> Result<(String, Option<String>), EngineError> {
        self.check_up()?;
        if !self.images.contains(&spec.image) {
            return Err(EngineError::Api(format!("No such image: {}", spec.image)));
        }
        if self.state().containers.values().any(|r| r.name == spec.name) {
            return Err(EngineError::Api(format!("Conflict. The container name \"/{}\" is already in use", spec.name)));
        }
        let behaviour = (self.decide)(&spec);
        let (address, server, output) = match behaviour {
            Behaviour::Serve => {
                let (address, server) = serve().await.map_err(|e| EngineError::Api(e.to_string()))?;
                (Some(address), Some(server), "serving\n".to_owned())
            }
            Behaviour::Exit(code) => (None, None, format!("cannot load the model; exit code {code}\n")),
        };
        let mut state = self.state();
        state.next_id += 1;
        let id = format!("c{:04}", state.next_id);
        let container = Container {
            id: id.clone(),
            deployment: spec.label(LABEL_DEPLOYMENT).unwrap_or_default().to_owned(),
            instance: spec.label(LABEL_INSTANCE).unwrap_or_default().to_owned(),
            running: behaviour == Behaviour::Serve,
            exit_code: match behaviour {
                Behaviour::Serve => None,
                Behaviour::Exit(code) => Some(code),
            },
            oom_killed: false,
            address: address.clone(),
        };
        let name = spec.name.clone();
        state.creates.push(spec);
        state.containers.insert(id.clone(), Running { container, name, output, server });
        drop(state);
        let _ = self.changes.send(());
        Ok((id, address))
    }

    async fn rename(&self, id: &str, name: &str) -> Result<(), EngineError> {
        self.check_up()?;
        let mut state = self.state();
        let running =
            state.containers.get_mut(id).ok_or_else(|| EngineError::Api(format!("No such container: {id}")))?;
        running.name = name.to_owned();
        Ok(())
    }

    async fn stop_and_remove(&self, id: &str, _grace_secs: i32) -> Result<(), EngineError> {
        self.check_up()?;
        self.state().containers.remove(id);
        let _ = self.changes.send(());
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.check_up()?;
        self.state().removed_volumes.push(name.to_owned());
        Ok(())
    }

    fn logs(&self, id: &str, _tail: u32, _follow: bool) -> BoxStream<'static, Result<Bytes, EngineError>> {
        let output = self
            .check_up()
            .map(|()| Bytes::from(self.state().containers.get(id).map(|r| r.output.clone()).unwrap_or_default()));
        futures_util::stream::iter([output]).boxed()
    }

    fn changes(&self) -> BoxStream<'static, Result<(), EngineError>> {
        if let Err(e) = self.check_up() {
            return futures_util::stream::iter([Err(e)]).boxed();
        }
        futures_util::stream::unfold(self.changes.subscribe(), |mut receiver| async move {
            match receiver.recv().await {
                Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some((Ok(()), receiver)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}
