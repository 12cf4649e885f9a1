//! The README's nginx example, run as written in front of a real Hangar: the `server` block is
//! taken from README.md itself (only its listen address, certificate paths and upstream are
//! swapped for the test's), wrapped in the few top-level lines any nginx.conf has, and served
//! by Debian's nginx on a free port with its own prefix, so a README that drifts from what
//! works fails here. Through it: a browser-style sign-in (its cookie Secure because nginx says
//! `X-Forwarded-Proto: https`), a CLI push and pull of a multi-MiB file streamed both ways
//! (nginx logs a warning whenever it spools a body to disk instead; none may appear), the
//! audit log's live stream arriving as events happen, the audit log recording the client's
//! address as nginx forwarded it, and (with Docker) the official OpenAI client's streamed
//! chat arriving in pieces through the gateway.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use hangar::forwarded::Cidr;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, hangar_command, spawn_app_with};
use crate::tls::{Pki, make_pki};

const README: &str = include_str!("../../README.md");

/// The client's own address: a loopback address that is not a trusted proxy, so what the
/// audit log records for it can only have come from nginx's `X-Forwarded-For`.
const CLIENT_ADDRESS: &str = "127.0.0.2";

/// The README's ```nginx block with `replacements` made, each of which must match exactly once
/// (so a changed example fails here, loudly, instead of being tested half-replaced).
fn readme_server_block(replacements: &[(&str, &str)]) -> String {
    let start = README.find("```nginx\n").expect("README.md has an ```nginx block") + "```nginx\n".len();
    let len = README[start..].find("```").expect("the ```nginx block ends");
    let mut block = README[start..start + len].to_owned();
    for (from, to) in replacements {
        assert_eq!(block.matches(from).count(), 1, "the README's nginx example should hold {from:?} once:\n{block}");
        block = block.replace(from, to);
    }
    block
}

