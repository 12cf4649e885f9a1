//! The built-in presets (vLLM, llama.cpp, SGLang, TGI, Triton, Ollama): their table per CPU
//! architecture, and lookup by name.

use super::{GIB, Runtime, RuntimeDraft, RuntimeName};

/// Imports the version's GGUF into a writable store, then serves it. Ollama cannot serve
/// from a read-only directory (it renames blobs at start), and it only serves models in its
/// own store. So the model stays mounted read-only at /model; a throwaway server on a
/// private port imports `{file}` into the scratch volume under `{served_name}`; then the
/// real server starts on `{port}`. The port opens only after the import, so the health path
/// means "ready", as for the other runtimes. This costs one copy of the file into the volume
/// per container start: Ollama offers no way around it. Values reach the script through
/// the environment, never spliced into it, so file names cannot inject shell. (No braces:
/// this text is a template, where they would be placeholders.)
const OLLAMA_SCRIPT: &str = r#"set -eu
export OLLAMA_HOST=127.0.0.1:11435
ollama serve & importer=$!
tries=0
until ollama list >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -gt 120 ]; then echo "hangar: the importing ollama server did not start" >&2; exit 1; fi
  sleep 0.5
done
printf 'FROM %s\n' "$HANGAR_MODEL_FILE" > /tmp/Modelfile
ollama create "$HANGAR_SERVED_NAME" -f /tmp/Modelfile
kill "$importer"; wait "$importer" || true
export OLLAMA_HOST="0.0.0.0:$HANGAR_PORT"
exec ollama serve
"#;

struct Preset {
    name: &'static str,
    image: &'static str,
    entrypoint: Option<&'static [&'static str]>,
    args: &'static [&'static str],
    port: u32,
    health_path: &'static str,
    startup_deadline_secs: u64,
    shm_size_bytes: u64,
    env: &'static [(&'static str, &'static str)],
    openai: bool,
    scratch_dirs: &'static [&'static str],
    cache_dir: Option<&'static str>,
    /// Why the preset cannot run on this architecture; `None`: it can.
    refused: Option<&'static str>,
}

/// Names of the built-in runtimes.
pub const PRESET_NAMES: [&str; 6] = ["vllm", "llama-cpp", "sglang", "tgi", "triton", "ollama"];

