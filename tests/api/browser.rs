//! The dashboard in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver). Screenshots of each page land in `target/screenshots/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with, wait_until};

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
    crate::machine::chromium();
    let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
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
    // The sign-in page has an h1 too: wait for what only a signed-in page has.
    client.wait().for_element(Locator::Css("form.signout")).await.expect("a signed-in page");
}

async fn text_of(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.expect(css).text().await.expect("text")
}

/// Waits, without reloading, until the text of `css` is `want`.
async fn wait_for_text(client: &Client, css: &str, want: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let text = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{css} never said {want:?}; it says {text:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits, without reloading, until `css` matches an element that is shown (or, with
/// `shown` false, until nothing it matches is shown).
async fn wait_shown(client: &Client, css: &str, shown: bool, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let visible = match client.find(Locator::Css(css)).await {
            Ok(element) => element.is_displayed().await.unwrap_or(false),
            Err(_) => false,
        };
        if visible == shown {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{css} never became {}", if shown { "shown" } else { "hidden" });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_out(client: &Client) {
    client.find(Locator::Css("form.signout button")).await.expect("sign out").click().await.expect("click");
    client.wait().for_element(Locator::Id("password")).await.expect("the sign-in page");
}

async fn nav_links(client: &Client) -> Vec<String> {
    let mut links = Vec::new();
    for link in client.find_all(Locator::Css("nav a")).await.expect("nav") {
        links.push(link.attr("href").await.expect("href").unwrap_or_default());
    }
    links
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
    wait_for_text(&client, "h1 [data-field=state]", "stopped", Duration::from_secs(30)).await;
    wait_shown(&client, "[data-try-panel]", false, Duration::from_secs(5)).await;
    assert_eq!(text_of(&client, "time[data-field=started_at]").await, "—", "no uptime while stopped");
    screenshot(&client, "deployment-stopped").await;

    // Started from another client: the panel comes back when it runs, without a reload.
    let started = app.client.post(app.url(&format!("/api/v1/deployments/{name}/start"))).send().await.expect("start");
    assert!(started.status().is_success(), "start: {}", started.status());
    wait_for_text(&client, "h1 [data-field=state]", "starting", Duration::from_secs(10)).await;
    assert!(!client.find(Locator::Css("[data-try-panel]")).await.expect("panel").is_displayed().await.expect("shown"));
    wait_for_text(&client, "h1 [data-field=state]", "running", Duration::from_secs(30)).await;
    wait_shown(&client, "[data-try-panel]", true, Duration::from_secs(5)).await;
    assert!(text_of(&client, "table[data-live-events]").await.contains("deployment.running"), "events come in live");
    client.find(Locator::Css("form[data-try] button")).await.expect("send").click().await.expect("click");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client
        .find(Locator::Css("[data-try-output]"))
        .await
        .expect("out")
        .attr("data-done")
        .await
        .expect("attr")
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "no answer arrived after the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.find(Locator::Css("button[data-action=stop]")).await.expect("stop").click().await.expect("click");
    wait_for_text(&client, "h1 [data-field=state]", "stopped", Duration::from_secs(30)).await;
    client.close().await.expect("close");
}

#[tokio::test]
async fn deployments_made_elsewhere_appear_and_deleted_ones_go_without_a_reload() {
    if !crate::deployments::docker_ready() {
        return;
    }
    let app = spawn_app().await;
    crate::deployments::prepare(&app, "m", "test", &[], 30).await;
    app.post_json("/api/v1/users", &json!({"name": "max", "role": "maintainer", "password": "max-long-password"}))
        .await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    sign_in(&client, &app, "max", "max-long-password").await;
    client.goto(&app.url("/deployments")).await.expect("goto");
    wait_shown(&client, "[data-live-empty]", true, Duration::from_secs(5)).await;

    // Another user (the admin's token) makes two through the API; this page only watches.
    let (first, second) = (crate::deployments::unique("b-elsewhere"), crate::deployments::unique("a-elsewhere"));
    for name in [&first, &second] {
        let body = json!({"name": name, "model": "m:1", "runtime": "test", "start": false, "autostart": true});
        let created = app.post_json("/api/v1/deployments", &body).await;
        assert_eq!(created.status(), 202, "{}", created.text().await.unwrap_or_default());
    }
    for name in [&first, &second] {
        wait_shown(&client, &format!("tr[data-deployment='{name}']"), true, Duration::from_secs(10)).await;
    }
    wait_shown(&client, "[data-live-empty]", false, Duration::from_secs(5)).await;
    let row = text_of(&client, &format!("tr[data-deployment='{first}']")).await;
    assert!(row.contains("m:1") && row.contains("(test)") && row.contains("autostart"), "{row}");
    let order: Vec<String> = client
        .execute("return [...document.querySelectorAll('tr[data-deployment]')].map(r => r.dataset.deployment);", vec![])
        .await
        .expect("js")
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(order, [second.clone(), first.clone()], "rows in name order, as the server renders them");
    let link = client.find(Locator::Css(&format!("tr[data-deployment='{first}'] a"))).await.expect("link");
    assert_eq!(link.attr("href").await.expect("href").as_deref(), Some(format!("/deployments/{first}").as_str()));
    screenshot(&client, "deployments-live").await;

    for name in [&first, &second] {
        assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), 204);
        wait_shown(&client, &format!("tr[data-deployment='{name}']"), false, Duration::from_secs(10)).await;
    }
    wait_shown(&client, "[data-live-empty]", true, Duration::from_secs(5)).await;
    client.close().await.expect("close");
}

#[tokio::test]
async fn the_system_page_has_a_bar_per_gpu_and_one_for_the_shared_memory_pool() {
    // A DGX Spark as its config describes it: one GB10 whose unified memory NVML does not
    // report. GPU mode none: admission as on the Spark, but Docker is asked for no device.
    let app = spawn_app_with(|s| {
        s.gpus = Some(vec![hangar::runtime::GpuConfig {
            index: Some(0),
            uuid: None,
            name: Some("NVIDIA GB10".into()),
            memory_gib: Some(119.6),
        }]);
        s.gpu_mode = hangar::runtime::GpuMode::None;
    })
    .await;
    app.post_json("/api/v1/users", &json!({"name": "max", "role": "maintainer", "password": "max-long-password"}))
        .await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    sign_in(&client, &app, "max", "max-long-password").await;
    client.goto(&app.url("/system")).await.expect("goto");
    assert_eq!(text_of(&client, "[data-pool-text]").await, "0 of 119.6 GiB held: all free");
    let host = text_of(&client, "[data-host-text]").await;
    assert!(host.contains(" GiB in use, ") && host.ends_with("GiB available"), "{host}");
    let bars = client.find_all(Locator::Css("[data-pool] progress")).await.expect("bars");
    assert_eq!(bars.len(), 2, "the pool's bar and the host memory's");

    // Memory over time: a chart per window, each with its words and its table.
    let charts = client.find_all(Locator::Css("[data-memory-charts] svg[role=img]")).await.expect("charts");
    assert_eq!(charts.len(), 2, "the last hour and the last day");
    let title = client.find(Locator::Css("[data-memory-charts] svg title")).await.expect("title");
    assert_eq!(title.html(true).await.expect("title text"), "Memory, last hour");
    // The server samples every 15 s from its start; the first may land after the page did.
    let mut words = String::new();
    for _ in 0..40 {
        let desc = client.find(Locator::Css("[data-memory-charts] svg desc")).await.expect("desc");
        words = desc.html(true).await.expect("desc text");
        if !words.contains("no samples yet") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        client.refresh().await.expect("reload");
    }
    assert!(words.contains("Shared GPU pool held by deployments: 0 GiB of 119.6 GiB now"), "{words}");
    client.find(Locator::Css("[data-memory-charts] summary")).await.expect("summary").click().await.expect("open");
    let row = text_of(&client, "[data-memory-table] tbody tr:last-child").await;
    assert!(row.ends_with("0 of 119.6 GiB") && row.contains(" UTC"), "the table's newest row: {row}");
    screenshot(&client, "system-memory").await;

    if !crate::deployments::docker_ready() {
        return;
    }
    crate::deployments::prepare(&app, "m", "test", &[], 30).await;
    let name = crate::deployments::unique("pool");
    let body = json!({"name": name, "model": "m:1", "runtime": "test", "gpu_memory_gib": 16});
    assert_eq!(app.post_json("/api/v1/deployments", &body).await.status(), 202);
    crate::deployments::wait_for(&app, &name, "running", Duration::from_secs(30)).await;
    client.refresh().await.expect("reload");
    assert_eq!(text_of(&client, "[data-pool-text]").await, "16 of 119.6 GiB held: 16 GiB shared by 1 deployment");
    let pool_bar = client.find(Locator::Css("[data-pool] progress")).await.expect("bar");
    assert_eq!(pool_bar.attr("value").await.expect("value").as_deref(), Some("13"));
    let gpu = text_of(&client, ".gpu.card").await;
    assert!(gpu.contains("16 of 119.6 GiB in use") && gpu.contains(&format!("{name} (16 GiB)")), "{gpu}");
    screenshot(&client, "system-shared-pool").await;
    client.goto(&app.url("/deployments")).await.expect("goto");
    assert_eq!(text_of(&client, &format!("tr[data-deployment='{name}'] [data-field=gpus]")).await, "16 GiB of GPU 0");
    client.close().await.expect("close");
    app.client.post(app.url(&format!("/api/v1/deployments/{name}/stop"))).send().await.expect("stop");
    crate::deployments::wait_for(&app, &name, "stopped", Duration::from_secs(30)).await;
}

#[tokio::test]
async fn only_admins_see_the_users_link_and_they_manage_users_on_the_page() {
    let app = spawn_app().await;
    for (name, role) in [("boss", "admin"), ("max", "maintainer")] {
        let body = json!({"name": name, "role": role, "password": format!("{name}-long-password")});
        app.post_json("/api/v1/users", &body).await;
    }
    let driver = start_driver().await;
    let client = browser(&driver).await;
    sign_in(&client, &app, "boss", "boss-long-password").await;
    assert!(nav_links(&client).await.contains(&"/users".to_owned()), "admins have the Users link");
    client.find(Locator::Css("nav a[href='/users']")).await.expect("link").click().await.expect("click");
    client.wait().for_element(Locator::Css("tr[data-user=max]")).await.expect("the users table");
    client.find(Locator::Id("uname")).await.expect("name").send_keys("newbie").await.expect("type");
    client.find(Locator::Css("form.card button")).await.expect("create").click().await.expect("click");
    client.wait().for_element(Locator::Id("newpassword")).await.expect("the password, shown once");
    let password =
        client.find(Locator::Id("newpassword")).await.expect("field").prop("value").await.expect("value").expect("set");
    assert!(password.len() >= 20, "{password}");
    assert!(text_of(&client, "tr[data-user=newbie]").await.contains("viewer"));
    screenshot(&client, "users").await;
    sign_out(&client).await;

    sign_in(&client, &app, "max", "max-long-password").await;
    let links = nav_links(&client).await;
    assert!(!links.contains(&"/users".to_owned()), "no Users link for a maintainer: {links:?}");
    assert!(links.contains(&"/tokens".to_owned()));
    client.goto(&app.url("/users")).await.expect("goto");
    assert_eq!(text_of(&client, "h1").await, "403 Forbidden");
    screenshot(&client, "error").await;
    client.close().await.expect("close");
}

#[tokio::test]
async fn on_a_phone_the_nav_wraps_and_no_page_scrolls_sideways() {
    let app = spawn_app().await;
    let description = "A model whose description is long enough to wrap several times on a phone's narrow screen";
    app.post_json("/api/v1/models", &json!({"name": "team/llama", "description": description})).await;
    app.create_version("team/llama", "1").await;
    app.upload("team/llama", "1", "weights-with-a-long-file-name.safetensors", b"weights").await;
    app.upload("team/llama", "1", "README.md", b"# Llama\n\nA card.\n").await;
    app.publish("team/llama", "1").await;
    app.post_json("/api/v1/users", &json!({"name": "max", "role": "maintainer", "password": "max-long-password"}))
        .await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    client.set_window_size(375, 812).await.expect("a phone-sized window");
    sign_in(&client, &app, "max", "max-long-password").await;
    let width = client.execute("return window.innerWidth;", vec![]).await.expect("js");
    assert!(width.as_u64().is_some_and(|w| w <= 400), "the page is phone-wide: {width}");
    for (path, name) in [
        ("/", "phone-models"),
        ("/models/team/llama", "phone-model"),
        ("/models/team/llama/versions/1", "phone-version"),
        ("/models/team/llama/upload", "phone-upload"),
        ("/deployments", "phone-deployments"),
        ("/system", "phone-system"),
        ("/activity", "phone-activity"),
        ("/tokens", "phone-tokens"),
    ] {
        client.goto(&app.url(path)).await.expect("goto");
        client.wait().for_element(Locator::Css("h1")).await.expect("a page");
        let fits = client
            .execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![])
            .await
            .expect("js");
        assert_eq!(fits, json!(true), "{path} scrolls sideways on a phone");
        let rows = client
            .execute(
                "const tops = [...document.querySelectorAll('nav a')].map(a => a.getBoundingClientRect().top);
                 const right = Math.max(...[...document.querySelectorAll('nav a')].map(a => a.getBoundingClientRect().right));
                 return [new Set(tops).size, right <= window.innerWidth];",
                vec![],
            )
            .await
            .expect("js");
        assert!(rows[0].as_u64().is_some_and(|n| n > 1), "{path}: the nav wraps onto more than one line: {rows}");
        assert_eq!(rows[1], json!(true), "{path}: every nav link is on the screen");
        screenshot(&client, name).await;
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

/// A Chrome DevTools Protocol command, sent through chromedriver's endpoint for them.
async fn cdp(driver: &Driver, client: &Client, cmd: &str, params: serde_json::Value) {
    let session = client.session_id().await.expect("session").expect("a session id");
    let url = format!("http://127.0.0.1:{}/session/{session}/goog/cdp/execute", driver.port);
    let response =
        reqwest::Client::new().post(url).json(&json!({"cmd": cmd, "params": params})).send().await.expect("cdp");
    let status = response.status();
    assert!(status.is_success(), "{cmd}: {status} {}", response.text().await.unwrap_or_default());
}

#[tokio::test]
async fn a_folder_dropped_on_the_upload_page_is_read_in_full_past_a_hundred_entries() {
    let app = spawn_app().await;
    app.create_model("m").await;
    app.post_json("/api/v1/users", &json!({"name": "max", "role": "maintainer", "password": "max-long-password"}))
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("checkpoint");
    std::fs::create_dir_all(folder.join("tokenizer")).expect("mkdir");
    // Chromium hands a directory's entries out 100 at a time.
    for i in 0..150 {
        std::fs::write(folder.join(format!("shard-{i:03}.txt")), format!("shard {i}\n")).expect("write");
    }
    std::fs::write(folder.join("tokenizer/vocab.txt"), "a b c\n").expect("write");
    std::fs::write(folder.join("tokenizer/merges.txt"), "a b\n").expect("write");

    let driver = start_driver().await;
    let client = browser(&driver).await;
    sign_in(&client, &app, "max", "max-long-password").await;
    client.goto(&app.url("/models/m/upload")).await.expect("goto");
    client.find(Locator::Id("uversion")).await.expect("version").send_keys("1").await.expect("type");
    let at = client
        .execute(
            "const r = document.querySelector('[data-drop]').getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2];",
            vec![],
        )
        .await
        .expect("js");
    // The drag of a folder from the file manager, as Chromium receives it.
    for kind in ["dragEnter", "dragOver", "drop"] {
        let data = json!({"items": [], "files": [folder.display().to_string()], "dragOperationsMask": 1});
        cdp(&driver, &client, "Input.dispatchDragEvent", json!({"type": kind, "x": at[0], "y": at[1], "data": data}))
            .await;
    }
    wait_for_text(&client, "[data-drop]", "152 file(s) ready to upload", Duration::from_secs(20)).await;
    client.find(Locator::Css("form.upload button[type=submit]")).await.expect("upload").click().await.expect("click");
    let done = upload_finished(&client).await;
    assert!(done.contains("Version 1 is up"), "{done}");
    screenshot(&client, "upload-folder").await;
    assert_eq!(app.system().await["counts"]["files"], 152, "every file of the folder, subfolders too");
    for path in ["shard-000.txt", "shard-149.txt", "tokenizer/vocab.txt"] {
        let file = app.get(&format!("/api/v1/models/m/versions/1/files/{path}")).await;
        assert_eq!(file.status(), 200, "{path}: the dropped folder's own name is not part of the path");
    }
    client.close().await.expect("close");
}

#[tokio::test]
async fn the_usage_page_and_a_deployment_s_traffic_chart_what_the_gateway_counted() {
    if !crate::deployments::docker_ready() {
        return;
    }
    let app = spawn_app().await;
    app.post_json("/api/v1/users", &json!({"name": "ada", "role": "admin", "password": "ada-long-password"})).await;
    let name = crate::gateway::running_on(&app, &[]).await;
    for stream in [false, true] {
        let body = json!({"model": name, "stream": stream, "messages": [{"role": "user", "content": "hello"}]});
        let response = app.client.post(app.url("/v1/chat/completions")).json(&body).send().await.expect("chat");
        assert_eq!(response.status(), 200);
        response.text().await.expect("answer");
    }
    let counted = crate::usage::usage_of(&app.client, &app, "by=model", "m", 2).await;
    let tokens = counted["total"]["prompt_tokens"].as_i64().expect("n")
        + counted["total"]["completion_tokens"].as_i64().expect("n");

    let driver = start_driver().await;
    let client = browser(&driver).await;
    sign_in(&client, &app, "ada", "ada-long-password").await;
    client.goto(&app.url("/usage?by=model&window=hour")).await.expect("goto");
    let title = client.find(Locator::Css("svg[role=img] title")).await.expect("title");
    assert_eq!(title.html(true).await.expect("title text"), "Tokens by model, last hour");
    let desc = client.find(Locator::Css("svg[role=img] desc")).await.expect("desc").html(true).await.expect("text");
    assert!(desc.contains(&format!("m: {tokens} tokens in 2 requests")), "the chart's words match the API: {desc}");
    let row = text_of(&client, "[data-usage-table] tbody tr:first-child").await;
    assert!(row.starts_with("m 2 0"), "the table's row: {row}");
    screenshot(&client, "usage").await;

    client.goto(&app.url(&format!("/deployments/{name}"))).await.expect("goto");
    let charts = client.find_all(Locator::Css("[data-traffic] svg[role=img]")).await.expect("charts");
    assert_eq!(charts.len(), 8, "requests, latency, time to first token and tokens/s, for the last hour and day");
    let desc =
        client.find(Locator::Css("[data-traffic] svg desc")).await.expect("desc").html(true).await.expect("text");
    assert!(desc.starts_with("2 requests in all."), "{desc}");
    // The latency chart draws the API's percentiles: its largest p95 is the largest of the
    // minutes' p95 that the API reports for the same hour.
    let by_minute = crate::usage::usage_of(
        &app.client,
        &app,
        &format!("by=deployment&deployment={name}&from=-3600&step=1m"),
        &name,
        2,
    )
    .await;
    let p95 = by_minute["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["p95_ms"].as_f64())
        .reduce(f64::max)
        .expect("a p95");
    let latency = client.find(Locator::Id("latency-hour-d")).await.expect("desc").html(true).await.expect("text");
    assert!(
        latency.contains(&format!("95th percentile time to the end of the answer: at most {p95:.1} ms.")),
        "{latency} vs the API's {p95}"
    );
    client.execute("document.querySelector('[data-traffic]').scrollIntoView()", vec![]).await.expect("scroll");
    screenshot(&client, "deployment-traffic").await;
    // Ends the WebDriver session, which quits Chromium (killing chromedriver would not).
    client.close().await.expect("close");
    assert_eq!(app.delete(&format!("/api/v1/deployments/{name}")).await.status(), 204);
}
