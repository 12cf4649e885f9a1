//! Docker's create request for each kind of container, asserted field by field: what the
//! engine receives is what these tests state.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, EndpointSettings, HostConfig, Mount as DockerMount, MountType,
    NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};

use super::{body, options};
use crate::runtime::gpu::GpuAllocation;
use crate::runtime::presets::preset;
use crate::runtime::spec::tests::test_runtime;
use crate::runtime::spec::{GpuMode, Overrides, Reach, SpecInput, SpecSettings, container_spec};

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
            mounts: Some(vec![DockerMount {
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
            restart_policy: Some(RestartPolicy { name: Some(RestartPolicyNameEnum::NO), maximum_retry_count: None }),
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
        ("no GPU: published on 127.0.0.1 with an ephemeral port", base(), |_| {}, Reach::Published),
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
            Reach::Published,
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
            Reach::Published,
        ),
        (
            "gpu_mode none: GPUs are accounted, none is requested",
            SpecInput { gpus: Some(&whole), settings: &accounting_only, ..base() },
            |_| {},
            Reach::Published,
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
            Reach::Published,
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
            Reach::Network { network: "hangar-net".into() },
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
                b.env = Some(strings(&["A=override", "HANGAR_TEST_FILE=weights/a.bin", "NVIDIA_VISIBLE_DEVICES=void"]));
            },
            Reach::Published,
        ),
        (
            "the pids limit comes from the settings",
            SpecInput { settings: &limited, ..base() },
            |b| host(b).pids_limit = Some(100),
            Reach::Published,
        ),
    ];
    for (what, input, edit, reach) in cases {
        let spec = container_spec(&input).expect(what);
        let mut want = expected_base();
        edit(&mut want);
        assert_eq!(body(&spec), want, "{what}");
        assert_eq!(spec.name, "hangar-chat", "{what}");
        assert_eq!(options(&spec).name.as_deref(), Some("hangar-chat"), "{what}");
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
    let body = body(&spec);
    assert_eq!(body.entrypoint, Some(strings(&["/bin/sh", "-c"])));
    let env = body.env.expect("env");
    assert!(env.contains(&"HANGAR_MODEL_FILE=/model/tiny.gguf".to_owned()), "{env:?}");
    assert!(env.contains(&"HANGAR_PORT=11434".to_owned()), "{env:?}");
    let host = body.host_config.expect("host config");
    assert_eq!(
        host.mounts.expect("mounts")[1],
        DockerMount {
            target: Some("/ollama-store".into()),
            source: None,
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            ..Default::default()
        }
    );
    assert_eq!(body.exposed_ports, Some(strings(&["11434/tcp"])));

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
    let body = super::body(&spec);
    let host = body.host_config.expect("host");
    assert_eq!(host.shm_size, Some(8 << 30));
    assert_eq!(
        host.mounts.expect("mounts")[1],
        DockerMount {
            target: Some("/cache".into()),
            source: Some("hangar-big.cache".into()),
            typ: Some(MountType::VOLUME),
            read_only: Some(false),
            ..Default::default()
        },
        "vLLM's compile cache is the deployment's own volume"
    );
    let env = body.env.expect("env");
    assert!(env.contains(&"VLLM_CACHE_ROOT=/cache/vllm".to_owned()), "{env:?}");
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
    let json = serde_json::to_value(body(&spec)).expect("serializes");
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
