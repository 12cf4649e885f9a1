//! The OpenAI-compatible gateway in front of real containers of the test model server.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deployments::{deploy, docker_ready, prepare, put_runtime, unique, wait_for};
use crate::helpers::{TestApp, sha256_digest, spawn_app, spawn_app_with};

const WEIGHTS: &[u8] = b"the weights of version one";

/// An app with a running deployment of `m:1` under a fresh name, with `extra` server flags.
async fn running(extra: &[&str]) -> (TestApp, String) {
    let app = spawn_app().await;
    let name = running_on(&app, extra).await;
    (app, name)
}

/// A running deployment of `m@staging` (at version 1) on `app`, its runtime with `extra` flags.
pub async fn running_on(app: &TestApp, extra: &[&str]) -> String {
    let name = unique("gw");
    prepare(app, "m", "test", extra, 30).await;
    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "1"})).await;
    let body = json!({"name": name, "model": "m@staging", "runtime": "test"});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    wait_for(app, &name, "running", Duration::from_secs(30)).await;
    name
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

    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let label = format!("deployment=\"{name}\"");
    assert!(metrics.contains(&format!("hangar_gateway_requests_total{{{label},status=\"200\"}} 5")), "{metrics}");
    assert!(metrics.contains(&format!("hangar_gateway_request_seconds_count{{{label}}} 5")), "{metrics}");
    assert!(metrics.contains(&format!("hangar_gateway_in_flight{{{label}}} 0")), "{metrics}");
    assert!(metrics.contains("hangar_deployments{state=\"running\"} 1"), "{metrics}");
    assert!(metrics.contains("hangar_models 1"), "{metrics}");
    let anonymous = reqwest::get(app.url("/metrics")).await.expect("metrics");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "metrics need a token unless metrics_public");
}

#[tokio::test]
async fn a_server_that_only_answers_its_served_name_is_reached_as_m_m_at_alias_and_m_colon_version() {
    if !docker_ready() {
        return;
    }
    // Like vLLM, SGLang and Ollama: 404 to any `model` but the one it serves.
    let (app, name) = running(&["--strict-model"]).await;
    for model in [name.as_str(), "m", "m@staging", "m:1"] {
        for stream in [false, true] {
            let response = chat(&app, model, stream).await;
            assert_eq!(response.status(), StatusCode::OK, "{model} stream={stream}");
            let text = response.text().await.expect("body");
            assert!(text.contains(&sha256_digest(WEIGHTS)), "{model} stream={stream}: {text}");
        }
    }

    let audio = vec![7u8; 3000];
    let form = || {
        reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(audio.clone()).file_name("model.wav"))
            .text("model", "m@staging")
            .text("language", "en")
    };
    let response =
        app.client.post(app.url("/v1/audio/transcriptions")).multipart(form()).send().await.expect("transcribe");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let text = body["text"].as_str().expect("text");
    assert!(text.starts_with(&format!("hangar-test-model {name} heard a form of ")), "{text}");

    let no_model = reqwest::multipart::Form::new().text("language", "en");
    let response = app.client.post(app.url("/v1/audio/transcriptions")).multipart(no_model).send().await.expect("send");
    let message = openai_error(response, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("\"model\" field"), "{message}");
}

#[tokio::test]
async fn metrics_can_be_public() {
    let app = spawn_app_with(|s| s.metrics_public = true).await;
    let response = reqwest::get(app.url("/metrics")).await.expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.expect("text").contains("# TYPE hangar_blobs gauge"));
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

