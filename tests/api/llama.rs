//! The real llama.cpp server: upstream's `llama-server`, built CPU-only from the llama.cpp tree
//! that llama-cpp-python's sdist vendors (docker/llama-server/build-image.sh, cached by
//! version outside the repository), deployed with the built-in `llama-cpp` preset with only
//! its image changed, and driven through the gateway with the official OpenAI client. The
//! weights are random (llama.cpp's own test-llama-archs writes them); the server is upstream's.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deployments::{docker_ready, unique, wait_for};
use crate::helpers::{ADMIN_TOKEN, TestApp, spawn_app, spawn_app_with};

/// The image, and the random-weight model as one file and as a two-shard split.
struct Llama {
    image: String,
    dense: Vec<u8>,
    shards: Vec<(String, Vec<u8>)>,
}

/// Builds (or finds cached) the image and writes the GGUFs, once per test run.
fn llama() -> Option<&'static Llama> {
    if !docker_ready() {
        return None;
    }
    static BUILT: OnceLock<Result<Llama, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/llama-server/build-image.sh");
        let output = Command::new("bash").arg(script).output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut lines = stdout.lines();
        let (Some(image), Some(tools)) = (lines.next(), lines.next()) else {
            return Err(format!("build-image.sh printed {stdout:?}, not the image and the tools folder"));
        };
        let tools = PathBuf::from(tools);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let run = |tool: &str, args: &[&str]| -> Result<(), String> {
            let output = Command::new(tools.join(tool)).args(args).output().map_err(|e| format!("{tool}: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!("{tool} {args:?}: {}", String::from_utf8_lossy(&output.stderr)))
            }
        };
        let out = dir.path().to_str().ok_or("temp dir is not UTF-8")?;
        // A 2-layer llama with random weights and a 128-token dummy vocabulary, ~4.7 MB.
        run("test-llama-archs", &["-a", "llama", "-s", "42", "-o", out])?;
        let dense_path = dir.path().join("llama-dense.gguf");
        let prefix = dir.path().join("split");
        run(
            "llama-gguf-split",
            &[
                "--split",
                "--split-max-tensors",
                "32",
                dense_path.to_str().ok_or("path")?,
                prefix.to_str().ok_or("path")?,
            ],
        )?;
        let dense = std::fs::read(&dense_path).map_err(|e| e.to_string())?;
        let mut shards = Vec::new();
        for n in 1..=2 {
            let name = format!("split-{n:05}-of-00002.gguf");
            shards.push((name.clone(), std::fs::read(dir.path().join(&name)).map_err(|e| format!("{name}: {e}"))?));
        }
        Ok(Llama { image: image.to_owned(), dense, shards })
    });
    match built {
        Ok(llama) => Some(llama),
        Err(e) => {
            panic!("these tests need Docker and the llama.cpp server image (HANGAR_TEST_DOCKER=skip skips them): {e}")
        }
    }
}

/// The `llama-cpp` preset under the locally built image: nothing else changed.
async fn use_llama_image(app: &TestApp, image: &str) {
    let response = app.put_json("/api/v1/runtimes/llama-cpp", &json!({"preset": "llama-cpp", "image": image})).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap_or_default());
}

/// Publishes `version` of `model` with `files`.
async fn publish(app: &TestApp, model: &str, version: &str, files: &[(&str, &[u8])]) {
    app.create_version(model, version).await;
    for (path, bytes) in files {
        assert_eq!(app.upload(model, version, path, bytes).await.status(), StatusCode::CREATED, "{path}");
    }
    assert_eq!(app.publish(model, version).await.status(), StatusCode::OK);
}

async fn deploy(app: &TestApp, name: &str, target: &str) {
    let body = json!({"name": name, "model": target, "runtime": "llama-cpp"});
    let response = app.post_json("/api/v1/deployments", &body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap_or_default());
}

fn inspect(container: &str) -> Value {
    let output = Command::new("docker").args(["inspect", container]).output().expect("docker inspect");
    serde_json::from_slice::<Value>(&output.stdout).expect("inspect json")[0].clone()
}

/// A chat with a small `max_tokens` (random weights never stop on their own).
async fn chat(app: &TestApp, model: &str) -> reqwest::Response {
    let body = json!({"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hello"}]});
    app.client.post(app.url("/v1/chat/completions")).json(&body).send().await.expect("chat")
}

