//! Runtimes: how to serve a model format in a container (image, argv template, port, health
//! path, startup deadline, shared memory, environment, whether it speaks OpenAI), and the
//! built-in presets. A [`Runtime`] is checked when it is built, from a preset or from an
//! admin's [`RuntimeDraft`] (the `PUT /api/v1/runtimes/{name}` body, also what is stored
//! as JSON in SQLite), so every one that exists can be turned into a container spec.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::template::{ArgTemplate, Placeholder, Template, TemplateError};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Where every container sees its model, read-only.
pub const MODEL_DIR: &str = "/model";

/// A runtime's name: `[a-z0-9][a-z0-9._-]{0,62}`, like a model name without a team.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RuntimeName(String);

impl RuntimeName {
    pub fn parse(raw: &str) -> Result<Self, RuntimeError> {
        const RULE: &str = "use 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit";
        let shown: String = raw.chars().take(80).collect();
        let err = |why: String| RuntimeError::new("name", format!("{shown:?} {why}; {RULE}"));
        match raw.chars().next() {
            None => return Err(err("is empty".into())),
            Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
                return Err(err(format!("starts with {c:?}")));
            }
            Some(_) => {}
        }
        if raw.len() > 63 {
            return Err(err(format!("is {} characters long", raw.len())));
        }
        if let Some(c) = raw.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c))) {
            return Err(err(format!("contains {c:?}")));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuntimeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a runtime was refused: the field, and what a valid value looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runtime {field}: {reason}")]
pub struct RuntimeError {
    field: String,
    reason: String,
}

impl RuntimeError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }

    fn template(field: impl Into<String>, err: TemplateError) -> Self {
        Self::new(field, err.to_string())
    }

    /// The field that was refused (`image`, `args`, `env.HF_HOME`, …).
    pub fn field(&self) -> &str {
        &self.field
    }
}

fn default_health_path() -> String {
    "/health".to_owned()
}

fn default_true() -> bool {
    true
}

/// A runtime as an admin writes it: the body of `PUT /api/v1/runtimes/{name}`, and the JSON
/// stored for it. Nothing here is trusted until [`Runtime::new`] accepts it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeDraft {
    /// Image reference; it must already be on the host (`docker pull` it), nothing is pulled.
    pub image: String,
    /// Replaces the image's entrypoint when set; the image's own is kept when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Arguments after the entrypoint, with placeholders.
    #[serde(default)]
    pub args: Vec<String>,
    /// The port the server listens on inside the container (1-65535).
    pub port: u32,
    /// Answers 200 once the model is loaded.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// From container start to a healthy answer, at most.
    pub startup_deadline_secs: u64,
    /// `/dev/shm` size; 0 keeps Docker's default (64 MiB).
    #[serde(default)]
    pub shm_size_bytes: u64,
    /// Environment; values may use placeholders (`OLLAMA_HOST=0.0.0.0:{port}`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether it speaks the OpenAI API (the gateway routes `/v1/*` to it); if not, it is
    /// reached through `/deployments/{name}/proxy/…`.
    #[serde(default = "default_true")]
    pub openai: bool,
    /// Container paths that get a fresh, writable, anonymous volume per container, for
    /// servers that must write beside their model (Ollama's store). Removed with the
    /// container (`docker rm -v`).
    #[serde(default)]
    pub scratch_dirs: Vec<String>,
    /// A container path that gets the deployment's own writable volume, kept across its
    /// restarts and removed with the deployment: compile caches (vLLM's `VLLM_CACHE_ROOT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<String>,
}

/// A built-in preset under another image: `{"preset": "llama-cpp", "image": "…"}`, the other
/// form of the `PUT /api/v1/runtimes/{name}` body. Everything but the image (arguments,
/// environment, port, health path, deadline) is the preset's as this Hangar defines it, so a
/// fix to the preset reaches the runtime too.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetImage {
    /// A built-in preset's name.
    pub preset: String,
    /// Image reference to run instead of the preset's.
    pub image: String,
}

/// What an admin defines and Hangar stores for a runtime: every field, or a preset with
/// another image. A JSON object with a `preset` member is the second.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum RuntimeDefinition {
    Preset(PresetImage),
    Full(RuntimeDraft),
}