#[tokio::test]
async fn an_upstream_that_hangs_up_is_a_502_and_one_that_stays_silent_a_504() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app_with(|s| s.upstream_timeout_secs = 1).await;
    let hangs_up = running_on(&app, &["--hang-up"]).await;
    let response = chat(&app, &hangs_up, false).await;
    let message = openai_error(response, StatusCode::BAD_GATEWAY).await;
    assert!(message.contains(&hangs_up), "names the deployment: {message}");

    put_runtime(&app, "silent", crate::deployments::IMAGE, &["--response-delay-ms", "5000"], 30).await;
    let silent = unique("silent");
    deploy(&app, &silent, "m", "silent").await;
    wait_for(&app, &silent, "running", Duration::from_secs(30)).await;
    let started = Instant::now();
    let response = chat(&app, &silent, false).await;
    let message = openai_error(response, StatusCode::GATEWAY_TIMEOUT).await;
    assert!(started.elapsed() < Duration::from_secs(4), "the 1 s upstream timeout applied: {:?}", started.elapsed());
    assert!(message.contains(&silent), "{message}");

    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for (name, status) in [(&hangs_up, 502), (&silent, 504)] {
        let line = format!("hangar_gateway_errors_total{{deployment=\"{name}\",status=\"{status}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_request() {
    if !docker_ready() {
        return;
    }
    // Eight tokens 500 ms apart: 3.5 s if nobody stopped it. Actix notices a client has
    // gone when a write to it fails, the second write after it left; then the upstream
    // connection is dropped, and the model server stops between two tokens.
    let (app, name) = running(&["--token-delay-ms", "500"]).await;
    let deployment: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
    let container = deployment["container_id"].as_str().expect("id").to_owned();
    let response = chat(&app, &name, true).await;
    let mut stream = response.bytes_stream();
    stream.next().await.expect("a first chunk").expect("ok");
    let gone = Instant::now();
    drop(stream);

    let in_flight = format!("hangar_gateway_in_flight{{deployment=\"{name}\"}} 0");
    loop {
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        if metrics.contains(&in_flight) {
            break;
        }
        assert!(gone.elapsed() < Duration::from_millis(2500), "the request stayed in flight: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = loop {
        let logs = std::process::Command::new("docker").args(["logs", &container]).output().expect("docker logs");
        let text = String::from_utf8_lossy(&logs.stderr).into_owned() + &String::from_utf8_lossy(&logs.stdout);
        if let Some(at) = text.find("stream to the client ended after ") {
            break text[at..].lines().next().unwrap_or_default().to_owned();
        }
        assert!(gone.elapsed() < Duration::from_secs(5), "the model server kept generating: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sent: usize = ended
        .trim_start_matches("stream to the client ended after ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a chunk count");
    assert!(sent <= 4, "half the answer was never generated: {ended}");
}

/// Creates a stopped autostart deployment of `m:1` (prepared with `prepare`).
async fn autostart_deployment(app: &TestApp, name: &str, extra: Value) {
    let mut body = json!({"name": name, "model": "m:1", "runtime": "test", "autostart": true, "start": false});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let response = app.post_json("/api/v1/deployments", &body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", response.text().await.unwrap_or_default());
}

async fn count_events(app: &TestApp, name: &str, action: &str) -> usize {
    let events: Value =
        app.get(&format!("/api/v1/events?action={action}&limit=1000")).await.json().await.expect("json");
    events["items"].as_array().expect("items").iter().filter(|e| e["target"] == name).count()
}

#[tokio::test]
async fn twenty_concurrent_cold_requests_share_one_start() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    prepare(&app, "m", "test", &["--listen-delay-secs", "1"], 30).await;
    let name = unique("cold");
    autostart_deployment(&app, &name, json!({})).await;
    let models: Value = app.get("/v1/models").await.json().await.expect("json");
    assert_eq!(models["data"][0]["id"], name.as_str(), "a stopped autostart deployment is listed");

    let requests = (0..20).map(|_| chat(&app, &name, false));
    let responses = futures_util::future::join_all(requests).await;
    for response in responses {
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(count_events(&app, &name, "deployment.starting").await, 1, "one start");
    assert_eq!(count_events(&app, &name, "deployment.running").await, 1);
    let output = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=hangar.deployment={name}")])
        .output()
        .expect("docker ps");
    assert_eq!(String::from_utf8_lossy(&output.stdout).split_whitespace().count(), 1, "one container");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains(&format!("hangar_gateway_cold_start_seconds_count{{deployment=\"{name}\"}} 1")),
        "one cold start, however many requests waited for it: {metrics}"
    );
    assert!(
        metrics.contains(&format!("hangar_gateway_requests_total{{deployment=\"{name}\",status=\"200\"}} 20")),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_idle_deployment_stops_but_not_while_a_request_is_in_flight() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    prepare(&app, "m", "test", &["--token-delay-ms", "600"], 30).await;
    let name = unique("idle");
    autostart_deployment(&app, &name, json!({"idle_timeout_secs": 2})).await;

    // A streamed answer of ~5 s: longer than the idle timeout, and it must hold.
    let response = chat(&app, &name, true).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.expect("a complete stream");
    assert!(body.contains("[DONE]"), "the long request was not cut: {body}");
    let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
    assert_eq!(d["state"], "running", "in-flight requests keep it alive");

    wait_for(&app, &name, "stopped", Duration::from_secs(15)).await;
    // And the next request brings it back.
    assert_eq!(chat(&app, &name, false).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_cold_start_that_does_not_fit_evicts_the_least_recently_used_idle_deployment() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app_with(|s| {
        s.gpus = Some(vec![hangar::runtime::GpuConfig {
            index: Some(0),
            uuid: None,
            name: Some("test-gpu".into()),
            memory_gib: Some(10.0),
        }]);
        s.gpu_mode = hangar::runtime::GpuMode::None;
    })
    .await;
    prepare(&app, "m", "test", &["--token-delay-ms", "400"], 30).await;
    let (a, b) = (unique("lru-a"), unique("lru-b"));
    autostart_deployment(&app, &a, json!({"gpu_memory_gib": 6})).await;
    autostart_deployment(&app, &b, json!({"gpu_memory_gib": 6})).await;

    assert_eq!(chat(&app, &a, false).await.status(), StatusCode::OK);
    assert_eq!(chat(&app, &b, false).await.status(), StatusCode::OK, "b evicts idle a");
    let a_now: Value = app.get(&format!("/api/v1/deployments/{a}")).await.json().await.expect("json");
    assert_eq!(a_now["state"], "stopped");
    assert!(a_now["reason"].as_str().unwrap_or_default().contains("make room"), "{a_now}");

    // While b streams, it cannot be evicted: a cold start of a is refused, naming b.
    let streaming = chat(&app, &b, true).await;
    let mut stream = streaming.bytes_stream();
    stream.next().await.expect("first chunk").expect("ok");
    let refused = chat(&app, &a, false).await;
    let message = openai_error(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(message.contains(&b), "the refusal names who holds the memory: {message}");
    while stream.next().await.is_some() {}
}

/// Sends chat requests back to back until told to stop; returns (failures, digests seen).
async fn load(app: &TestApp, model: &str, stop: &std::sync::atomic::AtomicBool) -> (Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let response = chat(app, model, false).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            failures.push(format!("{status}: {body}"));
            continue;
        }
        if let Some(at) = body.find("sha256:") {
            let digest = body[at..at + 71].to_owned();
            if seen.last() != Some(&digest) {
                seen.push(digest);
            }
        }
    }
    (failures, seen)
}

#[tokio::test]
async fn an_alias_move_rolls_out_blue_green_without_a_failed_request() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    let v2 = b"the weights of version two";
    prepare(&app, "m", "test", &[], 30).await;
    app.create_version("m", "2").await;
    app.upload("m", "2", "weights.bin", v2).await;
    app.publish("m", "2").await;
    app.create_version("m", "3").await;
    app.upload("m", "3", "weights.bin", b"the weights of version three").await;
    app.upload("m", "3", "BROKEN", b"this version cannot serve").await;
    app.publish("m", "3").await;
    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "1"})).await;
    let name = unique("bg");
    let body = json!({"name": name, "model": "m@staging", "runtime": "test"});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    let before = wait_for(&app, &name, "running", Duration::from_secs(30)).await;
    let old_container = before["container_id"].as_str().expect("id").to_owned();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let mover = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "2"})).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
            let old_gone = std::process::Command::new("docker")
                .args(["inspect", &old_container])
                .output()
                .is_ok_and(|o| !o.status.success());
            if d["version"] == "2" && old_gone {
                break;
            }
            assert!(Instant::now() < deadline, "never rolled out: {d}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let ((failures_a, seen_a), (failures_b, seen_b), ()) =
        tokio::join!(load(&app, &name, &stop), load(&app, &name, &stop), mover);
    assert!(failures_a.is_empty() && failures_b.is_empty(), "failed requests: {failures_a:?} {failures_b:?}");
    for seen in [&seen_a, &seen_b] {
        assert_eq!(seen, &vec![sha256_digest(WEIGHTS), sha256_digest(v2)], "v1 then v2, never back");
    }
    let after: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
    let containers = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("label=hangar.deployment={name}")])
        .output()
        .expect("docker ps");
    assert_eq!(
        String::from_utf8_lossy(&containers.stdout).trim(),
        format!("hangar-{name}"),
        "one container, usual name"
    );
    assert_ne!(after["container_id"], old_container.as_str());

    // A broken version: the rollout fails and version 2 keeps serving.
    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "3"})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        if d["reason"].as_str().is_some_and(|r| r.contains("rollout to version 3 failed")) {
            break d;
        }
        assert!(Instant::now() < deadline, "the failed rollout was never reported: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed["state"], "running");
    assert_eq!(failed["version"], "2");
    let answer = chat(&app, &name, false).await.text().await.expect("text");
    assert!(answer.contains(&sha256_digest(v2)), "version 2 still answers: {answer}");
}

