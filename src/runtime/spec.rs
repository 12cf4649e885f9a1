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
mod tests {
    use super::*;
    use crate::runtime::presets::{RuntimeDraft, RuntimeName, preset};

    fn test_runtime() -> Runtime {
        Runtime::new(
            RuntimeName::parse("test").expect("valid"),
            RuntimeDraft {
                image: "hangar-test-model:latest".into(),
                entrypoint: None,
                args: ["--port", "{port}", "--served-model-name", "{served_name}", "--f", "{mem_fraction}"]
                    .map(String::from)
                    .to_vec(),
                port: 8000,
                health_path: "/health".into(),
                startup_deadline_secs: 30,
                shm_size_bytes: 0,
                env: BTreeMap::from([("A".into(), "{served_name}-{port}".into())]),
                openai: true,
                scratch_dirs: vec![],
                cache_dir: None,
            },
        )
        .expect("valid runtime")
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The body every container shares, for `test_runtime` on the default settings without
    /// GPUs; cases change only what they are about.
    fn expected_base() -> ContainerCreateBody {
        ContainerCreateBody {
            image: Some("hangar-test-model:latest".into()),
            entrypoint: None,
            cmd: Some(strings(&["--port", "8000", "--served-model-name", "chat", "--f", "0.9"])),
            env: Some(strings(&["A=chat-8000", "NVIDIA_VISIBLE_DEVICES=void"])),
            labels: Some(HashMap::from(
                [
                    ("hangar.managed", "true"),
                    ("hangar.deployment", "chat"),
                    ("hangar.instance", "i-1"),
                    ("hangar.runtime", "test"),
                    ("hangar.owner", ""),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
            )),
            exposed_ports: Some(strings(&["8000/tcp"])),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    target: Some("/model".into()),
                    source: Some("/data/snapshots/llama/1".into()),
                    typ: Some(MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                }]),
                cap_drop: Some(strings(&["ALL"])),
                security_opt: Some(strings(&["no-new-privileges:true"])),
                privileged: Some(false),
                pids_limit: Some(4096),
                shm_size: None,
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
                auto_remove: Some(false),
                init: Some(true),
                device_requests: None,
                ulimits: None,
                port_bindings: Some(HashMap::from([(
                    "8000/tcp".to_owned(),
                    Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }]),
                )])),
                network_mode: None,
                ..Default::default()
            }),
            networking_config: None,
            ..Default::default()
        }
    }

    fn host(body: &mut ContainerCreateBody) -> &mut HostConfig {
        body.host_config.as_mut().expect("host config")
    }

    fn gpu_ulimits() -> Option<Vec<ResourcesUlimits>> {
        Some(vec![
            ResourcesUlimits { name: Some("memlock".into()), soft: Some(-1), hard: Some(-1) },
            ResourcesUlimits { name: Some("stack".into()), soft: Some(67_108_864), hard: Some(67_108_864) },
        ])
    }

    #[test]
    fn container_spec_table() {
        let runtime = test_runtime();
        let no_overrides = Overrides::default();
        let overrides = Overrides::parse(
            &BTreeMap::from([("A".into(), "override".into()), ("HANGAR_TEST_FILE".into(), "{file}".into())]),
            &strings(&["--health-delay-secs", "2"]),
        )
        .expect("valid overrides");
        let whole = GpuAllocation::Exclusive { device_ids: strings(&["1", "3"]) };
        let shared = GpuAllocation::Shared {
            device_id: "0".into(),
            memory_gib: 16.0,
            mem_fraction: 0.125,
            device_gib: Some(128.0),
            others_gib: 0.0,
        };
        let network = SpecSettings { docker_network: Some("hangar-net".into()), ..SpecSettings::default() };
        let cdi = SpecSettings { gpu_mode: GpuMode::Cdi, ..SpecSettings::default() };
        let accounting_only = SpecSettings { gpu_mode: GpuMode::None, ..SpecSettings::default() };
        let limited = SpecSettings { pids_limit: 100, ..SpecSettings::default() };
        let defaults = SpecSettings::default();
        let base = || SpecInput {
            deployment: "chat",
            instance: "i-1",
            runtime: &runtime,
            snapshot: Path::new("/data/snapshots/llama/1"),
            gpus: None,
            file: None,
            mmproj: None,
            overrides: &no_overrides,
            settings: &defaults,
        };

        type Edit = fn(&mut ContainerCreateBody);
        let cases: Vec<(&str, SpecInput<'_>, Edit, Reach)> = vec![
            (
                "no GPU: published on 127.0.0.1 with an ephemeral port",
                base(),
                |_| {},
                Reach::Published { port_key: "8000/tcp".into() },
            ),
            (
                "whole GPUs, nvidia mode: device ids, never Count",
                SpecInput { gpus: Some(&whole), ..base() },
                |b| {
                    b.env = Some(strings(&["A=chat-8000", "NVIDIA_VISIBLE_DEVICES=1,3"]));
                    let h = host(b);
                    h.device_requests = Some(vec![DeviceRequest {
                        driver: Some("nvidia".into()),
                        count: None,
                        device_ids: Some(strings(&["1", "3"])),
                        capabilities: Some(vec![strings(&["gpu"])]),
                        options: None,
                    }]);
                    h.ulimits = gpu_ulimits();
                },
                Reach::Published { port_key: "8000/tcp".into() },
            ),
            (
                "whole GPUs, cdi mode: qualified CDI names",
                SpecInput { gpus: Some(&whole), settings: &cdi, ..base() },
                |b| {
                    let h = host(b);
                    h.device_requests = Some(vec![DeviceRequest {
                        driver: Some("cdi".into()),
                        count: None,
                        device_ids: Some(strings(&["nvidia.com/gpu=1", "nvidia.com/gpu=3"])),
                        capabilities: None,
                        options: None,
                    }]);
                    h.ulimits = gpu_ulimits();
                },
                Reach::Published { port_key: "8000/tcp".into() },
            ),
            (
                "gpu_mode none: GPUs are accounted, none is requested",
                SpecInput { gpus: Some(&whole), settings: &accounting_only, ..base() },
                |_| {},
                Reach::Published { port_key: "8000/tcp".into() },
            ),
            (
                "shared GPU: one device and the fraction in the argv",
                SpecInput { gpus: Some(&shared), ..base() },
                |b| {
                    b.cmd = Some(strings(&["--port", "8000", "--served-model-name", "chat", "--f", "0.125"]));
                    b.env = Some(strings(&["A=chat-8000", "NVIDIA_VISIBLE_DEVICES=0"]));
                    let h = host(b);
                    h.device_requests = Some(vec![DeviceRequest {
                        driver: Some("nvidia".into()),
                        device_ids: Some(strings(&["0"])),
                        capabilities: Some(vec![strings(&["gpu"])]),
                        ..Default::default()
                    }]);
                    h.ulimits = gpu_ulimits();
                },
                Reach::Published { port_key: "8000/tcp".into() },
            ),
            (
                "a docker network: joined, reached by name, nothing published",
                SpecInput { settings: &network, ..base() },
                |b| {
                    b.networking_config = Some(NetworkingConfig {
                        endpoints_config: Some(HashMap::from([("hangar-net".to_owned(), EndpointSettings::default())])),
                    });
                    let h = host(b);
                    h.port_bindings = None;
                    h.network_mode = Some("hangar-net".into());
                },
                Reach::Network { network: "hangar-net".into(), port: 8000 },
            ),
            (
                "overrides replace and add env and append args",
                SpecInput { overrides: &overrides, file: Some("weights/a.bin"), ..base() },
                |b| {
                    b.cmd = Some(strings(&[
                        "--port",
                        "8000",
                        "--served-model-name",
                        "chat",
                        "--f",
                        "0.9",
                        "--health-delay-secs",
                        "2",
                    ]));
                    b.env =
                        Some(strings(&["A=override", "HANGAR_TEST_FILE=weights/a.bin", "NVIDIA_VISIBLE_DEVICES=void"]));
                },
                Reach::Published { port_key: "8000/tcp".into() },
            ),
            (
                "the pids limit comes from the settings",
                SpecInput { settings: &limited, ..base() },
                |b| host(b).pids_limit = Some(100),
                Reach::Published { port_key: "8000/tcp".into() },
            ),
        ];
        for (what, input, edit, reach) in cases {
            let spec = container_spec(&input).expect(what);
            let mut want = expected_base();
            edit(&mut want);
            assert_eq!(spec.body, want, "{what}");
            assert_eq!(spec.name, "hangar-chat", "{what}");
            assert_eq!(spec.options.name.as_deref(), Some("hangar-chat"), "{what}");
            assert_eq!(spec.reach, reach, "{what}");
        }
    }

    #[test]
    fn presets_with_entrypoints_shm_and_scratch_volumes() {
        let ollama = preset("ollama").expect("preset");
        let settings = SpecSettings::default();
        let spec = container_spec(&SpecInput {
            deployment: "tiny",
            instance: "i-2",
            runtime: &ollama,
            snapshot: Path::new("/srv/snap"),
            gpus: None,
            file: Some("tiny.gguf"),
            mmproj: None,
            overrides: &Overrides::default(),
            settings: &settings,
        })
        .expect("spec");
        assert_eq!(spec.body.entrypoint, Some(strings(&["/bin/sh", "-c"])));
        let env = spec.body.env.expect("env");
        assert!(env.contains(&"HANGAR_MODEL_FILE=/model/tiny.gguf".to_owned()), "{env:?}");
        assert!(env.contains(&"HANGAR_PORT=11434".to_owned()), "{env:?}");
        let host = spec.body.host_config.expect("host config");
        assert_eq!(
            host.mounts.expect("mounts")[1],
            Mount {
                target: Some("/ollama-store".into()),
                source: None,
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            }
        );
        assert_eq!(spec.body.exposed_ports, Some(strings(&["11434/tcp"])));

        let vllm = preset("vllm").expect("preset");
        let spec = container_spec(&SpecInput {
            deployment: "big",
            runtime: &vllm,
            instance: "i-3",
            snapshot: Path::new("/srv/snap"),
            gpus: None,
            file: None,
            mmproj: None,
            overrides: &Overrides::default(),
            settings: &settings,
        })
        .expect("spec");
        let host = spec.body.host_config.expect("host");
        assert_eq!(host.shm_size, Some(8 << 30));
        assert_eq!(
            host.mounts.expect("mounts")[1],
            Mount {
                target: Some("/cache".into()),
                source: Some("hangar-big.cache".into()),
                typ: Some(MountType::VOLUME),
                read_only: Some(false),
                ..Default::default()
            },
            "vLLM's compile cache is the deployment's own volume"
        );
        let env = spec.body.env.expect("env");
        assert!(env.contains(&"VLLM_CACHE_ROOT=/cache/vllm".to_owned()), "{env:?}");
    }

    #[test]
    fn a_shared_gpu_gives_each_preset_its_own_memory_flag_in_the_docker_request() {
        let shared = GpuAllocation::Shared {
            device_id: "0".into(),
            memory_gib: 30.0,
            mem_fraction: 0.3,
            device_gib: Some(120.0),
            others_gib: 60.0,
        };
        let settings = SpecSettings::default();
        let body = |name: &str| {
            let runtime = preset(name).expect(name);
            container_spec(&SpecInput {
                deployment: "chat",
                instance: "i-1",
                runtime: &runtime,
                snapshot: Path::new("/srv/snap"),
                gpus: Some(&shared),
                file: Some("m.gguf"),
                mmproj: None,
                overrides: &Overrides::default(),
                settings: &settings,
            })
            .expect("spec")
            .body
        };
        let cmd = |name: &str| body(name).cmd.expect("cmd").join(" ");
        assert!(cmd("vllm").ends_with("--gpu-memory-utilization 0.25"), "30 of 120 GiB: {}", cmd("vllm"));
        assert!(cmd("sglang").ends_with("--mem-fraction-static 0.5"), "30 of the 60 free: {}", cmd("sglang"));
        let llama = body("llama-cpp").env.expect("env");
        assert!(llama.contains(&"LLAMA_ARG_FIT_TARGET=30720".to_owned()), "leave 30 GiB: {llama:?}");
    }

    #[test]
    fn the_llama_cpp_projector_variable_is_set_only_when_the_version_has_one() {
        let llama = preset("llama-cpp").expect("preset");
        let settings = SpecSettings::default();
        let env_of = |mmproj: Option<&str>| {
            container_spec(&SpecInput {
                deployment: "vision",
                instance: "i-4",
                runtime: &llama,
                snapshot: Path::new("/srv/snap"),
                gpus: None,
                file: Some("model-00001-of-00002.gguf"),
                mmproj,
                overrides: &Overrides::default(),
                settings: &settings,
            })
            .expect("spec")
            .body
            .env
            .expect("env")
        };
        let with = env_of(Some("mmproj-f16.gguf"));
        assert!(with.contains(&"LLAMA_ARG_MMPROJ=/model/mmproj-f16.gguf".to_owned()), "{with:?}");
        assert!(with.contains(&"LLAMA_ARG_LOAD_MODE=none".to_owned()), "{with:?}");
        let without = env_of(None);
        assert!(!without.iter().any(|e| e.starts_with("LLAMA_ARG_MMPROJ")), "left out, not empty: {without:?}");
        assert!(without.contains(&"LLAMA_ARG_LOAD_MODE=none".to_owned()), "{without:?}");
    }

    #[test]
    fn inputs_that_cannot_make_a_container_are_refused() {
        let runtime = test_runtime();
        let llama = preset("llama-cpp").expect("preset");
        let overrides = Overrides::default();
        let settings = SpecSettings::default();
        let bad_network = SpecSettings { docker_network: Some("a b".into()), ..SpecSettings::default() };
        let base = SpecInput {
            deployment: "chat",
            instance: "i-1",
            runtime: &runtime,
            snapshot: Path::new("/data/s"),
            gpus: None,
            file: None,
            mmproj: None,
            overrides: &overrides,
            settings: &settings,
        };
        let cases = [
            (SpecInput { deployment: "", ..base }, "cannot name a container"),
            (SpecInput { deployment: "a/b", ..base }, "cannot name a container"),
            (SpecInput { deployment: "-x", ..base }, "cannot name a container"),
            (SpecInput { instance: "", ..base }, "instance id is empty"),
            (SpecInput { snapshot: Path::new("data/s"), ..base }, "absolute"),
            (SpecInput { settings: &bad_network, ..base }, "not a network name"),
            (SpecInput { runtime: &llama, ..base }, "no file was chosen"),
        ];
        for (input, needle) in cases {
            let err = container_spec(&input).expect_err(needle).to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn overrides_are_checked_and_round_trip_as_json() {
        let parsed: Overrides =
            serde_json::from_str(r#"{"env": {"X": "{port}"}, "args": ["--a", "{served_name}"]}"#).expect("valid");
        let json = serde_json::to_value(&parsed).expect("serializes");
        assert_eq!(json, serde_json::json!({"env": {"X": "{port}"}, "args": ["--a", "{served_name}"]}));
        for (json, needle) in [
            (r#"{"args": ["{nope}"]}"#, "unknown placeholder {nope}"),
            (r#"{"env": {"NVIDIA_VISIBLE_DEVICES": "all"}}"#, "set by Hangar"),
            (r#"{"env": {"A-B": "x"}}"#, "not a variable name"),
            (r#"{"argz": []}"#, "argz"),
        ] {
            let err = serde_json::from_str::<Overrides>(json).expect_err(json).to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn the_body_serializes_to_the_engine_api_shape() {
        let runtime = test_runtime();
        let settings = SpecSettings::default();
        let spec = container_spec(&SpecInput {
            deployment: "chat",
            instance: "i-1",
            runtime: &runtime,
            snapshot: Path::new("/data/s"),
            gpus: None,
            file: None,
            mmproj: None,
            overrides: &Overrides::default(),
            settings: &settings,
        })
        .expect("spec");
        let json = serde_json::to_value(&spec.body).expect("serializes");
        assert_eq!(json["ExposedPorts"], serde_json::json!({"8000/tcp": {}}));
        assert_eq!(json["HostConfig"]["Mounts"][0]["Type"], "bind");
        assert_eq!(json["HostConfig"]["Mounts"][0]["ReadOnly"], true);
        assert_eq!(json["HostConfig"]["RestartPolicy"]["Name"], "no");
        assert_eq!(
            json["HostConfig"]["PortBindings"]["8000/tcp"][0],
            serde_json::json!({"HostIp": "127.0.0.1", "HostPort": ""})
        );
        assert!(json["HostConfig"].get("Binds").is_none(), "Mounts, never Binds");
    }
}
