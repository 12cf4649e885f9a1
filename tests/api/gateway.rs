//! The OpenAI-compatible gateway in front of real containers of the test model server.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deployments::{deploy, docker_ready, prepare, put_runtime, unique, wait_for};
use crate::helpers::{TestApp, sha256_digest, spawn_app};

const WEIGHTS: &[u8] = b"the weights of version one";

/// An app with a running deployment of `m:1` under a fresh name, with `extra` server flags.
async fn running(extra: &[&str]) -> (TestApp, String) {
    let app = spawn_app().await;
    let name = unique("gw");
    prepare(&app, "m", "test", extra, 30).await;
    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "1"})).await;
    let body = json!({"name": name, "model": "m@staging", "runtime": "test"});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    wait_for(&app, &name, "running", Duration::from_secs(30)).await;
    (app, name)
}

async fn chat(app: &TestApp, model: &str, stream: bool) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("chat")
}

async fn openai_error(response: reqwest::Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("json");
    assert!(body["error"]["type"].is_string() && body["error"]["code"].is_string(), "{body}");
    body["error"]["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn chat_goes_to_the_deployment_by_name_or_by_model() {
    if !docker_ready() {
        return;
    }
    let (app, name) = running(&[]).await;
    for model in [name.as_str(), "m", "m@staging", "m:1"] {
        let response = chat(&app, model, false).await;
        assert_eq!(response.status(), StatusCode::OK, "{model}");
        let body: Value = response.json().await.expect("json");
        let content = body["choices"][0]["message"]["content"].as_str().expect("content");
        assert!(content.contains(&sha256_digest(WEIGHTS)), "{model}: {content}");
    }
    let models: Value = app.get("/v1/models").await.json().await.expect("json");
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], name.as_str());
    let health = app.get(&format!("/deployments/{name}/proxy/health")).await;
    assert_eq!(health.status(), StatusCode::OK, "the raw proxy passes through");
}

#[tokio::test]
async fn streamed_tokens_arrive_as_they_are_generated() {
    if !docker_ready() {
        return;
    }
    let (app, name) = running(&["--token-delay-ms", "150"]).await;
    let started = Instant::now();
    let response = chat(&app, &name, true).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let mut stream = response.bytes_stream();
    let mut first = None;
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        if first.is_none() && !chunk.is_empty() {
            first = Some(started.elapsed());
        }
        text.push_str(std::str::from_utf8(&chunk).expect("utf8"));
    }
    let total = started.elapsed();
    let first = first.expect("some chunk");
    assert!(text.contains("data: [DONE]"), "{text}");
    assert!(text.matches("data: ").count() >= 9, "one event per token: {text}");
    // Eight tokens 150 ms apart: the first must arrive long before the last was sent.
    assert!(first + Duration::from_millis(700) < total, "first chunk after {first:?}, all after {total:?}");
}

#[tokio::test]
async fn unknown_models_failed_deployments_and_missing_tokens_get_openai_errors() {
    if !docker_ready() {
        return;
    }
    let (app, name) = running(&[]).await;
    let message = openai_error(chat(&app, "nope", false).await, StatusCode::NOT_FOUND).await;
    assert!(message.contains("no deployment serves model 'nope'") && message.contains(&name), "{message}");

    let broken = unique("broken");
    put_runtime(&app, "missing-image", "hangar-test-absent:1.0", &[], 10).await;
    deploy(&app, &broken, "m", "missing-image").await;
    wait_for(&app, &broken, "failed", Duration::from_secs(30)).await;
    let message = openai_error(chat(&app, &broken, false).await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains("failed") && message.contains("docker pull"), "{message}");

    let anonymous = reqwest::Client::new()
        .post(app.url("/v1/chat/completions"))
        .json(&json!({"model": name, "messages": []}))
        .send()
        .await
        .expect("chat");
    openai_error(anonymous, StatusCode::UNAUTHORIZED).await;
    let no_model =
        app.client.post(app.url("/v1/chat/completions")).json(&json!({"messages": []})).send().await.expect("chat");
    let message = openai_error(no_model, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("\"model\""), "{message}");
}

#[tokio::test]
async fn an_upstream_killed_mid_stream_ends_the_stream_without_taking_hangar_down() {
    if !docker_ready() {
        return;
    }
    let (app, name) = running(&["--token-delay-ms", "300"]).await;
    let deployment: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
    let container = deployment["container_id"].as_str().expect("id").to_owned();
    let response = chat(&app, &name, true).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("ok");
    assert!(!first.is_empty());
    let killed = std::process::Command::new("docker").args(["kill", &container]).output().expect("docker kill");
    assert!(killed.status.success());
    let mut rest = String::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => rest.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => break,
        }
    }
    assert!(!rest.contains("[DONE]"), "the stream did not pretend to finish: {rest}");
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), StatusCode::OK);
}
