//! The container specs and Docker create requests built for each runtime, asserted field by field.

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
                b.env = Some(strings(&["A=override", "HANGAR_TEST_FILE=weights/a.bin", "NVIDIA_VISIBLE_DEVICES=void"]));
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
