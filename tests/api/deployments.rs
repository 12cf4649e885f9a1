//! Deployments against the real Docker engine, with the test model server image built from
//! `docker/test-model-server` (nothing can be pulled here). `HANGAR_TEST_DOCKER=skip` skips
//! these by hand; without it, a machine with no Docker fails them.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, ServerProcess, TestApp, client_with, problem, remove_containers_of, sha256_digest, spawn_app,
    spawn_app_with, wait_until,
};

pub const IMAGE: &str = "hangar-test-model:latest";

/// Builds the test image once per run; false when Docker tests are skipped by hand.
pub fn docker_ready() -> bool {
    if std::env::var("HANGAR_TEST_DOCKER").as_deref() == Ok("skip") {
        eprintln!("HANGAR_TEST_DOCKER=skip: not testing against Docker");
        return false;
    }
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/test-model-server/build-image.sh");
        let output = Command::new("bash").arg(script).output().map_err(|e| e.to_string())?;
        if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
    });
    if let Err(e) = built {
        panic!("these tests need Docker and the test image (set HANGAR_TEST_DOCKER=skip to skip them): {e}");
    }
    true
}

/// A name no other test (or earlier run) uses, for a deployment and so its container.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A model with version 1 holding `weights.bin`, and a runtime `name` for the test server
/// with `extra` arguments.
pub async fn prepare(app: &TestApp, model: &str, runtime: &str, extra: &[&str], deadline_secs: u64) {
    app.published(model, &[("weights.bin", b"the weights of version one")]).await;
    put_runtime(app, runtime, IMAGE, extra, deadline_secs).await;
}

pub async fn put_runtime(app: &TestApp, runtime: &str, image: &str, extra: &[&str], deadline_secs: u64) {
    let mut args = vec!["--port", "{port}", "--served-model-name", "{served_name}"];
    args.extend_from_slice(extra);
    let body = json!({
        "image": image, "args": args, "port": 8000, "health_path": "/health",
        "startup_deadline_secs": deadline_secs,
    });
    let response = app.put_json(&format!("/api/v1/runtimes/{runtime}"), &body).await;
    assert!(response.status().is_success(), "runtime: {}", response.text().await.unwrap_or_default());
}

pub async fn deploy(app: &TestApp, name: &str, model: &str, runtime: &str) -> Value {
    let body = json!({"name": name, "model": format!("{model}:1"), "runtime": runtime});
    let response = app.post_json("/api/v1/deployments", &body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap_or_default());
    response.json().await.expect("json")
}

/// Polls the deployment until `state`, and returns it.
pub async fn wait_for(app: &TestApp, name: &str, state: &str, timeout: Duration) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let deployment: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        if deployment["state"] == state {
            return deployment;
        }
        assert!(std::time::Instant::now() < deadline, "{name} never became {state}: {deployment}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn docker_inspect(id: &str) -> Value {
    let output = Command::new("docker").args(["inspect", id]).output().expect("docker inspect");
    let all: Value = serde_json::from_slice(&output.stdout).expect("inspect json");
    all[0].clone()
}