async fn actions_of(app: &TestApp, name: &str) -> Vec<String> {
    let events: Value = app.get("/api/v1/events").await.json().await.expect("json");
    let items = events["items"].as_array().or_else(|| events.as_array()).cloned().unwrap_or_default();
    items
        .iter()
        .filter(|e| e["target"].as_str().is_some_and(|t| t.contains(name)))
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_llama_cpp_preset_with_only_its_image_changed_serves_upstream_llama_server_through_the_gateway() {
    let Some(llama) = llama() else { return };
    let app = spawn_app().await;
    use_llama_image(&app, &llama.image).await;
    app.create_model("m").await;
    publish(&app, "m", "1", &[("llama-dense.gguf", &llama.dense)]).await;
    app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "1"})).await;
    let name = unique("llama");
    deploy(&app, &name, "m@prod").await;
    let running = wait_for(&app, &name, "running", Duration::from_secs(120)).await;

    // What Hangar passed: the preset's flags, no --no-mmap (upstream exits on it), the load
    // mode as a variable, no projector variable for a model without one.
    let container = inspect(running["container_id"].as_str().expect("id"));
    assert_eq!(container["Config"]["Image"], llama.image.as_str());
    let cmd: Vec<&str> = container["Config"]["Cmd"].as_array().expect("cmd").iter().filter_map(Value::as_str).collect();
    assert_eq!(cmd.join(" "), format!("-m /model/llama-dense.gguf --alias {name} --host 0.0.0.0 --port 8080 -ngl 999"));
    let env: Vec<&str> = container["Config"]["Env"].as_array().expect("env").iter().filter_map(Value::as_str).collect();
    assert!(env.contains(&"LLAMA_ARG_LOAD_MODE=none"), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("LLAMA_ARG_MMPROJ")), "{env:?}");

    // /health answered 503 "Loading model" before 200: the deployment was starting, then running.
    let actions = actions_of(&app, &name).await;
    let starting = actions.iter().position(|a| a == "deployment.starting");
    let up = actions.iter().position(|a| a == "deployment.running");
    assert!(starting.is_some() && up.is_some(), "{actions:?}");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_llama.py");
    let output = tokio::task::spawn_blocking({
        let (base, name) = (app.address.clone(), name.clone());
        move || {
            Command::new(crate::machine::python())
                .args([script, &base, ADMIN_TOKEN, &name, &name, "m", "m@prod", "m:1"])
                .output()
        }
    })
    .await
    .expect("join")
    .expect("the tests' python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("m@prod: streamed ok") && stdout.contains("models: ok"), "{stdout}");
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_split_gguf_is_loaded_by_the_real_server_from_its_first_shard() {
    let Some(llama) = llama() else { return };
    let app = spawn_app().await;
    use_llama_image(&app, &llama.image).await;
    app.create_model("m").await;
    let files: Vec<(&str, &[u8])> = llama.shards.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    publish(&app, "m", "1", &files).await;
    let name = unique("split");
    deploy(&app, &name, "m:1").await;
    let running = wait_for(&app, &name, "running", Duration::from_secs(120)).await;
    let container = inspect(running["container_id"].as_str().expect("id"));
    let cmd: Vec<&str> = container["Config"]["Cmd"].as_array().expect("cmd").iter().filter_map(Value::as_str).collect();
    assert_eq!(cmd[..2], ["-m", "/model/split-00001-of-00002.gguf"]);
    let response = chat(&app, "m").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["usage"]["completion_tokens"], 4, "{body}");

    // Usage accounting reads the real server's answers: the JSON one, and a streamed one
    // whose client did not ask for usage (the gateway asks llama-server for it and takes the
    // chunk out again).
    let streamed = crate::usage::streamed_chat(&app.client, &app, "m", false).await;
    assert!(streamed.contains("data: "), "{streamed}");
    assert!(!streamed.contains("\"usage\""), "no usage chunk for a client that did not ask: {streamed}");
    let counted = crate::usage::usage_of(&app.client, &app, "by=deployment", &name, 2).await;
    assert_eq!(counted["total"]["completion_tokens"], 8, "4 tokens each: {counted}");
    assert_eq!(counted["total"]["unmetered"], 0, "{counted}");
    assert!(counted["total"]["mean_ttft_ms"].as_f64().is_some(), "{counted}");
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_killed_llama_server_is_restarted_with_backoff() {
    let Some(llama) = llama() else { return };
    let app = spawn_app_with(|s| s.restart_backoff_ms = 500).await;
    use_llama_image(&app, &llama.image).await;
    app.create_model("m").await;
    publish(&app, "m", "1", &[("llama-dense.gguf", &llama.dense)]).await;
    let name = unique("kill");
    deploy(&app, &name, "m:1").await;
    let before = wait_for(&app, &name, "running", Duration::from_secs(120)).await;
    let old = before["container_id"].as_str().expect("id").to_owned();
    let killed = Command::new("docker").args(["kill", &old]).output().expect("docker kill");
    assert!(killed.status.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    let after = loop {
        let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        if d["state"] == "running" && d["container_id"].as_str().is_some_and(|c| c != old) {
            break d;
        }
        assert!(Instant::now() < deadline, "never restarted: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after["restarts"], 1, "{after}");
    let events: Value =
        app.get("/api/v1/events?action=deployment.pending&limit=1000").await.json().await.expect("json");
    let backed_off = events["items"].as_array().expect("items").iter().any(|e| {
        e["target"] == name.as_str()
            && e["details"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("exited with code") && r.contains("restarting in 0.5 s"))
    });
    assert!(backed_off, "the crash was recorded with its backoff: {events}");
    assert_eq!(chat(&app, &name).await.status(), StatusCode::OK);
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_alias_move_rolls_out_blue_green_on_the_real_server_with_requests_flowing() {
    let Some(llama) = llama() else { return };
    let app = spawn_app().await;
    use_llama_image(&app, &llama.image).await;
    app.create_model("m").await;
    publish(&app, "m", "1", &[("llama-dense.gguf", &llama.dense)]).await;
    let files: Vec<(&str, &[u8])> = llama.shards.iter().map(|(p, b)| (p.as_str(), b.as_slice())).collect();
    publish(&app, "m", "2", &files).await;
    app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "1"})).await;
    let name = unique("llbg");
    deploy(&app, &name, "m@prod").await;
    let before = wait_for(&app, &name, "running", Duration::from_secs(120)).await;
    let old = before["container_id"].as_str().expect("id").to_owned();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let load = async {
        let mut failures = Vec::new();
        let mut served = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let response = chat(&app, "m@prod").await;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            if status == StatusCode::OK { served += 1 } else { failures.push(format!("{status}: {body}")) }
        }
        (failures, served)
    };
    let mover = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "2"})).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
            let old_gone = Command::new("docker").args(["inspect", &old]).output().is_ok_and(|o| !o.status.success());
            if d["version"] == "2" && old_gone {
                break;
            }
            assert!(Instant::now() < deadline, "never rolled out: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let ((failures, served), ()) = tokio::join!(load, mover);
    assert!(failures.is_empty(), "failed requests during the rollout: {failures:?}");
    assert!(served > 2, "requests kept flowing: {served}");
    let after: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
    let container = inspect(after["container_id"].as_str().expect("id"));
    let cmd: Vec<&str> = container["Config"]["Cmd"].as_array().expect("cmd").iter().filter_map(Value::as_str).collect();
    assert_eq!(cmd[..2], ["-m", "/model/split-00001-of-00002.gguf"], "version 2 is the split one");
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_no_mmap_flag_the_preset_used_to_pass_makes_upstream_llama_server_exit() {
    let Some(llama) = llama() else { return };
    let app = spawn_app_with(|s| {
        s.max_restarts = 0;
        s.restart_backoff_ms = 100;
    })
    .await;
    use_llama_image(&app, &llama.image).await;
    app.create_model("m").await;
    publish(&app, "m", "1", &[("llama-dense.gguf", &llama.dense)]).await;
    let name = unique("nommap");
    let body = json!({"name": name, "model": "m:1", "runtime": "llama-cpp", "args": ["--no-mmap"]});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    let failed = wait_for(&app, &name, "failed", Duration::from_secs(60)).await;
    let reason = failed["reason"].as_str().expect("reason");
    assert!(reason.contains("invalid argument: --no-mmap"), "{reason}");
}

#[tokio::test]
async fn a_preset_with_another_image_is_stored_as_written_and_shown_with_the_preset_s_fields() {
    let app = spawn_app().await;
    let image = "ghcr.io/ggml-org/llama.cpp:server-cuda13-b7000";
    use_llama_image(&app, image).await;
    let view: Value = app.get("/api/v1/runtimes/llama-cpp").await.json().await.expect("json");
    assert_eq!((view["preset"].as_str(), view["image"].as_str()), (Some("llama-cpp"), Some(image)));
    assert_eq!((view["builtin"].as_bool(), view["customized"].as_bool()), (Some(true), Some(true)));
    assert_eq!(view["port"], 8080);
    assert_eq!(view["env"]["LLAMA_ARG_LOAD_MODE"], "none");
    assert!(view["args"].as_array().expect("args").contains(&json!("--port")), "{view}");

    for (body, needle) in [
        (json!({"preset": "nope", "image": "x"}), "not a built-in preset"),
        (json!({"preset": "llama-cpp", "image": ""}), "image"),
        (json!({"preset": "llama-cpp", "image": "x", "port": 9}), "unknown field"),
    ] {
        let response = app.put_json("/api/v1/runtimes/mine", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(response.text().await.unwrap_or_default().contains(needle), "{body}");
    }
    assert_eq!(app.get("/api/v1/runtimes/mine").await.status(), StatusCode::NOT_FOUND, "nothing stored");
    let maintainer = app.user_token("mia", "maintainer").await;
    let response = crate::helpers::client_with(&maintainer)
        .put(app.url("/api/v1/runtimes/mine"))
        .json(&json!({"preset": "llama-cpp", "image": image}))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}
