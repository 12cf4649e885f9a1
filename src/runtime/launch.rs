//! The launch record of one container start, taken from the exact spec the engine is given:
//! the image, the argv, the environment with secret values masked, and the runtime's
//! definition. The supervisor adds the image's content digest once Docker has resolved it,
//! and the catalog stores the record (`catalog::launches`).

use std::collections::BTreeMap;

use super::presets::Runtime;
use super::spec::ContainerSpec;
use crate::catalog::launches::Launch;

/// What a secret value is shown as.
pub const MASKED: &str = "***";

/// Whether an environment variable's value is a secret: its name contains KEY, TOKEN,
/// SECRET or PASSWORD (any case): `HF_TOKEN`, `OPENAI_API_KEY`, `DB_PASSWORD`.
pub fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD"].iter().any(|word| upper.contains(word))
}

/// The record of starting `spec` (before Docker has named the container or resolved the
/// image): `container_id` empty, `image_digest` unknown.
pub fn launch_of(spec: &ContainerSpec, runtime: &Runtime, version: &str, manifest_digest: Option<String>) -> Launch {
    let argv = spec.entrypoint.iter().flatten().chain(&spec.cmd).cloned().collect();
    let env = spec
        .env
        .iter()
        .map(|entry| {
            let (name, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            let shown = if is_secret(name) { MASKED } else { value };
            (name.to_owned(), shown.to_owned())
        })
        .collect::<BTreeMap<_, _>>();
    Launch {
        container_id: String::new(),
        image: spec.image.clone(),
        image_digest: None,
        argv,
        env,
        version: version.to_owned(),
        manifest_digest,
        runtime: definition(runtime),
        started_at: String::new(),
    }
}

/// The runtime's definition as `GET /api/v1/runtimes/{name}` shows it, with secret
/// environment values masked here too.
fn definition(runtime: &Runtime) -> serde_json::Value {
    // A Runtime always serializes: its fields are strings, numbers and lists.
    let mut json = serde_json::to_value(runtime).unwrap_or_default();
    if let Some(env) = json.get_mut("env").and_then(serde_json::Value::as_object_mut) {
        for (name, value) in env.iter_mut() {
            if is_secret(name) {
                *value = serde_json::Value::from(MASKED);
            }
        }
    }
    json
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::runtime::spec::{Overrides, SpecInput, SpecSettings, container_spec};
    use crate::runtime::{RuntimeDraft, RuntimeName};

    #[test]
    fn secret_names_are_the_ones_with_key_token_secret_or_password() {
        for secret in ["HF_TOKEN", "OPENAI_API_KEY", "db_password", "CLIENT_SECRET", "hf_token"] {
            assert!(is_secret(secret), "{secret}");
        }
        for plain in ["HF_HUB_OFFLINE", "PORT", "OLLAMA_MODELS", "NVIDIA_VISIBLE_DEVICES"] {
            assert!(!is_secret(plain), "{plain}");
        }
    }

    #[test]
    fn a_launch_has_the_argv_and_env_sent_to_docker_with_secrets_masked() {
        let draft: RuntimeDraft = serde_json::from_value(serde_json::json!({
            "image": "srv:latest", "entrypoint": ["/bin/srv"], "args": ["--port", "{port}"], "port": 8000,
            "startup_deadline_secs": 30, "env": {"HF_TOKEN": "hf_abc", "MODE": "fast"},
        }))
        .expect("draft");
        let runtime = Runtime::new(RuntimeName::parse("srv").expect("name"), draft).expect("valid");
        let overrides = Overrides::parse(&BTreeMap::from([("API_KEY".into(), "k=v".into())]), &[]).expect("valid");
        let settings = SpecSettings::default();
        let spec = container_spec(&SpecInput {
            deployment: "chat",
            instance: "i-1",
            runtime: &runtime,
            snapshot: Path::new("/srv/snap"),
            gpus: None,
            file: None,
            mmproj: None,
            overrides: &overrides,
            settings: &settings,
        })
        .expect("spec");
        let launch = launch_of(&spec, &runtime, "3", Some("sha256:ab".into()));
        assert_eq!(launch.argv, ["/bin/srv", "--port", "8000"]);
        assert_eq!(launch.image, "srv:latest");
        assert_eq!(launch.env["HF_TOKEN"], MASKED);
        assert_eq!(launch.env["API_KEY"], MASKED, "an override's secret, whose value holds '='");
        assert_eq!(launch.env["MODE"], "fast");
        assert_eq!(launch.env["NVIDIA_VISIBLE_DEVICES"], "void");
        assert_eq!((launch.version.as_str(), launch.manifest_digest.as_deref()), ("3", Some("sha256:ab")));
        assert_eq!(launch.runtime["name"], "srv");
        assert_eq!(launch.runtime["env"]["HF_TOKEN"], MASKED, "masked in the definition too");
        assert_eq!(launch.runtime["env"]["MODE"], "fast");
    }
}
