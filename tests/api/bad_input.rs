//! Every kind of bad input gets a 4xx with a detail that says what to fix, and changes
//! nothing: no model, version, file or blob appears, and `tmp/` stays empty.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, sha256_digest, spawn_app};

/// What the server holds, to compare before and after a refused request.
async fn snapshot(app: &TestApp) -> (Value, usize, usize) {
    let system = app.system().await;
    (system["counts"].clone(), app.blobs_on_disk(), app.tmp_entries())
}

async fn app_with_draft() -> TestApp {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    app.upload("m", "1", "keep.bin", b"keep").await;
    app
}

#[tokio::test]
async fn bad_model_names_are_refused_with_the_rule() {
    let app = spawn_app().await;
    let before = snapshot(&app).await;
    let long = "a".repeat(200);
    for name in ["Llama", "has space", "", long.as_str(), "..", "-leading", "a/b/c", "team/versions"] {
        let response = app.post_json("/api/v1/models", &json!({ "name": name })).await;
        let detail = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(detail.contains("invalid model name"), "{name:?}: {detail}");
    }
    let detail = problem(app.get("/api/v1/models/Llama").await, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("lowercase"), "{detail}");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn bad_version_and_alias_names_are_refused() {
    let app = app_with_draft().await;
    let before = snapshot(&app).await;
    for version in ["", " 1", "-1", "1/2", "a b"] {
        let response = app.post_json("/api/v1/models/m/versions", &json!({ "version": version })).await;
        problem(response, StatusCode::BAD_REQUEST).await;
    }
    let response = app.put_json("/api/v1/models/m/aliases/Prod", &json!({"version": "1"})).await;
    let detail = problem(response, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("invalid alias name"), "{detail}");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn bad_file_paths_are_refused_and_store_nothing() {
    let app = app_with_draft().await;
    let before = snapshot(&app).await;
    let base = "/api/v1/models/m/versions/1/files";
    let long = "a".repeat(600);
    let deep = vec!["d"; 40].join("/");
    let targets = [
        format!("{base}/../x"),
        format!("{base}/a/../../b"),
        format!("{base}//etc/passwd"),
        format!("{base}/a%5Cb"),
        format!("{base}/a\\b"),
        format!("{base}/%2e%2e/x"),
        format!("{base}/%2E%2E/x"),
        format!("{base}/a%00b"),
        format!("{base}/{long}"),
        format!("{base}/{deep}"),
        format!("{base}/a//b"),
        format!("{base}/a/"),
    ];
    for target in &targets {
        let (status, body) = app.raw("PUT", target, b"payload").await;
        // The router may turn an escape into "no such route" before our parser sees it;
        // either way it is a 4xx that says what was wrong.
        assert!(status == 400 || status == 404, "{target}: {status} {body}");
        let problem: Value = serde_json::from_str(&body).expect("problem json");
        assert!(!problem["detail"].as_str().unwrap_or_default().is_empty(), "{target}: {body}");
    }
    assert_eq!(snapshot(&app).await, before);
    let files: Value = app.get("/api/v1/models/m/versions/1/files").await.json().await.expect("json");
    assert_eq!(files["items"].as_array().expect("items").len(), 1);
}

#[tokio::test]
async fn every_traversal_the_parser_sees_is_a_400() {
    let app = app_with_draft().await;
    let base = "/api/v1/models/m/versions/1/files";
    for (target, why) in [
        (format!("{base}/%2e%2e/x"), "'..'"),
        (format!("{base}/a%5Cb"), "'\\\\'"),
        (format!("{base}/a%00b"), "NUL"),
        (format!("{base}/{}", "a".repeat(600)), "512 bytes"),
        (format!("{base}/{}", vec!["d"; 40].join("/")), "16 segments"),
        (format!("{base}/a//b"), "empty segment"),
    ] {
        let (status, body) = app.raw("PUT", &target, b"x").await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains(why), "{target}: {body}");
    }
}

#[tokio::test]
async fn a_body_that_does_not_match_its_digest_stores_nothing() {
    let app = app_with_draft().await;
    let before = snapshot(&app).await;
    let url = app.url(&format!("/api/v1/models/m/versions/1/files/x.bin?digest={}", sha256_digest(b"other")));
    let response = app.client.put(url).body(vec![7u8; 3 << 20]).send().await.expect("put");
    let detail = problem(response, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("nothing was stored"), "{detail}");
    assert_eq!(snapshot(&app).await, before);
    problem(app.get("/api/v1/models/m/versions/1/files/x.bin").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn malformed_digests_are_refused_before_the_body_is_read() {
    let app = app_with_draft().await;
    let before = snapshot(&app).await;
    let url = app.url("/api/v1/models/m/versions/1/files/x.bin");
    for digest in ["sha256:xyz", "md5:abc", "abc", &format!("sha256:{}", "A".repeat(64))] {
        let response = app.client.put(format!("{url}?digest={digest}")).body("x").send().await.expect("put");
        let detail = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(detail.contains("64 lowercase hex"), "{detail}");
    }
    let response = app
        .client
        .put(&url)
        .header("content-digest", "sha-256=:bm90IDMyIGJ5dGVz:")
        .body("x")
        .send()
        .await
        .expect("put");
    problem(response, StatusCode::BAD_REQUEST).await;
    let response = app.client.head(app.url("/api/v1/blobs/sha256:nope")).send().await.expect("head");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn malformed_json_and_unknown_fields_are_400s_that_say_where() {
    let app = spawn_app().await;
    let before = snapshot(&app).await;
    let response = app
        .client
        .post(app.url("/api/v1/models"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("post");
    let detail = problem(response, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("JSON body is invalid"), "{detail}");
    let response = app.post_json("/api/v1/models", &json!({"name": "m", "colour": "red"})).await;
    let detail = problem(response, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("unknown field `colour`"), "{detail}");
    let response = app.client.post(app.url("/api/v1/models")).body("{\"name\":\"m\"}").send().await.expect("post");
    let detail = problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert!(detail.contains("application/json"), "{detail}");
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn a_json_body_over_the_limit_is_413() {
    let app = spawn_app().await;
    let response = app.post_json("/api/v1/models", &json!({"name": "m", "description": "x".repeat(2 << 20)})).await;
    let detail = problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(detail.contains("bytes accepted"), "{detail}");
    assert_eq!(app.system().await["counts"]["models"], 0);
}

#[tokio::test]
async fn duplicates_are_conflicts() {
    let app = app_with_draft().await;
    let detail = problem(app.post_json("/api/v1/models", &json!({"name": "m"})).await, StatusCode::CONFLICT).await;
    assert!(detail.contains("already exists"), "{detail}");
    let detail =
        problem(app.post_json("/api/v1/models/m/versions", &json!({"version": "1"})).await, StatusCode::CONFLICT).await;
    assert!(detail.contains("already has a version '1'"), "{detail}");
}

#[tokio::test]
async fn unknown_things_are_404s_that_name_them() {
    let app = app_with_draft().await;
    for (path, says) in [
        ("/api/v1/models/nope", "model 'nope' does not exist"),
        ("/api/v1/models/nope/versions", "model 'nope' does not exist"),
        ("/api/v1/models/m/versions/9", "no version '9'"),
        ("/api/v1/models/m/versions/9/files", "no version '9'"),
        ("/api/v1/models/m/versions/1/files/nope.bin", "no file 'nope.bin'"),
        ("/api/v1/models/m/aliases/prod", "no alias 'prod'"),
        ("/api/v1/nothing-here", "no such endpoint"),
    ] {
        let detail = problem(app.get(path).await, StatusCode::NOT_FOUND).await;
        assert!(detail.contains(says), "{path}: {detail}");
    }
    let detail = problem(app.upload("m", "9", "a.bin", b"a").await, StatusCode::NOT_FOUND).await;
    assert!(detail.contains("no version '9'"), "{detail}");
    assert_eq!(app.tmp_entries(), 0);
}

#[tokio::test]
async fn a_range_past_the_end_is_416_with_the_size() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"0123456789")]).await;
    let response = app
        .client
        .get(app.url("/api/v1/models/m/versions/1/files/a.bin"))
        .header("range", "bytes=10-20")
        .send()
        .await
        .expect("get");
    assert_eq!(response.headers()["content-range"], "bytes */10");
    problem(response, StatusCode::RANGE_NOT_SATISFIABLE).await;
}

#[tokio::test]
async fn publishing_an_empty_draft_is_a_conflict() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    let detail = problem(app.publish("m", "1").await, StatusCode::CONFLICT).await;
    assert!(detail.contains("no files"), "{detail}");
    let version: Value = app.get("/api/v1/models/m/versions/1").await.json().await.expect("json");
    assert_eq!(version["state"], "draft");
}

#[tokio::test]
async fn bad_paging_parameters_are_400s() {
    let app = spawn_app().await;
    for query in ["limit=0", "limit=100000", "limit=x", "cursor=%%%", "sort=name"] {
        let response = app.get(&format!("/api/v1/models?{query}")).await;
        problem(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_405_problem_that_names_it() {
    let app = app_with_draft().await;
    let before = snapshot(&app).await;
    for (method, path) in [
        (reqwest::Method::POST, "/api/v1/system"),
        (reqwest::Method::PATCH, "/api/v1/models/m/aliases"),
        (reqwest::Method::PUT, "/api/v1/models"),
        (reqwest::Method::DELETE, "/api/v1/models/m/versions/1/publish"),
    ] {
        let response = app.client.request(method.clone(), app.url(path)).send().await.expect("request");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{method} {path}");
        let detail = problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
        assert!(detail.contains(path) && detail.contains(method.as_str()), "{method} {path}: {detail}");
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn a_suffix_range_on_an_empty_file_is_416() {
    let app = spawn_app().await;
    app.published("m", &[("empty.bin", b"")]).await;
    for range in ["bytes=-5", "bytes=0-"] {
        let response = app
            .client
            .get(app.url("/api/v1/models/m/versions/1/files/empty.bin"))
            .header("range", range)
            .send()
            .await
            .expect("get");
        assert_eq!(response.headers()["content-range"], "bytes */0", "{range}");
        problem(response, StatusCode::RANGE_NOT_SATISFIABLE).await;
    }
}

#[tokio::test]
async fn a_file_path_that_is_not_utf8_is_a_400_and_stores_nothing() {
    let app = app_with_draft().await;
    let before = snapshot(&app).await;
    let base = "/api/v1/models/m/versions/1/files";
    for target in [format!("{base}/%ff%fe"), format!("{base}/w/%fe%ff.bin"), format!("{base}/a%c3")] {
        let (status, body) = app.raw("PUT", &target, b"payload").await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(body.contains("UTF-8"), "{target}: {body}");
    }
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn a_path_under_a_file_or_over_a_folder_is_a_409_that_names_the_first() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    assert_eq!(app.upload("m", "1", "a", b"file a").await.status(), StatusCode::CREATED);
    assert_eq!(app.upload("m", "1", "d/b", b"file d/b").await.status(), StatusCode::CREATED);
    for (path, names) in [("a/b", "'a'"), ("a/b/c", "'a'"), ("d", "'d/b'")] {
        let detail = problem(app.upload("m", "1", path, b"x").await, StatusCode::CONFLICT).await;
        assert!(detail.contains(names), "{path}: {detail}");
    }
    let link = app
        .post_json(
            "/api/v1/models/m/versions/1/files/a/linked",
            &json!({"digest": sha256_digest(b"file a"), "size": 6}),
        )
        .await;
    let detail = problem(link, StatusCode::CONFLICT).await;
    assert!(detail.contains("'a'"), "{detail}");
    for path in ["ab", "a.b", "d/bc", "dd/b"] {
        assert_eq!(app.upload("m", "1", path, b"y").await.status(), StatusCode::CREATED, "{path}");
    }
    let files: Value = app.get("/api/v1/models/m/versions/1/files").await.json().await.expect("json");
    assert_eq!(files["items"].as_array().expect("items").len(), 6);
    assert_eq!(app.publish("m", "1").await.status(), StatusCode::OK);
}
