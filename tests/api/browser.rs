//! The dashboard in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver). Screenshots of each page land in `target/screenshots/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, wait_until};

/// A chromedriver process on a free port; killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver, installed by .ci/run)");
    wait_until("chromedriver listens", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    Driver { child, port }
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1280,1000"
        ]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn sign_in(client: &Client, app: &TestApp, user: &str, password: &str) {
    client.goto(&app.url("/")).await.expect("goto");
    assert!(
        client.current_url().await.expect("url").path().starts_with("/login"),
        "signed-out visitors land on sign in"
    );
    screenshot(client, "sign-in").await;
    client.find(Locator::Id("user")).await.expect("user field").send_keys(user).await.expect("type");
    client.find(Locator::Id("password")).await.expect("password field").send_keys(password).await.expect("type");
    client.find(Locator::Css("form button[type=submit]")).await.expect("button").click().await.expect("click");
    client.wait().for_element(Locator::Css("h1")).await.expect("a page");
}

async fn text_of(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.expect(css).text().await.expect("text")
}

#[tokio::test]
async fn sign_in_browse_create_promote_and_sign_out_in_a_real_browser() {
    let app = spawn_app().await;
    let payload = "<script>window.pwned = 1</script><img src=x onerror=\"window.pwned = 2\">";
    app.post_json("/api/v1/models", &json!({"name": "team/llama", "description": payload, "tags": ["chat"]})).await;
    app.create_version("team/llama", "1").await;
    app.upload("team/llama", "1", "weights.bin", b"weights").await;
    let card = format!("# Llama\n\nA *fine* model.\n\n{payload}\n\n| a | b |\n|---|---|\n| 1 | 2 |\n");
    app.upload("team/llama", "1", "README.md", card.as_bytes()).await;
    app.publish("team/llama", "1").await;
    app.post_json("/api/v1/users", &json!({"name": "max", "role": "maintainer", "password": "max-long-password"}))
        .await;

    let driver = start_driver().await;
    let client = browser(&driver).await;
    sign_in(&client, &app, "max", "max-long-password").await;
    assert_eq!(text_of(&client, "h1").await, "Models");
    assert!(text_of(&client, "table.list").await.contains("team/llama"));
    screenshot(&client, "models").await;

    // Create a model through the form.
    client.find(Locator::Id("name")).await.expect("name").send_keys("whisper").await.expect("type");
    client
        .find(Locator::Id("description"))
        .await
        .expect("description")
        .send_keys("speech to text")
        .await
        .expect("type");
    client.find(Locator::Css("form.card button")).await.expect("create").click().await.expect("click");
    client.wait().for_element(Locator::Css("p.notice")).await.expect("a notice");
    assert_eq!(text_of(&client, "h1").await, "whisper");

    // The model with the XSS payload: shown as text, never run.
    client.goto(&app.url("/models/team/llama")).await.expect("goto");
    client.wait().for_element(Locator::Css("article.markdown")).await.expect("the card");
    assert!(text_of(&client, "article.markdown").await.contains("A fine model."));
    assert!(text_of(&client, "p.description").await.contains("<script>"), "the description shows as text");
    let pwned = client.execute("return window.pwned === undefined;", vec![]).await.expect("script");
    assert_eq!(pwned, json!(true), "no payload ran");
    screenshot(&client, "model").await;

    // Promote an alias through the form.
    client.find(Locator::Id("alias")).await.expect("alias").send_keys("staging").await.expect("type");
    client.find(Locator::Css("form.inline button")).await.expect("promote").click().await.expect("click");
    client.wait().for_element(Locator::Css("p.notice")).await.expect("a notice");
    assert!(text_of(&client, "p.notice").await.contains("staging now points at version 1"));
    let alias: serde_json::Value =
        app.get("/api/v1/models/team/llama/aliases/staging").await.json().await.expect("json");
    assert_eq!(alias["updated_by"], "max");

    client.goto(&app.url("/models/team/llama/versions/1")).await.expect("goto");
    client.wait().for_element(Locator::Css("dl.facts")).await.expect("facts");
    assert!(text_of(&client, "dl.facts").await.contains("sha256:"), "the manifest digest is shown");
    screenshot(&client, "version").await;

    for (path, name) in [("/system", "system"), ("/activity?actor=max", "activity")] {
        client.goto(&app.url(path)).await.expect("goto");
        client.wait().for_element(Locator::Css("h1")).await.expect("a page");
        screenshot(&client, name).await;
    }
    assert!(text_of(&client, "table.list").await.contains("alias.moved"), "the activity shows max's alias move");

    // A token: its secret is shown once, then only its prefix; then it is revoked.
    client.goto(&app.url("/tokens")).await.expect("goto");
    client.find(Locator::Id("tname")).await.expect("name").send_keys("ci").await.expect("type");
    client.find(Locator::Css("form.card button")).await.expect("create").click().await.expect("click");
    client.wait().for_element(Locator::Id("secret")).await.expect("the secret");
    let secret =
        client.find(Locator::Id("secret")).await.expect("secret").prop("value").await.expect("value").expect("set");
    assert!(secret.starts_with("hgr_"), "{secret}");
    screenshot(&client, "tokens").await;
    let works = reqwest::Client::new().get(app.url("/api/v1/me")).bearer_auth(&secret).send().await.expect("me");
    assert_eq!(works.status(), 200);
    client.goto(&app.url("/tokens")).await.expect("goto");
    let page = client.source().await.expect("source");
    assert!(!page.contains(&secret[12..]), "the secret is not shown again");
    client.find(Locator::Css("button[data-revoke]")).await.expect("revoke").click().await.expect("click");
    client.wait().for_element(Locator::Css("p.notice")).await.expect("a notice");
    let revoked = reqwest::Client::new().get(app.url("/api/v1/me")).bearer_auth(&secret).send().await.expect("me");
    assert_eq!(revoked.status(), 401, "a revoked token stops working");

    // Sign out: back to the sign-in page, and the pages are closed again.
    client.find(Locator::Css("form.signout button")).await.expect("sign out").click().await.expect("click");
    client.wait().for_element(Locator::Id("password")).await.expect("the sign-in page");
    client.goto(&app.url("/")).await.expect("goto");
    assert!(client.current_url().await.expect("url").path().starts_with("/login"));
    client.close().await.expect("close");
}

