//! Spawns the app for a test (in-process on port 0, or as a real `hangar` process) and
//! offers the requests most tests make.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hangar::config::{Redacted, Settings};
use hangar::startup::Application;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The admin token every test app is bootstrapped with.
pub const ADMIN_TOKEN: &str = "hgr_adminTestToken0123456789adminTestToken01234";

/// A client that sends `token` on every request.
pub fn client_with(token: &str) -> reqwest::Client {
    hangar::tls::install_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().expect("client")
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    /// The server's blob store, for its counters.
    pub blobs: hangar::blobs::BlobStore,
}

/// Starts the server in this process on a free port with its own data dir.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the server with settings changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    // Server logs are noise in a passing run; `TEST_LOG=1 cargo test` shows them.
    if std::env::var_os("TEST_LOG").is_some() {
        hangar::telemetry::init(hangar::telemetry::LogFormat::Text);
    }
    let data_dir = tempfile::tempdir().expect("temp data dir");
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.path().to_owned(),
        bootstrap_token: Some(Redacted(ADMIN_TOKEN.to_owned())),
        ..Settings::default()
    };
    settings.database_url = test_database_url(data_dir.path()).map(Redacted);
    configure(&mut settings);
    let app = Application::build(settings).await.expect("app builds");
    let port = app.port();
    let blobs = app.blobs().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp { address: format!("http://127.0.0.1:{port}"), port, client: client_with(ADMIN_TOKEN), data_dir, blobs }
}

/// The catalog database of a server on `data_dir` when the suite runs against Postgres
/// (`HANGAR_TEST_DATABASE_URL`, which tests/with-postgres.sh sets): one database per data
/// dir, created on first use, so a server restarted on the same dir finds its catalog again.
/// `None`: the server keeps its catalog in SQLite, in the data dir.
pub fn test_database_url(data_dir: &Path) -> Option<String> {
    let admin = std::env::var("HANGAR_TEST_DATABASE_URL").ok()?;
    let name = format!("h_{}", &hex::encode(Sha256::digest(data_dir.as_os_str().as_encoded_bytes()))[..24]);
    let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_owned());
    let created = Command::new(format!("{bin}/createdb"))
        .arg(format!("--maintenance-db={admin}/postgres"))
        .arg(&name)
        .output()
        .expect("run createdb");
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success() || stderr.contains("already exists"), "createdb {name}: {stderr}");
    Some(format!("{admin}/{name}"))
}

/// Runs `sql` on the catalog of the server on `data_dir`, behind the server's back (an older
/// release's rows, a broken table), on whichever database the suite runs against.
pub async fn catalog_execute(data_dir: &Path, sql: &str) {
    use sqlx::Connection as _;
    match test_database_url(data_dir) {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect to the catalog");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect(sql);
            conn.close().await.expect("close");
        }
        None => {
            let url = format!("sqlite://{}", data_dir.join("hangar.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open the catalog");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect(sql);
            conn.close().await.expect("close");
        }
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.client.put(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Response {
        self.client.patch(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.expect("request")
    }

    pub async fn create_model(&self, name: &str) {
        let response = self.post_json("/api/v1/models", &json!({ "name": name })).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create model {name}");
    }

    pub async fn create_version(&self, model: &str, version: &str) {
        let response =
            self.post_json(&format!("/api/v1/models/{model}/versions"), &json!({ "version": version })).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create version {model}:{version}");
    }

    /// PUTs `bytes` with their digest.
    pub async fn upload(&self, model: &str, version: &str, path: &str, bytes: &[u8]) -> Response {
        let url = self
            .url(&format!("/api/v1/models/{model}/versions/{version}/files/{path}?digest={}", sha256_digest(bytes)));
        self.client.put(url).body(bytes.to_vec()).send().await.expect("request")
    }

    pub async fn publish(&self, model: &str, version: &str) -> Response {
        self.client
            .post(self.url(&format!("/api/v1/models/{model}/versions/{version}/publish")))
            .send()
            .await
            .expect("request")
    }

    /// A model with one published version `1` holding `files`.
    pub async fn published(&self, model: &str, files: &[(&str, &[u8])]) {
        self.create_model(model).await;
        self.create_version(model, "1").await;
        for (path, bytes) in files {
            assert_eq!(self.upload(model, "1", path, bytes).await.status(), StatusCode::CREATED);
        }
        assert_eq!(self.publish(model, "1").await.status(), StatusCode::OK);
    }

    /// Creates a user with `role` and returns a token of theirs from a password login.
    pub async fn user_token(&self, name: &str, role: &str) -> String {
        let password = format!("{name}-long-password");
        let created = self.post_json("/api/v1/users", &json!({"name": name, "role": role, "password": password})).await;
        assert_eq!(created.status(), StatusCode::CREATED, "create user {name}");
        self.login(name, &password, None).await
    }

    /// Logs in and returns the token issued.
    pub async fn login(&self, user: &str, password: &str, expires_in: Option<&str>) -> String {
        let mut body = json!({"user": user, "password": password});
        if let Some(lifetime) = expires_in {
            body["expires_in"] = json!(lifetime);
        }
        let response = reqwest::Client::new().post(self.url("/api/v1/login")).json(&body).send().await.expect("login");
        assert_eq!(response.status(), StatusCode::CREATED, "login {user}");
        let token: Value = response.json().await.expect("json");
        token["token"].as_str().expect("token").to_owned()
    }

    pub async fn system(&self) -> Value {
        self.get("/api/v1/system").await.json().await.expect("json")
    }

    /// Entries in `tmp/` right now.
    pub fn tmp_entries(&self) -> usize {
        std::fs::read_dir(self.data_dir.path().join("tmp")).expect("tmp").count()
    }

    /// Blob files on disk right now.
    pub fn blobs_on_disk(&self) -> usize {
        count_files(&self.data_dir.path().join("blobs"))
    }

    /// Sends a request byte for byte, for URLs an HTTP client library would normalize
    /// (`..`, `%2e%2e`) before sending.
    /// A request sent byte for byte as written, on a blocking thread: blocking the test's own
    /// runtime would stall the in-process server's Postgres connections, which it drives.
    pub async fn raw(&self, method: &str, target: &str, body: &[u8]) -> (u16, String) {
        let (port, method, target, body) = (self.port, method.to_owned(), target.to_owned(), body.to_vec());
        tokio::task::spawn_blocking(move || raw_request(port, &method, &target, &body)).await.expect("raw request")
    }
}

impl Drop for TestApp {
    /// Removes the containers this app's supervisor left, so tests leave Docker as they found it.
    fn drop(&mut self) {
        remove_containers_of(self.data_dir.path());
    }
}

/// `docker rm -f` of every container owned by the Hangar of `data_dir`.
pub fn remove_containers_of(data_dir: &Path) {
    let Ok(owner) = std::fs::read_to_string(data_dir.join("installation-id")) else { return };
    let filter = format!("label=hangar.owner={}", owner.trim());
    let Ok(listed) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() else { return };
    let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout).split_whitespace().map(str::to_owned).collect();
    if !ids.is_empty() {
        let _ = Command::new("docker").args(["rm", "-f", "-v"]).args(&ids).output();
    }
}

pub fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.expect("entry"))
        .map(|e| if e.file_type().expect("type").is_dir() { count_files(&e.path()) } else { 1 })
        .sum()
}

