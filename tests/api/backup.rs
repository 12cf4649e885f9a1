//! `hangar admin backup`, `restore` and `fsck` on real data dirs, the server running as a
//! process of its own.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, client_with, hangar_command, sha256_digest};

/// Runs `hangar admin ARGS…` and returns (success, stdout, stderr).
fn admin(args: &[&str], paths: &[&Path]) -> (bool, String, String) {
    let output = hangar_command().arg("admin").args(args).args(paths).output().expect("run hangar admin");
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("utf8");
    (output.status.success(), text(output.stdout), text(output.stderr))
}

/// Creates `model:version` holding `files` over HTTP and publishes it.
async fn publish(base: &str, model: &str, version: &str, files: &[(String, Vec<u8>)]) {
    let client = client_with(ADMIN_TOKEN);
    let created =
        client.post(format!("{base}/api/v1/models/{model}/versions")).json(&json!({"version": version})).send().await;
    assert_eq!(created.expect("create").status(), StatusCode::CREATED, "create {model}:{version}");
    for (path, bytes) in files {
        let url =
            format!("{base}/api/v1/models/{model}/versions/{version}/files/{path}?digest={}", sha256_digest(bytes));
        let put = client.put(url).body(bytes.clone()).send().await.expect("upload");
        assert_eq!(put.status(), StatusCode::CREATED, "upload {path}");
    }
    let published =
        client.post(format!("{base}/api/v1/models/{model}/versions/{version}/publish")).send().await.expect("publish");
    assert_eq!(published.status(), StatusCode::OK, "publish {model}:{version}");
}

fn files_of(seed: usize) -> Vec<(String, Vec<u8>)> {
    (0..2)
        .map(|i| (format!("part-{i}.bin"), format!("seed {seed} part {i} ").repeat(4096 * (i + 1)).into_bytes()))
        .collect()
}

/// Every ready version the server at `base` lists for `model`, each file downloaded and its
/// sha256 compared with the digest listed; returns the versions.
async fn download_every_version(base: &str, model: &str) -> Vec<String> {
    let client = client_with(ADMIN_TOKEN);
    let get = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.expect("get").json::<Value>().await.expect("json") }
    };
    let page = get(format!("{base}/api/v1/models/{model}/versions?limit=500")).await;
    let mut versions = Vec::new();
    for version in page["items"].as_array().expect("items") {
        if version["state"] != "ready" {
            continue;
        }
        let name = version["version"].as_str().expect("name").to_owned();
        let files = get(format!("{base}/api/v1/models/{model}/versions/{name}/files")).await;
        for file in files["items"].as_array().expect("files") {
            let path = file["path"].as_str().expect("path");
            let url = format!("{base}/api/v1/models/{model}/versions/{name}/files/{path}");
            let body = client.get(url).send().await.expect("download").bytes().await.expect("body");
            assert_eq!(sha256_digest(&body), file["digest"], "{model}:{name}/{path}");
        }
        versions.push(name);
    }
    versions
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_into_a_clean_store_that_serves_every_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, backup, restored) = (dir.path().join("data"), dir.path().join("backup"), dir.path().join("restored"));
    let server = ServerProcess::start(&data);
    let client = client_with(ADMIN_TOKEN);
    let created = client.post(format!("{}/api/v1/models", server.address)).json(&json!({"name": "m"})).send().await;
    assert_eq!(created.expect("model").status(), StatusCode::CREATED);
    for seed in 0..3 {
        publish(&server.address, "m", &format!("before-{seed}"), &files_of(seed)).await;
    }

    // Uploads and publishes keep running through the whole backup.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (base, stop) = (server.address.clone(), stop.clone());
        async move {
            let mut seed = 100;
            while !stop.load(Ordering::Relaxed) {
                publish(&base, "m", &format!("during-{seed}"), &files_of(seed)).await;
                seed += 1;
            }
            seed - 100
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (data_arg, backup_arg) = (data.clone(), backup.clone());
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || admin(&["backup", "--data-dir"], &[&data_arg, &backup_arg.join("copy")]))
            .await
            .expect("backup");
    assert!(ok, "backup: {stdout} {stderr}");
    assert!(stdout.contains("backed up") && stdout.contains("hardlinked"), "{stdout}");
    stop.store(true, Ordering::Relaxed);
    let during = load.await.expect("load");
    assert!(during > 0, "the load published while the backup ran");

    let (ok, stdout, stderr) = admin(&["restore"], &[&backup.join("copy"), Path::new("--data-dir"), &restored]);
    assert!(ok, "restore: {stdout} {stderr}");
    let mode = |path: &Path| std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&restored), 0o700);
    assert_eq!(mode(&restored.join("hangar.db")), 0o600);
    let (ok, stdout, stderr) = admin(&["fsck", "--full", "--data-dir"], &[&restored]);
    assert!(ok, "fsck of the restored dir: {stdout} {stderr}");
    assert!(stdout.contains("fsck: clean"), "{stdout}");

    let restored_server = ServerProcess::start(&restored);
    let versions = download_every_version(&restored_server.address, "m").await;
    for seed in 0..3 {
        assert!(versions.contains(&format!("before-{seed}")), "before-{seed} in {versions:?}");
    }
    // The original still serves everything, including what was published after the copy.
    let all = download_every_version(&server.address, "m").await;
    assert!(all.len() >= versions.len(), "{all:?} vs {versions:?}");
}

