//! The container specs built for each runtime: names, argv, environment and refusals.
//! (Docker's request for a spec is asserted in `runtime::docker::request`.)

use super::*;
use crate::runtime::presets::{RuntimeDraft, RuntimeName, preset};

/// A runtime of the test model server's shape, shared with `runtime::docker::request`'s tests.
pub(crate) fn test_runtime() -> Runtime {
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

#[test]
fn a_shared_gpu_gives_each_preset_its_own_memory_flag_in_the_spec() {
    let shared = GpuAllocation::Shared {
        device_id: "0".into(),
        memory_gib: 30.0,
        mem_fraction: 0.3,
        device_gib: Some(120.0),
        others_gib: 60.0,
    };
    let settings = SpecSettings::default();
    let spec = |name: &str| {
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
    };
    let cmd = |name: &str| spec(name).cmd.join(" ");
    assert!(cmd("vllm").ends_with("--gpu-memory-utilization 0.25"), "30 of 120 GiB: {}", cmd("vllm"));
    assert!(cmd("sglang").ends_with("--mem-fraction-static 0.5"), "30 of the 60 free: {}", cmd("sglang"));
    let llama = spec("llama-cpp").env;
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
        .env
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
