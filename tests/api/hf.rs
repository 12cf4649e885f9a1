//! The Hugging Face Hub protocol under `/hf`, driven by the official `huggingface_hub`
//! client (tests/python/hf_read.py), and the answers it relies on checked by hand.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, TestApp, client_with, sha256_digest, spawn_app};

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

/// A token the admin makes with `body`.
async fn token(app: &TestApp, body: &Value) -> String {
    let response = app.post_json("/api/v1/tokens", body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{body}");
    response.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
}

/// Runs a script of tests/python with `args`; its stdout, once it has succeeded.
async fn python(script: &str, args: Vec<String>) -> String {
    let script = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::machine::python()).arg(script).args(args).output()
    })
    .await
    .expect("join")
    .expect("the tests' python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "huggingface_hub failed:\n{stdout}\n{stderr}");
    stdout
}

/// The versions of `model` (drafts too), by number, as the API lists them.
async fn versions(app: &TestApp, model: &str) -> Vec<Value> {
    let page: Value = app.get(&format!("/api/v1/models/{model}/versions?limit=100")).await.json().await.expect("json");
    let mut items = page["items"].as_array().expect("items").clone();
    items.sort_by_key(|v| v["version"].as_str().and_then(|n| n.parse::<u64>().ok()));
    items
}

#[tokio::test]
async fn the_official_client_creates_repos_uploads_and_commits() {
    let app = spawn_app().await;
    app.published("team-a/m", &[("a.bin", WEIGHTS)]).await;
    for alias in ["staging", "prod"] {
        let moved = app.put_json(&format!("/api/v1/models/team-a/m/aliases/{alias}"), &json!({"version": "1"})).await;
        assert!(moved.status().is_success(), "{alias}");
    }
    app.create_model("team-b/m").await;
    let maintainer = app.user_token("max", "maintainer").await;
    let viewer = app.user_token("vera", "viewer").await;
    let team_b = token(&app, &json!({"name": "team-b", "role": "maintainer", "models": ["team-b/*"]})).await;
    let work = app.data_dir.path().join("hf-write");
    std::fs::create_dir_all(&work).expect("work dir");
    let args =
        vec![app.address.clone(), ADMIN_TOKEN.to_owned(), maintainer, viewer, team_b, work.display().to_string()];
    let stdout = python("hf_write.py", args).await;
    let steps =
        ["create_repo", "upload_folder", "unchanged", "create_commit", "aliases", "branches", "refusals", "hf upload"];
    for step in steps {
        assert!(stdout.contains(&format!("{step}: ok")), "{step} missing from:\n{stdout}");
    }

    // Each commit is a published version with the commit's message as its description.
    let fresh = versions(&app, "team-a/fresh").await;
    let described: Vec<(&str, &str, &str)> = fresh
        .iter()
        .map(|v| {
            let field = |name: &str| v[name].as_str().expect("a string field");
            (field("version"), field("state"), field("description"))
        })
        .collect();
    assert_eq!(
        described,
        [("1", "ready", "first weights"), ("2", "ready", "drop the empty file\n\nand add notes")],
        "{fresh:?}"
    );
    // The refused commit to `prod` left no draft behind; the admin's moved it.
    let m = versions(&app, "team-a/m").await;
    assert!(m.iter().all(|v| v["state"] == "ready"), "{m:?}");
    assert_eq!(m.len(), 3, "version 1, the commit to staging, the admin's to prod: {m:?}");
    let staging: Value = app.get("/api/v1/models/team-a/m/aliases/staging").await.json().await.expect("json");
    assert_eq!(staging["version"], "2", "{staging}");
    let prod: Value = app.get("/api/v1/models/team-a/m/aliases/prod").await.json().await.expect("json");
    assert_eq!(prod["version"], "3", "{prod}");
}

/// An LFS batch for one object of `size` bytes, as `huggingface_hub` sends it.
/// An LFS batch upload request for one object to the server at `address`; its answer.
async fn batch(address: &str, client: &reqwest::Client, repo: &str, oid: &str, size: usize) -> Value {
    let body = json!({
        "operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
        "objects": [{"oid": oid, "size": size}],
    });
    let response = client
        .post(format!("{address}/hf/{repo}.git/info/lfs/objects/batch"))
        .header("content-type", "application/vnd.git-lfs+json")
        .body(body.to_string())
        .send()
        .await
        .expect("batch");
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.expect("json");
    answer["objects"][0].clone()
}

