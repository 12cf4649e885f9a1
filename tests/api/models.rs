use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{problem, spawn_app};

#[tokio::test]
async fn a_created_model_can_be_read_back_with_its_tags_sorted() {
    let app = spawn_app().await;
    let response = app
        .post_json("/api/v1/models", &json!({"name": "llama", "description": "A llama", "tags": ["b", "a", "b"]}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/api/v1/models/llama");
    let model: Value = app.get("/api/v1/models/llama").await.json().await.expect("json");
    assert_eq!(model["name"], "llama");
    assert_eq!(model["description"], "A llama");
    assert_eq!(model["tags"], json!(["a", "b"]));
    assert_eq!(model["version_count"], 0);
    assert_eq!(model["latest_version"], Value::Null);
}

#[tokio::test]
async fn team_models_are_reachable_with_a_plain_or_an_encoded_slash() {
    let app = spawn_app().await;
    app.create_model("team-a/llama").await;
    for path in ["/api/v1/models/team-a/llama", "/api/v1/models/team-a%2Fllama"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let model: Value = response.json().await.expect("json");
        assert_eq!(model["name"], "team-a/llama");
    }
    app.create_version("team-a/llama", "1").await;
    let versions: Value = app.get("/api/v1/models/team-a/llama/versions").await.json().await.expect("json");
    assert_eq!(versions["items"][0]["version"], "1");
}

#[tokio::test]
async fn listing_pages_through_every_model_once_in_name_order() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.create_model(&format!("m{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/models?limit=3&cursor={c}"),
            None => "/api/v1/models?limit=3".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.expect("json");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|m| m["name"].as_str().expect("name").to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn search_matches_names_and_descriptions_literally() {
    let app = spawn_app().await;
    app.post_json("/api/v1/models", &json!({"name": "llama-3", "description": "chat"})).await;
    app.post_json("/api/v1/models", &json!({"name": "whisper", "description": "speech to text, 100% local"})).await;
    app.post_json("/api/v1/models", &json!({"name": "bert", "description": "embeddings"})).await;
    let names = |page: Value| -> Vec<String> {
        page["items"].as_array().expect("items").iter().map(|m| m["name"].as_str().expect("name").to_owned()).collect()
    };
    assert_eq!(names(app.get("/api/v1/models?q=llama").await.json().await.expect("json")), ["llama-3"]);
    assert_eq!(names(app.get("/api/v1/models?q=speech").await.json().await.expect("json")), ["whisper"]);
    // `%` is a LIKE wildcard; it must match only itself.
    assert_eq!(names(app.get("/api/v1/models?q=100%25").await.json().await.expect("json")), ["whisper"]);
    assert_eq!(names(app.get("/api/v1/models?q=%25").await.json().await.expect("json")), ["whisper"]);
}

#[tokio::test]
async fn patch_changes_description_and_tags_only() {
    let app = spawn_app().await;
    app.create_model("m").await;
    let response = app.patch_json("/api/v1/models/m", &json!({"description": "new", "tags": ["x"]})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let model: Value = response.json().await.expect("json");
    assert_eq!(model["description"], "new");
    assert_eq!(model["tags"], json!(["x"]));
    let renamed = app.patch_json("/api/v1/models/m", &json!({"name": "other"})).await;
    let detail = problem(renamed, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("unknown field `name`"), "{detail}");
}

#[tokio::test]
async fn deleting_a_model_removes_its_versions_and_aliases() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"aaa")]).await;
    app.put_json("/api/v1/models/m/aliases/prod", &json!({"version": "1"})).await;
    assert_eq!(app.delete("/api/v1/models/m").await.status(), StatusCode::NO_CONTENT);
    problem(app.get("/api/v1/models/m").await, StatusCode::NOT_FOUND).await;
    let system = app.system().await;
    assert_eq!(system["counts"]["versions"], 0);
    assert_eq!(system["counts"]["files"], 0);
    // The name is free again, with nothing of the old model attached.
    app.create_model("m").await;
    let aliases: Value = app.get("/api/v1/models/m/aliases").await.json().await.expect("json");
    assert_eq!(aliases["items"], json!([]));
}
