//! Crashes and restarts against a real `hangar` process.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, client_with, count_files, sha256_digest, wait_until};

/// Bytes of the named file in `dir`, summed over everything in it.
fn bytes_in(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").metadata().expect("meta").len()).sum()
}

#[tokio::test]
async fn sigkill_mid_upload_leaves_no_row_no_temp_file_and_every_file_intact() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(data_dir.path());
    let client = client_with(ADMIN_TOKEN);
    let api = |path: &str| format!("{}/api/v1{path}", server.address);
    client.post(api("/models")).json(&json!({"name": "m"})).send().await.expect("model");
    client.post(api("/models/m/versions")).json(&json!({"version": "1"})).send().await.expect("version");
    let good: Vec<u8> = (0..(2 << 20)).map(|i: u32| (i % 241) as u8).collect();
    let put = client
        .put(api(&format!("/models/m/versions/1/files/good.bin?digest={}", sha256_digest(&good))))
        .body(good.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), StatusCode::CREATED);

    // Half of a 512 MiB body, then the process dies.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        stream,
        "PUT /api/v1/models/m/versions/1/files/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\n\r\n",
        512u64 << 20
    )
    .expect("head");
    let chunk = vec![1u8; 1 << 20];
    for _ in 0..32 {
        stream.write_all(&chunk).expect("body");
    }
    let tmp = data_dir.path().join("tmp");
    wait_until("the upload reaches tmp/", Duration::from_secs(10), || bytes_in(&tmp) > 0).await;
    let mut server = server;
    server.child.kill().expect("sigkill");
    server.child.wait().expect("reaped");
    drop(stream);
    assert!(count_files(&tmp) > 0, "the killed upload left its staging file");

    let server = ServerProcess::start(data_dir.path());
    let api = |path: &str| format!("{}/api/v1{path}", server.address);
    assert_eq!(count_files(&tmp), 0, "startup swept tmp/");
    let files: Value =
        client.get(api("/models/m/versions/1/files")).send().await.expect("list").json().await.expect("json");
    let items = files["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "no row for the killed upload: {files}");
    for item in items {
        let path = item["path"].as_str().expect("path");
        let body = client
            .get(api(&format!("/models/m/versions/1/files/{path}")))
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        assert_eq!(sha256_digest(&body), item["digest"].as_str().expect("digest"));
    }
    let system: Value = client.get(api("/system")).send().await.expect("system").json().await.expect("json");
    assert_eq!(system["counts"]["blobs"], 1);
}

#[tokio::test]
async fn startup_removes_blobs_nothing_refers_to_once_past_the_grace_period() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let client = client_with(ADMIN_TOKEN);
    {
        let server = ServerProcess::start_with(data_dir.path(), &["--gc-grace-secs", "0"]);
        let api = |path: &str| format!("{}/api/v1{path}", server.address);
        client.post(api("/models")).json(&json!({"name": "gone"})).send().await.expect("model");
        client.post(api("/models")).json(&json!({"name": "kept"})).send().await.expect("model");
        for model in ["gone", "kept"] {
            client.post(api(&format!("/models/{model}/versions"))).json(&json!({})).send().await.expect("version");
            let put = client
                .put(api(&format!("/models/{model}/versions/1/files/w.bin")))
                .body(format!("weights of {model}"))
                .send()
                .await
                .expect("put");
            assert_eq!(put.status(), StatusCode::CREATED);
        }
        client.delete(api("/models/gone")).send().await.expect("delete");
    }
    // Bytes with no row at all, as a crash between linking a blob and its commit leaves.
    let orphan = data_dir.path().join(format!("blobs/sha256/00/{}", "0".repeat(64)));
    std::fs::create_dir_all(orphan.parent().expect("parent")).expect("mkdir");
    std::fs::write(&orphan, b"orphan").expect("orphan");
    assert_eq!(count_files(&data_dir.path().join("blobs")), 3);

    let server = ServerProcess::start_with(data_dir.path(), &["--gc-grace-secs", "0"]);
    assert_eq!(count_files(&data_dir.path().join("blobs")), 1, "only the referenced blob is left");
    let body = client
        .get(format!("{}/api/v1/models/kept/versions/1/files/w.bin", server.address))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert_eq!(body, "weights of kept");
}

#[tokio::test]
async fn unreferenced_blobs_within_the_grace_period_are_kept() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let client = client_with(ADMIN_TOKEN);
    {
        let server = ServerProcess::start(data_dir.path());
        let api = |path: &str| format!("{}/api/v1{path}", server.address);
        client.post(api("/models")).json(&json!({"name": "m"})).send().await.expect("model");
        client.post(api("/models/m/versions")).json(&json!({})).send().await.expect("version");
        client.put(api("/models/m/versions/1/files/w.bin")).body("w").send().await.expect("put");
        client.delete(api("/models/m")).send().await.expect("delete");
    }
    let _server = ServerProcess::start(data_dir.path());
    assert_eq!(count_files(&data_dir.path().join("blobs")), 1, "an upload in the last hour may still be linked");
}