/// An NDJSON commit of `lines` (after its header) to `repo` at `rev`.
async fn commit(app: &TestApp, client: &reqwest::Client, repo: &str, rev: &str, lines: &[Value]) -> reqwest::Response {
    let mut body = json!({"key": "header", "value": {"summary": "by hand", "description": ""}}).to_string();
    for line in lines {
        body.push('\n');
        body.push_str(&line.to_string());
    }
    client
        .post(app.url(&format!("/hf/api/models/{repo}/commit/{rev}")))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("commit")
}

#[tokio::test]
async fn lfs_uploads_are_verified_against_their_oid_whole_or_in_parts() {
    let app = spawn_app().await;
    app.create_model("team-a/m").await;
    let client = client_with(ADMIN_TOKEN);
    let plain = reqwest::Client::new();

    // Basic: bytes that are not the oid's are refused with the oid named, and nothing stays.
    let oid = sha256_digest(b"the real bytes").trim_start_matches("sha256:").to_owned();
    let object = batch(&app.address, &client, "team-a/m", &oid, 14).await;
    let href = object["actions"]["upload"]["href"].as_str().expect("href").to_owned();
    assert!(object["actions"]["upload"]["header"].get("chunk_size").is_none(), "{object}");
    let on_disk = app.blobs_on_disk();
    let wrong = plain.put(&href).body("other bytes!!!").send().await.expect("put");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.text().await.expect("body").contains(&oid));
    assert_eq!((app.blobs_on_disk(), app.tmp_entries()), (on_disk, 0));
    // The URL works without a token, but not with its ticket changed.
    let forged = format!("{}x", href.trim_end_matches(|c: char| c.is_ascii_alphanumeric()));
    assert_eq!(plain.put(&forged).body("the real bytes").send().await.expect("put").status(), StatusCode::UNAUTHORIZED);
    assert_eq!(plain.put(&href).body("the real bytes").send().await.expect("put").status(), StatusCode::OK);
    let verify = object["actions"]["verify"]["href"].as_str().expect("verify");
    let verified = client.post(verify).json(&json!({"oid": oid, "size": 14})).send().await.expect("verify");
    assert_eq!(verified.status(), StatusCode::OK);
    // Stored now: a second batch asks for nothing.
    let again = batch(&app.address, &client, "team-a/m", &oid, 14).await;
    assert!(again.get("actions").is_none(), "{again}");

    // Multipart: an object over the part size comes in parts, then a completion request.
    let part_size = usize::try_from(hangar::hf::MULTIPART_PART_SIZE).expect("usize");
    let big: Vec<u8> = (0..part_size + 1000).map(|i| (i % 251) as u8).collect();
    let big_oid = sha256_digest(&big).trim_start_matches("sha256:").to_owned();
    let object = batch(&app.address, &client, "team-a/m", &big_oid, big.len()).await;
    let upload = &object["actions"]["upload"];
    // Asked again (a retried upload), it is the same session: the disk is reserved once.
    let retried = batch(&app.address, &client, "team-a/m", &big_oid, big.len()).await;
    let session =
        |o: &Value| o["actions"]["upload"]["href"].as_str().expect("href").split('?').next().map(str::to_owned);
    assert_eq!(session(&retried), session(&object));
    assert_eq!(upload["header"]["chunk_size"], part_size.to_string(), "{upload}");
    let mut etags = Vec::new();
    for (n, chunk) in big.chunks(part_size).enumerate() {
        let url = upload["header"][(n + 1).to_string()].as_str().expect("part url");
        let sent = plain.put(url).body(chunk.to_vec()).send().await.expect("part");
        assert_eq!(sent.status(), StatusCode::OK);
        etags.push(json!({"partNumber": n + 1, "etag": sent.headers()["etag"].to_str().expect("etag")}));
    }
    assert!(upload["header"].get("3").is_none(), "two parts: {upload}");
    let complete = plain
        .post(upload["href"].as_str().expect("href"))
        .header("content-type", "application/vnd.git-lfs+json")
        .body(json!({"oid": big_oid, "parts": etags}).to_string())
        .send()
        .await
        .expect("complete");
    assert_eq!(complete.status(), StatusCode::OK);

    // Both objects can be committed; the new version holds them.
    let lines = [
        json!({"key": "lfsFile", "value": {"path": "small.bin", "algo": "sha256", "oid": oid, "size": 14}}),
        json!({"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": big_oid, "size": big.len()}}),
    ];
    let done = commit(&app, &client, "team-a/m", "main", &lines).await;
    assert_eq!(done.status(), StatusCode::OK);
    let done: Value = done.json().await.expect("json");
    let info: Value = app.get("/hf/api/models/team-a/m").await.json().await.expect("json");
    assert_eq!(done["commitOid"], info["sha"], "{done}");
    let body = client.get(app.url("/hf/team-a/m/resolve/main/big.bin")).send().await.expect("get");
    assert_eq!(body.bytes().await.expect("body").as_ref(), big.as_slice());
}

