//! The Hugging Face Hub protocol under `/hf`, driven by the official `huggingface_hub`
//! client (tests/python/hf_read.py), and the answers it relies on checked by hand.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, client_with, sha256_digest, spawn_app};

const CONFIG_V1: &[u8] = br#"{"model_type": "llama", "v": 1}"#;
const CONFIG_V2: &[u8] = br#"{"model_type": "llama", "v": 2}"#;
const WEIGHTS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// team-a/m: version 1 (config, weights), version 2 (config changed, a tokenizer added),
/// the alias `stable` on 1, and a draft 3 that must stay invisible; team-b/m: version 1.
async fn seed(app: &TestApp) {
    app.published("team-a/m", &[("config.json", CONFIG_V1), ("weights/a.bin", WEIGHTS)]).await;
    app.create_version("team-a/m", "2").await;
    for (path, bytes) in [("config.json", CONFIG_V2), ("weights/a.bin", WEIGHTS), ("tokenizer.json", b"{}".as_slice())]
    {
        assert_eq!(app.upload("team-a/m", "2", path, bytes).await.status(), StatusCode::CREATED);
    }
    assert_eq!(app.publish("team-a/m", "2").await.status(), StatusCode::OK);
    app.create_version("team-a/m", "3").await;
    app.upload("team-a/m", "3", "draft.bin", b"draft").await;
    let alias = app.put_json("/api/v1/models/team-a/m/aliases/stable", &json!({"version": "1"})).await;
    assert!(alias.status().is_success());
    app.published("team-b/m", &[("config.json", CONFIG_V1)]).await;
}

async fn scoped_token(app: &TestApp) -> String {
    let body = json!({"name": "team-a reader", "role": "viewer", "models": ["team-a/*"]});
    let response = app.post_json("/api/v1/tokens", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn the_official_client_reads_models_revisions_and_files() {
    let app = spawn_app().await;
    seed(&app).await;
    let scoped = scoped_token(&app).await;
    let cache = app.data_dir.path().join("hf-cache");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/hf_read.py");
    let args = [
        app.address.clone(),
        ADMIN_TOKEN.to_owned(),
        scoped,
        cache.display().to_string(),
        sha256_digest(CONFIG_V1).trim_start_matches("sha256:").to_owned(),
        sha256_digest(CONFIG_V2).trim_start_matches("sha256:").to_owned(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::machine::python()).arg(script).args(args).output()
    })
    .await
    .expect("join")
    .expect("the tests' python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "huggingface_hub failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("whoami: ok"), "{stdout}");
}

#[tokio::test]
async fn resolve_sends_the_headers_the_client_reads_and_honours_ranges() {
    let app = spawn_app().await;
    seed(&app).await;
    let info: Value = app.get("/hf/api/models/team-a/m/revision/stable").await.json().await.expect("json");
    let commit = info["sha"].as_str().expect("sha").to_owned();
    let hex = sha256_digest(WEIGHTS).trim_start_matches("sha256:").to_owned();

    let client = client_with(ADMIN_TOKEN);
    let url = app.url("/hf/team-a/m/resolve/stable/weights/a.bin");
    let head = client.head(&url).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    let header = |name: &str| head.headers()[name].to_str().expect("ascii").to_owned();
    assert_eq!(header("x-repo-commit"), commit);
    assert_eq!(header("etag"), format!("\"{hex}\""));
    assert_eq!(header("x-linked-etag"), format!("\"{hex}\""));
    assert_eq!(header("x-linked-size"), WEIGHTS.len().to_string());
    assert_eq!(header("content-length"), WEIGHTS.len().to_string());
    assert!(head.headers().keys().all(|k| !k.as_str().starts_with("x-xet")), "no Xet: {:?}", head.headers());

    let part = client.get(&url).header("range", "bytes=10-").send().await.expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.expect("body").as_ref(), &WEIGHTS[10..]);

    // By commit id too; a draft's file and a draft's name are not there.
    let by_commit =
        client.get(app.url(&format!("/hf/team-a/m/resolve/{commit}/config.json"))).send().await.expect("get");
    assert_eq!(by_commit.bytes().await.expect("body").as_ref(), CONFIG_V1);
    for missing in ["/hf/team-a/m/resolve/3/draft.bin", "/hf/team-a/m/resolve/main/draft.bin"] {
        let response = client.get(app.url(missing)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}

#[tokio::test]
async fn a_repo_the_caller_may_not_read_answers_as_a_missing_one() {
    let app = spawn_app().await;
    seed(&app).await;
    let scoped = client_with(&scoped_token(&app).await);
    for path in ["/hf/api/models/team-b/m", "/hf/api/models/team-b/ghost", "/hf/team-b/m/resolve/main/config.json"] {
        let response = scoped.get(app.url(path)).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.headers()["x-error-code"], "RepoNotFound", "{path}");
    }
    let allowed = scoped.get(app.url("/hf/api/models/team-a/m")).send().await.expect("get");
    assert_eq!(allowed.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tree_comes_in_pages_linked_like_the_hubs() {
    let app = spawn_app().await;
    seed(&app).await;
    let client = client_with(ADMIN_TOKEN);
    let mut url = app.url("/hf/api/models/team-a/m/tree/main?recursive=true&limit=2");
    let mut pages = Vec::new();
    loop {
        let response = client.get(&url).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        let link = response.headers().get("link").map(|l| l.to_str().expect("ascii").to_owned());
        let page: Vec<Value> = response.json().await.expect("json");
        pages.push(page.iter().map(|e| e["path"].as_str().expect("path").to_owned()).collect::<Vec<_>>());
        let Some(link) = link else { break };
        let next = link.strip_prefix('<').and_then(|l| l.split_once(">; rel=\"next\"")).expect("a next link");
        url = next.0.to_owned();
    }
    assert_eq!(pages, [vec!["weights", "config.json"], vec!["tokenizer.json", "weights/a.bin"]]);
}
