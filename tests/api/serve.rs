//! `hangar serve` as an operator meets it: first start, clean shutdown, and one clear line
//! (never a panic) when it cannot start.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Output;
use std::time::Duration;

use crate::helpers::{ADMIN_TOKEN, ServerProcess, client_with, hangar_command, wait_until};

fn assert_one_clear_line(output: &Output, says: &str) {
    assert!(!output.status.success(), "exits non-zero");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {stderr}");
    assert!(lines[0].starts_with("hangar: "), "{stderr}");
    assert!(lines[0].contains(says), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[tokio::test]
async fn first_start_creates_the_data_dir_and_database_and_prints_the_url() {
    let parent = tempfile::tempdir().expect("tempdir");
    let data_dir = parent.path().join("fresh/hangar-data");
    let server = ServerProcess::start(&data_dir);
    assert!(server.address.starts_with("http://127.0.0.1:"), "{}", server.address);
    assert!(data_dir.join("hangar.db").is_file());
    for probe in ["/healthz", "/readyz"] {
        let response = reqwest::get(format!("{}{probe}", server.address)).await.expect("probe");
        assert_eq!(response.status(), 200, "{probe}");
    }
}

#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish_then_exits_0() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(data_dir.path());
    let client = client_with(ADMIN_TOKEN);
    client
        .post(format!("{}/api/v1/models", server.address))
        .json(&serde_json::json!({"name": "m"}))
        .send()
        .await
        .expect("model");
    client
        .post(format!("{}/api/v1/models/m/versions", server.address))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("v");

    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let body = vec![3u8; 4 << 20];
    write!(
        stream,
        "PUT /api/v1/models/m/versions/1/files/w.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .expect("head");
    stream.write_all(&body[..1 << 20]).expect("first part");
    let tmp = data_dir.path().join("tmp");
    wait_until("the upload is in flight", Duration::from_secs(10), || {
        std::fs::read_dir(&tmp).map(|d| d.count() > 0).unwrap_or(false)
    })
    .await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&body[1 << 20..]).expect("rest of the body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = server.wait();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_port_in_use_is_one_line_and_a_non_zero_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let data_dir = tempfile::tempdir().expect("tempdir");
    let output =
        hangar_command().args(["serve", "--listen", &addr, "--data-dir"]).arg(data_dir.path()).output().expect("run");
    assert_one_clear_line(&output, &format!("cannot listen on {addr}"));
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_created_is_one_line() {
    let parent = tempfile::tempdir().expect("tempdir");
    let file = parent.path().join("a-file");
    std::fs::write(&file, b"not a dir").expect("write");
    let output = hangar_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(file.join("data"))
        .output()
        .expect("run");
    assert_one_clear_line(&output, "cannot create data dir");
}

#[tokio::test]
async fn a_bad_setting_names_itself_and_what_is_expected() {
    let output = hangar_command().args(["serve"]).env("HANGAR_LISTEN", "localhost").output().expect("run");
    assert_one_clear_line(&output, "HANGAR_LISTEN: \"localhost\" is not an address; expected HOST:PORT");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("hangar.toml");
    std::fs::write(&config, "data-dir = \"/x\"\n").expect("write");
    let output = hangar_command().args(["serve", "--config"]).arg(&config).output().expect("run");
    assert_one_clear_line(&output, "unknown field `data-dir`");
}

#[tokio::test]
async fn two_servers_cannot_share_a_data_dir() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let _first = ServerProcess::start(data_dir.path());
    let output = hangar_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .output()
        .expect("run");
    assert_one_clear_line(&output, "in use by another hangar process");
}

#[tokio::test]
async fn settings_come_from_the_config_file_under_env_and_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let from_file = dir.path().join("from-file");
    let config = dir.path().join("hangar.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n", from_file.display().to_string()))
        .expect("write");
    let mut command = hangar_command();
    command.args(["serve", "--config"]).arg(&config);
    let server = ServerProcess::spawn(command);
    assert!(server.address.starts_with("http://127.0.0.1:"), "{}", server.address);
    assert!(from_file.join("hangar.db").is_file(), "the data dir came from the file");
}

