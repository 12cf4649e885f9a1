//! Upload sessions: a big file in parts that survive cut connections and restarts, each part
//! verified, the whole hashed once and named in the draft.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, TestApp, client_with, problem, sha256_digest, spawn_app};

const MIB: usize = 1 << 20;

/// Bytes that differ from part to part, so a part in the wrong place would show.
fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i / 7 % 251) as u8 ^ (i >> 20) as u8).collect()
}

async fn open(app: &TestApp, path: &str, bytes: &[u8], part_size: usize) -> Value {
    let body = json!({"path": path, "size": bytes.len(), "digest": sha256_digest(bytes), "part_size": part_size});
    let response = app.post_json("/api/v1/models/team/big/versions/1/uploads", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("json")
}

async fn put_part(app: &TestApp, id: &str, n: usize, bytes: &[u8], digest: Option<&str>) -> reqwest::Response {
    let mut url = app.url(&format!("/api/v1/models/team/big/versions/1/uploads/{id}/parts/{n}"));
    if let Some(digest) = digest {
        url = format!("{url}?digest={digest}");
    }
    app.client.put(url).body(bytes.to_vec()).send().await.expect("put part")
}

fn part(bytes: &[u8], n: usize, part_size: usize) -> &[u8] {
    &bytes[n * part_size..((n + 1) * part_size).min(bytes.len())]
}

async fn draft(app: &TestApp) {
    app.create_model("team/big").await;
    app.create_version("team/big", "1").await;
}

#[tokio::test]
async fn a_file_sent_in_parts_in_any_order_is_named_in_the_draft_once_complete() {
    let app = spawn_app().await;
    draft(&app).await;
    let bytes = file_bytes(2 * MIB + MIB / 2);
    let session = open(&app, "weights/model.bin", &bytes, MIB).await;
    assert_eq!((session["parts"].as_u64(), session["missing"].clone()), (Some(3), json!([0, 1, 2])), "{session}");
    let id = session["id"].as_str().expect("id").to_owned();

    let last = put_part(&app, &id, 2, part(&bytes, 2, MIB), None).await;
    assert_eq!(last.status(), StatusCode::OK);
    let first_digest = sha256_digest(part(&bytes, 0, MIB));
    let first = put_part(&app, &id, 0, part(&bytes, 0, MIB), Some(&first_digest)).await;
    let now: Value = first.json().await.expect("json");
    assert_eq!((now["received"].clone(), now["missing"].clone()), (json!([0, 2]), json!([1])), "{now}");

    let complete = format!("/api/v1/models/team/big/versions/1/uploads/{id}/complete");
    let early = app.post_json(&complete, &json!(null)).await;
    let detail = problem(early, StatusCode::CONFLICT).await;
    assert!(detail.contains("[1]"), "names the missing part: {detail}");

    assert_eq!(put_part(&app, &id, 1, part(&bytes, 1, MIB), None).await.status(), StatusCode::OK);
    let done = app.post_json(&complete, &json!(null)).await;
    assert_eq!(done.status(), StatusCode::CREATED);
    let file: Value = done.json().await.expect("json");
    assert_eq!(file, json!({"path": "weights/model.bin", "size": bytes.len(), "digest": sha256_digest(&bytes)}));

    let download = app.get("/api/v1/models/team/big/versions/1/files/weights/model.bin").await;
    assert_eq!(download.bytes().await.expect("bytes"), bytes);
    let gone = app.get(&format!("/api/v1/models/team/big/versions/1/uploads/{id}")).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(std::fs::read_dir(app.data_dir.path().join("uploads")).expect("uploads dir").count(), 0);
    assert_eq!(app.publish("team/big", "1").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_part_cut_off_too_long_or_not_matching_its_digest_is_not_recorded_and_is_sent_again() {
    let app = spawn_app().await;
    draft(&app).await;
    let bytes = file_bytes(2 * MIB);
    let id = open(&app, "m.bin", &bytes, MIB).await["id"].as_str().expect("id").to_owned();
    let url = |n: usize| format!("/api/v1/models/team/big/versions/1/uploads/{id}/parts/{n}");
    let missing = |session: &Value| session["missing"].clone();

    // A body that stops half-way: the connection closes, the part is not recorded.
    let (status, _) = cut_body(app.port, &url(0), MIB, MIB / 2);
    assert_ne!(status, 200);
    let session: Value =
        app.get(&format!("/api/v1/models/team/big/versions/1/uploads/{id}")).await.json().await.expect("json");
    assert_eq!(missing(&session), json!([0, 1]), "{session}");

    let wrong = put_part(&app, &id, 0, part(&bytes, 0, MIB), Some(&sha256_digest(b"other"))).await;
    let detail = problem(wrong, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("part 0") && detail.contains("not kept"), "{detail}");
    let short = put_part(&app, &id, 0, &bytes[..10], None).await;
    let detail = problem(short, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains(&format!("must be {MIB} bytes")), "{detail}");
    let long = put_part(&app, &id, 1, &bytes[..MIB + 1], None).await;
    problem(long, StatusCode::BAD_REQUEST).await;
    let beyond = put_part(&app, &id, 2, b"x", None).await;
    let detail = problem(beyond, StatusCode::NOT_FOUND).await;
    assert!(detail.contains("2 parts"), "{detail}");
    let session: Value =
        app.get(&format!("/api/v1/models/team/big/versions/1/uploads/{id}")).await.json().await.expect("json");
    assert_eq!(missing(&session), json!([0, 1]), "nothing recorded: {session}");

    for n in 0..2 {
        let digest = sha256_digest(part(&bytes, n, MIB));
        assert_eq!(put_part(&app, &id, n, part(&bytes, n, MIB), Some(&digest)).await.status(), StatusCode::OK);
    }
    let done = app.post_json(&format!("/api/v1/models/team/big/versions/1/uploads/{id}/complete"), &json!(null)).await;
    assert_eq!(done.status(), StatusCode::CREATED);
    let download = app.get("/api/v1/models/team/big/versions/1/files/m.bin").await;
    assert_eq!(download.bytes().await.expect("bytes"), bytes);
}

/// Sends `sent` of the `declared` body bytes of a part, then closes the connection.
fn cut_body(port: u16, path: &str, declared: usize, sent: usize) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(&vec![1u8; sent]).expect("body");
    stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[tokio::test]
async fn a_whole_that_does_not_match_its_digest_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    draft(&app).await;
    let bytes = file_bytes(MIB + 5);
    let claimed = file_bytes(MIB + 5).into_iter().rev().collect::<Vec<u8>>();
    let body = json!({"path": "m.bin", "size": bytes.len(), "digest": sha256_digest(&claimed), "part_size": MIB});
    let session: Value =
        app.post_json("/api/v1/models/team/big/versions/1/uploads", &body).await.json().await.expect("json");
    let id = session["id"].as_str().expect("id");
    for n in 0..2 {
        assert_eq!(put_part(&app, id, n, part(&bytes, n, MIB), None).await.status(), StatusCode::OK);
    }
    let done = app.post_json(&format!("/api/v1/models/team/big/versions/1/uploads/{id}/complete"), &json!(null)).await;
    let detail = problem(done, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("nothing was stored"), "{detail}");
    let files: Value = app.get("/api/v1/models/team/big/versions/1/files").await.json().await.expect("json");
    assert_eq!(files["items"], json!([]));
    assert_eq!(app.blobs_on_disk(), 0);
}

#[tokio::test]
async fn bad_sessions_are_refused_and_another_drafts_session_does_not_exist() {
    let app = spawn_app().await;
    draft(&app).await;
    app.create_version("team/big", "2").await;
    let digest = sha256_digest(b"abc");
    for (body, says) in [
        (json!({"path": "a", "size": 0, "digest": digest}), "empty file"),
        (json!({"path": "a", "size": 3, "digest": digest, "part_size": 1}), "part_size must be"),
        (json!({"path": "../a", "size": 3, "digest": digest}), ".."),
        (json!({"path": "a", "size": 3, "digest": "md5:abc"}), "sha256"),
    ] {
        let response = app.post_json("/api/v1/models/team/big/versions/1/uploads", &body).await;
        let detail = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(detail.contains(says), "{body}: {detail}");
    }
    let huge = json!({"path": "a", "size": 1u64 << 60, "digest": digest});
    let response = app.post_json("/api/v1/models/team/big/versions/1/uploads", &huge).await;
    problem(response, StatusCode::INSUFFICIENT_STORAGE).await;

    let id = open(&app, "a.bin", &file_bytes(10), MIB).await["id"].as_str().expect("id").to_owned();
    let other = app.get(&format!("/api/v1/models/team/big/versions/2/uploads/{id}")).await;
    problem(other, StatusCode::NOT_FOUND).await;
    let listed: Value = app.get("/api/v1/models/team/big/versions/2/uploads").await.json().await.expect("json");
    assert_eq!(listed["items"], json!([]));
    let listed: Value = app.get("/api/v1/models/team/big/versions/1/uploads").await.json().await.expect("json");
    assert_eq!(listed["items"][0]["id"], json!(id));
    assert_eq!(app.delete(&format!("/api/v1/models/team/big/versions/1/uploads/{id}")).await.status(), 204);
    let gone = app.get(&format!("/api/v1/models/team/big/versions/1/uploads/{id}")).await;
    problem(gone, StatusCode::NOT_FOUND).await;

    // Published meanwhile: completing is refused as any write to a published version is.
    let id = open(&app, "b.bin", b"abc", MIB).await["id"].as_str().expect("id").to_owned();
    assert_eq!(put_part(&app, &id, 0, b"abc", None).await.status(), StatusCode::OK);
    app.upload("team/big", "1", "c.bin", b"c").await;
    assert_eq!(app.publish("team/big", "1").await.status(), StatusCode::OK);
    let done = app.post_json(&format!("/api/v1/models/team/big/versions/1/uploads/{id}/complete"), &json!(null)).await;
    problem(done, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn a_session_survives_a_restart_and_is_removed_once_it_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let bytes = file_bytes(MIB + 1);
    let id = {
        let server = ServerProcess::start(&data);
        let client = client_with(ADMIN_TOKEN);
        let api = |path: &str| format!("{}/api/v1/models/team/big{path}", server.address);
        let post = |url: String, body: Value| client.post(url).json(&body).send();
        post(format!("{}/api/v1/models", server.address), json!({"name": "team/big"})).await.expect("model");
        post(api("/versions"), json!({"version": "1"})).await.expect("version");
        let body = json!({"path": "m.bin", "size": bytes.len(), "digest": sha256_digest(&bytes), "part_size": MIB});
        let session: Value = post(api("/versions/1/uploads"), body).await.expect("open").json().await.expect("json");
        let id = session["id"].as_str().expect("id").to_owned();
        let sent = client.put(api(&format!("/versions/1/uploads/{id}/parts/0"))).body(bytes[..MIB].to_vec()).send();
        assert_eq!(sent.await.expect("part").status(), StatusCode::OK);
        server.signal("KILL");
        id
    };

    let server = ServerProcess::start(&data);
    let client = client_with(ADMIN_TOKEN);
    let api = |path: &str| format!("{}/api/v1/models/team/big/versions/1{path}", server.address);
    let session: Value =
        client.get(api(&format!("/uploads/{id}"))).send().await.expect("get").json().await.expect("json");
    assert_eq!(session["received"], json!([0]), "the part survived a kill -9: {session}");
    let rest = client.put(api(&format!("/uploads/{id}/parts/1"))).body(bytes[MIB..].to_vec()).send().await;
    assert_eq!(rest.expect("part").status(), StatusCode::OK);
    drop(server);

    // A session past its expiry goes with the garbage collection that runs at start.
    std::fs::write(dir.path().join("hangar.toml"), "upload_session_ttl_secs = 0\n").expect("config");
    let server =
        ServerProcess::start_with(&data, &["--config", dir.path().join("hangar.toml").to_str().expect("utf-8")]);
    let client = client_with(ADMIN_TOKEN);
    let api = |path: &str| format!("{}/api/v1/models/team/big/versions/1{path}", server.address);
    let body = json!({"path": "n.bin", "size": 3, "digest": sha256_digest(b"abc")});
    let fresh: Value = client.post(api("/uploads")).json(&body).send().await.expect("open").json().await.expect("json");
    assert_eq!(fresh["expires_in_secs"], 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drop(server);
    let server = ServerProcess::start(&data);
    let client = client_with(ADMIN_TOKEN);
    let listed: Value = client
        .get(format!("{}/api/v1/models/team/big/versions/1/uploads", server.address))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = listed["items"].as_array().expect("items").iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [id.as_str()], "only the expired session is gone");
}