/// nginx, run in the foreground from a prefix of its own (pid, logs and temp files in `dir`,
/// nothing under /etc or /var), in one process as the user running the tests; killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, server_block: impl Fn(u16) -> String) -> Self {
        let binary = crate::machine::nginx();
        // nginx takes no port 0: pick a free one, and another if it is taken meanwhile.
        for _ in 0..3 {
            let port = free_port();
            let config = dir.join("nginx.conf");
            let d = dir.display();
            std::fs::write(
                &config,
                format!(
                    "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                     events {{ worker_connections 64; }}\nhttp {{\n\
                     access_log {d}/access.log;\n\
                     client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
                     uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{}}}\n",
                    server_block(port)
                ),
            )
            .expect("write nginx.conf");
            let child = Command::new(&binary)
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start nginx");
            let mut nginx = Self { child, port, dir: dir.to_owned() };
            if nginx.listening() {
                return nginx;
            }
            let log = nginx.error_log();
            if !log.contains("Address already in use") {
                panic!("nginx did not start with the README's example:\n{log}");
            }
        }
        panic!("no free port for nginx after three tries");
    }

    /// Waits for the port to accept connections, or for nginx to exit.
    fn listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if self.child.try_wait().expect("nginx status").is_some() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                let _ = std::fs::write(self.dir.join("stderr.log"), stderr);
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not listen on {} within 10 s:\n{}", self.port, self.error_log());
    }

    fn error_log(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.dir.join(name)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A client that trusts the test CA, connects from `CLIENT_ADDRESS` and follows no redirect.
fn client(pki: &Pki) -> reqwest::Client {
    hangar::tls::install_provider();
    let pem = std::fs::read(&pki.ca).expect("read CA");
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("CA pem")])
        .local_address(CLIENT_ADDRESS.parse::<std::net::IpAddr>().expect("ip"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Hangar behind the README's nginx, which terminates TLS with a certificate of `pki`.
async fn behind_nginx(work: &Path, pki: &Pki) -> (TestApp, Nginx) {
    let proxy = Cidr::parse("127.0.0.1/32").expect("cidr");
    let app = spawn_app_with(move |s| s.trusted_proxies = vec![proxy]).await;
    let (cert, key) = (pki.files.cert.display().to_string(), pki.files.key.display().to_string());
    let upstream = format!("http://127.0.0.1:{}", app.port);
    let dir = work.join("nginx");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let nginx = Nginx::start(&dir, |port| {
        readme_server_block(&[
            ("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;")),
            ("/etc/ssl/hangar.pem", &cert),
            ("/etc/ssl/hangar.key", &key),
            ("http://127.0.0.1:8080", &upstream),
        ])
    });
    (app, nginx)
}

#[tokio::test]
async fn the_readme_nginx_example_signs_in_streams_files_both_ways_and_forwards_the_client_address() {
    let work = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(work.path(), "proxy");
    let (app, nginx) = behind_nginx(work.path(), &pki).await;
    let client = client(&pki);

    // Sign in as a browser would on this page: the origin check sees nginx's port in Host,
    // and X-Forwarded-Proto makes the cookie Secure.
    let password = "proxy-user-long-password";
    let made =
        app.post_json("/api/v1/users", &json!({"name": "viaproxy", "role": "admin", "password": password})).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let signed_in = client
        .post(nginx.url("/login"))
        .header("origin", nginx.url(""))
        .header("sec-fetch-site", "same-origin")
        .form(&[("user", "viaproxy"), ("password", password), ("next", "/")])
        .send()
        .await
        .expect("sign in through nginx");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "{}", signed_in.text().await.unwrap_or_default());
    let cookie = signed_in.headers().get("set-cookie").expect("a session cookie").to_str().expect("ascii").to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let home = client.get(nginx.url("/")).header("cookie", &session).send().await.expect("dashboard");
    assert_eq!(home.status(), StatusCode::OK, "the session works through nginx");

    // The live audit log through nginx: an event arrives while the stream stays open.
    let stream = client
        .get(nginx.url("/api/v1/events/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("event stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let mut stream = stream.bytes_stream();

    // An API call whose client claims another address: nginx appends the real one, which is
    // the one recorded, since the client is not a trusted proxy.
    let created = client
        .post(nginx.url("/api/v1/models"))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"name": "team/proxied"}))
        .send()
        .await
        .expect("create through nginx");
    assert_eq!(created.status(), StatusCode::CREATED);
    let mut seen = String::new();
    let arrived = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
            if seen.contains("team/proxied") {
                return;
            }
        }
    })
    .await;
    assert!(arrived.is_ok(), "the event did not come through nginx within 5 s; got {seen:?}");
    drop(stream);

    let events: Value = app.get("/api/v1/events?action=model.created").await.json().await.expect("json");
    let event = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["model"] == "team/proxied")
        .expect("the model.created event")
        .clone();
    assert_eq!(event["remote_addr"], CLIENT_ADDRESS, "{event}");

    // A CLI push and pull of a multi-MiB file through nginx, neither refused for its size nor
    // spooled to nginx's disk on the way.
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let weights: Vec<u8> = (0..24u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(src.join("weights.bin"), &weights).expect("write");
    let pushed = cli(&pki, &nginx, &["push", "--json", "--model", "team/proxied", src.to_str().expect("utf-8")]).await;
    assert_eq!(pushed.status.code(), Some(0), "{}", String::from_utf8_lossy(&pushed.stderr));
    let dest = work.path().join("dest");
    let pulled = cli(&pki, &nginx, &["pull", "team/proxied:1", dest.to_str().expect("utf-8")]).await;
    assert_eq!(pulled.status.code(), Some(0), "{}", String::from_utf8_lossy(&pulled.stderr));
    assert!(std::fs::read(dest.join("weights.bin")).expect("pulled") == weights, "the pulled file differs");

    // A client slower than Hangar: nginx passes the download on as the client takes it
    // instead of filling a temporary file with it (`proxy_buffering off`).
    let download = client
        .get(nginx.url("/api/v1/models/team/proxied/versions/1/files/weights.bin"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("download through nginx");
    assert_eq!(download.status(), StatusCode::OK);
    let mut download = download.bytes_stream();
    let mut got = download.next().await.expect("a first chunk").expect("chunk").to_vec();
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Some(chunk) = download.next().await {
        got.extend_from_slice(&chunk.expect("chunk"));
    }
    assert!(got == weights, "the slowly read download differs");

    let access = nginx.access_log();
    assert!(access.lines().any(|l| l.contains("PUT /api/v1/models/team/proxied/") && l.contains("\" 20")), "{access}");
    let errors = nginx.error_log();
    assert!(!errors.contains("buffered to a temporary file"), "nginx spooled a body to disk:\n{errors}");
}

#[tokio::test]
async fn the_official_openai_client_streams_a_chat_through_the_readme_nginx_example() {
    if !crate::deployments::docker_ready() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(work.path(), "proxy-chat");
    let (mut app, nginx) = behind_nginx(work.path(), &pki).await;
    let name = crate::gateway::running_on(&app, &["--token-delay-ms", "150"]).await;
    // From here the client's calls go through nginx; it checks that the streamed answer
    // arrives in pieces, the first well before the last.
    app.address = nginx.url("");
    crate::gateway::openai_chats_with(&app, &name, Some(pki.ca.clone())).await;
    assert!(nginx.access_log().contains("POST /v1/chat/completions"), "the chats went through nginx");
}

async fn cli(pki: &Pki, nginx: &Nginx, args: &[&str]) -> std::process::Output {
    let mut command = hangar_command();
    command
        .env("HANGAR_URL", nginx.url(""))
        .env("HANGAR_TOKEN", ADMIN_TOKEN)
        .env("HANGAR_CA_CERT", &pki.ca)
        .env_remove("RUST_LOG")
        .args(args)
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run hangar")
}