impl<'de> serde::Deserialize<'de> for RuntimeDefinition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("preset").is_some() {
            serde_json::from_value(value).map(Self::Preset).map_err(D::Error::custom)
        } else {
            serde_json::from_value(value).map(Self::Full).map_err(D::Error::custom)
        }
    }
}

/// A checked runtime. Build one with [`Runtime::new`] or [`Runtime::define`], or take a
/// [`preset`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    name: RuntimeName,
    /// The preset this runtime takes everything but its image from.
    preset: Option<String>,
    draft: RuntimeDraft,
    args: ArgTemplate,
    env: BTreeMap<String, Template>,
}

impl Runtime {
    /// Checks every field; the error names the first one that is wrong.
    pub fn new(name: RuntimeName, draft: RuntimeDraft) -> Result<Self, RuntimeError> {
        let image = draft.image.as_str();
        if image.is_empty() {
            return Err(RuntimeError::new(
                "image",
                "is empty; give an image reference such as vllm/vllm-openai:latest",
            ));
        }
        if image.len() > 512 || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RuntimeError::new(
                "image",
                format!(
                    "{:?} is not an image reference (no spaces, at most 512 characters)",
                    image.chars().take(80).collect::<String>()
                ),
            ));
        }
        if let Some(entrypoint) = &draft.entrypoint {
            if entrypoint.is_empty() {
                return Err(RuntimeError::new(
                    "entrypoint",
                    "is an empty list; leave it out to keep the image's entrypoint",
                ));
            }
            if entrypoint.iter().any(|a| a.contains('\0')) {
                return Err(RuntimeError::new("entrypoint", "contains a NUL byte"));
            }
        }
        if draft.args.iter().any(|a| a.contains('\0')) {
            return Err(RuntimeError::new("args", "contain a NUL byte"));
        }
        let args = ArgTemplate::parse(&draft.args).map_err(|e| RuntimeError::template("args", e))?;
        if !(1..=65535).contains(&draft.port) {
            return Err(RuntimeError::new("port", format!("{} is not a port; use 1-65535", draft.port)));
        }
        let path = draft.health_path.as_str();
        if !path.starts_with('/') || path.len() > 1024 || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RuntimeError::new(
                "health_path",
                format!(
                    "{:?} is not a path; use one that starts with '/', such as /health",
                    path.chars().take(80).collect::<String>()
                ),
            ));
        }
        if !(1..=86_400).contains(&draft.startup_deadline_secs) {
            return Err(RuntimeError::new(
                "startup_deadline_secs",
                format!(
                    "{} is out of range; use 1-86400 seconds (large models take up to 900)",
                    draft.startup_deadline_secs
                ),
            ));
        }
        let shm = draft.shm_size_bytes;
        if shm != 0 && shm < MIB {
            return Err(RuntimeError::new(
                "shm_size_bytes",
                format!("{shm} is in bytes, less than 1 MiB; 1 GiB is {GIB}, 0 keeps Docker's 64 MiB"),
            ));
        }
        if i64::try_from(shm).is_err() {
            return Err(RuntimeError::new("shm_size_bytes", format!("{shm} is too large")));
        }
        let mut env = BTreeMap::new();
        for (key, value) in &draft.env {
            let template = parse_env_entry(key, value).map_err(|why| RuntimeError::new(format!("env.{key}"), why))?;
            env.insert(key.clone(), template);
        }
        let mut seen = Vec::new();
        for dir in &draft.scratch_dirs {
            check_writable_dir("scratch_dirs", dir)?;
            if seen.contains(&dir) {
                return Err(RuntimeError::new("scratch_dirs", format!("{dir:?} is listed twice")));
            }
            seen.push(dir);
        }
        if let Some(dir) = &draft.cache_dir {
            check_writable_dir("cache_dir", dir)?;
            if seen.contains(&dir) {
                return Err(RuntimeError::new("cache_dir", format!("{dir:?} is also a scratch dir")));
            }
        }
        Ok(Self { name, preset: None, draft, args, env })
    }

    /// A runtime from what an admin defined: a whole draft, or a preset with another image.
    pub fn define(name: RuntimeName, definition: RuntimeDefinition) -> Result<Self, RuntimeError> {
        match definition {
            RuntimeDefinition::Full(draft) => Self::new(name, draft),
            RuntimeDefinition::Preset(PresetImage { preset: base, image }) => {
                let mut draft = preset(&base)
                    .ok_or_else(|| {
                        RuntimeError::new(
                            "preset",
                            format!(
                                "{:?} is not a built-in preset; use one of {}",
                                base.chars().take(80).collect::<String>(),
                                PRESET_NAMES.join(", ")
                            ),
                        )
                    })?
                    .draft;
                draft.image = image;
                Ok(Self { preset: Some(base), ..Self::new(name, draft)? })
            }
        }
    }

    /// A runtime as stored (the JSON of its [`RuntimeDefinition`]).
    pub fn from_stored(name: &str, json: &str) -> Result<Self, String> {
        let definition: RuntimeDefinition =
            serde_json::from_str(json).map_err(|e| format!("stored runtime '{name}': {e}"))?;
        let name = RuntimeName::parse(name).map_err(|e| e.to_string())?;
        Self::define(name, definition).map_err(|e| e.to_string())
    }

    /// What to store: the definition as the admin gave it.
    pub fn definition(&self) -> RuntimeDefinition {
        match &self.preset {
            Some(preset) => {
                RuntimeDefinition::Preset(PresetImage { preset: preset.clone(), image: self.draft.image.clone() })
            }
            None => RuntimeDefinition::Full(self.draft.clone()),
        }
    }

    /// The preset this runtime takes everything but its image from, if any.
    pub fn preset(&self) -> Option<&str> {
        self.preset.as_deref()
    }

    pub fn name(&self) -> &RuntimeName {
        &self.name
    }

    /// The fields as written, for storing or editing.
    pub fn draft(&self) -> &RuntimeDraft {
        &self.draft
    }

    pub fn image(&self) -> &str {
        &self.draft.image
    }

    pub fn entrypoint(&self) -> Option<&[String]> {
        self.draft.entrypoint.as_deref()
    }

    pub fn args(&self) -> &ArgTemplate {
        &self.args
    }

    pub fn port(&self) -> u16 {
        u16::try_from(self.draft.port).expect("checked to be 1-65535 in Runtime::new")
    }

    pub fn health_path(&self) -> &str {
        &self.draft.health_path
    }

    pub fn startup_deadline(&self) -> Duration {
        Duration::from_secs(self.draft.startup_deadline_secs)
    }

    /// `None`: Docker's default.
    pub fn shm_size_bytes(&self) -> Option<i64> {
        match self.draft.shm_size_bytes {
            0 => None,
            n => Some(i64::try_from(n).expect("checked to fit in Runtime::new")),
        }
    }

    pub fn env(&self) -> &BTreeMap<String, Template> {
        &self.env
    }

    pub fn openai(&self) -> bool {
        self.draft.openai
    }

    pub fn scratch_dirs(&self) -> &[String] {
        &self.draft.scratch_dirs
    }

    /// Where the deployment's persistent cache volume is mounted, if anywhere.
    pub fn cache_dir(&self) -> Option<&str> {
        self.draft.cache_dir.as_deref()
    }

    /// Whether a deployment must name a file for `{file}` (llama.cpp's GGUF).
    pub fn needs_file(&self) -> bool {
        self.args.uses(Placeholder::File) || self.env.values().any(|t| t.uses(Placeholder::File))
    }
}