fn preset_table(arch: &str) -> [Preset; 6] {
    // GB10 (DGX Spark, aarch64) needs CUDA 13 builds: stock CUDA 12 tags lack sm_121.
    let arm = arch == "aarch64";
    let offline: &[(&str, &str)] = &[("HF_HUB_OFFLINE", "1"), ("DO_NOT_TRACK", "1")];
    [
        Preset {
            name: "vllm",
            // Multi-arch. On a Spark, NVIDIA's nvcr.io/nvidia/vllm:<yy.mm>-py3 is the tested
            // image; its entrypoint differs, so set entrypoint ["vllm", "serve"] with it.
            image: "vllm/vllm-openai:latest",
            entrypoint: None,
            args: &[
                "/model",
                "--served-model-name",
                "{served_name}",
                "--host",
                "0.0.0.0",
                "--port",
                "{port}",
                // A fraction of the device's total; that much must be free at start.
                "--gpu-memory-utilization",
                "{device_fraction}",
            ],
            port: 8000,
            health_path: "/health",
            startup_deadline_secs: 900,
            shm_size_bytes: 8 * GIB,
            env: &[
                ("HF_HUB_OFFLINE", "1"),
                ("DO_NOT_TRACK", "1"),
                ("VLLM_NO_USAGE_STATS", "1"),
                // Compiled graphs and kernels survive restarts instead of being rebuilt.
                ("VLLM_CACHE_ROOT", "/cache/vllm"),
                ("TRITON_CACHE_DIR", "/cache/triton"),
            ],
            openai: true,
            scratch_dirs: &[],
            cache_dir: Some("/cache"),
            refused: None,
        },
        Preset {
            name: "llama-cpp",
            image: if arm {
                "ghcr.io/ggml-org/llama.cpp:server-cuda13"
            } else {
                "ghcr.io/ggml-org/llama.cpp:server-cuda"
            },
            entrypoint: None,
            args: &[
                "-m",
                "/model/{file}",
                "--alias",
                "{served_name}",
                "--host",
                "0.0.0.0",
                "--port",
                "{port}",
                "-ngl",
                "999",
            ],
            // The image's HEALTHCHECK is hard-wired to localhost:8080 (upstream's default
            // port is 9931 now, so --port is always passed).
            port: 8080,
            health_path: "/health",
            startup_deadline_secs: 300,
            shm_size_bytes: 0,
            // Options that changed names go through LLAMA_ARG_* variables: a build that lacks
            // one ignores it, where an unknown flag is a parse error (--no-mmap, removed in
            // 2026-09, made every deployment exit). Loading without mmap is much faster on
            // unified memory (GB10).
            // The context grows to fill free memory less LLAMA_ARG_FIT_TARGET (MiB, `--fit-target`).
            env: &[
                ("LLAMA_ARG_LOAD_MODE", "none"),
                ("LLAMA_ARG_MMPROJ", "{model_dir}/{mmproj}"),
                ("LLAMA_ARG_FIT_TARGET", "{fit_target_mib}"),
            ],
            openai: true,
            scratch_dirs: &[],
            cache_dir: None,
            refused: None,
        },
        Preset {
            name: "sglang",
            image: if arm { "lmsysorg/sglang:latest-cu130" } else { "lmsysorg/sglang:latest" },
            entrypoint: None,
            args: &[
                "python3",
                "-m",
                "sglang.launch_server",
                "--model-path",
                "/model",
                "--served-model-name",
                "{served_name}",
                "--host",
                "0.0.0.0",
                "--port",
                "{port}",
                // A fraction of the memory free when it starts.
                "--mem-fraction-static",
                "{free_fraction}",
            ],
            port: 30000,
            health_path: "/health",
            startup_deadline_secs: 900,
            shm_size_bytes: 8 * GIB,
            env: offline,
            openai: true,
            scratch_dirs: &[],
            cache_dir: None,
            refused: None,
        },
        Preset {
            name: "tgi",
            // amd64 only upstream: refused on arm64.
            image: "ghcr.io/huggingface/text-generation-inference:latest",
            entrypoint: None,
            args: &[
                "--model-id",
                "/model",
                "--hostname",
                "0.0.0.0",
                "--port",
                "{port}",
                // "The total visible memory multiplied by cuda-memory-fraction".
                "--cuda-memory-fraction",
                "{device_fraction}",
            ],
            port: 8080,
            health_path: "/health",
            startup_deadline_secs: 600,
            // NCCL needs more than Docker's 64 MiB.
            shm_size_bytes: GIB,
            env: offline,
            openai: true,
            scratch_dirs: &[],
            cache_dir: None,
            refused: arm.then_some(
                "TGI publishes linux/amd64 images only (huggingface/text-generation-inference#2332); \
                 use vllm or sglang on arm64",
            ),
        },
        Preset {
            name: "triton",
            image: "nvcr.io/nvidia/tritonserver:26.10-py3",
            entrypoint: None,
            args: &[
                "tritonserver",
                "--model-repository=/model",
                "--http-port={port}",
                "--grpc-port=8001",
                "--metrics-port=8002",
                "--strict-readiness=true",
            ],
            port: 8000,
            health_path: "/v2/health/ready",
            startup_deadline_secs: 600,
            shm_size_bytes: GIB,
            env: &[],
            openai: false,
            scratch_dirs: &[],
            cache_dir: None,
            refused: None,
        },
        Preset {
            name: "ollama",
            image: "ollama/ollama:latest",
            entrypoint: Some(&["/bin/sh", "-c"]),
            args: &[OLLAMA_SCRIPT],
            port: 11434,
            // "Ollama is running"; the port opens only once the import is done.
            health_path: "/",
            // Includes copying the GGUF into the store.
            startup_deadline_secs: 600,
            shm_size_bytes: 0,
            env: &[
                ("HANGAR_MODEL_FILE", "{model_dir}/{file}"),
                ("HANGAR_SERVED_NAME", "{served_name}"),
                ("HANGAR_PORT", "{port}"),
                ("OLLAMA_MODELS", "/ollama-store"),
                // Hangar stops idle deployments itself; Ollama must not unload on its own.
                ("OLLAMA_KEEP_ALIVE", "-1"),
                ("OLLAMA_MAX_LOADED_MODELS", "1"),
                // Ollama reads this one (not DO_NOT_TRACK): no cloud models or sign-in.
                ("OLLAMA_NO_CLOUD", "1"),
            ],
            openai: true,
            scratch_dirs: &["/ollama-store"],
            cache_dir: None,
            refused: None,
        },
    ]
}

