//! Upgrades: every data dir an earlier release wrote (`tests/fixtures/upgrade/<version>/`, made
//! by `make.sh` there) opens with this binary, is migrated, and serves every model, version,
//! file, alias, user, token, runtime and deployment it held, and takes writes.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, client_with};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade");

#[tokio::test]
async fn every_earlier_releases_data_dir_is_migrated_and_serves_all_it_held() {
    let mut releases: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    releases.sort();
    assert!(!releases.is_empty(), "no upgrade fixture under {FIXTURES}");
    for release in releases {
        check_release(&release).await;
    }
}

async fn check_release(release: &Path) {
    let name = release.file_name().expect("name").to_string_lossy().into_owned();
    let expected: Value =
        serde_json::from_slice(&std::fs::read(release.join("expected.json")).expect("expected.json")).expect("json");
    let data = tempfile::tempdir().expect("temp dir");
    copy_tree(&release.join("data"), data.path());
    let server = ServerProcess::start(data.path());
    let base = server.address.clone();
    let admin = client_with(ADMIN_TOKEN);
    let ci = client_with(expected["ci_token"].as_str().expect("ci token"));
    let get = |client: &reqwest::Client, path: &str| {
        let request = client.get(format!("{base}{path}"));
        async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            (status, response.bytes().await.expect("body"))
        }
    };
    let json = |body: &[u8]| serde_json::from_slice::<Value>(body).expect("json body");

    // Models: all of them to the admin, the token's scope still holds.
    let names = |models: Value| -> Vec<String> {
        models["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| m["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let (status, body) = get(&admin, "/api/v1/models").await;
    assert_eq!(status, StatusCode::OK, "{name}");
    let all = names(json(&body));
    for model in expected["models"].as_array().expect("models") {
        assert!(all.contains(&model.as_str().expect("model").to_owned()), "{name}: {model} missing from {all:?}");
    }
    let (_, body) = get(&ci, "/api/v1/models").await;
    assert_eq!(names(json(&body)), ["team-a/llama"], "{name}: the ci token's scope");

    // Versions, their state, every file's bytes, and the aliases.
    for (version, state) in expected["versions"].as_object().expect("versions") {
        let (status, body) = get(&ci, &format!("/api/v1/models/team-a/llama/versions/{version}")).await;
        assert_eq!(status, StatusCode::OK, "{name}: version {version}");
        assert_eq!(json(&body)["state"], *state, "{name}: version {version}");
    }
    for (version, files) in expected["files"].as_object().expect("files") {
        for (path, content) in files.as_object().expect("files of a version") {
            let (status, body) =
                get(&ci, &format!("/api/v1/models/team-a/llama/versions/{version}/files/{path}")).await;
            assert_eq!(status, StatusCode::OK, "{name}: {version}/{path}");
            assert_eq!(body, content.as_str().expect("content").as_bytes(), "{name}: {version}/{path}");
        }
    }
    let (_, body) = get(&ci, "/api/v1/models/team-a/llama/aliases").await;
    let aliases = json(&body);
    for (alias, version) in expected["aliases"].as_object().expect("aliases") {
        let found = aliases["items"].as_array().expect("items").iter().find(|a| a["alias"] == json!(alias));
        assert_eq!(found.map(|a| &a["version"]), Some(version), "{name}: alias {alias} in {aliases}");
    }

    // Users sign in with their passwords.
    let users = expected["users"].as_object().expect("users").iter().map(|(u, p)| (u.as_str(), p.clone()));
    let admin_password = expected["admin_password"].clone();
    for (user, password) in users.chain([("admin", admin_password)]) {
        let response = reqwest::Client::new()
            .post(format!("{base}/api/v1/login"))
            .json(&json!({"user": user, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), StatusCode::CREATED, "{name}: {user} signs in");
    }

    // The runtime and the deployment, as they were.
    let deployment = &expected["deployment"];
    let (status, _) = get(&admin, &format!("/api/v1/runtimes/{}", deployment["runtime"].as_str().expect("rt"))).await;
    assert_eq!(status, StatusCode::OK, "{name}: runtime");
    let (status, body) = get(&admin, &format!("/api/v1/deployments/{}", deployment["name"].as_str().expect("d"))).await;
    assert_eq!(status, StatusCode::OK, "{name}: deployment");
    let shown = json(&body);
    assert_eq!((&shown["target"], &shown["runtime"]), (&deployment["target"], &deployment["runtime"]), "{name}");
    assert_eq!(shown["desired"], "stopped", "{name}");

    // And it takes writes.
    let created = ci
        .post(format!("{base}/api/v1/models/team-a/llama/versions"))
        .json(&json!({"version": "after-upgrade"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED, "{name}: a write after the upgrade");
}

#[test]
fn the_version_names_the_release_and_the_commit_it_was_built_from() {
    let output = crate::helpers::hangar_command().arg("--version").output().expect("hangar --version");
    let line = String::from_utf8(output.stdout).expect("utf-8");
    let expected_start = format!("hangar {} (", env!("CARGO_PKG_VERSION"));
    assert!(output.status.success() && line.starts_with(&expected_start), "{line}");
    let commit = line.trim_end().trim_start_matches(&expected_start).trim_end_matches(')');
    assert!(commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit()), "no commit in {line:?}");
}

/// Copies a fixture's files (the repository holds no empty dirs, the server makes those).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