fn containers_named(name: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=hangar.deployment={name}")])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn a_deployment_serves_the_mounted_version_and_stops_without_a_trace() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    let name = unique("serve");
    prepare(&app, "m", "test", &[], 30).await;
    deploy(&app, &name, "m", "test").await;
    let running = wait_for(&app, &name, "running", Duration::from_secs(30)).await;
    assert_eq!(running["version"], "1");
    let address = running["address"].as_str().expect("address");
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    let answer: Value = reqwest::Client::new()
        .post(format!("http://{address}/v1/chat/completions"))
        .json(&json!({"model": name, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("chat")
        .json()
        .await
        .expect("json");
    let content = answer["choices"][0]["message"]["content"].as_str().expect("content");
    assert!(content.contains(&sha256_digest(b"the weights of version one")), "{content}");

    let container = docker_inspect(running["container_id"].as_str().expect("id"));
    assert_eq!(container["Name"], format!("/hangar-{name}"));
    let labels = &container["Config"]["Labels"];
    assert_eq!(labels["hangar.deployment"], name.as_str());
    assert_eq!(labels["hangar.managed"], "true");
    assert!(labels["hangar.instance"].as_str().is_some_and(|i| !i.is_empty()));
    let host = &container["HostConfig"];
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges:true"]));
    assert!(host["PidsLimit"].as_i64().is_some_and(|p| p > 0));
    assert_eq!(host["RestartPolicy"]["Name"], "no");
    assert_eq!(host["Privileged"], false);
    let mounts = container["Mounts"].as_array().expect("mounts");
    let model = mounts.iter().find(|m| m["Destination"] == "/model").expect("the /model mount");
    assert_eq!(model["Type"], "bind");
    assert_eq!(model["RW"], false);
    let snapshot = app.data_dir.path().join("snapshots/m/1");
    assert_eq!(model["Source"], std::path::absolute(&snapshot).expect("abs").display().to_string());
    let bindings = &host["PortBindings"]["8000/tcp"][0];
    assert_eq!(bindings["HostIp"], "127.0.0.1");

    let logs = app.get(&format!("/api/v1/deployments/{name}/logs?tail=20")).await;
    assert_eq!(logs.status(), StatusCode::OK);
    assert!(logs.text().await.expect("text").contains("serving"), "the log tail has the server's output");

    // A followed log ends when the container stops.
    let follow = app.get(&format!("/api/v1/deployments/{name}/logs?tail=1&follow=true")).await;
    assert_eq!(follow.status(), StatusCode::OK);
    let stop = app.client.post(app.url(&format!("/api/v1/deployments/{name}/stop"))).send().await.expect("stop");
    assert_eq!(stop.status(), StatusCode::ACCEPTED);
    let ended = tokio::time::timeout(Duration::from_secs(30), follow.text()).await;
    assert!(ended.is_ok(), "the followed log ended with the container");
    let stopped = wait_for(&app, &name, "stopped", Duration::from_secs(30)).await;
    assert_eq!(stopped["container_id"], Value::Null);
    assert!(containers_named(&name).is_empty(), "the container is gone");
    let events: Value = app.get("/api/v1/events?model=m&action=deployment").await.json().await.expect("json");
    let actions: Vec<&str> =
        events["items"].as_array().expect("items").iter().map(|e| e["action"].as_str().expect("a")).collect();
    for action in ["deployment.created", "deployment.starting", "deployment.running", "deployment.stopped"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_crash_loop_backs_off_then_fails_with_the_exit_code() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app_with(|s| {
        s.max_restarts = 2;
        s.restart_backoff_ms = 100;
    })
    .await;
    let name = unique("crash");
    prepare(&app, "m", "crashy", &["--exit-after-secs", "0", "--exit-code", "3"], 30).await;
    deploy(&app, &name, "m", "crashy").await;
    let failed = wait_for(&app, &name, "failed", Duration::from_secs(60)).await;
    let reason = failed["reason"].as_str().expect("reason");
    assert!(reason.contains("exited with code 3"), "{reason}");
    assert!(reason.contains("3 times in a row"), "{reason}");
    assert_eq!(failed["restarts"], 2);
    assert!(containers_named(&name).is_empty(), "no container is left behind");
}

#[tokio::test]
async fn a_crash_after_a_failed_rollout_restarts_the_version_that_was_serving() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app_with(|s| s.restart_backoff_ms = 100).await;
    prepare(&app, "m", "test", &[], 30).await;
    app.create_version("m", "2").await;
    app.upload("m", "2", "weights.bin", b"the weights of version two").await;
    app.upload("m", "2", "BROKEN", b"this version cannot serve").await;
    app.publish("m", "2").await;
    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "1"})).await;
    let name = unique("pinned");
    let body = json!({"name": name, "model": "m@staging", "runtime": "test"});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    wait_for(&app, &name, "running", Duration::from_secs(30)).await;

    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "2"})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        if d["reason"].as_str().is_some_and(|r| r.contains("rollout to version 2 failed")) {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "the failed rollout was never reported: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["version"], "1");
    let serving = failed["container_id"].as_str().expect("id").to_owned();

    // The serving container crashes: the restart is version 1 again, not the broken version 2.
    let killed = Command::new("docker").args(["kill", &serving]).output().expect("docker kill");
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let restarted = loop {
        let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        assert_ne!(d["state"], "failed", "the crash turned the failed rollout into an outage: {d}");
        if d["state"] == "running" && d["container_id"].as_str().is_some_and(|id| id != serving) {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "never restarted: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(restarted["version"], "1");
    assert_eq!(restarted["restarts"], 1);
    let reason = restarted["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("rollout to version 2 failed"), "the failed rollout stays reported: {restarted}");
    let served = docker_inspect(restarted["container_id"].as_str().expect("id"));
    assert_eq!(served["State"]["Running"], true);
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_server_that_never_becomes_healthy_fails_after_the_deadline() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    let name = unique("sick");
    prepare(&app, "m", "sick", &["--never-healthy"], 2).await;
    deploy(&app, &name, "m", "sick").await;
    let failed = wait_for(&app, &name, "failed", Duration::from_secs(30)).await;
    let reason = failed["reason"].as_str().expect("reason");
    assert!(reason.contains("did not answer 200 on /health within 2 s"), "{reason}");
    assert!(containers_named(&name).is_empty());
}

#[tokio::test]
async fn an_image_that_is_not_here_fails_and_says_how_to_get_it() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    let name = unique("noimage");
    app.published("m", &[("weights.bin", b"w")]).await;
    put_runtime(&app, "absent", "hangar-test-absent:1.0", &[], 10).await;
    deploy(&app, &name, "m", "absent").await;
    let failed = wait_for(&app, &name, "failed", Duration::from_secs(30)).await;
    let reason = failed["reason"].as_str().expect("reason");
    assert!(reason.contains("docker pull hangar-test-absent:1.0"), "{reason}");
}

#[tokio::test]
async fn a_gpu_request_that_does_not_fit_is_409_and_creates_nothing() {
    if !docker_ready() {
        return;
    }
    // An empty inventory, whatever GPUs the machine running the test has.
    let app = spawn_app_with(|s| s.gpus = Some(vec![])).await;
    prepare(&app, "m", "test", &[], 10).await;
    let name = unique("gpu");
    let body = json!({"name": name, "model": "m:1", "runtime": "test", "gpus": 1});
    let detail = problem(app.post_json("/api/v1/deployments", &body).await, StatusCode::CONFLICT).await;
    assert!(detail.contains("cannot place 1 whole GPU"), "{detail}");
    let list: Value = app.get("/api/v1/deployments").await.json().await.expect("json");
    assert_eq!(list["items"], json!([]));
    assert!(containers_named(&name).is_empty());
}

#[tokio::test]
async fn a_deployed_model_or_version_cannot_be_deleted() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    prepare(&app, "m", "test", &[], 10).await;
    let name = unique("keep");
    let body = json!({"name": name, "model": "m:1", "runtime": "test", "start": false});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    let detail = problem(app.delete("/api/v1/models/m").await, StatusCode::CONFLICT).await;
    assert!(detail.contains(&format!("deployed as {name}")), "{detail}");
    problem(app.delete("/api/v1/models/m/versions/1").await, StatusCode::CONFLICT).await;
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.delete("/api/v1/models/m").await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn bad_deployment_requests_are_400s_that_say_why() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    prepare(&app, "m", "test", &[], 10).await;
    app.create_version("m", "2").await;
    for (body, says) in [
        (json!({"model": "m", "runtime": "test"}), "give version"),
        (json!({"model": "m", "version": "1", "alias": "prod", "runtime": "test"}), "not both"),
        (json!({"model": "m:1", "runtime": "nope"}), "runtime 'nope' does not exist"),
        (json!({"model": "m:1", "runtime": "test", "gpus": 1, "gpu_memory_gib": 4}), "not both"),
        (json!({"model": "m:1", "runtime": "test", "args": ["{nope}"]}), "nope"),
        (json!({"model": "m:1", "runtime": "test", "name": "Bad Name"}), "invalid deployment name"),
    ] {
        let detail = problem(app.post_json("/api/v1/deployments", &body).await, StatusCode::BAD_REQUEST).await;
        assert!(detail.contains(says), "{body}: {detail}");
    }
    let draft = app.post_json("/api/v1/deployments", &json!({"model": "m:2", "runtime": "test"})).await;
    let detail = problem(draft, StatusCode::CONFLICT).await;
    assert!(detail.contains("draft"), "{detail}");
    let unknown_placeholder = app
        .put_json(
            "/api/v1/runtimes/broken",
            &json!({"image": IMAGE, "args": ["{nope}"], "port": 8000, "startup_deadline_secs": 5}),
        )
        .await;
    problem(unknown_placeholder, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn after_a_restart_hangar_adopts_its_container_and_removes_strays() {
    if !docker_ready() {
        return;
    }
    let data_dir = tempfile::tempdir().expect("tempdir");
    let name = unique("adopt");
    let admin = client_with(ADMIN_TOKEN);
    let first_id = {
        let mut server = ServerProcess::start(data_dir.path());
        let api = |path: &str| format!("{}/api/v1{path}", server.address);
        admin.post(api("/models")).json(&json!({"name": "m"})).send().await.expect("model");
        admin.post(api("/models/m/versions")).json(&json!({})).send().await.expect("version");
        admin.put(api("/models/m/versions/1/files/w.bin")).body("w").send().await.expect("put");
        admin.post(api("/models/m/versions/1/publish")).send().await.expect("publish");
        let runtime = json!({"image": IMAGE, "args": ["--port", "{port}"], "port": 8000, "startup_deadline_secs": 30});
        admin.put(api("/runtimes/test")).json(&runtime).send().await.expect("runtime");
        let body = json!({"name": name, "model": "m:1", "runtime": "test"});
        assert_eq!(admin.post(api("/deployments")).json(&body).send().await.expect("deploy").status(), 202);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let running = loop {
            let d: Value =
                admin.get(api(&format!("/deployments/{name}"))).send().await.expect("get").json().await.expect("json");
            if d["state"] == "running" {
                break d;
            }
            assert!(std::time::Instant::now() < deadline, "never running: {d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        server.child.kill().expect("sigkill");
        server.child.wait().expect("reaped");
        running["container_id"].as_str().expect("id").to_owned()
    };
    // A container labelled as this Hangar's that no deployment wants.
    let owner = std::fs::read_to_string(data_dir.path().join("installation-id")).expect("owner");
    let stray = Command::new("docker")
        .args(["run", "-d", "--label", "hangar.managed=true", "--label"])
        .arg(format!("hangar.owner={}", owner.trim()))
        .args(["--label", "hangar.deployment=nobody-wants-me", IMAGE])
        .output()
        .expect("docker run");
    assert!(stray.status.success(), "{}", String::from_utf8_lossy(&stray.stderr));

    let server = ServerProcess::start(data_dir.path());
    wait_until("the stray container is removed", Duration::from_secs(20), || {
        containers_named("nobody-wants-me").is_empty()
    })
    .await;
    let containers = containers_named(&name);
    assert_eq!(containers.len(), 1, "adopted, not duplicated: {containers:?}");
    assert!(first_id.starts_with(&containers[0]), "the same container");
    let d: Value = admin
        .get(format!("{}/api/v1/deployments/{name}", server.address))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(d["state"], "running");
    assert_eq!(d["container_id"], first_id.as_str());
    drop(server);
    remove_containers_of(data_dir.path());
}

#[tokio::test]
async fn without_docker_the_catalog_works_and_deployments_are_503_naming_the_socket() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut command = crate::helpers::hangar_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let server = ServerProcess::spawn(command);
    let admin = client_with(ADMIN_TOKEN);
    let api = |path: &str| format!("{}/api/v1{path}", server.address);
    admin.post(api("/models")).json(&json!({"name": "m"})).send().await.expect("model");
    admin.post(api("/models/m/versions")).json(&json!({})).send().await.expect("version");
    let put = admin.put(api("/models/m/versions/1/files/w.bin")).body("w").send().await.expect("put");
    assert_eq!(put.status(), StatusCode::CREATED, "uploads work without Docker");
    admin.post(api("/models/m/versions/1/publish")).send().await.expect("publish");
    let body = json!({"model": "m:1", "runtime": "vllm"});
    let response = admin.post(api("/deployments")).json(&body).send().await.expect("deploy");
    let detail = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(detail.contains("unix:///nonexistent/docker.sock"), "{detail}");
    let system: Value = admin.get(api("/system")).send().await.expect("system").json().await.expect("json");
    assert_eq!(system["docker"]["reachable"], false);
}