impl Preset {
    fn build(&self) -> Runtime {
        let draft = RuntimeDraft {
            image: self.image.to_owned(),
            entrypoint: self.entrypoint.map(|e| e.iter().map(|s| (*s).to_owned()).collect()),
            args: self.args.iter().map(|s| (*s).to_owned()).collect(),
            port: self.port,
            health_path: self.health_path.to_owned(),
            startup_deadline_secs: self.startup_deadline_secs,
            shm_size_bytes: self.shm_size_bytes,
            env: self.env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            openai: self.openai,
            scratch_dirs: self.scratch_dirs.iter().map(|s| (*s).to_owned()).collect(),
            cache_dir: self.cache_dir.map(str::to_owned),
        };
        let name = RuntimeName::parse(self.name).expect("preset names are valid");
        Runtime::new(name, draft).expect("presets are valid; a unit test builds every one")
    }
}

/// The built-in runtimes for a CPU architecture (`std::env::consts::ARCH`).
pub fn presets_for_arch(arch: &str) -> Vec<Runtime> {
    preset_table(arch).iter().map(Preset::build).collect()
}

/// Why the built-in runtime `name` cannot run on `arch`; `None` when it can (or is no
/// preset).
pub fn refused_on_arch(name: &str, arch: &str) -> Option<&'static str> {
    preset_table(arch).iter().find(|p| p.name == name).and_then(|p| p.refused)
}

/// The built-in runtimes for this host.
pub fn presets() -> Vec<Runtime> {
    presets_for_arch(std::env::consts::ARCH)
}

