//! Runtime definitions as an admin submits them and Hangar stores them: the runtime's name,
//! the full [`RuntimeDraft`] or a preset under another image, and the error that names the
//! field a definition gets wrong. Nothing here is checked beyond its JSON shape.

use std::collections::BTreeMap;
use std::fmt;

use super::super::template::TemplateError;

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
    pub(super) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }

    pub(super) fn template(field: impl Into<String>, err: TemplateError) -> Self {
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
