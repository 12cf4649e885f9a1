//! The container spec: a pure function from a deployment's facts (name, instance, runtime,
//! snapshot path, GPU allocation, overrides, settings) to bollard's create-container
//! options and body. Nothing here talks to Docker, so every field is covered by table tests.
//!
//! Every container: named `hangar-<deployment>`; labelled with the deployment and the
//! instance; the snapshot bind-mounted read-only at `/model` through `Mounts` (a missing
//! source fails the create, where `Binds` would silently create an empty directory); all
//! capabilities dropped; `no-new-privileges`; a pids limit; `RestartPolicy: no` (Hangar
//! supervises, Docker must not restart behind its back); `Init` so SIGTERM reaches the
//! server and its workers are reaped; its port published on 127.0.0.1 only, with an
//! ephemeral host port — or, when Hangar runs in a container, joined to its network and
//! published nowhere.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointSettings, HostConfig, Mount, MountType, NetworkingConfig, PortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptions, CreateContainerOptionsBuilder};

use super::gpu::GpuAllocation;
use super::presets::{MODEL_DIR, RESERVED_ENV, Runtime, parse_env_entry};
use super::template::{ArgTemplate, Placeholder, RenderError, Template, TemplateError, Values};

pub const LABEL_MANAGED: &str = "hangar.managed";
pub const LABEL_DEPLOYMENT: &str = "hangar.deployment";
pub const LABEL_INSTANCE: &str = "hangar.instance";
pub const LABEL_RUNTIME: &str = "hangar.runtime";
/// Which Hangar installation (data dir) owns the container: two Hangars sharing one Docker
/// engine never touch each other's containers.
pub const LABEL_OWNER: &str = "hangar.owner";

/// Threads count against it; model servers run hundreds.
pub const DEFAULT_PIDS_LIMIT: i64 = 4096;

/// `{mem_fraction}` for a deployment on whole GPUs (or none): vLLM's own default.
pub const WHOLE_GPU_MEM_FRACTION: f64 = 0.9;

/// How GPUs are requested from Docker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// `{Driver: "nvidia", DeviceIDs, Capabilities: [["gpu"]]}`: the NVIDIA Container
    /// Toolkit's hook; what `docker run --gpus '"device=0,1"'` sends.
    #[default]
    Nvidia,
    /// `{Driver: "cdi", DeviceIDs: ["nvidia.com/gpu=0"]}`: what `docker run --device
    /// nvidia.com/gpu=0` sends (Engine >= 28.2 has CDI on by default; needs a CDI spec
    /// from `nvidia-ctk cdi generate` or the toolkit's nvidia-cdi-refresh).
    Cdi,
    /// Admission control only: GPUs are accounted for, but no device is requested from
    /// Docker. For CPU-only hosts that still want budgets (and for tests on machines
    /// without a GPU); the servers see no GPU.
    None,
}

/// Host-wide settings that shape every container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecSettings {
    pub gpu_mode: GpuMode,
    /// When Hangar runs in a container: the network both share. Model containers join it
    /// and are reached by name; nothing is published on the host.
    pub docker_network: Option<String>,
    pub pids_limit: i64,
    /// This installation's id, put on every container as `hangar.owner`.
    pub owner: String,
}

impl Default for SpecSettings {
    fn default() -> Self {
        Self {
            gpu_mode: GpuMode::default(),
            docker_network: None,
            pids_limit: DEFAULT_PIDS_LIMIT,
            owner: String::new(),
        }
    }
}

/// A deployment's own environment and extra arguments, appended after the runtime's.
/// Parsed when the deployment is saved, so a bad placeholder is a 400 then.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RawOverrides", into = "RawOverrides")]
pub struct Overrides {
    env: BTreeMap<String, Template>,
    args: ArgTemplate,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverrides {
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    args: Vec<String>,
}

/// An override that was refused; names the variable or argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverridesError {
    #[error("env {key}: {reason}")]
    Env { key: String, reason: String },
    #[error("args: {0}")]
    Args(#[from] TemplateError),
}

impl Overrides {
    pub fn parse(env: &BTreeMap<String, String>, args: &[String]) -> Result<Self, OverridesError> {
        let env = env
            .iter()
            .map(|(key, value)| {
                parse_env_entry(key, value)
                    .map(|t| (key.clone(), t))
                    .map_err(|reason| OverridesError::Env { key: key.clone(), reason })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { env, args: ArgTemplate::parse(args)? })
    }
}

impl TryFrom<RawOverrides> for Overrides {
    type Error = OverridesError;