/// One built-in runtime for this host, by name.
pub fn preset(name: &str) -> Option<Runtime> {
    preset_table(std::env::consts::ARCH).iter().find(|p| p.name == name).map(Preset::build)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::runtime::tests::draft;
    use super::super::{MODEL_DIR, RuntimeDefinition};
    use super::*;
    use crate::runtime::memory::MemoryBudget;
    use crate::runtime::template::Values;

    #[test]
    fn every_preset_is_valid_on_both_architectures() {
        for arch in ["x86_64", "aarch64"] {
            let names: Vec<String> = presets_for_arch(arch).iter().map(|r| r.name().to_string()).collect();
            assert_eq!(names, PRESET_NAMES, "{arch}");
        }
        assert!(preset("vllm").is_some());
        assert!(preset("nope").is_none());
    }

    /// 20 GiB of an 80 GiB GPU, placed beside 20 GiB held by another deployment.
    const SHARED: MemoryBudget = MemoryBudget { budget_gib: Some(20.0), device_gib: Some(80.0), others_gib: 20.0 };

    fn render_with(rt: &Runtime, memory: MemoryBudget) -> Vec<String> {
        rt.args()
            .render(&Values {
                model_dir: MODEL_DIR,
                port: rt.port(),
                served_name: "chat",
                mem_fraction: 0.25,
                file: Some("m.gguf"),
                memory,
                mmproj: None,
            })
            .expect("renders")
    }

    fn render(rt: &Runtime) -> Vec<String> {
        render_with(rt, SHARED)
    }

    /// The value after `flag` in the preset's argv, or of the environment variable `flag`.
    fn flag(name: &str, flag: &str, memory: MemoryBudget) -> String {
        let rt = preset(name).expect(name);
        if let Some(template) = rt.env().get(flag) {
            let values = Values {
                model_dir: MODEL_DIR,
                port: rt.port(),
                served_name: "chat",
                mem_fraction: 0.25,
                file: Some("m.gguf"),
                memory,
                mmproj: None,
            };
            return template.render(&values).expect("renders");
        }
        let argv = render_with(&rt, memory);
        let at = argv.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{name} passes {flag}: {argv:?}"));
        argv[at + 1].clone()
    }

    #[test]
    fn each_preset_gets_its_own_memory_flag_from_the_budget() {
        // Upstream: vLLM's --gpu-memory-utilization and TGI's --cuda-memory-fraction are
        // shares of the device's total; SGLang's --mem-fraction-static of what is free at
        // start (60 GiB here); llama.cpp's --fit-target (LLAMA_ARG_FIT_TARGET) is MiB left
        // free while it fits.
        let cases = [
            ("vllm", "--gpu-memory-utilization", "0.25", "0.85"),
            ("tgi", "--cuda-memory-fraction", "0.25", "0.85"),
            ("sglang", "--mem-fraction-static", "0.3333", "0.75"),
            ("llama-cpp", "LLAMA_ARG_FIT_TARGET", "40960", "1024"),
        ];
        for (name, flag_name, shared, whole) in cases {
            assert_eq!(flag(name, flag_name, SHARED), shared, "{name} on a shared GPU");
            assert_eq!(flag(name, flag_name, MemoryBudget::default()), whole, "{name} on whole GPUs");
        }
    }

    #[test]
    fn tgi_is_refused_on_arm64_with_the_reason_and_allowed_on_amd64() {
        let why = refused_on_arch("tgi", "aarch64").expect("refused on arm64");
        assert!(why.contains("linux/amd64 images only"), "{why}");
        assert_eq!(refused_on_arch("tgi", "x86_64"), None);
        for name in PRESET_NAMES.iter().filter(|n| **n != "tgi") {
            assert_eq!(refused_on_arch(name, "aarch64"), None, "{name}");
        }
        assert_eq!(refused_on_arch("nope", "aarch64"), None);
    }

    #[test]
    fn triton_runs_a_current_release_and_ollama_sets_the_variables_it_reads() {
        let triton = presets_for_arch("x86_64").into_iter().find(|r| r.name().as_str() == "triton").expect("triton");
        assert_eq!(triton.image(), "nvcr.io/nvidia/tritonserver:26.10-py3");
        let ollama = preset("ollama").expect("preset");
        assert_eq!(ollama.env()["OLLAMA_NO_CLOUD"].as_str(), "1");
        assert!(!ollama.env().contains_key("DO_NOT_TRACK"), "Ollama does not read it");
    }

    #[test]
    fn the_vllm_and_llama_cpp_presets_have_the_argv_of_the_issue() {
        let vllm = preset("vllm").expect("preset");
        assert_eq!(
            render(&vllm).join(" "),
            "/model --served-model-name chat --host 0.0.0.0 --port 8000 --gpu-memory-utilization 0.25"
        );
        assert_eq!(
            (vllm.health_path(), vllm.startup_deadline(), vllm.shm_size_bytes()),
            ("/health", Duration::from_secs(900), Some(8 << 30))
        );
        assert_eq!(vllm.env()["HF_HUB_OFFLINE"].as_str(), "1");
        assert!(vllm.openai() && !vllm.needs_file());

        let llama = preset("llama-cpp").expect("preset");
        assert_eq!(render(&llama).join(" "), "-m /model/m.gguf --alias chat --host 0.0.0.0 --port 8080 -ngl 999");
        assert_eq!(llama.health_path(), "/health");
        assert!(llama.needs_file());
    }

    #[test]
    fn images_follow_the_architecture() {
        let image = |arch: &str, name: &str| {
            presets_for_arch(arch)
                .into_iter()
                .find(|r| r.name().as_str() == name)
                .map(|r| r.image().to_owned())
                .expect(name)
        };
        assert_eq!(image("x86_64", "llama-cpp"), "ghcr.io/ggml-org/llama.cpp:server-cuda");
        assert_eq!(image("aarch64", "llama-cpp"), "ghcr.io/ggml-org/llama.cpp:server-cuda13");
        assert_eq!(image("aarch64", "sglang"), "lmsysorg/sglang:latest-cu130");
    }

    #[test]
    fn triton_is_not_openai_and_waits_for_readiness() {
        let triton = preset("triton").expect("preset");
        assert!(!triton.openai());
        assert_eq!(triton.health_path(), "/v2/health/ready");
        assert!(render(&triton).contains(&"--http-port=8000".to_owned()));
    }

    #[test]
    fn ollama_imports_into_a_scratch_volume_through_the_environment() {
        let ollama = preset("ollama").expect("preset");
        assert_eq!(ollama.entrypoint(), Some(&["/bin/sh".to_owned(), "-c".to_owned()][..]));
        assert_eq!(ollama.scratch_dirs(), ["/ollama-store"]);
        assert_eq!(ollama.env()["OLLAMA_MODELS"].as_str(), "/ollama-store");
        assert!(ollama.needs_file(), "the GGUF to import is {{file}}");
        let script = &render(&ollama)[0];
        assert_eq!(script, OLLAMA_SCRIPT, "the script has no placeholders");
        assert!(script.contains("\"$HANGAR_MODEL_FILE\""));
        assert!(script.ends_with("exec ollama serve\n"));
    }

    #[test]
    fn the_llama_cpp_preset_follows_upstream_llama_cpp_of_october_2026() {
        let llama = preset("llama-cpp").expect("preset");
        let args: Vec<&str> = llama.args().args().collect();
        assert!(!args.contains(&"--no-mmap"), "removed upstream (invalid argument): {args:?}");
        assert_eq!(llama.env()["LLAMA_ARG_LOAD_MODE"].as_str(), "none", "its replacement, as a variable");
        let port = args.iter().position(|a| *a == "--port").expect("--port: the default is 9931 now");
        assert_eq!(args[port + 1], "{port}");
        assert_eq!(llama.env()["LLAMA_ARG_MMPROJ"].as_str(), "{model_dir}/{mmproj}");
        assert!(!args.iter().any(|a| a.contains("{mmproj}")), "optional, so only in the environment");
    }

    #[test]
    fn a_preset_with_another_image_keeps_everything_else_and_is_stored_as_written() {
        let json = r#"{"preset": "llama-cpp", "image": "hangar-llama-server:0.3.36"}"#;
        let runtime = Runtime::from_stored("llama-cpp", json).expect("valid");
        let base = preset("llama-cpp").expect("preset");
        assert_eq!(runtime.image(), "hangar-llama-server:0.3.36");
        assert_eq!(runtime.preset(), Some("llama-cpp"));
        assert_eq!(runtime.args(), base.args());
        assert_eq!(runtime.env(), base.env());
        assert_eq!((runtime.port(), runtime.health_path()), (base.port(), base.health_path()));
        assert_eq!(
            serde_json::to_value(runtime.definition()).expect("json"),
            serde_json::json!({
                "preset": "llama-cpp", "image": "hangar-llama-server:0.3.36"
            })
        );
        let view = serde_json::to_value(&runtime).expect("json");
        assert_eq!((view["preset"].as_str(), view["port"].as_u64()), (Some("llama-cpp"), Some(8080)));

        let full = Runtime::from_stored("t", &serde_json::to_string(&draft()).expect("json")).expect("valid");
        assert_eq!(full.preset(), None);
        assert_eq!(full.definition(), RuntimeDefinition::Full(draft()));

        for (json, needle) in [
            (r#"{"preset": "nope", "image": "x"}"#, "not a built-in preset"),
            (r#"{"preset": "vllm", "image": "a b"}"#, "not an image reference"),
            (r#"{"preset": "vllm", "image": "x", "port": 1}"#, "unknown field `port`"),
            (r#"{"preset": "vllm"}"#, "missing field `image`"),
        ] {
            let err = Runtime::from_stored("t", json).expect_err(json);
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
