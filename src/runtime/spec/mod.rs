//! The container spec: a pure function from a deployment's facts (name, instance, runtime,
//! snapshot path, GPU allocation, overrides, settings) to the container Hangar wants, in its
//! own terms. Nothing here talks to an engine, so every field is covered by table tests;
//! `runtime::docker` turns a spec into Docker's create request.
//!
//! Every container: named `hangar-<deployment>`; labelled with the deployment, the instance,
//! the runtime and the owning installation; the snapshot mounted read-only at `/model`;
//! `NVIDIA_VISIBLE_DEVICES` pinned to the GPUs admission granted; a pids limit; reached on
//! 127.0.0.1 with a port the engine picks, or, when Hangar runs in a container, on the
//! network both share.

use std::collections::BTreeMap;
use std::path::Path;

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
    /// Published on 127.0.0.1 on a free host port the engine picks, read back after start.
    Published,
    /// On the shared network, at the container's address there (read back after start).
    /// Not by name: a rollout's new container takes the usual name only after the old one
    /// is gone, and requests must reach it from the switch on.
    Network { network: String },
}

/// A filesystem mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// The version's snapshot, read-only at `/model`. A missing source fails the create.
    Snapshot { source: String },
    /// A writable scratch directory that lives and dies with the container.
    Scratch { target: String },
    /// The runtime's cache directory, on a named volume kept across the deployment's
    /// containers.
    Cache { volume: String, target: String },
}

/// The GPUs asked of the engine, by device id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// Through the NVIDIA Container Toolkit's hook (`--gpus '"device=0,1"'`).
    Nvidia(Vec<String>),
    /// As CDI devices (`--device nvidia.com/gpu=0`).
    Cdi(Vec<String>),
}

/// One container of a deployment, in Hangar's terms; `runtime::docker` turns it into the
/// engine's create request, adding the hardening every container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// `hangar-<deployment>`; a rollout's new container runs under another name until it
    /// takes this one over.
    pub name: String,
    pub image: String,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    /// `NAME=value`, sorted by name.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    pub devices: Option<Devices>,
    pub pids_limit: i64,
    pub shm_size: Option<i64>,
    /// The port the server listens on inside the container.
    pub port: u16,
    pub reach: Reach,
}

impl ContainerSpec {
    /// The label value under `key`, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
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

/// The name of a rollout's new container, which runs beside the one holding the usual name
/// until it takes that name over.
pub fn rollout_name(usual_name: &str, suffix: &str) -> String {
    format!("{usual_name}-{suffix}")
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

    let labels = [
        (LABEL_MANAGED, "true"),
        (LABEL_DEPLOYMENT, deployment),
        (LABEL_INSTANCE, instance),
        (LABEL_RUNTIME, runtime.name().as_str()),
        (LABEL_OWNER, settings.owner.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    let mut mounts = vec![Mount::Snapshot { source: source.to_owned() }];
    mounts.extend(runtime.scratch_dirs().iter().map(|dir| Mount::Scratch { target: dir.clone() }));
    if let Some(dir) = runtime.cache_dir() {
        mounts.push(Mount::Cache { volume: cache_volume(deployment), target: dir.to_owned() });
    }

    let devices = match settings.gpu_mode {
        _ if device_ids.is_empty() => None,
        GpuMode::None => None,
        GpuMode::Nvidia => Some(Devices::Nvidia(device_ids)),
        GpuMode::Cdi => Some(Devices::Cdi(device_ids)),
    };
    let reach = match &settings.docker_network {
        None => Reach::Published,
        Some(network) => Reach::Network { network: network.clone() },
    };

    Ok(ContainerSpec {
        name: container_name(deployment),
        image: runtime.image().to_owned(),
        entrypoint: runtime.entrypoint().map(<[String]>::to_vec),
        cmd,
        env,
        labels,
        mounts,
        devices,
        pids_limit: settings.pids_limit,
        shm_size: runtime.shm_size_bytes(),
        port,
        reach,
    })
}

#[cfg(test)]
pub(crate) mod tests;