#[tokio::test]
async fn the_official_openai_python_client_chats_and_streams_through_the_gateway() {
    if !docker_ready() {
        return;
    }
    let (app, name) = running(&["--token-delay-ms", "150"]).await;
    openai_chats_with(&app, &name, None).await;
}

/// Runs `tests/python/openai_chat.py` (plain and streamed chat, models, an unknown model)
/// against `name` on `app`, the client trusting the CA file `ca` when given; the deployment's
/// runtime must delay tokens by 150 ms so that streaming shows.
pub async fn openai_chats_with(app: &TestApp, name: &str, ca: Option<std::path::PathBuf>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_chat.py");
    let (address, name, digest) = (app.address.clone(), name.to_owned(), sha256_digest(WEIGHTS));
    let output = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(crate::machine::python());
        command.arg(script).args([address.as_str(), crate::helpers::ADMIN_TOKEN, name.as_str(), digest.as_str()]);
        if let Some(ca) = ca {
            // httpx, under the openai client, trusts the CA named here.
            command.env("SSL_CERT_FILE", ca);
        }
        command.output()
    })
    .await
    .expect("join")
    .expect("the tests' python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the OpenAI client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("streamed: ok") && stdout.contains("unknown model: ok"), "{stdout}");
}

#[tokio::test]
async fn on_a_docker_network_deployments_are_reached_at_their_address_there_through_a_rollout() {
    if !docker_ready() {
        return;
    }
    let network = unique("hangar-test-net");
    let docker = |args: &[&str]| std::process::Command::new("docker").args(args).output().expect("docker");
    assert!(docker(&["network", "create", &network]).status.success());
    let app = spawn_app_with(|s| s.docker_network = Some(network.clone())).await;
    let name = running_on(&app, &[]).await;
    let before: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
    let address = before["address"].as_str().expect("address").to_owned();
    assert!(!address.starts_with("127.0.0.1"), "on the network, not published: {address}");
    let answer = chat(&app, &name, false).await.text().await.expect("text");
    assert!(answer.contains(&sha256_digest(WEIGHTS)), "{answer}");

    // The new container runs under a temporary name until the old one is gone; requests
    // must reach it from the switch on, and still after it takes the usual name.
    let v2 = b"the weights of version two";
    app.create_version("m", "2").await;
    app.upload("m", "2", "weights.bin", v2).await;
    app.publish("m", "2").await;
    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "2"})).await;
    let old = before["container_id"].as_str().expect("id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        let old_gone = !docker(&["inspect", &old]).status.success();
        let names =
            docker(&["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("label=hangar.deployment={name}")]);
        let names = String::from_utf8_lossy(&names.stdout).trim().to_owned();
        // Done when the new container serves, the old is gone and the new has its name.
        if d["version"] == "2" && old_gone && names == format!("hangar-{name}") {
            break;
        }
        assert!(Instant::now() < deadline, "never rolled out: {d}; containers: {names}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = chat(&app, &name, false).await.text().await.expect("text");
    assert!(answer.contains(&sha256_digest(v2)), "version 2 answers on the network: {answer}");

    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
    assert!(docker(&["network", "rm", &network]).status.success(), "nothing of ours is left on the network");
}