#[tokio::test]
async fn sigterm_cuts_an_upload_that_outlasts_the_grace_period_and_removes_its_staging_file() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let mut command = hangar_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path())
        .env("HANGAR_SHUTDOWN_GRACE_SECS", "2");
    let mut server = ServerProcess::spawn(command);
    let client = client_with(ADMIN_TOKEN);
    client
        .post(format!("{}/api/v1/models", server.address))
        .json(&serde_json::json!({"name": "m"}))
        .send()
        .await
        .expect("model");
    client
        .post(format!("{}/api/v1/models/m/versions", server.address))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("v");

    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        stream,
        "PUT /api/v1/models/m/versions/1/files/w.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\n\r\n",
        4 << 20
    )
    .expect("head");
    stream.write_all(&[3u8; 1 << 20]).expect("first part");
    let tmp = data_dir.path().join("tmp");
    wait_until("the upload is in flight", Duration::from_secs(10), || {
        std::fs::read_dir(&tmp).map(|d| d.count() > 0).unwrap_or(false)
    })
    .await;
    let signalled = std::time::Instant::now();
    server.signal("TERM");
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(15), "still running 15 s after SIGTERM with a 2 s grace");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(signalled.elapsed() >= Duration::from_secs(2), "the grace period was given");
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::read_dir(&tmp).expect("tmp").count(), 0, "the cut upload's staging file is removed");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_dir_and_its_files_are_private_to_the_server_user() {
    let parent = tempfile::tempdir().expect("tempdir");
    let data_dir = parent.path().join("data");
    let server = ServerProcess::start(&data_dir);
    let client = client_with(ADMIN_TOKEN);
    let created = client
        .post(format!("{}/api/v1/models", server.address))
        .json(&serde_json::json!({"name": "m"}))
        .send()
        .await
        .expect("model");
    assert_eq!(created.status(), 201);
    assert_eq!(mode(&data_dir), 0o700, "the data dir");
    for name in ["hangar.db", "hangar.db-wal", "hangar.db-shm", "installation-id", "hangar.lock"] {
        assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
    }
}

#[tokio::test]
async fn a_data_dir_left_readable_is_tightened_at_start_with_a_log_line() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().expect("tempdir");
    let data_dir = parent.path().join("data");
    drop(ServerProcess::start(&data_dir));
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for name in ["hangar.db", "installation-id"] {
        std::fs::set_permissions(data_dir.join(name), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let log_path = parent.path().join("log");
    let mut command = hangar_command();
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(&data_dir);
    let _server = ServerProcess::spawn_logging(command, std::fs::File::create(&log_path).expect("log"), "info");
    assert_eq!(mode(&data_dir), 0o700);
    for name in ["hangar.db", "installation-id"] {
        assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
    }
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(log.contains("tightened") && log.contains("hangar.db"), "{log}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_each_request_says_who_what_and_how_long() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut command = hangar_command();
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir.path().join("data"));
    command.env("HANGAR_LOG_FORMAT", "json");
    let server = ServerProcess::spawn_logging(command, log, "info");
    let response = client_with(ADMIN_TOKEN)
        .get(format!("{}/api/v1/models/nobody/nothing", server.address))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 404);
    let id = response.headers()["x-request-id"].to_str().expect("id").to_owned();

    let mut access = None;
    wait_until("the access line is written", Duration::from_secs(5), || {
        let text = std::fs::read_to_string(&log_path).expect("read log");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}")))
            .collect();
        access = lines.into_iter().find(|l| l["target"] == "hangar::access" && l["request_id"] == id.as_str());
        access.is_some()
    })
    .await;
    let access = access.expect("found");
    assert_eq!(access["user"], "admin", "{access}");
    assert_eq!(access["route"], "/api/v1/models/{model}", "{access}");
    assert_eq!(access["path"], "/api/v1/models/nobody/nothing", "{access}");
    assert_eq!((access["method"].as_str(), access["status"].as_u64()), (Some("GET"), Some(404)), "{access}");
    assert!(access["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{access}");
    assert!(access["timestamp"].is_string() && access["level"] == "INFO", "{access}");

    let output = hangar_command().args(["serve"]).env("HANGAR_LOG_FORMAT", "yaml").output().expect("run");
    assert_one_clear_line(&output, "HANGAR_LOG_FORMAT=\"yaml\": use text or json");
}
