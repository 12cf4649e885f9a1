//! One set of rules for every front end: a token's model scope applies to blobs named by
//! digest, and the dashboard's forms refuse what the API refuses, with the same words.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::{csrf_of, page, signed_in};
use crate::deployments::{docker_ready, prepare, unique, wait_for};
use crate::helpers::{ADMIN_TOKEN, TestApp, client_with, problem, sha256_digest, spawn_app};

/// A maintainer token limited to `globs`.
async fn limited_token(app: &TestApp, globs: &[&str]) -> String {
    let created = client_with(ADMIN_TOKEN)
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "ci", "role": "maintainer", "models": globs}))
        .send()
        .await
        .expect("token");
    assert_eq!(created.status(), StatusCode::CREATED);
    created.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
}

/// What a refusal says with the digest it names taken out, to compare two refusals.
async fn detail_without(response: reqwest::Response, status: StatusCode, digest: &str) -> String {
    problem(response, status).await.replace(digest, "<digest>")
}

#[tokio::test]
async fn a_scoped_token_cannot_see_link_or_download_a_blob_held_only_outside_its_scope() {
    let app = spawn_app().await;
    let secret = b"team b's weights, which team a must not learn of";
    let ours = b"team a's weights";
    app.published("team-b/secret", &[("weights.bin", secret)]).await;
    app.published("team-a/base", &[("weights.bin", ours)]).await;
    app.create_version("team-a/base", "2").await;
    let token = limited_token(&app, &["team-a/*"]).await;
    let client = client_with(&token);
    let (secret_digest, ours_digest) = (sha256_digest(secret), sha256_digest(ours));
    let absent = sha256_digest(b"bytes no one ever stored");

    let head = |digest: String| client.head(app.url(&format!("/api/v1/blobs/{digest}"))).send();
    assert_eq!(head(secret_digest.clone()).await.expect("head").status(), StatusCode::NOT_FOUND);
    assert_eq!(head(absent.clone()).await.expect("head").status(), StatusCode::NOT_FOUND);
    let get = |digest: String| client.get(app.url(&format!("/api/v1/blobs/{digest}"))).send();
    assert_eq!(
        detail_without(get(secret_digest.clone()).await.expect("get"), StatusCode::NOT_FOUND, &secret_digest).await,
        detail_without(get(absent.clone()).await.expect("get"), StatusCode::NOT_FOUND, &absent).await,
        "another team's blob answers as one that is not stored"
    );

    let link = |path: &str, digest: &str, size: usize| {
        client
            .post(app.url(&format!("/api/v1/models/team-a/base/versions/2/files/{path}")))
            .json(&json!({"digest": digest, "size": size}))
            .send()
    };
    let stolen = link("stolen.bin", &secret_digest, secret.len()).await.expect("link");
    let never = link("stolen.bin", &absent, secret.len()).await.expect("link");
    assert_eq!(
        detail_without(stolen, StatusCode::NOT_FOUND, &secret_digest).await,
        detail_without(never, StatusCode::NOT_FOUND, &absent).await,
    );
    let wrong_size = link("stolen.bin", &secret_digest, 1).await.expect("link");
    assert_eq!(wrong_size.status(), StatusCode::NOT_FOUND, "a wrong size does not reveal the blob either");
    let download =
        client.get(app.url("/api/v1/models/team-a/base/versions/2/files/stolen.bin")).send().await.expect("get");
    assert_eq!(download.status(), StatusCode::NOT_FOUND, "nothing was linked");

    // Inside its scope, digests work as before.
    let seen = head(ours_digest.clone()).await.expect("head");
    assert_eq!(seen.status(), StatusCode::OK);
    assert_eq!(seen.headers()["content-length"], ours.len().to_string().as_str());
    assert_eq!(link("copy.bin", &ours_digest, ours.len()).await.expect("link").status(), StatusCode::CREATED);
    let copy = client.get(app.url("/api/v1/models/team-a/base/versions/2/files/copy.bin")).send().await.expect("get");
    assert_eq!(copy.bytes().await.expect("body").as_ref(), ours.as_slice());
    // An unlimited caller still sees every blob a version holds.
    let admin_head = app.client.head(app.url(&format!("/api/v1/blobs/{secret_digest}"))).send().await.expect("head");
    assert_eq!(admin_head.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_upload_form_refuses_a_protected_alias_as_the_api_does_and_leaves_the_upload_a_draft() {
    let app = spawn_app().await;
    app.create_model("m").await;
    let maintainer = app.user_token("mia", "maintainer").await;
    app.published("other", &[("x.bin", b"x")]).await;
    let api = client_with(&maintainer)
        .put(app.url("/api/v1/models/other/aliases/prod"))
        .json(&json!({"version": "1"}))
        .send()
        .await
        .expect("put");
    let api_detail = problem(api, StatusCode::FORBIDDEN).await;

    let (client, cookie) = signed_in(&app, "max", "maintainer").await;
    let (_, html) = page(&client, &app, &cookie, "/models/m/upload").await;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf_of(&html))
        .text("version", "1")
        .part("files", reqwest::multipart::Part::bytes(b"weights".to_vec()).file_name("weights.bin"))
        .text("publish", "1")
        .text("alias", "prod");
    let response =
        client.post(app.url("/models/m/upload")).header("cookie", &cookie).multipart(form).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.text().await.expect("text");
    assert!(body.contains(&api_detail.replace('\'', "&#39;")), "the API's words {api_detail:?} in {body}");
    assert_eq!(app.get("/api/v1/models/m/aliases/prod").await.status(), StatusCode::NOT_FOUND);
    let version: Value = app.get("/api/v1/models/m/versions/1").await.json().await.expect("json");
    assert_eq!(version["state"], "draft", "not published half-way: {version}");
}

#[tokio::test]
async fn the_deployment_form_and_the_api_refuse_a_bad_deployment_with_the_same_words() {
    let app = spawn_app().await;
    app.published("m", &[("weights.bin", b"weights")]).await;
    let (client, cookie) = signed_in(&app, "max", "maintainer").await;
    let (_, html) = page(&client, &app, &cookie, "/deployments").await;
    let csrf = csrf_of(&html);
    let cases = [
        (json!({"model": "m:1", "runtime": "no-such-runtime"}), [("runtime", "no-such-runtime")].as_slice()),
        (
            json!({"model": "m:1", "runtime": "vllm", "gpus": 1, "gpu_memory_gib": 4.0}),
            &[("runtime", "vllm"), ("gpus", "1"), ("gpu_memory_gib", "4")],
        ),
        (json!({"model": "m:1", "runtime": "vllm", "gpus": 0}), &[("runtime", "vllm"), ("gpus", "0")]),
    ];
    for (body, fields) in cases {
        let api = app.post_json("/api/v1/deployments", &body).await;
        let detail = problem(api, StatusCode::BAD_REQUEST).await;
        let mut form = vec![("csrf", csrf.as_str()), ("target", "m:1")];
        form.extend_from_slice(fields);
        let response =
            client.post(app.url("/deployments")).header("cookie", &cookie).form(&form).send().await.expect("post");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let page = response.text().await.expect("text");
        assert!(page.contains(&detail.replace('\'', "&#39;")), "the API's words {detail:?} in {page}");
    }
    assert_eq!(app.get("/api/v1/deployments").await.json::<Value>().await.expect("json")["items"], json!([]));
}

#[tokio::test]
async fn a_deployment_following_an_alias_rolls_out_when_the_upload_form_moves_the_alias() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    prepare(&app, "m", "test", &[], 30).await;
    assert_eq!(
        app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "1"})).await.status(),
        StatusCode::CREATED
    );
    let name = unique("form");
    let body = json!({"name": name, "model": "m@staging", "runtime": "test"});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), StatusCode::ACCEPTED);
    wait_for(&app, &name, "running", Duration::from_secs(30)).await;

    let (client, cookie) = signed_in(&app, "max", "maintainer").await;
    let (_, html) = page(&client, &app, &cookie, "/models/m/upload").await;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf_of(&html))
        .text("version", "2")
        .part("files", reqwest::multipart::Part::bytes(b"version two".to_vec()).file_name("weights.bin"))
        .text("publish", "1")
        .text("alias", "staging");
    let response =
        client.post(app.url("/models/m/upload")).header("cookie", &cookie).multipart(form).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d: Value = app.get(&format!("/api/v1/deployments/{name}")).await.json().await.expect("json");
        if d["version"] == "2" && d["state"] == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the alias move never rolled out: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), StatusCode::NO_CONTENT);
}
