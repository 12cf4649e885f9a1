use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn an_alias_is_created_moved_resolved_and_deleted() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"one")]).await;
    app.create_version("m", "2").await;
    app.upload("m", "2", "a.bin", b"two").await;
    app.publish("m", "2").await;

    let created = app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "1"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let moved = app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "2"})).await;
    assert_eq!(moved.status(), StatusCode::OK);
    let alias: Value = app.get("/api/v1/models/m/aliases/prod").await.json().await.expect("json");
    assert_eq!(alias["version"], "2");
    let version: Value = app.get("/api/v1/models/m/versions/2").await.json().await.expect("json");
    assert_eq!(version["aliases"], json!(["prod"]));
    let list: Value = app.get("/api/v1/models/m/aliases").await.json().await.expect("json");
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    assert_eq!(app.delete("/api/v1/models/m/aliases/prod").await.status(), StatusCode::NO_CONTENT);
    problem(app.get("/api/v1/models/m/aliases/prod").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn an_alias_cannot_point_at_a_draft() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"one")]).await;
    app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "1"})).await;
    app.create_version("m", "2").await;
    let detail =
        problem(app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "2"})).await, StatusCode::CONFLICT)
            .await;
    assert!(detail.contains("draft"), "{detail}");
    let alias: Value = app.get("/api/v1/models/m/aliases/prod").await.json().await.expect("json");
    assert_eq!(alias["version"], "1", "the alias did not move");
}
