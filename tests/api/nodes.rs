//! Two Hangar nodes on one machine sharing one Postgres catalog and one S3 bucket, each with
//! its own Docker engine: node A runs on the machine's engine, node B on a second `dockerd`
//! started here (its own socket, data root, bridge and containerd), so B's containers are
//! really out of A's reach. Deployed on B from A's API, chatted with through A's gateway,
//! B killed (its deployment `unknown`, nothing moved) and restarted (adopted), then moved.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::deployments::{IMAGE, docker_ready, unique};
use crate::helpers::{ADMIN_TOKEN, ServerProcess, client_with, hangar_command, sha256_digest, wait_until};
use crate::postgres::Cluster;
use crate::s3::S3Server;

/// A second Docker engine: `dockerd` with its own socket, data root, exec root and bridge,
/// the test image loaded into it. Its containers are removed and it is stopped on drop.
struct SecondEngine {
    dir: tempfile::TempDir,
    bridge: String,
    daemon: Option<std::process::Child>,
}

impl SecondEngine {
    fn start() -> Self {
        // Not under /tmp's tempdir default: dockerd's socket path must stay short.
        let dir = tempfile::Builder::new().prefix("hgr-d").tempdir_in("/var/tmp").expect("tempdir");
        let id = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let bridge = format!("hgr{id}");
        let subnet = u8::from_str_radix(&id[..2], 16).expect("hex");
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().expect("ip");
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["link", "add", "name", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("10.214.{subnet}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        std::fs::write(dir.path().join("daemon.json"), "{}").expect("daemon.json");
        let mut engine = Self { dir, bridge, daemon: None };
        let path = |name: &str| engine.dir.path().join(name).display().to_string();
        let log = std::fs::File::create(engine.dir.path().join("dockerd.log")).expect("log");
        let daemon = Command::new("dockerd")
            .args(["--host", &engine.host(), "--data-root", &path("root"), "--exec-root", &path("exec")])
            .args(["--pidfile", &path("pid"), "--config-file", &path("daemon.json"), "--bridge", &engine.bridge])
            // The machine's engine owns the host's NAT rules; this one leaves them alone.
            .args(["--iptables=false", "--ip-masq=false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        engine.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !engine.docker(&["info"]).status.success() {
            assert!(Instant::now() < deadline, "the second dockerd never answered; see {}", path("dockerd.log"));
            std::thread::sleep(Duration::from_millis(250));
        }
        let saved = Command::new("docker").args(["save", IMAGE]).output().expect("docker save");
        assert!(saved.status.success(), "docker save: {}", String::from_utf8_lossy(&saved.stderr));
        let mut load = Command::new("docker")
            .args(["--host", &engine.host(), "load"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("docker load");
        std::io::Write::write_all(load.stdin.as_mut().expect("stdin"), &saved.stdout).expect("image bytes");
        drop(load.stdin.take());
        assert!(load.wait().expect("load").success(), "the test image loads into the second engine");
        engine
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker").arg("--host").arg(self.host()).args(args).output().expect("docker")
    }

    /// Ids of this engine's containers of deployment `name`.
    fn containers_of(&self, name: &str) -> Vec<String> {
        let filter = format!("label=hangar.deployment={name}");
        let out = self.docker(&["ps", "-q", "--no-trunc", "--filter", &filter]);
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        let all = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&all.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut daemon) = self.daemon.take() {
            // SIGTERM: dockerd stops its containerd and unmounts what it mounted.
            let _ = Command::new("kill").arg(daemon.id().to_string()).status();
            let _ = daemon.wait();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
    }
}

/// Ids of the machine's own engine's containers of deployment `name`.
fn local_containers_of(name: &str) -> Vec<String> {
    let filter = format!("label=hangar.deployment={name}");
    let out = Command::new("docker").args(["ps", "-q", "--no-trunc", "--filter", &filter]).output().expect("docker");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
}

/// `hangar serve` as node `node` on `data_dir`, on the shared catalog and bucket of `config`.
fn start_node(node: &str, data_dir: &Path, config: &Path, database_url: &str, docker: Option<&str>) -> ServerProcess {
    let mut command = hangar_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--node", node, "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env("HANGAR_DATABASE_URL", database_url);
    if let Some(host) = docker {
        command.env("DOCKER_HOST", host);
    }
    ServerProcess::spawn(command)
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.json().await.expect("json")
}

/// Polls `url` (a deployment) until `check` holds, and returns it.
async fn wait_for(client: &reqwest::Client, url: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = get_json(client, url).await;
        if check(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "never {what}: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `hangar ARGS` against the node at `url`, as the admin.
fn cli(url: &str, args: &[&str]) -> std::process::Output {
    let mut command = hangar_command();
    command.env("HANGAR_URL", url).env("HANGAR_TOKEN", ADMIN_TOKEN).env_remove("RUST_LOG").args(args);
    command.output().expect("hangar runs")
}

/// The dashboard's session cookie of a new viewer, signed in on the node at `base`.
async fn signed_in(admin: &reqwest::Client, base: &str) -> String {
    let user = json!({"name": "vera", "role": "viewer", "password": "vera-long-password"});
    assert!(admin.post(format!("{base}/api/v1/users")).json(&user).send().await.expect("user").status().is_success());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let form = [("user", "vera"), ("password", "vera-long-password"), ("next", "/")];
    let response = client.post(format!("{base}/login")).form(&form).send().await.expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[reqwest::header::SET_COOKIE].to_str().expect("ascii");
    cookie.split(';').next().expect("pair").to_owned()
}

async fn dashboard(cookie: &str, base: &str, path: &str) -> String {
    let response = reqwest::Client::new().get(format!("{base}{path}")).header("cookie", cookie).send().await;
    let response = response.expect("page");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.expect("html")
}

async fn chat(client: &reqwest::Client, gateway: &str, model: &str) -> (StatusCode, String) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "which file?"}]});
    let response = client.post(format!("{gateway}/v1/chat/completions")).json(&body).send().await.expect("chat");
    (response.status(), response.text().await.expect("body"))
}

#[tokio::test]
async fn a_deployment_on_node_b_is_served_through_node_a_unknown_while_b_is_down_and_adopted_when_it_is_back() {
    if !docker_ready() {
        return;
    }
    let Some(cluster) = Cluster::new() else {
        panic!("Postgres' server binaries are missing: apt-get install postgresql (the CI installs it)");
    };
    let bucket = S3Server::start().await;
    let engine_b = SecondEngine::start();
    let shared = tempfile::tempdir().expect("tempdir");
    let config: PathBuf = shared.path().join("hangar.toml");
    std::fs::write(&config, format!("node_down_after_secs = 3\n{}", bucket.config_toml())).expect("config");
    let (dir_a, dir_b) = (tempfile::tempdir().expect("a"), tempfile::tempdir().expect("b"));
    let url = cluster.url();
    let node_a = start_node("a", dir_a.path(), &config, &url, None);
    let mut node_b = start_node("b", dir_b.path(), &config, &url, Some(&engine_b.host()));
    let admin = client_with(ADMIN_TOKEN);
    let a = node_a.address.clone();

    // A second server with a name already running is refused: one claim per node.
    let twin = hangar_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--node", "b", "--data-dir"])
        .arg(shared.path().join("twin"))
        .arg("--config")
        .arg(&config)
        .env("HANGAR_DATABASE_URL", &url)
        .env("HANGAR_BOOTSTRAP_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("twin");
    let said = String::from_utf8_lossy(&twin.stderr);
    assert!(!twin.status.success() && said.contains("node 'b' is already running"), "{said}");

    // The model goes in through A; its bytes are in the bucket, its rows in Postgres.
    let weights = b"the weights every node reads from the bucket";
    admin.post(format!("{a}/api/v1/models")).json(&json!({"name": "m"})).send().await.expect("model");
    admin.post(format!("{a}/api/v1/models/m/versions")).json(&json!({})).send().await.expect("version");
    let put = admin.put(format!("{a}/api/v1/models/m/versions/1/files/weights.bin")).body(&weights[..]);
    assert!(put.send().await.expect("put").status().is_success());
    admin.post(format!("{a}/api/v1/models/m/versions/1/publish")).send().await.expect("publish");
    let runtime = json!({
        "image": IMAGE, "args": ["--port", "{port}", "--served-model-name", "{served_name}"], "port": 8000,
        "health_path": "/health", "startup_deadline_secs": 30,
    });
    admin.put(format!("{a}/api/v1/runtimes/test")).json(&runtime).send().await.expect("runtime");

    let viewer = signed_in(&admin, &a).await;
    let nodes = get_json(&admin, &format!("{a}/api/v1/nodes")).await;
    let listed: Vec<(&str, bool, bool)> = nodes["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| (n["name"].as_str().expect("name"), n["up"] == true, n["this"] == true))
        .collect();
    assert_eq!(listed, [("a", true, true), ("b", true, false)], "{nodes}");
    let listed = cli(&a, &["nodes"]);
    let said = String::from_utf8_lossy(&listed.stdout);
    assert!(said.contains("a (this)\tup") && said.contains("b\tup\thttp://127.0.0.1:"), "{said}");

    // Deployed on B from A's API: B's engine runs it, A's has nothing.
    let name = unique("nodes");
    let body = json!({"name": name, "model": "m:1", "runtime": "test", "node": "b"});
    let created = admin.post(format!("{a}/api/v1/deployments")).json(&body).send().await.expect("deploy");
    assert_eq!(created.status(), StatusCode::ACCEPTED, "{}", created.text().await.unwrap_or_default());
    let at_a = format!("{a}/api/v1/deployments/{name}");
    let running = wait_for(&admin, &at_a, "running on b", |d| d["state"] == "running").await;
    assert_eq!(running["node"], "b");
    let on_b = engine_b.containers_of(&name);
    assert_eq!(on_b.len(), 1, "B's engine runs it");
    assert_eq!(running["container_id"].as_str(), Some(on_b[0].as_str()));
    assert!(local_containers_of(&name).is_empty(), "A's engine runs nothing of it");

    // Through A's gateway: relayed to B, whose container read the bytes from the bucket.
    let (status, answer) = chat(&admin, &a, &name).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains(&sha256_digest(weights)), "B's container serves the bucket's bytes: {answer}");
    // Streamed too: the events come through both nodes as they are sent.
    let body = json!({"model": name, "stream": true, "messages": [{"role": "user", "content": "again"}]});
    let streamed = admin.post(format!("{a}/v1/chat/completions")).json(&body).send().await.expect("stream");
    assert_eq!(streamed.headers()["content-type"], "text/event-stream");
    let events = streamed.text().await.expect("events");
    assert!(events.matches("data: ").count() > 2 && events.contains("data: [DONE]"), "{events}");
    // Counted once, by the node that served them, and seen from A's API (one catalog).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let usage = get_json(&admin, &format!("{a}/api/v1/usage?by=deployment")).await;
        let requests = usage["series"].as_array().expect("series").iter().find(|s| s["key"] == name.as_str());
        match requests.map(|s| s["total"]["requests"].clone()) {
            Some(n) if n == 2 => break,
            other => assert!(Instant::now() < deadline && other.is_none_or(|n| n.as_i64() < Some(2)), "{usage}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = admin.get(format!("{at_a}/logs?tail=20")).send().await.expect("logs");
    assert_eq!(logs.status(), StatusCode::OK, "A relays the logs call to B");
    assert!(logs.text().await.expect("logs").contains("serving"), "B's container's own output");

    // B goes away: A says so, the deployment is unknown, nothing is moved or stopped.
    node_b.child.kill().expect("kill B");
    node_b.child.wait().expect("reaped");
    let unknown = wait_for(&admin, &at_a, "unknown", |d| d["state"] == "unknown").await;
    assert_eq!(unknown["node"], "b", "nothing moved behind the team's back");
    let nodes = get_json(&admin, &format!("{a}/api/v1/nodes")).await;
    assert_eq!(nodes["items"][1]["up"], false, "{nodes}");
    let page = dashboard(&viewer, &a, &format!("/deployments/{name}")).await;
    assert!(page.contains(">unknown<"), "A's dashboard shows it unknown too: {page}");
    let page = dashboard(&viewer, &a, "/system").await;
    let row = page.split("data-node=\"b\"").nth(1).expect("B's row on the system page");
    assert!(row.split("</tr>").next().is_some_and(|row| row.contains(">down<")), "{page}");
    let (status, answer) = chat(&admin, &a, &name).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer.contains("node 'b'") && answer.contains("down"), "{answer}");
    assert_eq!(engine_b.containers_of(&name), on_b, "its container runs on");

    // B is back: it adopts its container (the same one, no second), and A serves it again.
    node_b = start_node("b", dir_b.path(), &config, &url, Some(&engine_b.host()));
    let back = wait_for(&admin, &at_a, "running again", |d| d["state"] == "running").await;
    assert_eq!(back["container_id"].as_str(), Some(on_b[0].as_str()), "adopted: {back}");
    assert_eq!(engine_b.containers_of(&name), on_b, "no second container");
    let (status, answer) = chat(&admin, &a, &name).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Moved to A when asked: B stops its container, A starts one; B's gateway relays to A.
    let moved = cli(&node_b.address, &["deploy", &name, "--move-to", "a", "--wait"]);
    let said = String::from_utf8_lossy(&moved.stdout);
    assert!(moved.status.success() && said.contains("running") && said.contains("node a"), "{said}");
    let on_a = wait_for(&admin, &at_a, "running on a", |d| d["state"] == "running" && d["node"] == "a").await;
    wait_until("B removes its container", Duration::from_secs(30), || engine_b.containers_of(&name).is_empty()).await;
    assert_eq!(local_containers_of(&name), [on_a["container_id"].as_str().expect("id").to_owned()]);
    let (status, answer) = chat(&admin, &node_b.address, &name).await;
    assert_eq!(status, StatusCode::OK, "B's gateway relays to A: {answer}");
    // A's gateway routed it to B before the move, made through B: B's write reached A's
    // routing table (Postgres notifies every node), so A now serves it itself.
    let (status, answer) = chat(&admin, &a, &name).await;
    assert_eq!(status, StatusCode::OK, "A serves it after a move made elsewhere: {answer}");
    let page = dashboard(&viewer, &a, "/deployments").await;
    assert!(page.contains("(test, on a)"), "the dashboard names the node: {page}");
    let events = get_json(&admin, &format!("{a}/api/v1/events?action=deployment.moved")).await;
    assert_eq!(events["items"][0]["details"]["from"], "b", "{events}");

    let deleted = admin.delete(&at_a).send().await.expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(local_containers_of(&name).is_empty());
}