    fn try_from(raw: RawOverrides) -> Result<Self, Self::Error> {
        Self::parse(&raw.env, &raw.args)
    }
}

impl From<Overrides> for RawOverrides {
    fn from(overrides: Overrides) -> Self {
        Self {
            env: overrides.env.into_iter().map(|(k, v)| (k, v.as_str().to_owned())).collect(),
            args: overrides.args.into(),
        }
    }
}

/// Everything one container is made from.
#[derive(Debug, Clone, Copy)]
pub struct SpecInput<'a> {
    /// The deployment's name: its route name and `{served_name}`.
    pub deployment: &'a str,
    /// Tells this container from earlier ones of the same deployment (restarts).
    pub instance: &'a str,
    pub runtime: &'a Runtime,
    /// The version's snapshot directory as the Docker daemon sees it (a host path; under
    /// `host_data_dir` when Hangar itself runs in a container).
    pub snapshot: &'a Path,
    pub gpus: Option<&'a GpuAllocation>,
    /// `{file}`, relative to the model dir.
    pub file: Option<&'a str>,
    /// `{mmproj}`, relative to the model dir: the version's multimodal projector, if any.
    pub mmproj: Option<&'a str>,
    pub overrides: &'a Overrides,
    pub settings: &'a SpecSettings,
}

/// How Hangar reaches the server once it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Published on 127.0.0.1; the host port is chosen by Docker and read back from
    /// `NetworkSettings.Ports[port_key]` after start.
    Published { port_key: String },
    /// On the shared network, at the container's address there (read back after start).
    /// Not by name: a rollout's new container takes the usual name only after the old one
    /// is gone, and requests must reach it from the switch on.
    Network { network: String, port: u16 },
}

/// The create-container call for one deployment instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub options: CreateContainerOptions,
    pub body: ContainerCreateBody,
    pub reach: Reach,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "deployment name {0:?} cannot name a container; use letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    DeploymentName(String),
    #[error("the instance id is empty")]
    EmptyInstance,
    #[error("snapshot path {0:?} must be an absolute UTF-8 path, as the Docker daemon resolves it on the host")]
    SnapshotPath(String),
    #[error("docker_network {0:?} is not a network name")]
    Network(String),
    #[error(transparent)]
    Render(#[from] RenderError),
}

pub fn container_name(deployment: &str) -> String {
    format!("hangar-{deployment}")
}

/// The named volume behind a runtime's `cache_dir`: one per deployment, kept across its
/// containers, removed with the deployment. One name per deployment name, so no two
/// deployments share one.
pub fn cache_volume(deployment: &str) -> String {
    format!("hangar-{deployment}.cache")
}

/// Create options for a rollout's new container, which runs beside the one holding the
/// usual name until it takes that name over.
pub fn rollout_options(usual_name: &str, suffix: &str) -> CreateContainerOptions {
    CreateContainerOptionsBuilder::default().name(&format!("{usual_name}-{suffix}")).build()
}