/// The JSON view: the name beside the fields in effect, and the preset they come from.
impl serde::Serialize for Runtime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct View<'a> {
            name: &'a RuntimeName,
            #[serde(skip_serializing_if = "Option::is_none")]
            preset: Option<&'a str>,
            #[serde(flatten)]
            draft: &'a RuntimeDraft,
        }
        View { name: &self.name, preset: self.preset(), draft: &self.draft }.serialize(serializer)
    }
}

/// Set by Hangar from the GPU allocation; an image's `NVIDIA_VISIBLE_DEVICES=all` or a
/// user's value must never widen what admission granted.
pub(super) const RESERVED_ENV: &str = "NVIDIA_VISIBLE_DEVICES";

/// Checks one environment entry (a runtime's or a deployment's override) and parses its
/// value as a template.
pub(super) fn parse_env_entry(key: &str, value: &str) -> Result<Template, String> {
    let valid_key = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_key {
        return Err(format!("{key:?} is not a variable name; use letters, digits and '_', not starting with a digit"));
    }
    if key == RESERVED_ENV {
        return Err(format!("{RESERVED_ENV} is set by Hangar from the deployment's GPUs; request GPUs instead"));
    }
    if value.contains('\0') {
        return Err("contains a NUL byte".to_owned());
    }
    Template::parse(value).map_err(|e| e.to_string())
}

