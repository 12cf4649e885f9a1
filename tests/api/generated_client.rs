//! A client generated from the OpenAPI document, the way teams make one: `openapi-python-client`
//! (pinned in tests/python/requirements.txt) reads the running server's
//! `/api/v1/openapi.json` without a warning or a skipped operation, and the whole push flow
//! runs through what it generated (tests/python/generated_client.py).

use std::path::Path;
use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{ADMIN_TOKEN, spawn_app};

const PACKAGE: &str = "hangar_client";

/// Runs `command` off the async threads: the server under test runs on this test's runtime.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("the command runs")
}

fn printed(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Each operation of `doc` without its module in the generated package: the generator puts
/// operation `id` tagged `tag` in `api/<tag>/<id>.py`, and leaves out those it cannot read.
fn missing_operations(doc: &Value, package: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let (Some(id), Some(tag)) = (operation["operationId"].as_str(), operation["tags"][0].as_str()) else {
                missing.push(format!("{method} {path} has no operationId or tag"));
                continue;
            };
            if !package.join("api").join(tag).join(format!("{id}.py")).is_file() {
                missing.push(format!("{} {path} ({tag}/{id}.py)", method.to_uppercase()));
            }
        }
    }
    missing
}

#[tokio::test]
async fn a_python_client_generated_from_the_document_has_every_operation_and_pushes_a_model() {
    let app = spawn_app().await;
    let out = tempfile::tempdir().expect("temp dir");
    let package = out.path().join(PACKAGE);
    // No post hooks: by default the generator formats with ruff from the PATH, and says so
    // when it is not there.
    let config = out.path().join("config.yaml");
    std::fs::write(&config, "post_hooks: []\n").expect("write the generator's config");

    let mut generate = Command::new(crate::machine::python_tool("openapi-python-client"));
    generate
        .args(["generate", "--meta", "none", "--fail-on-warning", "--url"])
        .arg(app.url("/api/v1/openapi.json"))
        .arg("--config")
        .arg(&config)
        .arg("--output-path")
        .arg(&package);
    let generated = run(generate).await;
    let said = printed(&generated);
    assert!(generated.status.success(), "openapi-python-client failed ({}):\n{said}", generated.status);
    // A skipped operation is only a warning to it ("Endpoint will not be generated"); here
    // anything but its progress line fails.
    let other: Vec<&str> =
        said.lines().filter(|line| !line.trim().is_empty() && !line.starts_with("Generating ")).collect();
    assert!(other.is_empty(), "openapi-python-client printed more than its progress:\n{said}");

    let response = reqwest::get(app.url("/api/v1/openapi.json")).await.expect("request");
    let doc: Value = response.json().await.expect("the document is JSON");
    let missing = missing_operations(&doc, &package);
    assert!(missing.is_empty(), "the generated client lacks:\n{}", missing.join("\n"));

    let model = "team-a/generated";
    let mut push = Command::new(crate::machine::python());
    push.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/generated_client.py"))
        .args([app.address.as_str(), ADMIN_TOKEN, model])
        .env("PYTHONPATH", out.path());
    let pushed = run(push).await;
    let said = printed(&pushed);
    assert!(pushed.status.success(), "the push through the generated client failed:\n{said}");
    assert!(said.contains("download: ok"), "{said}");

    // The server agrees: `prod` names the published version with both files.
    let alias = app.client.get(app.url("/api/v1/models/team-a%2Fgenerated/aliases/prod")).send().await.expect("alias");
    assert_eq!(alias.status(), StatusCode::OK);
    let alias: Value = alias.json().await.expect("alias JSON");
    assert_eq!(alias["version"], "1");
    let version =
        app.client.get(app.url("/api/v1/models/team-a%2Fgenerated/versions/1")).send().await.expect("version");
    let version: Value = version.json().await.expect("version JSON");
    assert_eq!((version["state"].as_str(), version["file_count"].as_u64()), (Some("ready"), Some(2)));
}
