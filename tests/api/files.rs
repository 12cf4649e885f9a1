use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::{problem, sha256_digest, spawn_app};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn an_uploaded_file_downloads_byte_for_byte_with_its_digest_as_etag() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    let bytes = pattern(5 * 1024 * 1024 + 7);
    let response = app.upload("m", "1", "weights/model.safetensors", &bytes).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let file: Value = response.json().await.expect("json");
    assert_eq!(
        file,
        json!({"path": "weights/model.safetensors", "size": bytes.len(), "digest": sha256_digest(&bytes)})
    );

    let download = app.get("/api/v1/models/m/versions/1/files/weights/model.safetensors").await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(download.headers()["etag"], format!("\"{}\"", sha256_digest(&bytes)));
    assert_eq!(download.headers()["content-length"], bytes.len().to_string());
    assert_eq!(download.headers()["accept-ranges"], "bytes");
    let repr = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
    assert_eq!(download.headers()["repr-digest"], format!("sha-256=:{repr}:"));
    assert_eq!(download.bytes().await.expect("body").as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn head_answers_the_size_without_a_body() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", &pattern(1000))]).await;
    let response = app.client.head(app.url("/api/v1/models/m/versions/1/files/a.bin")).send().await.expect("head");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "1000");
    assert!(response.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn ranges_return_exactly_the_requested_bytes() {
    let app = spawn_app().await;
    let bytes = pattern(1_000_000);
    app.published("m", &[("a.bin", &bytes)]).await;
    let url = app.url("/api/v1/models/m/versions/1/files/a.bin");
    for (header, expected, content_range) in [
        ("bytes=0-9", &bytes[0..10], "bytes 0-9/1000000"),
        ("bytes=999990-", &bytes[999_990..], "bytes 999990-999999/1000000"),
        ("bytes=-5", &bytes[999_995..], "bytes 999995-999999/1000000"),
        ("bytes=300000-700000", &bytes[300_000..=700_000], "bytes 300000-700000/1000000"),
    ] {
        let response = app.client.get(&url).header("range", header).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{header}");
        assert_eq!(response.headers()["content-range"], content_range);
        assert_eq!(response.bytes().await.expect("body").as_ref(), expected, "{header}");
    }
    let stale = app
        .client
        .get(&url)
        .header("range", "bytes=0-9")
        .header("if-range", "\"sha256:other\"")
        .send()
        .await
        .expect("get");
    assert_eq!(stale.status(), StatusCode::OK, "a stale If-Range gets the whole file");
}

#[tokio::test]
async fn a_matching_if_none_match_is_not_modified() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"abc")]).await;
    let response = app
        .client
        .get(app.url("/api/v1/models/m/versions/1/files/a.bin"))
        .header("if-none-match", format!("\"{}\"", sha256_digest(b"abc")))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn content_digest_is_verified_like_the_query_digest() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    let url = app.url("/api/v1/models/m/versions/1/files/a.bin");
    let header =
        |bytes: &[u8]| format!("sha-256=:{}:", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes)));
    let good = app.client.put(&url).header("content-digest", header(b"abc")).body("abc").send().await.expect("put");
    assert_eq!(good.status(), StatusCode::CREATED);
    let bad = app.client.put(&url).header("content-digest", header(b"xyz")).body("abc").send().await.expect("put");
    let detail = problem(bad, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("nothing was stored"), "{detail}");
}

#[tokio::test]
async fn an_empty_file_is_a_file() {
    let app = spawn_app().await;
    app.published("m", &[("empty", b"")]).await;
    let response = app.get("/api/v1/models/m/versions/1/files/empty").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "0");
}

#[tokio::test]
async fn identical_bytes_are_stored_once_across_models_and_versions() {
    let app = spawn_app().await;
    let bytes = pattern(300_000);
    app.published("a", &[("x.bin", &bytes), ("copy.bin", &bytes)]).await;
    app.published("b", &[("y.bin", &bytes)]).await;
    let system = app.system().await;
    assert_eq!(system["counts"]["files"], 3);
    assert_eq!(system["counts"]["blobs"], 1);
    assert_eq!(system["storage"]["logical_bytes"], 900_000);
    assert_eq!(system["storage"]["stored_bytes"], 300_000);
    assert_eq!(system["storage"]["dedup_saved_bytes"], 600_000);
    assert_eq!(app.blobs_on_disk(), 1);
    assert_eq!(app.tmp_entries(), 0);
}

#[tokio::test]
async fn a_stored_blob_is_linked_by_digest_without_resending_it() {
    let app = spawn_app().await;
    let bytes = pattern(4096);
    let digest = sha256_digest(&bytes);
    app.published("a", &[("x.bin", &bytes)]).await;

    let head = app.client.head(app.url(&format!("/api/v1/blobs/{digest}"))).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], "4096");
    let missing =
        app.client.head(app.url(&format!("/api/v1/blobs/{}", sha256_digest(b"nope")))).send().await.expect("head");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    app.create_model("b").await;
    app.create_version("b", "1").await;
    let linked =
        app.post_json("/api/v1/models/b/versions/1/files/y.bin", &json!({"digest": digest, "size": 4096})).await;
    assert_eq!(linked.status(), StatusCode::CREATED);
    let download = app.get("/api/v1/models/b/versions/1/files/y.bin").await;
    assert_eq!(download.bytes().await.expect("body").as_ref(), bytes.as_slice());

    let wrong_size =
        app.post_json("/api/v1/models/b/versions/1/files/z.bin", &json!({"digest": digest, "size": 1})).await;
    problem(wrong_size, StatusCode::CONFLICT).await;
    let unknown = app
        .post_json("/api/v1/models/b/versions/1/files/z.bin", &json!({"digest": sha256_digest(b"nope"), "size": 4}))
        .await;
    let detail = problem(unknown, StatusCode::NOT_FOUND).await;
    assert!(detail.contains("upload the bytes"), "{detail}");
}

#[tokio::test]
async fn a_large_upload_streams_through() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    // Sent as a stream of chunks, as a real client would, with no length known up front.
    let chunk = bytes::Bytes::from(pattern(1 << 20));
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..64).map(|_| Ok(chunk.clone())).collect();
    let mut hasher = Sha256::new();
    for _ in 0..64 {
        hasher.update(&chunk);
    }
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    let response = app
        .client
        .put(app.url(&format!("/api/v1/models/m/versions/1/files/big.bin?digest={digest}")))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .expect("put");
    assert_eq!(response.status(), StatusCode::CREATED);
    let file: Value = response.json().await.expect("json");
    assert_eq!(file["size"], 64 << 20);
    assert_eq!(file["digest"], digest);
}
