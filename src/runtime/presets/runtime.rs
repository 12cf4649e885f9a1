//! A checked [`Runtime`]: a definition that [`Runtime::new`] or [`Runtime::define`]
//! accepted, with its argv and environment parsed as templates, and the environment rules
//! deployments share.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::template::{ArgTemplate, Placeholder, Template};
use super::{
    GIB, MIB, MODEL_DIR, PRESET_NAMES, PresetImage, RuntimeDefinition, RuntimeDraft, RuntimeError, RuntimeName, preset,
};

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
pub(in crate::runtime) const RESERVED_ENV: &str = "NVIDIA_VISIBLE_DEVICES";

/// Checks one environment entry (a runtime's or a deployment's override) and parses its
/// value as a template.
pub(in crate::runtime) fn parse_env_entry(key: &str, value: &str) -> Result<Template, String> {
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::runtime::presets) fn draft() -> RuntimeDraft {
        serde_json::from_value(serde_json::json!({
            "image": "hangar-test-model:latest",
            "args": ["--port", "{port}", "--served-model-name", "{served_name}"],
            "port": 8000,
            "startup_deadline_secs": 30,
        }))
        .expect("minimal draft")
    }

    pub(in crate::runtime::presets) fn name(raw: &str) -> RuntimeName {
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
}
