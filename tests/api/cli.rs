//! The client commands: the real `hangar` binary against a real server (in this process on
//! port 0), or against a hostile one written here. What the server received is read from
//! its blob store's byte counter, not from what the client says it sent.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::deployments::{docker_ready, prepare, unique};
use crate::helpers::{ADMIN_TOKEN, TestApp, client_with, hangar_command, spawn_app, wait_until};

/// The big file of the push tests: 300 MB.
const BIG: u64 = 300_000_000;

/// `hangar` pointed at `app` with the admin token.
fn hangar(app: &TestApp) -> Command {
    hangar_at(&app.address, Some(ADMIN_TOKEN))
}

fn hangar_at(url: &str, token: Option<&str>) -> Command {
    let mut command = hangar_command();
    command.env("HANGAR_URL", url).env_remove("HANGAR_TOKEN").env_remove("RUST_LOG");
    if let Some(token) = token {
        command.env("HANGAR_TOKEN", token);
    }
    command
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    fn ok(self) -> Self {
        assert_eq!(self.code, Some(0), "hangar failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }
}

/// Runs the command to its end on a blocking thread: the server under test runs on this
/// test's runtime and must keep answering meanwhile.
async fn run<I, S>(mut command: Command, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    command.args(args).stdin(Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run hangar");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `size` bytes of a seeded xorshift stream, written 1 MiB at a time.
fn write_random(path: &Path, size: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut file = BufWriter::new(File::create(path).expect("create"));
    let mut state = seed | 1;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).expect("write");
        left -= n as u64;
    }
    file.flush().expect("flush");
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A model directory: nested folders, an empty file, two files with the same bytes and a
/// big one of `big` bytes.
fn model_tree(root: &Path, big: u64) {
    write_random(&root.join("weights/model-00001.bin"), big, 7);
    write(&root.join("config.json"), br#"{"layers": 2}"#);
    write(&root.join("empty.txt"), b"");
    write(&root.join("tokenizer/vocab.txt"), b"a\nb\nc\n");
    write(&root.join("tokenizer/merges/deep/merges.txt"), b"a b\n");
    write(&root.join("copies/config.json"), br#"{"layers": 2}"#);
}

/// Every file under `dir`: relative path to size.
fn tree(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, u64>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let entry = entry.expect("entry");
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let meta = entry.metadata().expect("meta");
            if meta.is_dir() {
                walk(&entry.path(), &format!("{name}/"), out);
            } else {
                out.insert(name, meta.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, "", &mut out);
    out
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (File::open(a).expect("open a"), File::open(b).expect("open b"));
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x);
        if n != read_full(&mut b, &mut y) || x[..n] != y[..n] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).expect("read") {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

fn assert_same_trees(a: &Path, b: &Path) {
    assert_eq!(tree(a), tree(b), "the same files with the same sizes");
    for path in tree(a).keys() {
        assert!(same_bytes(&a.join(path), &b.join(path)), "{path} differs");
    }
}

fn sha256_of(path: &Path) -> String {
    let mut file = File::open(path).expect("open");
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match read_full(&mut file, &mut buf) {
            0 => return format!("sha256:{}", hex::encode(hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// Bytes in the server's `tmp/` now: uploads being received.
fn staged_bytes(app: &TestApp) -> u64 {
    std::fs::read_dir(app.data_dir.path().join("tmp"))
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_pushed_tree_pulls_back_byte_for_byte_and_pushing_it_again_sends_nothing() {
    let app = spawn_app().await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    model_tree(&src, BIG);
    let total: u64 = tree(&src).values().sum();

    let before = app.blobs.bytes_received();
    let pushed = run(
        hangar(&app),
        [
            "push",
            "--json",
            "--model",
            "team/llm",
            "--alias",
            "prod",
            "--meta",
            "format=raw",
            src.to_str().expect("utf-8"),
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(pushed["version"], "1");
    assert_eq!(pushed["state"], "ready");
    assert_eq!(pushed["files"], 6);
    assert_eq!(pushed["bytes"], total);
    // The two config.json files have the same bytes: they go up once, the second is linked.
    assert_eq!(pushed["uploaded_files"], 5);
    assert_eq!(pushed["linked_files"], 1);
    let copy_size = std::fs::metadata(src.join("config.json")).expect("meta").len();
    assert_eq!(app.blobs.bytes_received() - before, total - copy_size, "every distinct byte went up once");

    let version: Value = app.get("/api/v1/models/team/llm/versions/1").await.json().await.expect("json");
    assert_eq!(version["metadata"], json!({"format": "raw"}));
    let alias: Value = app.get("/api/v1/models/team/llm/aliases/prod").await.json().await.expect("json");
    assert_eq!(alias["version"], "1");

    let out = work.path().join("out");
    let pulled = run(hangar(&app), ["pull", "--json", "team/llm@prod", out.to_str().expect("utf-8")]).await.ok().json();
    assert_eq!(pulled["downloaded_files"], 6);
    assert_eq!(pulled["downloaded_bytes"], total);
    assert_same_trees(&src, &out);

    let before = app.blobs.bytes_received();
    let again =
        run(hangar(&app), ["push", "--json", "--model", "team/llm", src.to_str().expect("utf-8")]).await.ok().json();
    assert_eq!(app.blobs.bytes_received(), before, "an unchanged tree sends no bytes");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let counter = format!("hangar_upload_bytes_received_total {before}\n");
    assert!(metrics.contains(&counter), "the counter is in /metrics: {counter} in {metrics}");
    assert_eq!(again["version"], "2");
    assert_eq!(again["uploaded_bytes"], 0);
    assert_eq!(again["linked_files"], 6);
    let v2: Value = app.get("/api/v1/models/team/llm/versions/2").await.json().await.expect("json");
    assert_eq!(v2["manifest_digest"], version["manifest_digest"], "the same files make the same manifest");

    // Naming the published version that already holds these files is a no-op, not an error.
    let same =
        run(hangar(&app), ["push", "--json", "--model", "team/llm", "--version", "1", src.to_str().expect("utf-8")])
            .await
            .ok()
            .json();
    assert_eq!(same["uploaded_files"], 0);
    assert_eq!(app.blobs.bytes_received(), before);
}

#[tokio::test]
async fn a_push_killed_mid_upload_continues_its_draft_and_sends_only_what_was_missing() {
    let app = spawn_app().await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    model_tree(&src, BIG);
    let big = src.join("weights/model-00001.bin");

    // One streamed PUT per file (the part size is over the big file's size); the test below
    // has the same push cut while it sends parts.
    let mut command = hangar(&app);
    command.args(["push", "--model", "llm", "--part-size-mib", "1024"]).arg(&src);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn push");
    // Killed once the small files are in the draft and the big one is on its way.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let draft = app.get("/api/v1/models/llm/versions/1/files").await;
        let count = match draft.status() {
            StatusCode::OK => draft.json::<Value>().await.expect("json")["items"].as_array().map_or(0, Vec::len),
            _ => 0,
        };
        if count == 5 && staged_bytes(&app) > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the push never got to the big file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    wait_until("the server dropped the half upload", Duration::from_secs(30), || app.tmp_entries() == 0).await;

    let big_digest = sha256_of(&big);
    let head = app.client.head(app.url(&format!("/api/v1/blobs/{big_digest}"))).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::NOT_FOUND, "the push was killed before the big file arrived");

    let before = app.blobs.bytes_received();
    let rerun = run(
        hangar(&app),
        ["push", "--json", "--model", "llm", "--part-size-mib", "1024", src.to_str().expect("utf-8")],
    )
    .await
    .ok()
    .json();
    assert_eq!(rerun["version"], "1", "the interrupted draft is continued, not a new version started");
    assert_eq!(rerun["resumed"], true);
    assert_eq!(rerun["state"], "ready");
    assert_eq!(rerun["uploaded_files"], 1);
    assert_eq!(rerun["unchanged_files"], 5);
    assert_eq!(app.blobs.bytes_received() - before, BIG, "only the big file went up again");
    let files: Value = app.get("/api/v1/models/llm/versions/1/files").await.json().await.expect("json");
    let listed = files["items"].as_array().expect("items").iter().find(|f| f["path"] == "weights/model-00001.bin");
    assert_eq!(listed.expect("the big file is in the version")["digest"], big_digest);
}

#[tokio::test]
async fn a_push_killed_while_it_sends_parts_sends_only_the_parts_still_missing_when_run_again() {
    let app = spawn_app().await;
    let work = tempfile::tempdir().expect("tempdir");
    let big = work.path().join("model.bin");
    write_random(&big, BIG, 11);

    let mut command = hangar(&app);
    command.args(["push", "--model", "llm", "--part-size-mib", "16"]).arg(&big);
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn push");
    let sessions = "/api/v1/models/llm/versions/1/uploads";
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let listed = app.get(sessions).await;
        let received = match listed.status() {
            StatusCode::OK => {
                listed.json::<Value>().await.expect("json")["items"][0]["received"].as_array().map_or(0, Vec::len)
            }
            _ => 0,
        };
        if received >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the push never sent three parts");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().expect("SIGKILL");
    tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");

    // A part cut off by the kill is not recorded; one whose last byte had arrived may still
    // be synced: wait until the session stops changing.
    let mut session: Value = app.get(sessions).await.json().await.expect("json");
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now: Value = app.get(sessions).await.json().await.expect("json");
        if now == session {
            break;
        }
        session = now;
    }
    let session = &session["items"][0];
    let part_size = session["part_size"].as_u64().expect("part size");
    let missing: u64 = session["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .map(|n| {
            let start = n.as_u64().expect("n") * part_size;
            (start + part_size).min(BIG) - start
        })
        .sum();
    assert!(missing < BIG, "{session}");

    let before = app.blobs.bytes_received();
    let rerun =
        run(hangar(&app), ["push", "--json", "--model", "llm", "--part-size-mib", "16", big.to_str().expect("utf-8")])
            .await
            .ok()
            .json();
    assert_eq!((rerun["version"].as_str(), rerun["state"].as_str()), (Some("1"), Some("ready")), "{rerun}");
    assert_eq!(app.blobs.bytes_received() - before, missing, "only the missing parts went up again");
    let head = app.client.head(app.url(&format!("/api/v1/blobs/{}", sha256_of(&big)))).send().await.expect("head");
    assert_eq!(head.status(), StatusCode::OK);
}

#[tokio::test]
async fn pull_continues_a_truncated_file_and_replaces_a_corrupted_one() {
    let app = spawn_app().await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    let size: u64 = 8 << 20;
    write_random(&src.join("model.bin"), size, 42);
    write(&src.join("small.txt"), b"small");
    run(hangar(&app), ["push", "--model", "m", src.to_str().expect("utf-8")]).await.ok();
    let out = work.path().join("out");
    let pull = || run(hangar(&app), ["pull", "--json", "m:1", out.to_str().expect("utf-8")]);
    pull().await.ok();
    let file = out.join("model.bin");

    File::options().write(true).open(&file).expect("open").set_len(3 << 20).expect("truncate");
    let resumed = pull().await.ok().json();
    assert_eq!(resumed["resumed_files"], 1);
    assert_eq!(resumed["downloaded_bytes"], size - (3 << 20), "only the missing tail came");
    assert_eq!(resumed["up_to_date_files"], 1);
    assert!(same_bytes(&file, &src.join("model.bin")));

    let flip = |at: u64| {
        let mut bytes = std::fs::read(&file).expect("read");
        bytes[at as usize] ^= 0xff;
        std::fs::write(&file, bytes).expect("write");
    };
    flip(size / 2);
    let replaced = pull().await.ok().json();
    assert_eq!((replaced["downloaded_bytes"].clone(), replaced["resumed_files"].clone()), (json!(size), json!(0)));
    assert!(same_bytes(&file, &src.join("model.bin")));

    // A shorter file whose kept part is wrong: continued, found wrong, fetched whole.
    flip(1000);
    File::options().write(true).open(&file).expect("open").set_len(5 << 20).expect("truncate");
    pull().await.ok();
    assert!(same_bytes(&file, &src.join("model.bin")));
}

/// A server for `m:1` that lists `paths`, each with the bytes `evil\n`.
fn hostile_server(paths: &[String]) -> String {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(b"evil\n")));
    let items: Vec<Value> = paths.iter().map(|p| json!({"path": p, "size": 5, "digest": digest})).collect();
    let listing = json!({ "items": items }).to_string();
    let version = json!({"model": "m", "version": "1", "state": "ready"}).to_string();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or_default().to_owned();
            let (status, kind, body) = if path.ends_with("/versions/1") {
                ("200 OK", "application/json", version.clone())
            } else if path.ends_with("/versions/1/files") {
                ("200 OK", "application/json", listing.clone())
            } else if path.contains("/files/") {
                ("200 OK", "application/octet-stream", "evil\n".to_owned())
            } else {
                ("404 Not Found", "application/problem+json", r#"{"status":404,"detail":"no"}"#.to_owned())
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

#[tokio::test]
async fn pull_from_a_hostile_server_never_writes_outside_its_directory() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("dir");
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::create_dir_all(&outside).expect("outside");
    std::os::unix::fs::symlink(&outside, dir.join("link")).expect("symlink");
    let absolute = outside.join("absolute.txt").display().to_string();
    let cases: Vec<Vec<String>> = vec![
        vec!["fine.txt".into(), "../outside/escape.txt".into()],
        vec![absolute],
        vec!["sub/../../outside/escape.txt".into()],
        vec!["link/escape.txt".into()],
        vec!["fine/../../../escape.txt".into()],
    ];
    for paths in cases {
        let server = hostile_server(&paths);
        let run = run(hangar_at(&server, Some("hgr_x")), ["pull", "m:1", dir.to_str().expect("utf-8")]).await;
        assert_eq!(run.code, Some(1), "{paths:?}: {}", run.stderr);
        assert!(run.stderr.contains("will not write"), "{paths:?}: {}", run.stderr);
        assert!(tree(&outside).is_empty(), "{paths:?} wrote outside: {:?}", tree(&outside));
        assert!(!work.path().join("escape.txt").exists(), "{paths:?}");
        let written: Vec<String> = tree(&dir).into_keys().filter(|p| p != "link").collect();
        assert!(written.is_empty(), "{paths:?}: nothing was written, not even the fine file: {written:?}");
    }
}

#[tokio::test]
async fn exit_codes_tell_not_found_conflict_auth_and_usage_apart() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"version one")]).await;
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    write(&src.join("a.bin"), b"something else");
    let src = src.to_str().expect("utf-8");
    let out = work.path().join("out");
    let out = out.to_str().expect("utf-8");

    for (args, code) in [
        (vec!["pull", "nosuch:1", out], 3),
        (vec!["show", "m:9"], 3),
        (vec!["pull", "m@prod", out], 3),
        (vec!["push", "--model", "m", "--version", "1", src], 4),
        (vec!["push"], 2),
        (vec!["push", "--model", "Not_A_Name", src], 2),
        (vec!["push", "--model", "m", "--alias", "prod", "--no-publish", src], 2),
        (vec!["deploy", "m", "--runtime", "vllm"], 2),
        (vec!["ls", "--url", "ftp://example"], 2),
        (vec!["no-such-command"], 2),
    ] {
        let result = run(hangar(&app), &args).await;
        assert_eq!(result.code, Some(code), "{args:?}: {}", result.stderr);
        assert!(!result.stderr.trim().is_empty(), "{args:?} says why");
    }

    let json = run(hangar(&app), ["show", "m:9", "--json"]).await;
    assert_eq!(json.code, Some(3));
    assert_eq!(json.json()["error"]["kind"], "not_found");

    let wrong = run(hangar_at(&app.address, Some("hgr_wrongToken0123456789wrongToken0123456789ab")), ["ls"]).await;
    assert_eq!(wrong.code, Some(5), "{}", wrong.stderr);
    let anonymous = run(hangar_at(&app.address, None), ["ls"]).await;
    assert_eq!(anonymous.code, Some(5), "{}", anonymous.stderr);
    let viewer = app.user_token("watcher", "viewer").await;
    let refused = run(hangar_at(&app.address, Some(&viewer)), ["push", "--model", "m", src]).await;
    assert_eq!(refused.code, Some(5), "a viewer cannot push: {}", refused.stderr);
    let unreachable = run(hangar_at("http://127.0.0.1:1", Some(ADMIN_TOKEN)), ["ls"]).await;
    assert_eq!(unreachable.code, Some(1), "{}", unreachable.stderr);
}

#[tokio::test]
async fn ls_show_alias_token_and_events_map_to_the_api() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"one")]).await;
    app.create_version("m", "2").await;
    assert_eq!(app.upload("m", "2", "a.bin", b"two").await.status(), StatusCode::CREATED);
    assert_eq!(app.publish("m", "2").await.status(), StatusCode::OK);

    run(hangar(&app), ["alias", "set", "m", "prod", "1"]).await.ok();
    let alias: Value = app.get("/api/v1/models/m/aliases/prod").await.json().await.expect("json");
    assert_eq!(alias["version"], "1");

    let models = run(hangar(&app), ["ls", "--json"]).await.ok().json();
    assert_eq!(models[0]["name"], "m");
    let text = run(hangar(&app), ["ls", "m"]).await.ok().stdout;
    assert!(text.starts_with("VERSION") && text.contains("prod"), "{text}");
    let shown = run(hangar(&app), ["show", "m@prod", "--json"]).await.ok().json();
    assert_eq!(shown["version"]["version"], "1");
    assert_eq!(shown["files"][0]["path"], "a.bin");
    let model = run(hangar(&app), ["show", "m", "--json"]).await.ok().json();
    assert_eq!(model["aliases"][0]["alias"], "prod");

    let created = run(hangar(&app), ["token", "create", "ci", "--role", "viewer"]).await.ok();
    let token = created.stdout.trim().to_owned();
    assert!(token.starts_with("hgr_") && !token.contains('\n'), "stdout is the token alone: {token}");
    run(hangar_at(&app.address, Some(&token)), ["ls"]).await.ok();
    let listed = run(hangar(&app), ["token", "list", "--json"]).await.ok().json();
    let id = listed.as_array().expect("array").iter().find(|t| t["name"] == "ci").expect("listed")["id"].clone();
    run(hangar(&app), ["token", "revoke", &id.to_string()]).await.ok();
    let revoked = run(hangar_at(&app.address, Some(&token)), ["ls"]).await;
    assert_eq!(revoked.code, Some(5), "{}", revoked.stderr);

    let events = run(hangar(&app), ["events", "--json", "--model", "m"]).await.ok().json();
    let actions: Vec<&str> = events.as_array().expect("array").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"version.published") && actions.contains(&"alias.moved"), "{actions:?}");
    let last = events.as_array().expect("array").last().expect("some")["id"].as_i64().expect("id");

    let mut follow = hangar(&app);
    follow
        .args(["events", "-f", "--json", "--model", "m", "--after", &last.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = follow.spawn().expect("spawn events -f");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    run(hangar(&app), ["alias", "set", "m", "prod", "2"]).await.ok();
    let line = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .expect("join")
        .expect("an event arrives");
    child.kill().expect("kill");
    let _ = child.wait();
    let event: Value = serde_json::from_str(&line).expect("one JSON event per line");
    assert_eq!((event["action"].as_str(), event["target"].as_str()), (Some("alias.moved"), Some("m@prod")));
}

#[tokio::test]
async fn deploy_waits_until_running_then_logs_and_stop_work() {
    if !docker_ready() {
        return;
    }
    let app = spawn_app().await;
    let model = unique("cli");
    let runtime = unique("cli-rt");
    prepare(&app, &model, &runtime, &[], 60).await;
    run(hangar(&app), ["alias", "set", &model, "prod", "1"]).await.ok();
    let name = unique("cli-dep");
    let target = format!("{model}@prod");
    let deployed = run(hangar(&app), ["deploy", &target, "--runtime", &runtime, "--name", &name, "--wait", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(deployed["state"], "running");
    assert_eq!(deployed["target"], target);
    let digest = deployed["launch"]["image_digest"].as_str().unwrap_or_default();
    assert!(digest.starts_with("sha256:"), "--json shows the launch record: {deployed}");
    let logs = run(hangar(&app), ["logs", &name, "--tail", "20"]).await.ok();
    assert!(logs.stdout.contains("serving"), "the container's output: {}", logs.stdout);
    let stopped = run(hangar(&app), ["stop", &name, "--wait", "--json"]).await.ok().json();
    assert_eq!(stopped["state"], "stopped");
}

#[tokio::test]
async fn a_scoped_push_links_the_blobs_its_token_can_see_and_sends_the_others() {
    let app = spawn_app().await;
    let shared = b"weights team a already has".as_slice();
    let foreign = b"weights only team b has, which team a must send itself".as_slice();
    app.published("team-a/base", &[("weights.bin", shared)]).await;
    app.published("team-b/secret", &[("weights.bin", foreign)]).await;
    let token = client_with(ADMIN_TOKEN)
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "ci-a", "role": "maintainer", "models": ["team-a/*"]}))
        .send()
        .await
        .expect("token")
        .json::<Value>()
        .await
        .expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let work = tempfile::tempdir().expect("tempdir");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("shared.bin"), shared).expect("write");
    std::fs::write(src.join("foreign.bin"), foreign).expect("write");

    let before = app.blobs.bytes_received();
    let pushed = run(
        hangar_at(&app.address, Some(&token)),
        ["push", "--json", "--model", "team-a/next", src.to_str().expect("utf-8")],
    )
    .await
    .ok()
    .json();
    assert_eq!(pushed["linked_files"], 1, "{pushed}");
    assert_eq!(pushed["uploaded_files"], 1, "{pushed}");
    assert_eq!(app.blobs.bytes_received() - before, foreign.len() as u64, "only the bytes it could not see went up");
}

