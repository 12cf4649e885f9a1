//! The catalog on a Postgres server that goes away and comes back: calls answer 503 with
//! nothing changed (never a 401 that would tell a client its good token is bad), and the
//! same server process serves again once Postgres is back, without a restart. A cluster of
//! its own, since the test stops it (Debian's server binaries, as tests/with-postgres.sh).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, client_with, hangar_command};

/// A throwaway Postgres cluster on a free port; stopped and removed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    /// `None` where Postgres' server binaries are not installed.
    pub fn new() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").exists())?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let cluster = Self { dir, bin, port };
        if is_root() {
            let owned = Command::new("chown").arg("postgres:").arg(cluster.dir.path()).status().expect("chown");
            assert!(owned.success());
        }
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-A", "trust", "-U", "postgres"]);
        cluster.start();
        cluster.run("createdb", &["-h", "127.0.0.1", "-p", &cluster.port.to_string(), "-U", "postgres", "hangar"]);
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/hangar", self.port)
    }

    fn start(&self) {
        let options = format!("-p {} -k {} -c fsync=off", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Runs one of the server binaries, as the postgres user when we are root (Postgres
    /// refuses to run as root).
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command.args(args).output().expect("run a Postgres binary");
        assert!(output.status.success(), "{program}: {}", String::from_utf8_lossy(&output.stderr));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[tokio::test]
async fn while_postgres_is_gone_calls_are_503_and_the_same_server_serves_again_once_it_is_back() {
    let Some(cluster) = Cluster::new() else {
        panic!("Postgres' server binaries are missing: apt-get install postgresql (the CI installs it)");
    };
    let data = tempfile::tempdir().expect("tempdir");
    let mut command = hangar_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("HANGAR_DATABASE_URL", cluster.url());
    let server = ServerProcess::spawn(command);
    let admin = client_with(ADMIN_TOKEN);
    let models = format!("{}/api/v1/models", server.address);
    let made = admin.post(&models).json(&json!({"name": "before"})).send().await.expect("create");
    assert_eq!(made.status(), StatusCode::CREATED);
    // A token never used yet: its check must reach the database.
    let issued: Value = admin
        .post(format!("{}/api/v1/tokens", server.address))
        .json(&json!({"name": "fresh", "role": "maintainer"}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let fresh = client_with(issued["token"].as_str().expect("token"));

    cluster.stop();
    let started = Instant::now();
    let read = admin.get(&models).send().await.expect("list");
    assert_eq!(read.status(), StatusCode::SERVICE_UNAVAILABLE, "{}", read.text().await.unwrap_or_default());
    assert!(started.elapsed() < Duration::from_secs(20), "a 503 within the acquire timeout: {:?}", started.elapsed());
    let write = fresh.post(&models).json(&json!({"name": "during"})).send().await.expect("create");
    let status = write.status();
    let body = write.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a good token that cannot be checked is not a 401: {body}");
    assert!(body.contains("try again") && !body.contains("sqlx"), "{body}");

    cluster.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let made = fresh.post(&models).json(&json!({"name": "after"})).send().await.expect("create");
        if made.status() == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {}", made.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed: Value = admin.get(&models).send().await.expect("list").json().await.expect("json");
    let names: Vec<&str> =
        listed["items"].as_array().expect("items").iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "nothing was made while Postgres was gone: {names:?}");
    assert!(names.contains(&"before") && names.contains(&"after"), "{names:?}");
}
