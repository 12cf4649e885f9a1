//! Launch records against the real Docker engine: every start keeps the image's content
//! digest, the argv, the environment with secrets masked, the manifest digest and the
//! runtime; a restart on a tag that was rebuilt says so in its event. And a runtime's
//! `cache_dir`, the deployment's own volume that outlives its containers.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deployments::{IMAGE, docker_ready, unique, wait_for};
use crate::helpers::spawn_app;

/// `docker image inspect`'s `Id` of `image`: its content digest.
fn image_id(image: &str) -> String {
    let output =
        Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]).output().expect("inspect");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Builds a different image under the same tag: the test image with one more label.
fn rebuild(tag: &str, label: &str) {
    let mut build = Command::new("docker")
        .args(["build", "--quiet", "--tag", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker build");
    let dockerfile = format!("FROM {tag}\nLABEL hangar.test.rebuild={label}\n");
    build.stdin.take().expect("stdin").write_all(dockerfile.as_bytes()).expect("dockerfile");
    let output = build.wait_with_output().expect("build");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Removes the test's own tag when the test ends, however it ends.
struct Tag(String);

impl Drop for Tag {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "--force", &self.0]).output();
    }
}

#[tokio::test]
async fn each_start_records_what_ran_and_a_restart_on_a_rebuilt_tag_says_the_image_changed() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    let name = unique("launch");
    let tag = Tag(format!("hangar-test-{name}:latest"));
    let tagged = Command::new("docker").args(["tag", IMAGE, &tag.0]).status().expect("docker tag");
    assert!(tagged.success());
    app.published("m", &[("weights.bin", b"the weights of version one")]).await;
    let runtime = json!({
        "image": tag.0, "args": ["--port", "{port}", "--served-model-name", "{served_name}"], "port": 8000,
        "health_path": "/health", "startup_deadline_secs": 30,
        "env": {"HF_TOKEN": "hf_runtime_secret", "MODE": "plain"},
    });
    assert!(app.put_json("/api/v1/runtimes/rt", &runtime).await.status().is_success());
    let body = json!({"name": name, "model": "m:1", "runtime": "rt", "env": {"OPENAI_API_KEY": "sk-deploy-secret"}});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    wait_for(&app, &name, "running", Duration::from_secs(30)).await;

    let deployment: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
    let launch = &deployment["launch"];
    let text = launch.to_string();
    assert!(
        !text.contains("hf_runtime_secret") && !text.contains("sk-deploy-secret"),
        "no secret in the record: {text}"
    );
    let first = image_id(&tag.0);
    assert!(first.starts_with("sha256:"), "{first}");
    assert_eq!(launch["image"], tag.0.as_str());
    assert_eq!(launch["image_digest"], first.as_str());
    assert_eq!(launch["container_id"], deployment["container_id"]);
    let argv: Vec<&str> = launch["argv"].as_array().expect("argv").iter().map(|a| a.as_str().expect("s")).collect();
    assert_eq!(argv, ["--port", "8000", "--served-model-name", name.as_str()]);
    assert_eq!(launch["env"]["HF_TOKEN"], "***");
    assert_eq!(launch["env"]["OPENAI_API_KEY"], "***");
    assert_eq!(launch["env"]["MODE"], "plain");
    let version: Value = app.get("/api/v1/models/m/versions/1").await.json().await.expect("json");
    assert!(version["manifest_digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{version}");
    assert_eq!(launch["manifest_digest"], version["manifest_digest"]);
    assert_eq!(launch["version"], "1");
    assert_eq!(launch["runtime"]["name"], "rt");
    assert_eq!(launch["runtime"]["image"], tag.0.as_str());
    assert!(launch["started_at"].as_str().is_some_and(|t| !t.is_empty()));

    // The same tag now names another build; the restart runs it and says so.
    rebuild(&tag.0, &name);
    let second = image_id(&tag.0);
    assert_ne!(first, second, "the rebuild is a different image");
    let restart = app.post_json(&format!("/api/v1/deployments/{name}/restart"), &json!({})).await;
    assert_eq!(restart.status(), StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let relaunched = loop {
        let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        if d["state"] == "running" && d["launch"]["image_digest"] == second.as_str() {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "never restarted on the new build: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(relaunched["launch"]["container_id"], launch["container_id"]);
    let events: Value = app.get("/api/v1/events?model=m&action=deployment.launched").await.json().await.expect("json");
    let launched: Vec<&Value> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "deployment.launched" && e["target"] == name.as_str())
        .collect();
    assert_eq!(launched.len(), 2, "one event per start: {events}");
    let changed: Vec<&&Value> = launched.iter().filter(|e| e["details"]["image_changed"] == true).collect();
    assert_eq!(changed.len(), 1, "{events}");
    let details = &changed[0]["details"];
    assert_eq!(details["previous_image_digest"], first.as_str());
    assert_eq!(details["image_digest"], second.as_str());
    let message = details["message"].as_str().expect("a message");
    assert!(message.contains("different build") && message.contains(&first) && message.contains(&second), "{message}");

    // The dashboard's deployment page shows the same record.
    app.post_json("/api/v1/users", &json!({"name": "vera", "role": "viewer", "password": "vera-long-password"})).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login = client
        .post(app.url("/login"))
        .form(&[("user", "vera"), ("password", "vera-long-password"), ("next", "/")])
        .send()
        .await
        .expect("login");
    let cookie = login.headers()[reqwest::header::SET_COOKIE].to_str().expect("ascii").split(';').next().expect("pair");
    let page =
        client.get(app.url(&format!("/deployments/{name}"))).header("cookie", cookie).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    assert!(html.contains("data-launch") && html.contains(&second), "the page shows the launch: {html}");
    assert!(html.contains("OPENAI_API_KEY=***") && !html.contains("sk-deploy-secret"), "{html}");
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}

/// The named volume mounted at `target` in container `id`, if any.
fn volume_at(id: &str, target: &str) -> Option<String> {
    let output = Command::new("docker").args(["inspect", id]).output().expect("docker inspect");
    let all: Value = serde_json::from_slice(&output.stdout).expect("inspect json");
    all[0]["Mounts"]
        .as_array()?
        .iter()
        .find(|m| m["Destination"] == target && m["Type"] == "volume")
        .and_then(|m| m["Name"].as_str().map(str::to_owned))
}

fn volume_exists(name: &str) -> bool {
    Command::new("docker").args(["volume", "inspect", name]).output().expect("docker volume").status.success()
}

#[tokio::test]
async fn a_cache_dir_is_the_deployments_own_volume_kept_across_restarts_and_removed_with_it() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    let name = unique("cache");
    app.published("m", &[("weights.bin", b"the weights of version one")]).await;
    let runtime = json!({
        "image": IMAGE, "args": ["--port", "{port}", "--served-model-name", "{served_name}"], "port": 8000,
        "health_path": "/health", "startup_deadline_secs": 30, "cache_dir": "/cache",
    });
    assert!(app.put_json("/api/v1/runtimes/cached", &runtime).await.status().is_success());
    let body = json!({"name": name, "model": "m:1", "runtime": "cached"});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    let first = wait_for(&app, &name, "running", Duration::from_secs(30)).await;
    let volume = format!("hangar-{name}.cache");
    let first_id = first["container_id"].as_str().expect("id").to_owned();
    assert_eq!(volume_at(&first_id, "/cache").as_deref(), Some(volume.as_str()));

    let restart = app.post_json(&format!("/api/v1/deployments/{name}/restart"), &json!({})).await;
    assert_eq!(restart.status(), StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let second_id = loop {
        let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        if d["state"] == "running" && d["container_id"].as_str().is_some_and(|id| id != first_id) {
            break d["container_id"].as_str().expect("id").to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "never restarted: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(volume_at(&second_id, "/cache").as_deref(), Some(volume.as_str()), "the same volume after a restart");
    assert!(volume_exists(&volume));

    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
    assert!(!volume_exists(&volume), "the cache volume goes with the deployment");
}