#[tokio::test]
async fn a_big_file_goes_up_in_parts_and_a_push_run_again_sends_only_the_parts_still_missing() {
    const MIB: u64 = 1 << 20;
    let app = spawn_app().await;
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("model.bin");
    write_random(&file, 5 * MIB + 123, 7);
    let bytes = std::fs::read(&file).expect("read");
    let digest = crate::helpers::sha256_digest(&bytes);

    // What an earlier push left when its connection died: a draft with a session holding
    // parts 0 to 2 of 6.
    app.create_model("team/parts").await;
    app.create_version("team/parts", "1").await;
    let body = json!({"path": "model.bin", "size": bytes.len(), "digest": digest, "part_size": MIB});
    let session: Value =
        app.post_json("/api/v1/models/team/parts/versions/1/uploads", &body).await.json().await.expect("json");
    let id = session["id"].as_str().expect("id");
    for n in 0..3 {
        let part = bytes[(n * MIB) as usize..((n + 1) * MIB) as usize].to_vec();
        let url = app.url(&format!("/api/v1/models/team/parts/versions/1/uploads/{id}/parts/{n}"));
        assert_eq!(app.client.put(url).body(part).send().await.expect("part").status(), StatusCode::OK);
    }

    let before = app.blobs.bytes_received();
    let pushed = run(
        hangar(&app),
        ["push", "--json", "--model", "team/parts", "--part-size-mib", "1", file.to_str().expect("utf-8")],
    )
    .await
    .ok()
    .json();
    assert_eq!((pushed["version"].as_str(), pushed["resumed"].as_bool()), (Some("1"), Some(true)), "{pushed}");
    assert_eq!(app.blobs.bytes_received() - before, bytes.len() as u64 - 3 * MIB, "only parts 3 to 5 went up");
    let download = app.get("/api/v1/models/team/parts/versions/1/files/model.bin").await;
    assert_eq!(download.bytes().await.expect("bytes"), bytes);
    let sessions: Value = app.get("/api/v1/models/team/parts/versions/1/uploads").await.json().await.expect("json");
    assert_eq!(sessions["items"], json!([]), "the session was completed");
}