#[tokio::test]
async fn fsck_reports_each_kind_and_repair_fixes_only_what_is_safe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = ServerProcess::start(&data);
    let client = client_with(ADMIN_TOKEN);
    let created = client.post(format!("{}/api/v1/models", server.address)).json(&json!({"name": "m"})).send().await;
    assert_eq!(created.expect("model").status(), StatusCode::CREATED);
    let files: Vec<(String, Vec<u8>)> = ["missing", "short", "corrupt"]
        .iter()
        .map(|name| (format!("{name}.bin"), format!("{name} bytes").into_bytes()))
        .collect();
    publish(&server.address, "m", "1", &files).await;

    // While the server runs: the check reads, repair is refused.
    let (ok, stdout, _) = admin(&["fsck", "--data-dir"], &[&data]);
    assert!(ok, "a healthy dir is clean with the server running: {stdout}");
    assert!(stdout.contains("tmp/ was not checked"), "{stdout}");
    let (ok, _, stderr) = admin(&["fsck", "--repair", "--data-dir"], &[&data]);
    assert!(!ok && stderr.contains("stop it before --repair"), "{stderr}");
    drop(server);

    let blob = |bytes: &[u8]| {
        let hex = sha256_digest(bytes).trim_start_matches("sha256:").to_owned();
        data.join("blobs/sha256").join(&hex[..2]).join(hex)
    };
    std::fs::remove_file(blob(&files[0].1)).expect("remove a blob");
    std::fs::write(blob(&files[1].1), b"sh").expect("shorten a blob");
    let corrupt = blob(&files[2].1);
    std::fs::set_permissions(&corrupt, std::fs::Permissions::from_mode(0o600)).expect("writable");
    std::fs::write(&corrupt, b"CORRUPT bytes").expect("same size, other bytes");
    let orphan = blob(b"nobody names me");
    std::fs::create_dir_all(orphan.parent().expect("parent")).expect("dir");
    std::fs::write(&orphan, b"nobody names me").expect("orphan");
    std::fs::write(data.join("tmp/upload-leftover"), b"half an upload").expect("leftover");

    let (ok, stdout, _) = admin(&["fsck", "--data-dir"], &[&data]);
    assert!(!ok, "problems exit non-zero: {stdout}");
    for kind in ["missing-blob 1", "wrong-size 1", "orphan-blob 1", "staging-leftover 1"] {
        assert!(stdout.contains(kind), "{kind} in {stdout}");
    }
    assert!(!stdout.contains("corrupt-blob"), "only --full hashes: {stdout}");
    let (ok, stdout, _) = admin(&["fsck", "--full", "--data-dir"], &[&data]);
    assert!(!ok && stdout.contains("corrupt-blob 1"), "{stdout}");

    // The orphan is younger than the default grace period: repair leaves it to GC.
    let (ok, stdout, _) = admin(&["fsck", "--repair", "--data-dir"], &[&data]);
    assert!(!ok, "rows stay broken: {stdout}");
    assert!(
        stdout.contains("staging-leftover 1 (1 repaired)") && stdout.contains("orphan-blob 1 (0 repaired)"),
        "{stdout}"
    );
    assert!(orphan.exists());
    let (_, stdout, _) = admin(&["fsck", "--repair", "--grace-secs", "0", "--data-dir"], &[&data]);
    assert!(stdout.contains("orphan-blob 1 (1 repaired)"), "{stdout}");
    assert!(!orphan.exists() && !data.join("tmp/upload-leftover").exists());
    assert!(
        stdout.contains("missing-blob 1 (0 repaired)") && stdout.contains("never deletes catalog rows"),
        "{stdout}"
    );
    let (ok, stdout, _) = admin(&["fsck", "--data-dir"], &[&data]);
    assert!(!ok && !stdout.contains("orphan-blob") && !stdout.contains("staging-leftover"), "{stdout}");
}

#[tokio::test]
async fn restore_refuses_a_non_empty_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, backup, target) = (dir.path().join("data"), dir.path().join("backup"), dir.path().join("target"));
    drop(ServerProcess::start(&data));
    let (ok, stdout, stderr) = admin(&["backup", "--data-dir"], &[&data, &backup]);
    assert!(ok, "{stdout} {stderr}");
    let (ok, _, stderr) = admin(&["backup", "--data-dir"], &[&data, &backup]);
    assert!(!ok && stderr.contains("is not empty"), "a backup never overwrites one: {stderr}");
    std::fs::create_dir_all(&target).expect("dir");
    std::fs::write(target.join("keep.txt"), b"someone's file").expect("write");
    let (ok, _, stderr) = admin(&["restore"], &[&backup, Path::new("--data-dir"), &target]);
    assert!(!ok && stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read(target.join("keep.txt")).expect("kept"), b"someone's file");
    assert!(!target.join("hangar.db").exists());
}