pub fn raw_request(port: u16, method: &str, target: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Polls `check` until it holds or `timeout` passes.
pub async fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts a problem+json response with `status`, and returns its `detail`.
pub async fn problem(response: Response, status: StatusCode) -> String {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type =
        response.headers().get("content-type").expect("content-type").to_str().expect("ascii").to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status.as_u16());
    let detail = body["detail"].as_str().expect("detail").to_owned();
    assert!(!detail.is_empty());
    detail
}

/// A `hangar serve` process.
pub struct ServerProcess {
    pub child: Child,
    pub address: String,
    pub port: u16,
}

pub fn hangar_command() -> Command {
    // The test's own reqwest clients need the process's rustls provider too.
    hangar::tls::install_provider();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hangar"));
    for var in [
        "HANGAR_LISTEN",
        "HANGAR_DATA_DIR",
        "HANGAR_DATABASE_URL",
        "HANGAR_CONFIG",
        "HANGAR_BOOTSTRAP_TOKEN",
        "HANGAR_ADMIN_PASSWORD",
        "HANGAR_BLOB_STORE",
    ] {
        command.env_remove(var);
    }
    command
}

/// `hangar ARGS --data-dir DIR` (an `admin` command), on the database a server on that dir
/// uses.
pub fn admin_command(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = hangar_command();
    command.args(args).arg("--data-dir").arg(data_dir);
    if let Some(url) = test_database_url(data_dir) {
        command.env("HANGAR_DATABASE_URL", url);
    }
    command
}

impl ServerProcess {
    /// Starts `hangar serve` on a free port and waits for its "serving on" line.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let mut command = hangar_command();
        command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir).args(extra);
        if let Some(url) = test_database_url(data_dir) {
            command.env("HANGAR_DATABASE_URL", url);
        }
        Self::spawn(command)
    }

    /// Runs `command` (a `hangar serve …`) with the test admin token, and waits for it to serve.
    pub fn spawn(mut command: Command) -> Self {
        command.env("RUST_LOG", "warn").stderr(Stdio::inherit());
        Self::launch(command)
    }

    /// As `spawn`, with the log at `level` written to `log`.
    pub fn spawn_logging(mut command: Command, log: std::fs::File, level: &str) -> Self {
        command.env("RUST_LOG", level).stderr(log);
        Self::launch(command)
    }

    fn launch(mut command: Command) -> Self {
        let mut child =
            command.env("HANGAR_BOOTSTRAP_TOKEN", ADMIN_TOKEN).stdout(Stdio::piped()).spawn().expect("spawn hangar");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        while !line.contains("serving on") {
            line.clear();
            let read = stdout.read_line(&mut line).expect("read stdout");
            assert!(read > 0, "hangar exited before serving");
        }
        let address = line.trim().rsplit(' ').next().expect("url").to_owned();
        let port = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        Self { child, address, port }
    }

    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(status.success());
    }

    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