#[tokio::test]
async fn a_deployment_turns_running_on_the_page_without_a_reload() {
    if !crate::deployments::docker_ready() {
        return;
    }
    let app = spawn_app().await;
    crate::deployments::prepare(&app, "m", "test", &["--listen-delay-secs", "1"], 30).await;
    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "1"})).await;
    app.post_json("/api/v1/users", &json!({"name": "max", "role": "maintainer", "password": "max-long-password"}))
        .await;
    let name = crate::deployments::unique("web");

    let driver = start_driver().await;
    let client = browser(&driver).await;
    sign_in(&client, &app, "max", "max-long-password").await;
    client.goto(&app.url("/deployments")).await.expect("goto");
    client.find(Locator::Id("target")).await.expect("target").send_keys("m@staging").await.expect("type");
    client.find(Locator::Css("#runtime option[value=test], #runtime option")).await.expect("runtime");
    client.execute("document.getElementById('runtime').value = 'test';", vec![]).await.expect("pick runtime");
    client.find(Locator::Id("dname")).await.expect("name").send_keys(&name).await.expect("type");
    client.find(Locator::Css("form.card button")).await.expect("deploy").click().await.expect("click");
    client.wait().for_element(Locator::Css("p.notice")).await.expect("a notice");
    let row = format!("tr[data-deployment='{name}'] [data-field=state]");
    let first = text_of(&client, &row).await;
    assert_ne!(first, "running", "still starting when the page loads (the server waits a second)");
    screenshot(&client, "deployments").await;

    // The page changes by itself: no goto, no refresh.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while text_of(&client, &row).await != "running" {
        assert!(std::time::Instant::now() < deadline, "the row never turned running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    screenshot(&client, "deployments-running").await;

    client.goto(&app.url(&format!("/deployments/{name}"))).await.expect("goto");
    client.wait().for_element(Locator::Css("[data-log]")).await.expect("the log");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !text_of(&client, "[data-log]").await.contains("serving") {
        assert!(std::time::Instant::now() < deadline, "the log tail never showed the server's output");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    screenshot(&client, "deployment").await;

    // The try-it panel streams an answer from the running server.
    client.find(Locator::Css("form[data-try] button")).await.expect("send").click().await.expect("click");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let output = client.find(Locator::Css("[data-try-output]")).await.expect("output");
        if output.attr("data-done").await.expect("attr").is_some() {
            assert!(output.text().await.expect("text").contains("sha256:"), "the answer names the mounted file");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no answer arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    screenshot(&client, "try-it").await;
    client.find(Locator::Css("button[data-action=stop]")).await.expect("stop").click().await.expect("click");
    client.wait().for_element(Locator::Css("p.notice")).await.expect("a notice");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while text_of(&client, "h1 [data-field=state]").await != "stopped" {
        assert!(std::time::Instant::now() < deadline, "the state never turned stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.close().await.expect("close");
}

/// Waits until the upload page says it is done, and returns what it says.
async fn upload_finished(client: &Client) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done = client.find(Locator::Css("[data-upload-done]")).await.expect("status");
        let text = done.text().await.unwrap_or_default();
        if !text.is_empty() {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "the upload never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn files_upload_through_the_page_with_progress_and_known_bytes_are_not_sent_again() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.post_json("/api/v1/users", &json!({"name": "max", "role": "maintainer", "password": "max-long-password"}))
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("weights.bin");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&big).expect("create");
        let block: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
        for _ in 0..200 {
            file.write_all(&block).expect("write");
        }
    }
    let readme = dir.path().join("README.md");
    std::fs::write(&readme, "# M\n\nUploaded from the browser.\n").expect("write");
    let big_digest = {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        let block: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
        for _ in 0..200 {
            hasher.update(&block);
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    };

    let driver = start_driver().await;
    let client = browser(&driver).await;
    sign_in(&client, &app, "max", "max-long-password").await;
    for (version, expect_status) in [("1", "uploaded, verified"), ("2", "already stored")] {
        client.goto(&app.url("/models/m/upload")).await.expect("goto");
        client.find(Locator::Id("uversion")).await.expect("version").send_keys(version).await.expect("type");
        let files = format!("{}\n{}", big.display(), readme.display());
        client.find(Locator::Id("ufiles")).await.expect("file input").send_keys(&files).await.expect("pick files");
        if version == "1" {
            client.find(Locator::Id("ualias")).await.expect("alias").send_keys("staging").await.expect("type");
        }
        client
            .find(Locator::Css("form.upload button[type=submit]"))
            .await
            .expect("upload")
            .click()
            .await
            .expect("click");
        let done = upload_finished(&client).await;
        assert!(done.contains(&format!("Version {version} is up")), "{done}");
        let status = text_of(&client, "tr[data-file='weights.bin']").await;
        assert!(status.contains(expect_status), "version {version}: {status}");
        screenshot(&client, &format!("upload-{version}")).await;
    }
    let files: serde_json::Value = app.get("/api/v1/models/m/versions/1/files").await.json().await.expect("json");
    let weights =
        files["items"].as_array().expect("items").iter().find(|f| f["path"] == "weights.bin").expect("weights");
    assert_eq!(weights["digest"], big_digest.as_str());
    assert_eq!(weights["size"], 200 << 20);
    let version: serde_json::Value = app.get("/api/v1/models/m/versions/1").await.json().await.expect("json");
    assert_eq!(version["state"], "ready");
    assert_eq!(version["aliases"], json!(["staging"]));
    let system = app.system().await;
    assert_eq!(system["counts"]["blobs"], 2, "version 2 linked the same bytes, stored once");
    client.close().await.expect("close");
}
