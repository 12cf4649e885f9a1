use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{sha256_digest, spawn_app};

#[tokio::test]
async fn concurrent_uploads_of_the_same_bytes_store_one_blob_and_two_files() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    app.create_version("m", "2").await;
    let bytes: Vec<u8> = (0..(8 << 20)).map(|i: u32| (i % 253) as u8).collect();
    let (a, b) = tokio::join!(app.upload("m", "1", "w.bin", &bytes), app.upload("m", "2", "w.bin", &bytes));
    assert_eq!(a.status(), StatusCode::CREATED);
    assert_eq!(b.status(), StatusCode::CREATED);
    let system = app.system().await;
    assert_eq!(system["counts"]["blobs"], 1);
    assert_eq!(system["counts"]["files"], 2);
    assert_eq!(app.blobs_on_disk(), 1);
    assert_eq!(app.tmp_entries(), 0);
    for version in ["1", "2"] {
        let body =
            app.get(&format!("/api/v1/models/m/versions/{version}/files/w.bin")).await.bytes().await.expect("body");
        assert_eq!(sha256_digest(&body), sha256_digest(&bytes));
    }
}

#[tokio::test]
async fn fifty_concurrent_creations_of_one_model_give_one_201_and_49_409s() {
    let app = spawn_app().await;
    let body = json!({"name": "race"});
    let attempts = (0..50).map(|_| app.post_json("/api/v1/models", &body));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts).await.iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 49, "{statuses:?}");
    assert_eq!(app.system().await["counts"]["models"], 1);
}

#[tokio::test]
async fn concurrent_unnamed_versions_get_distinct_numbers() {
    let app = spawn_app().await;
    app.create_model("m").await;
    let body = json!({});
    let attempts = (0..20).map(|_| app.post_json("/api/v1/models/m/versions", &body));
    let responses = futures_util::future::join_all(attempts).await;
    let mut names = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED);
        let version: serde_json::Value = response.json().await.expect("json");
        names.push(version["version"].as_str().expect("version").parse::<u32>().expect("number"));
    }
    names.sort_unstable();
    assert_eq!(names, (1..=20).collect::<Vec<_>>());
}
