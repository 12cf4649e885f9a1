//! The OpenAPI document: it is OpenAPI 3.1 with the bearer scheme, it names every route the
//! server registers with the same methods, and the real `hangar` binary holds up against
//! schemathesis driving it from the document: no 5xx, every answer in its documented shape.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, TestApp, client_with, spawn_app};

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Schemathesis gets this long before the test gives up on it.
const SCHEMATHESIS_LIMIT: Duration = Duration::from_secs(240);

async fn document(app: &TestApp) -> Value {
    // Public, like /healthz: fetched without a token.
    let response = reqwest::get(app.url("/api/v1/openapi.json")).await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("the document is JSON")
}

/// Every `$ref` string anywhere in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_the_bearer_scheme_and_problem_errors() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Hangar");
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(bearer["bearerFormat"], "hgr_…");
    assert_eq!(doc["components"]["securitySchemes"]["session"]["name"], "hangar_session");
    assert!(doc["security"].as_array().expect("security").contains(&json!({"bearer": []})));

    let problem = &doc["components"]["schemas"]["Problem"];
    assert_eq!(problem["required"], json!(["type", "title", "status", "detail"]));

    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    for target in targets {
        let pointer = target.strip_prefix('#').expect("local refs only");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }

    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(operation_ids.insert(id.to_owned()), "operationId {id} is used twice");
            // A path parameter its path does not name (a query one declared `in: path`) makes
            // client generators skip the operation.
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] == "path" {
                    let name = parameter["name"].as_str().expect("parameter name");
                    assert!(path.contains(&format!("{{{name}}}")), "{method} {path}: `{name}` is not in the path");
                }
            }
            let responses = operation["responses"].as_object().expect("responses");
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} has no 2xx answer");
            for (status, response) in responses {
                let is_api = path.starts_with("/api/v1/") || path == "/metrics";
                if is_api && status.starts_with('4') && method != "head" {
                    let content = response["content"].as_object().expect("error content");
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }

    let upload = &doc["paths"]["/api/v1/models/{model}/versions/{version}/files/{path}"];
    // Raw bodies are binary strings: without a schema, generators skip the operation.
    let raw_bodies = [
        &upload["put"]["requestBody"],
        &doc["paths"]["/api/v1/models/{model}/versions/{version}/uploads/{id}/parts/{part}"]["put"]["requestBody"],
        &doc["paths"]["/deployments/{name}/proxy/{path}"]["post"]["requestBody"],
        &upload["get"]["responses"]["200"],
        &upload["get"]["responses"]["206"],
    ];
    for body in raw_bodies {
        let schema = &body["content"]["application/octet-stream"]["schema"];
        assert_eq!((&schema["type"], &schema["format"]), (&json!("string"), &json!("binary")), "{body}");
    }
    assert!(upload["get"]["responses"]["416"].is_object());
    let stream = &doc["paths"]["/api/v1/events/stream"]["get"]["responses"]["200"]["content"];
    assert!(stream["text/event-stream"].is_object());
    assert_eq!(doc["paths"]["/api/v1/login"]["post"]["security"], json!([{}]));
    assert!(doc["paths"]["/api/v1/login"]["post"]["responses"]["429"].is_object());
}

#[tokio::test]
async fn every_registered_route_is_in_the_document_with_the_same_methods() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().expect("paths");

    let mut registered: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (method, path) in hangar::api::ROUTES {
        registered.entry(path).or_default().insert(method);
    }
    let mut failures = Vec::new();
    for (path, methods) in &registered {
        let documented: BTreeSet<&str> = paths
            .get(*path)
            .and_then(Value::as_object)
            .map(|item| item.keys().map(String::as_str).filter(|k| METHODS.contains(k)).collect())
            .unwrap_or_default();
        for method in methods.difference(&documented) {
            failures.push(format!(
                "{} {path} is registered but not documented: give its handler a #[utoipa::path] and list it in \
                 src/api/openapi.rs",
                method.to_uppercase()
            ));
        }
        for method in documented.difference(methods) {
            failures.push(format!("{} {path} is documented but not registered", method.to_uppercase()));
        }
    }
    // The gateway's routes are documented too; they are registered by `gateway::configure`.
    for path in paths.keys() {
        let gateway = path.starts_with("/v1/") || path.starts_with("/deployments/");
        if !gateway && !registered.contains_key(path.as_str()) {
            failures.push(format!("{path} is documented but not registered"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(registered.contains_key("/api/v1/openapi.json"));
}

/// Data for schemathesis to find: the names the document's examples use (models `demo` and
/// `team-a/demo`, version `1` with `weights.bin`, alias `prod`, user `vera`, deployment `demo`).
async fn seed(app: &TestApp) {
    app.published("demo", &[("weights.bin", b"hello\n")]).await;
    app.published("team-a/demo", &[("notes/a.txt", b"a")]).await;
    app.create_version("demo", "2").await;
    assert_eq!(app.upload("demo", "2", "notes/a.txt", b"draft").await.status(), StatusCode::CREATED);
    assert_eq!(app.put_json("/api/v1/models/demo/aliases/prod", &json!({"version": "1"})).await.status(), 201);
    app.user_token("vera", "viewer").await;
    // Stopped: the runtime's image is not on this host, so nothing would start anyway.
    let deployment = json!({"name": "demo", "model": "demo@prod", "runtime": "vllm", "start": false});
    let created = app.post_json("/api/v1/deployments", &deployment).await;
    let docker_skipped = std::env::var("HANGAR_TEST_DOCKER").as_deref() == Ok("skip");
    assert!(created.status() == StatusCode::ACCEPTED || docker_skipped, "seed deployment: {}", created.status());
}

/// Checks every operation of the document against the real binary (checks, limits and the
/// two operations left out, with why, are in `tests/schemathesis.toml`). The deployment
/// routes are in: the runtimes' images are not on this host, so nothing starts.
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_every_answer_matches_the_document() {
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let server = ServerProcess::start(data_dir.path());
    // The server runs in its own process: this handle's byte counters stay at zero, and
    // nothing here reads them.
    let blobs = hangar::blobs::BlobStore::open(data_dir.path()).expect("blob store");
    let app = TestApp {
        address: server.address.clone(),
        port: server.port,
        client: client_with(ADMIN_TOKEN),
        data_dir,
        blobs,
    };
    seed(&app).await;

    let started = Instant::now();
    let mut command = Command::new(crate::machine::python_tool("schemathesis"));
    command
        .args(["--config-file", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml")])
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}"), "--no-color"])
        .current_dir(app.data_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("schemathesis from the tests' Python environment: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > SCHEMATHESIS_LIMIT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("schemathesis ran past {SCHEMATHESIS_LIMIT:?}:\n{}", String::from_utf8_lossy(&output.stdout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("schemathesis took {:.1} s", started.elapsed().as_secs_f64());
    assert!(status.success(), "schemathesis failed ({status}):\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    drop(server);
}