fn check_writable_dir(field: &str, dir: &str) -> Result<(), RuntimeError> {
    let err = |why: &str| RuntimeError::new(field, format!("{dir:?} {why}"));
    if !dir.starts_with('/') || dir == "/" {
        return Err(err("must be an absolute path below /"));
    }
    if dir.ends_with('/') || dir.split('/').skip(1).any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(err("must be a plain path without '.', '..', '//' or a trailing '/'"));
    }
    if dir.contains('\0') || dir.contains(',') {
        return Err(err("contains a NUL byte or a comma"));
    }
    if dir == MODEL_DIR || dir.starts_with(&format!("{MODEL_DIR}/")) {
        return Err(err("is inside /model, which is the read-only model mount"));
    }
    Ok(())
}

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

/// The files a one-file runtime (llama.cpp, Ollama) is given: `{file}` and `{mmproj}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelFiles {
    /// The model: the version's one `.gguf`, the first shard of a split one
    /// (`…-00001-of-00003.gguf`, from which llama.cpp loads the rest), or its only file.
    pub file: Option<String>,
    /// The multimodal projector, `mmproj*.gguf`: never the model.
    pub mmproj: Option<String>,
}

/// Picks `{file}` and `{mmproj}` from a version's paths (relative to the model dir) for a
/// runtime that serves one file; nothing for other runtimes.
pub fn pick_model_files<'a>(runtime: &Runtime, paths: impl IntoIterator<Item = &'a str>) -> Result<ModelFiles, String> {
    if !runtime.needs_file() {
        return Ok(ModelFiles::default());
    }
    let paths: Vec<&str> = paths.into_iter().collect();
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase();
    let is_gguf = |p: &&str| base(p).ends_with(".gguf");
    let (projectors, models): (Vec<&str>, Vec<&str>) =
        paths.iter().copied().filter(is_gguf).partition(|p| base(p).starts_with("mmproj"));
    let mmproj = match projectors.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        several => {
            return Err(format!(
                "runtime '{}' takes one projector, but this version has {} mmproj*.gguf files ({}); publish a version with one",
                runtime.name(),
                several.len(),
                several.join(", ")
            ));
        }
    };
    let file = match (models.as_slice(), paths.as_slice()) {
        ([one], _) => (*one).to_owned(),
        ([], [only]) if mmproj.is_none() => (*only).to_owned(),
        (several, _) => match first_shard(several) {
            Some(first) => first.to_owned(),
            None => {
                return Err(format!(
                    "runtime '{}' serves one file, but this version has {} .gguf model files among {} files \
                     (not the shards of one split model); publish a version with exactly one, or one split \
                     model (name-00001-of-0000N.gguf …)",
                    runtime.name(),
                    several.len(),
                    paths.len()
                ));
            }
        },
    };
    Ok(ModelFiles { file: Some(file), mmproj })
}

