use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{problem, sha256_digest, spawn_app};

#[tokio::test]
async fn versions_without_a_name_are_numbered_after_the_highest_integer() {
    let app = spawn_app().await;
    app.create_model("m").await;
    let mut names = Vec::new();
    for body in [json!({}), json!({}), json!({"version": "7"}), json!({"version": "2026-11-28"}), json!({})] {
        let response = app.post_json("/api/v1/models/m/versions", &body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let version: Value = response.json().await.expect("json");
        names.push(version["version"].as_str().expect("version").to_owned());
    }
    assert_eq!(names, ["1", "2", "7", "2026-11-28", "8"]);
    let page: Value = app.get("/api/v1/models/m/versions").await.json().await.expect("json");
    let listed: Vec<&str> =
        page["items"].as_array().expect("items").iter().map(|v| v["version"].as_str().expect("v")).collect();
    assert_eq!(listed, ["8", "2026-11-28", "7", "2", "1"], "newest first");
}

#[tokio::test]
async fn versions_page_newest_first() {
    let app = spawn_app().await;
    app.create_model("m").await;
    for _ in 0..5 {
        app.post_json("/api/v1/models/m/versions", &json!({})).await;
    }
    let first: Value = app.get("/api/v1/models/m/versions?limit=2").await.json().await.expect("json");
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let second: Value =
        app.get(&format!("/api/v1/models/m/versions?limit=2&cursor={cursor}")).await.json().await.expect("json");
    assert_eq!(first["items"][0]["version"], "5");
    assert_eq!(second["items"][0]["version"], "3");
    assert_eq!(second["items"][1]["version"], "2");
}

#[tokio::test]
async fn publishing_fixes_the_manifest_digest_over_sorted_lines() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.post_json("/api/v1/models/m/versions", &json!({"version": "1", "metadata": {"format": "gguf"}})).await;
    app.upload("m", "1", "z.bin", b"zz").await;
    app.upload("m", "1", "a/b.bin", b"ab").await;
    let response = app.publish("m", "1").await;
    assert_eq!(response.status(), StatusCode::OK);
    let version: Value = response.json().await.expect("json");
    assert_eq!(version["state"], "ready");
    assert_eq!(version["metadata"]["format"], "gguf");
    assert_eq!(version["file_count"], 2);
    assert_eq!(version["size"], 4);
    let lines = format!("a/b.bin {} 2\nz.bin {} 2\n", sha256_digest(b"ab"), sha256_digest(b"zz"));
    assert_eq!(version["manifest_digest"], sha256_digest(lines.as_bytes()));
    let model: Value = app.get("/api/v1/models/m").await.json().await.expect("json");
    assert_eq!(model["latest_version"], "1");
}

#[tokio::test]
async fn a_ready_version_refuses_every_change() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"a")]).await;
    let attempts = [
        app.upload("m", "1", "b.bin", b"b").await,
        app.upload("m", "1", "a.bin", b"changed").await,
        app.post_json("/api/v1/models/m/versions/1/files/c.bin", &json!({"digest": sha256_digest(b"a"), "size": 1}))
            .await,
        app.delete("/api/v1/models/m/versions/1/files/a.bin").await,
        app.patch_json("/api/v1/models/m/versions/1", &json!({"metadata": {"x": 1}})).await,
        app.publish("m", "1").await,
    ];
    for response in attempts {
        let detail = problem(response, StatusCode::CONFLICT).await;
        assert!(detail.contains("published"), "{detail}");
    }
    let files: Value = app.get("/api/v1/models/m/versions/1/files").await.json().await.expect("json");
    assert_eq!(files["items"], json!([{"path": "a.bin", "size": 1, "digest": sha256_digest(b"a")}]));
}

#[tokio::test]
async fn a_draft_can_change_until_it_is_published() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    app.upload("m", "1", "a.bin", b"one").await;
    let replaced = app.upload("m", "1", "a.bin", b"two").await;
    assert_eq!(replaced.status(), StatusCode::OK, "a second PUT to a path replaces it");
    assert_eq!(app.delete("/api/v1/models/m/versions/1/files/a.bin").await.status(), StatusCode::NO_CONTENT);
    let patched =
        app.patch_json("/api/v1/models/m/versions/1", &json!({"description": "d", "metadata": {"k": "v"}})).await;
    assert_eq!(patched.status(), StatusCode::OK);
    let version: Value = patched.json().await.expect("json");
    assert_eq!(version["metadata"], json!({"k": "v"}));
    assert_eq!(version["file_count"], 0);
}

#[tokio::test]
async fn a_version_an_alias_points_at_cannot_be_deleted() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"a")]).await;
    app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "1"})).await;
    let detail = problem(app.delete("/api/v1/models/m/versions/1").await, StatusCode::CONFLICT).await;
    assert!(detail.contains("prod"), "{detail}");
    app.delete("/api/v1/models/m/aliases/prod").await;
    assert_eq!(app.delete("/api/v1/models/m/versions/1").await.status(), StatusCode::NO_CONTENT);
    problem(app.get("/api/v1/models/m/versions/1").await, StatusCode::NOT_FOUND).await;
}