pub fn container_spec(input: &SpecInput<'_>) -> Result<ContainerSpec, SpecError> {
    let SpecInput { deployment, instance, runtime, snapshot, gpus, file, mmproj, overrides, settings } = *input;
    // Docker's rule for names: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (after our "hangar-" prefix).
    let name_ok = deployment.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && deployment.len() <= 200
        && deployment.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !name_ok {
        return Err(SpecError::DeploymentName(deployment.chars().take(80).collect()));
    }
    if instance.is_empty() {
        return Err(SpecError::EmptyInstance);
    }
    let source = snapshot
        .to_str()
        .filter(|s| snapshot.is_absolute() && !s.contains('\0'))
        .ok_or_else(|| SpecError::SnapshotPath(snapshot.to_string_lossy().into_owned()))?;
    if let Some(network) = &settings.docker_network {
        let ok = network.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && network.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(SpecError::Network(network.clone()));
        }
    }

    let name = container_name(deployment);
    let port = runtime.port();
    let values = Values {
        model_dir: MODEL_DIR,
        port,
        served_name: deployment,
        mem_fraction: gpus.and_then(GpuAllocation::mem_fraction).unwrap_or(WHOLE_GPU_MEM_FRACTION),
        file,
        memory: gpus.map(GpuAllocation::memory_budget).unwrap_or_default(),
        mmproj,
    };

    let mut cmd = runtime.args().render(&values)?;
    cmd.extend(overrides.args.render(&values)?);

    let mut env = BTreeMap::new();
    for (key, template) in runtime.env().iter().chain(&overrides.env) {
        // A projector is optional: its variable is left out, not set empty, without one.
        if template.uses(Placeholder::Mmproj) && mmproj.is_none() {
            env.remove(key);
            continue;
        }
        env.insert(key.clone(), template.render(&values)?);
    }
    let device_ids = gpus.map(GpuAllocation::device_ids).unwrap_or_default();
    // CUDA images set NVIDIA_VISIBLE_DEVICES=all, which a host whose default runtime is
    // nvidia would honour: pin it to what admission granted. In CDI mode the devices come
    // from the CDI spec, so the legacy path is given none.
    let visible = match (settings.gpu_mode, device_ids.is_empty()) {
        (GpuMode::Nvidia, false) => device_ids.join(","),
        _ => "void".to_owned(),
    };
    env.insert(RESERVED_ENV.to_owned(), visible);
    let env: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    let labels: HashMap<String, String> = [
        (LABEL_MANAGED, "true"),
        (LABEL_DEPLOYMENT, deployment),
        (LABEL_INSTANCE, instance),
        (LABEL_RUNTIME, runtime.name().as_str()),
        (LABEL_OWNER, settings.owner.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    let mut mounts = vec![Mount {
        target: Some(MODEL_DIR.to_owned()),
        source: Some(source.to_owned()),
        typ: Some(MountType::BIND),
        read_only: Some(true),
        ..Default::default()
    }];
    mounts.extend(runtime.scratch_dirs().iter().map(|dir| Mount {
        // No source: an anonymous volume, removed with the container (`docker rm -v`).
        target: Some(dir.clone()),
        typ: Some(MountType::VOLUME),
        read_only: Some(false),
        ..Default::default()
    }));
    if let Some(dir) = runtime.cache_dir() {
        mounts.push(Mount {
            target: Some(dir.to_owned()),
            source: Some(cache_volume(deployment)),
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            ..Default::default()
        });
    }

    let device_request = match settings.gpu_mode {
        _ if device_ids.is_empty() => None,
        GpuMode::None => None,
        // Never Count: it always means the first N GPUs, busy or not.
        GpuMode::Nvidia => Some(DeviceRequest {
            driver: Some("nvidia".to_owned()),
            device_ids: Some(device_ids.clone()),
            capabilities: Some(vec![vec!["gpu".to_owned()]]),
            ..Default::default()
        }),
        GpuMode::Cdi => Some(DeviceRequest {
            driver: Some("cdi".to_owned()),
            device_ids: Some(device_ids.iter().map(|id| format!("nvidia.com/gpu={id}")).collect()),
            ..Default::default()
        }),
    };
    let requests_devices = device_request.is_some();
    let device_requests = device_request.map(|request| vec![request]);
    // NVIDIA's containers expect these (pinned memory for transfers, deep stacks).
    let ulimits = requests_devices.then(|| {
        vec![
            ResourcesUlimits { name: Some("memlock".to_owned()), soft: Some(-1), hard: Some(-1) },
            ResourcesUlimits { name: Some("stack".to_owned()), soft: Some(67_108_864), hard: Some(67_108_864) },
        ]
    });

    let port_key = format!("{port}/tcp");
    let (port_bindings, network_mode, networking_config, reach) = match &settings.docker_network {
        None => (
            Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_owned()),
                    // Empty: Docker picks a free port.
                    host_port: Some(String::new()),
                }]),
            )])),
            None,
            None,
            Reach::Published { port_key: port_key.clone() },
        ),
        Some(network) => (
            None,
            Some(network.clone()),
            Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network.clone(), EndpointSettings::default())])),
            }),
            Reach::Network { network: network.clone(), port },
        ),
    };

    let host_config = HostConfig {
        mounts: Some(mounts),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges:true".to_owned()]),
        privileged: Some(false),
        pids_limit: Some(settings.pids_limit),
        shm_size: runtime.shm_size_bytes(),
        restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
        // Hangar reads the exit code and the last log lines before it removes the container.
        auto_remove: Some(false),
        init: Some(true),
        device_requests,
        ulimits,
        port_bindings,
        network_mode,
        ..Default::default()
    };

    let body = ContainerCreateBody {
        image: Some(runtime.image().to_owned()),
        entrypoint: runtime.entrypoint().map(<[String]>::to_vec),
        cmd: Some(cmd),
        env: Some(env),
        labels: Some(labels),
        exposed_ports: Some(vec![port_key]),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    };
    Ok(ContainerSpec { options: CreateContainerOptionsBuilder::new().name(&name).build(), name, body, reach })
}

#[cfg(test)]
mod tests;