#[tokio::test]
async fn a_multipart_lfs_upload_goes_on_after_a_restart_with_the_urls_it_was_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let client = client_with(ADMIN_TOKEN);
    let plain = reqwest::Client::new();
    let part_size = usize::try_from(hangar::hf::MULTIPART_PART_SIZE).expect("usize");
    let big: Vec<u8> = (0..part_size + 1000).map(|i| (i % 253) as u8).collect();
    let oid = sha256_digest(&big).trim_start_matches("sha256:").to_owned();
    let (old, upload) = {
        let server = ServerProcess::start(&data);
        let made = client.post(format!("{}/api/v1/models", server.address)).json(&json!({"name": "team-a/m"})).send();
        assert_eq!(made.await.expect("model").status(), StatusCode::CREATED);
        let object = batch(&server.address, &client, "team-a/m", &oid, big.len()).await;
        let upload = object["actions"]["upload"].clone();
        let first = upload["header"]["1"].as_str().expect("part 1");
        let sent = plain.put(first).body(big[..part_size].to_vec()).send().await.expect("part 1");
        assert_eq!(sent.status(), StatusCode::OK);
        server.signal("KILL");
        (server.address.clone(), upload)
    };
    // The same data dir behind a new port (a fixed one in production): the URLs handed out
    // before the crash still carry a valid ticket, and the session kept part 1.
    let server = ServerProcess::start(&data);
    let moved = |url: &str| url.replacen(&old, &server.address, 1);
    let second = moved(upload["header"]["2"].as_str().expect("part 2"));
    let sent = plain.put(&second).body(big[part_size..].to_vec()).send().await.expect("part 2");
    assert_eq!(sent.status(), StatusCode::OK, "{}", sent.text().await.unwrap_or_default());
    let parts = json!([{"partNumber": 1, "etag": "a"}, {"partNumber": 2, "etag": "b"}]);
    let complete = plain
        .post(moved(upload["href"].as_str().expect("href")))
        .header("content-type", "application/vnd.git-lfs+json")
        .body(json!({"oid": oid, "parts": parts}).to_string())
        .send()
        .await
        .expect("complete");
    assert_eq!(complete.status(), StatusCode::OK, "{}", complete.text().await.unwrap_or_default());
    let again = batch(&server.address, &client, "team-a/m", &oid, big.len()).await;
    assert!(again.get("actions").is_none(), "stored whole after the restart: {again}");
}

#[tokio::test]
async fn a_commit_naming_an_oid_the_caller_never_uploaded_is_refused_with_it() {
    let app = spawn_app().await;
    app.published("team-a/m", &[("a.bin", WEIGHTS)]).await;
    app.published("team-b/m", &[("secret.bin", b"team b's secret")]).await;
    let scoped = client_with(&token(&app, &json!({"name": "a", "role": "maintainer", "models": ["team-a/*"]})).await);
    let never = sha256_digest(b"never sent").trim_start_matches("sha256:").to_owned();
    // Stored, but in a model this token may not read: the same as never sent.
    let hidden = sha256_digest(b"team b's secret").trim_start_matches("sha256:").to_owned();
    for oid in [&never, &hidden] {
        let line = json!({"key": "lfsFile", "value": {"path": "x.bin", "algo": "sha256", "oid": oid, "size": 15}});
        let refused = commit(&app, &scoped, "team-a/m", "main", &[line]).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.headers()["x-error-message"].to_str().expect("ascii").contains(oid.as_str()));
        let object = batch(&app.address, &scoped, "team-a/m", oid, 15).await;
        assert!(object["actions"]["upload"]["href"].is_string(), "asked to upload: {object}");
    }
    assert_eq!(versions(&app, "team-a/m").await.len(), 1, "nothing was made");
    // A blob the caller may read is named without its bytes.
    let known = sha256_digest(WEIGHTS).trim_start_matches("sha256:").to_owned();
    let line =
        json!({"key": "lfsFile", "value": {"path": "copy.bin", "algo": "sha256", "oid": known, "size": WEIGHTS.len()}});
    assert_eq!(commit(&app, &scoped, "team-a/m", "main", &[line]).await.status(), StatusCode::OK);
    // A stale parent is refused.
    let stale = client_with(ADMIN_TOKEN)
        .post(app.url("/hf/api/models/team-a/m/commit/main"))
        .body(json!({"key": "header", "value": {"summary": "s", "parentCommit": "0".repeat(40)}}).to_string())
        .send()
        .await
        .expect("commit");
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
}