/// The first shard when `paths` are exactly the shards of one split GGUF
/// (`<prefix>-00001-of-00003.gguf` … as `llama-gguf-split` names them).
fn first_shard<'a>(paths: &[&'a str]) -> Option<&'a str> {
    // (prefix, shard number, shard count)
    let parse = |p: &'a str| -> Option<(&'a str, u32, u32)> {
        let stem = p.strip_suffix(".gguf").or_else(|| p.strip_suffix(".GGUF"))?;
        let (rest, count) = stem.rsplit_once("-of-")?;
        let (prefix, index) = rest.rsplit_once('-')?;
        let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(index) || !digits(count) {
            return None;
        }
        Some((prefix, index.parse().ok()?, count.parse().ok()?))
    };
    let shards: Vec<(&str, u32, u32)> = paths.iter().map(|p| parse(p)).collect::<Option<_>>()?;
    let (prefix, _, count) = *shards.first()?;
    let mut seen: Vec<u32> = shards.iter().filter(|s| s.0 == prefix && s.2 == count).map(|s| s.1).collect();
    seen.sort_unstable();
    if seen.len() != shards.len() || seen != (1..=count).collect::<Vec<_>>() {
        return None;
    }
    paths.iter().copied().find(|p| parse(p).is_some_and(|s| s.1 == 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::memory::MemoryBudget;
    use crate::runtime::template::Values;

    fn draft() -> RuntimeDraft {
        serde_json::from_value(serde_json::json!({
            "image": "hangar-test-model:latest",
            "args": ["--port", "{port}", "--served-model-name", "{served_name}"],
            "port": 8000,
            "startup_deadline_secs": 30,
        }))
        .expect("minimal draft")
    }

    fn name(raw: &str) -> RuntimeName {
        RuntimeName::parse(raw).expect(raw)
    }

    #[test]
    fn a_minimal_draft_gets_defaults() {
        let rt = Runtime::new(name("test"), draft()).expect("valid");
        assert_eq!(rt.health_path(), "/health");
        assert!(rt.openai());
        assert_eq!(rt.shm_size_bytes(), None);
        assert_eq!(rt.entrypoint(), None);
        assert!(rt.env().is_empty() && rt.scratch_dirs().is_empty());
        assert_eq!(rt.port(), 8000);
        assert_eq!(rt.startup_deadline(), Duration::from_secs(30));
        assert!(!rt.needs_file());
    }

    #[test]
    fn a_runtime_serializes_as_its_name_and_draft_and_the_draft_round_trips() {
        let rt = Runtime::new(name("test"), draft()).expect("valid");
        let json = serde_json::to_value(&rt).expect("serializes");
        assert_eq!(json["name"], "test");
        assert_eq!(json["image"], "hangar-test-model:latest");
        assert_eq!(json["port"], 8000);
        assert!(json.get("entrypoint").is_none());
        let stored = serde_json::to_string(rt.draft()).expect("serializes");
        let back: RuntimeDraft = serde_json::from_str(&stored).expect("round trip");
        assert_eq!(&back, rt.draft());
    }

    #[test]
    fn unknown_fields_in_a_draft_are_refused() {
        let err = serde_json::from_value::<RuntimeDraft>(serde_json::json!({
            "image": "x", "port": 1, "startup_deadline_secs": 1, "helth_path": "/h"
        }))
        .expect_err("typo");
        assert!(err.to_string().contains("helth_path"), "{err}");
    }

    #[test]
    fn invalid_drafts_name_the_field_and_the_fix() {
        type Edit = fn(&mut RuntimeDraft);
        let cases: [(Edit, &str, &str); 20] = [
            (|d| d.image = String::new(), "image", "is empty"),
            (|d| d.image = "a b".into(), "image", "not an image reference"),
            (|d| d.entrypoint = Some(vec![]), "entrypoint", "leave it out"),
            (|d| d.args = vec!["{prot}".into()], "args", "unknown placeholder {prot}"),
            (|d| d.args = vec!["{port".into()], "args", "not closed"),
            (|d| d.port = 0, "port", "1-65535"),
            (|d| d.port = 65536, "port", "1-65535"),
            (|d| d.health_path = "health".into(), "health_path", "starts with '/'"),
            (|d| d.health_path = "/a b".into(), "health_path", "starts with '/'"),
            (|d| d.startup_deadline_secs = 0, "startup_deadline_secs", "1-86400"),
            (|d| d.shm_size_bytes = 8, "shm_size_bytes", "1 GiB is 1073741824"),
            (|d| d.shm_size_bytes = u64::MAX, "shm_size_bytes", "too large"),
            (
                |d| {
                    d.env.insert("1X".into(), "v".into());
                },
                "env.1X",
                "not a variable name",
            ),
            (
                |d| {
                    d.env.insert("X".into(), "{gpu}".into());
                },
                "env.X",
                "unknown placeholder {gpu}",
            ),
            (
                |d| {
                    d.env.insert("NVIDIA_VISIBLE_DEVICES".into(), "all".into());
                },
                "env.NVIDIA_VISIBLE_DEVICES",
                "set by Hangar",
            ),
            (|d| d.scratch_dirs = vec!["cache".into()], "scratch_dirs", "absolute"),
            (|d| d.scratch_dirs = vec!["/model/x".into()], "scratch_dirs", "read-only model mount"),
            (|d| d.scratch_dirs = vec!["/c".into(), "/c".into()], "scratch_dirs", "listed twice"),
            (|d| d.cache_dir = Some("/model".into()), "cache_dir", "read-only model mount"),
            (
                |d| {
                    d.scratch_dirs = vec!["/c".into()];
                    d.cache_dir = Some("/c".into());
                },
                "cache_dir",
                "also a scratch dir",
            ),
        ];
        for (edit, field, needle) in cases {
            let mut d = draft();
            edit(&mut d);
            let err = Runtime::new(name("t"), d).expect_err(field);
            assert_eq!(err.field(), field, "{err}");
            assert!(err.to_string().contains(needle), "{field}: {err}");
        }
    }

    #[test]
    fn runtime_names() {
        for ok in ["vllm", "llama-cpp", "my_rt.2", "0x"] {
            assert!(RuntimeName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "VLLM", "-x", "a/b", "a b", &"a".repeat(64)] {
            assert!(RuntimeName::parse(bad).is_err(), "{bad}");
        }
    }

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
    fn a_split_gguf_is_served_from_its_first_shard_and_a_projector_is_never_the_model() {
        let llama = preset("llama-cpp").expect("preset");
        let pick = |paths: &[&str]| pick_model_files(&llama, paths.iter().copied());
        let picked = |file: &str, mmproj: Option<&str>| {
            Ok(ModelFiles { file: Some(file.to_owned()), mmproj: mmproj.map(str::to_owned) })
        };
        assert_eq!(pick(&["q4.gguf", "README.md"]), picked("q4.gguf", None));
        assert_eq!(pick(&["weights.bin"]), picked("weights.bin", None));
        assert_eq!(
            pick(&["m-00002-of-00003.gguf", "m-00001-of-00003.gguf", "m-00003-of-00003.gguf", "README.md"]),
            picked("m-00001-of-00003.gguf", None)
        );
        assert_eq!(
            pick(&["sub/m-00002-of-00002.gguf", "sub/m-00001-of-00002.gguf"]),
            picked("sub/m-00001-of-00002.gguf", None)
        );
        assert_eq!(pick(&["mmproj-f16.gguf", "gemma-q4.gguf"]), picked("gemma-q4.gguf", Some("mmproj-f16.gguf")));
        assert_eq!(
            pick(&["v/mmproj-model-f16.gguf", "v/m-00001-of-00002.gguf", "v/m-00002-of-00002.gguf"]),
            picked("v/m-00001-of-00002.gguf", Some("v/mmproj-model-f16.gguf"))
        );
        for (paths, needle) in [
            (&["a.gguf", "b.gguf"][..], "2 .gguf model files"),
            (&["m-00001-of-00003.gguf", "m-00002-of-00003.gguf"][..], "not the shards of one split"),
            (&["a-00001-of-00002.gguf", "b-00002-of-00002.gguf"][..], "not the shards of one split"),
            (&["mmproj-a.gguf", "mmproj-b.gguf", "m.gguf"][..], "2 mmproj*.gguf files"),
            (&["a.bin", "b.bin"][..], "0 .gguf model files"),
        ] {
            let err = pick(paths).expect_err(needle);
            assert!(err.contains(needle), "{paths:?}: {err}");
        }
        let vllm = preset("vllm").expect("preset");
        assert_eq!(pick_model_files(&vllm, ["a.gguf", "b.gguf"]), Ok(ModelFiles::default()));
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
