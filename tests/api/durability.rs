//! Crashes and restarts against a real `hangar` process.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, ServerProcess, client_with, count_files, hangar_command, problem, sha256_digest, spawn_app_with,
    wait_until,
};

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

/// A tmpfs of a few MiB mounted on a fresh folder, to be a data dir that fills up; unmounted
/// on drop. Mounting needs root, as the tests run in CI.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "this test mounts a {size} tmpfs as the data dir and needs root for that; run the tests as root: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk is full, and returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: the server of the test may still hold its files open.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn after_a_full_disk_every_write_succeeds_once_space_is_back_and_readyz_tells_meanwhile() {
    let disk = SmallDisk::mount("16m");
    let app = spawn_app_with(|s| s.data_dir = disk.path().to_owned()).await;
    app.create_model("m").await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);

    let filler = disk.fill();
    for i in 0..6 {
        let body = json!({"name": format!("full-{i}"), "description": "d".repeat(4000)});
        let detail = problem(app.post_json("/api/v1/models", &body).await, StatusCode::INSUFFICIENT_STORAGE).await;
        assert!(detail.contains("disk is full"), "write {i} on a full disk: {detail}");
    }
    assert_eq!(app.get("/readyz").await.status(), StatusCode::SERVICE_UNAVAILABLE, "the data dir takes no writes");

    std::fs::remove_file(&filler).expect("free the space");
    for i in 0..16 {
        let response = app.post_json("/api/v1/models", &json!({"name": format!("back-{i}")})).await;
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "write {i} after the space came back: {}",
            response.text().await.unwrap_or_default()
        );
    }
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let models: Value = app.get("/api/v1/models?limit=100").await.json().await.expect("json");
    assert_eq!(models["items"].as_array().expect("items").len(), 17, "m and the 16 written after");
}

#[tokio::test]
async fn an_upload_the_disk_cannot_hold_is_507_with_the_free_space_and_the_size_and_leaves_nothing() {
    let disk = SmallDisk::mount("8m");
    let app = spawn_app_with(|s| s.data_dir = disk.path().to_owned()).await;
    app.create_model("m").await;
    app.create_version("m", "1").await;
    let big = vec![7u8; 16 << 20];

    let detail = problem(app.upload("m", "1", "big.bin", &big).await, StatusCode::INSUFFICIENT_STORAGE).await;
    assert!(detail.contains("bytes free") && detail.contains(&big.len().to_string()), "{detail}");

    // Without a Content-Length the disk fills mid-body.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..16).map(|_| Ok(vec![7u8; 1 << 20])).collect();
    let response = app
        .client
        .put(app.url("/api/v1/models/m/versions/1/files/chunked.bin"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .expect("put");
    let detail = problem(response, StatusCode::INSUFFICIENT_STORAGE).await;
    assert!(detail.contains("bytes free"), "{detail}");

    assert_eq!(count_files(&disk.path().join("tmp")), 0, "no staging file is left");
    let files: Value = app.get("/api/v1/models/m/versions/1/files").await.json().await.expect("json");
    assert_eq!(files["items"], json!([]));
    assert_eq!(app.upload("m", "1", "small.bin", b"fits").await.status(), StatusCode::CREATED);
}

/// The status line of the answer to what was sent on `stream`, or what arrived before the
/// read timed out.
fn status_line(stream: &mut TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).trim().to_owned()
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_its_staging_file_removed() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut command = hangar_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("HANGAR_BODY_CHUNK_TIMEOUT_SECS", "1");
    let server = ServerProcess::spawn(command);
    let client = client_with(ADMIN_TOKEN);
    let api = |path: &str| format!("{}/api/v1{path}", server.address);
    client.post(api("/models")).json(&json!({"name": "m"})).send().await.expect("model");
    client.post(api("/models/m/versions")).json(&json!({"version": "1"})).send().await.expect("version");

    // A PUT that promises 1 MiB, sends a little and stays connected.
    let mut upload = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        upload,
        "PUT /api/v1/models/m/versions/1/files/w.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    )
    .expect("head");
    upload.write_all(&[1u8; 1000]).expect("some of the body");
    let tmp = data_dir.path().join("tmp");
    wait_until("the upload reaches tmp/", Duration::from_secs(10), || count_files(&tmp) > 0).await;
    let status = status_line(&mut upload);
    assert!(status.starts_with("HTTP/1.1 408"), "answered {status:?}");
    wait_until("the staging file is removed", Duration::from_secs(5), || count_files(&tmp) == 0).await;

    // A JSON POST that stalls the same way.
    let mut post = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        post,
        "POST /api/v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    )
    .expect("head");
    let status = status_line(&mut post);
    assert!(status.starts_with("HTTP/1.1 408"), "answered {status:?}");

    let files: Value =
        client.get(api("/models/m/versions/1/files")).send().await.expect("list").json().await.expect("json");
    assert_eq!(files["items"], json!([]));
}
