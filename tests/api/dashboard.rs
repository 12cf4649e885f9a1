//! The dashboard over plain HTTP: sessions, CSRF, escaping and security headers. The
//! browser flows are in `browser.rs`.

use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};

/// A client that keeps cookies but follows no redirects, signed in as a fresh user.
pub(crate) async fn signed_in(app: &TestApp, user: &str, role: &str) -> (reqwest::Client, String) {
    app.post_json("/api/v1/users", &json!({"name": user, "role": role, "password": format!("{user}-long-password")}))
        .await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = client
        .post(app.url("/login"))
        .form(&[("user", user), ("password", &format!("{user}-long-password")), ("next", "/")])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[SET_COOKIE].to_str().expect("ascii").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not Secure over plain HTTP: {cookie}");
    let value = cookie.split(';').next().expect("pair").to_owned();
    (client, value)
}

pub(crate) async fn page(client: &reqwest::Client, app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let response = client.get(app.url(path)).header("cookie", cookie).send().await.expect("get");
    (response.status(), response.text().await.expect("text"))
}

pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("value").to_owned()
}

#[tokio::test]
async fn pages_need_a_session_and_send_you_to_sign_in() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = client.get(app.url("/models/m?x=1")).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/login?next=/models/m%3Fx%3D1");
    let wrong =
        client.post(app.url("/login")).form(&[("user", "admin"), ("password", "nope")]).send().await.expect("post");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("text").contains("Unknown user or wrong password"));
    let offsite = client.get(app.url("/login?next=//evil.example/")).send().await.expect("get");
    assert_eq!(offsite.status(), StatusCode::BAD_REQUEST, "an off-site next is refused");
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (client, cookie) = signed_in(&app, "max", "maintainer").await;
    let refused = client
        .post(app.url("/models"))
        .header("cookie", &cookie)
        .form(&[("name", "sneaky")])
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.expect("text").contains("CSRF"));
    let forged = client
        .post(app.url("/models"))
        .header("cookie", &cookie)
        .form(&[("name", "sneaky"), ("csrf", "forged")])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.system().await["counts"]["models"], 0);

    let (_, home) = page(&client, &app, &cookie, "/").await;
    let created = client
        .post(app.url("/models"))
        .header("cookie", &cookie)
        .form(&[("name", "real"), ("csrf", &csrf_of(&home))])
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.system().await["counts"]["models"], 1);
}

#[tokio::test]
async fn the_api_takes_a_session_with_its_csrf_header_on_changes() {
    let app = spawn_app().await;
    let (client, cookie) = signed_in(&app, "max", "maintainer").await;
    let read = client.get(app.url("/api/v1/me")).header("cookie", &cookie).send().await.expect("me");
    assert_eq!(read.status(), StatusCode::OK);
    let without = client
        .post(app.url("/api/v1/models"))
        .header("cookie", &cookie)
        .json(&json!({"name": "a"}))
        .send()
        .await
        .expect("post");
    assert_eq!(without.status(), StatusCode::FORBIDDEN);
    let (_, home) = page(&client, &app, &cookie, "/").await;
    let with = client
        .post(app.url("/api/v1/models"))
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf_of(&home))
        .json(&json!({"name": "a"}))
        .send()
        .await
        .expect("post");
    assert_eq!(with.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn what_users_typed_is_escaped_and_model_cards_are_sanitized() {
    let app = spawn_app().await;
    let payload = "<script>window.pwned=1</script><img src=x onerror=alert(1)>";
    app.post_json("/api/v1/models", &json!({"name": "m", "description": payload, "tags": ["<b>t</b>"]})).await;
    app.create_version("m", "1").await;
    let card = format!("# Card\n\n{payload}\n\n[click](javascript:alert(2))\n");
    app.upload("m", "1", "README.md", card.as_bytes()).await;
    app.publish("m", "1").await;
    let (client, cookie) = signed_in(&app, "vera", "viewer").await;
    for path in ["/", "/models/m", "/models/m/versions/1"] {
        let (status, html) = page(&client, &app, &cookie, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        for bad in ["<script>window", "onerror=alert(1)>", "javascript:", "<b>t</b>"] {
            assert!(!html.contains(bad), "{path} contains {bad}");
        }
    }
    let (_, model) = page(&client, &app, &cookie, "/models/m").await;
    assert!(model.contains("<h1>Card</h1>"), "the card is rendered from Markdown");
    assert!(model.contains("&#60;script&#62;"), "the description is escaped, not dropped");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/login", "/api/v1/models", "/static/app.css"] {
        let response = app.get(path).await;
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().expect("ascii");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
    }
}

#[tokio::test]
async fn promoting_a_protected_alias_from_the_page_takes_an_admin() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"a")]).await;
    let (client, cookie) = signed_in(&app, "max", "maintainer").await;
    let (_, html) = page(&client, &app, &cookie, "/models/m").await;
    let csrf = csrf_of(&html);
    let promote = |alias: &'static str| {
        client
            .post(app.url("/models/m/aliases"))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str()), ("alias", alias), ("version", "1")])
            .send()
    };
    assert_eq!(promote("staging").await.expect("post").status(), StatusCode::SEE_OTHER);
    let refused = promote("prod").await.expect("post");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.expect("text").contains("protected"));
    let (_, after) = page(&client, &app, &cookie, "/models/m").await;
    assert!(after.contains("staging") && !after.contains(">prod<"), "only staging moved");
}

#[tokio::test]
async fn admins_manage_users_from_the_page_and_others_cannot() {
    let app = spawn_app().await;
    let (client, cookie) = signed_in(&app, "boss", "admin").await;
    let (status, html) = page(&client, &app, &cookie, "/users").await;
    assert_eq!(status, StatusCode::OK);
    let created = client
        .post(app.url("/users"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_of(&html).as_str()), ("name", "newbie"), ("role", "viewer"), ("password", "")])
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), StatusCode::OK);
    let shown = created.text().await.expect("text");
    let at = shown.find("id=\"newpassword\" readonly value=\"").expect("the generated password") + 33;
    let password = shown[at..].split('"').next().expect("value").to_owned();
    assert!(password.len() >= 20);
    let login = reqwest::Client::new()
        .post(app.url("/api/v1/login"))
        .json(&json!({"user": "newbie", "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::CREATED, "the shown password works");
    let disabled = client
        .post(app.url("/users/newbie"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_of(&html).as_str()), ("state", "disable")])
        .send()
        .await
        .expect("post");
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    let user: serde_json::Value = app.get("/api/v1/users/newbie").await.json().await.expect("json");
    assert_eq!(user["disabled"], true);

    let (viewer, viewer_cookie) = signed_in(&app, "vera", "viewer").await;
    let (status, _) = page(&viewer, &app, &viewer_cookie, "/users").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn files_upload_through_the_plain_form_without_javascript() {
    let app = spawn_app().await;
    app.create_model("m").await;
    let (client, cookie) = signed_in(&app, "max", "maintainer").await;
    let (status, html) = page(&client, &app, &cookie, "/models/m/upload").await;
    assert_eq!(status, StatusCode::OK);
    let weights: Vec<u8> = (0..(3 << 20)).map(|i: u32| (i % 249) as u8).collect();
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf_of(&html))
        .text("version", "1")
        .part("files", reqwest::multipart::Part::bytes(weights.clone()).file_name("weights.bin"))
        .part("files", reqwest::multipart::Part::bytes(b"# M\n".to_vec()).file_name("README.md"))
        .text("publish", "1")
        .text("alias", "staging");
    let response =
        client.post(app.url("/models/m/upload")).header("cookie", &cookie).multipart(form).send().await.expect("post");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/models/m/versions/1");
    let files: serde_json::Value = app.get("/api/v1/models/m/versions/1/files").await.json().await.expect("json");
    let items = files["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let stored = items.iter().find(|f| f["path"] == "weights.bin").expect("weights");
    assert_eq!(stored["digest"], crate::helpers::sha256_digest(&weights));
    let alias: serde_json::Value = app.get("/api/v1/models/m/aliases/staging").await.json().await.expect("json");
    assert_eq!(alias["version"], "1");

    let forged = reqwest::multipart::Form::new()
        .text("csrf", "forged")
        .part("files", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.bin"));
    let refused = client
        .post(app.url("/models/m/upload"))
        .header("cookie", &cookie)
        .multipart(forged)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.system().await["counts"]["versions"], 1, "nothing was created");
}

#[tokio::test]
async fn the_sign_in_form_is_refused_for_a_while_after_ten_failures() {
    let app = spawn_app().await;
    app.user_token("max", "maintainer").await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let attempt =
        |password: &'static str| client.post(app.url("/login")).form(&[("user", "max"), ("password", password)]).send();
    for _ in 0..10 {
        assert_eq!(attempt("wrong-password-x").await.expect("post").status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = attempt("max-long-password").await.expect("post");
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password, for now");
    let page = blocked.text().await.expect("text");
    assert!(page.contains("try again in") && page.contains("id=\"password\""), "a sign-in page that says why: {page}");
}

#[tokio::test]
async fn a_model_with_many_versions_shows_them_a_page_at_a_time() {
    let app = spawn_app().await;
    app.create_model("m").await;
    for v in 1..=60 {
        app.create_version("m", &v.to_string()).await;
    }
    let (client, cookie) = signed_in(&app, "vera", "viewer").await;
    let rows = |html: &str| html.matches("<a href=\"/models/m/versions/").count();
    let (status, newest) = page(&client, &app, &cookie, "/models/m").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows(&newest), 50);
    assert!(newest.contains("/models/m/versions/60\"") && !newest.contains("/models/m/versions/10\""));
    let at = newest.find("href=\"/models/m?before=").expect("a link to older versions") + 6;
    let older_link = newest[at..].split('"').next().expect("href").replace("&#38;", "&");
    let (status, older) = page(&client, &app, &cookie, &older_link).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rows(&older), 10);
    assert!(older.contains("/models/m/versions/10\"") && older.contains("/models/m/versions/1\""));
    assert!(!older.contains("?before="), "the oldest page has no further link");
    let (status, _) = page(&client, &app, &cookie, "/models/m?before=nonsense").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_users_link_is_in_the_nav_of_admins_only() {
    let app = spawn_app().await;
    for (user, role, shown) in [("boss", "admin", true), ("max", "maintainer", false), ("vera", "viewer", false)] {
        let (client, cookie) = signed_in(&app, user, role).await;
        let (_, html) = page(&client, &app, &cookie, "/").await;
        assert_eq!(html.contains("<a href=\"/users\">Users</a>"), shown, "{role}");
    }
}

#[tokio::test]
async fn the_byte_totals_on_the_system_page_follow_uploads_links_and_deletes() {
    let app = spawn_app().await;
    let bytes = |system: serde_json::Value| {
        (
            system["storage"]["logical_bytes"].as_i64().expect("logical"),
            system["storage"]["stored_bytes"].as_i64().expect("stored"),
        )
    };
    app.create_model("m").await;
    app.create_version("m", "1").await;
    assert_eq!(app.upload("m", "1", "a.bin", b"aaa").await.status(), StatusCode::CREATED);
    assert_eq!(app.upload("m", "1", "b.bin", b"bbbbb").await.status(), StatusCode::CREATED);
    assert_eq!(bytes(app.system().await), (8, 8));
    // The same bytes again under another path: logical grows, stored does not.
    assert_eq!(app.upload("m", "1", "copy.bin", b"aaa").await.status(), StatusCode::CREATED);
    assert_eq!(bytes(app.system().await), (11, 8));
    // A path given other bytes counts its new size only.
    app.upload("m", "1", "b.bin", b"bb").await;
    assert_eq!(bytes(app.system().await), (8, 10));
    assert_eq!(app.delete("/api/v1/models/m/versions/1/files/copy.bin").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(bytes(app.system().await), (5, 10));
    app.create_model("n").await;
    app.create_version("n", "1").await;
    app.upload("n", "1", "a.bin", b"aaa").await;
    assert_eq!(bytes(app.system().await), (8, 10));
    // Deleting a model removes its files by cascade; the blobs stay until collected.
    assert_eq!(app.delete("/api/v1/models/m").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(bytes(app.system().await), (3, 10));
    let (client, cookie) = signed_in(&app, "vera", "viewer").await;
    let (_, html) = page(&client, &app, &cookie, "/system").await;
    assert!(
        html.contains("<dt>Logical size</dt><dd>3 B</dd>") && html.contains("<dt>Stored on disk</dt><dd>10 B</dd>"),
        "{html}"
    );
}

#[tokio::test]
async fn the_activity_page_shows_the_newest_events_a_page_at_a_time_with_its_filter() {
    let app = spawn_app().await;
    for i in 0..60 {
        app.create_model(&format!("m{i:02}")).await;
    }
    app.create_model("other").await;
    let (client, cookie) = signed_in(&app, "vera", "viewer").await;
    let created = |html: &str| html.matches(">model.created</td>").count();
    let (status, newest) = page(&client, &app, &cookie, "/activity?action=model").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created(&newest), 50);
    assert!(newest.contains(">other</td>") && !newest.contains(">m10</td>"), "newest first");
    let at = newest.find("href=\"/activity?").expect("a link to older events") + 6;
    let older_link = newest[at..].split('"').next().expect("href").replace("&#38;", "&");
    assert!(older_link.contains("action=model"), "the filter is kept: {older_link}");
    let (status, older) = page(&client, &app, &cookie, &older_link).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created(&older), 11, "the rest: m00 to m10");
    assert!(older.contains(">m00</td>") && !older.contains("Older events"));
}

#[tokio::test]
async fn a_page_seen_before_shows_a_change_at_once() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"a")]).await;
    let (client, cookie) = signed_in(&app, "vera", "viewer").await;
    // Each page twice, so that the second view is the kept one; then a change, then again.
    for _ in 0..2 {
        assert!(!page(&client, &app, &cookie, "/").await.1.contains("fresh-model"));
        assert!(!page(&client, &app, &cookie, "/models/m").await.1.contains(">staging<"));
        assert!(!page(&client, &app, &cookie, "/models/m/versions/1").await.1.contains("b.bin"));
        assert!(!page(&client, &app, &cookie, "/activity").await.1.contains("fresh-model"));
    }
    app.create_model("fresh-model").await;
    app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "1"})).await;
    app.create_version("m", "2").await;
    app.upload("m", "2", "b.bin", b"b").await;
    assert!(page(&client, &app, &cookie, "/").await.1.contains("fresh-model"), "the list");
    let model = page(&client, &app, &cookie, "/models/m").await.1;
    assert!(model.contains(">staging<") && model.contains("/models/m/versions/2\""), "the model page");
    let diff = page(&client, &app, &cookie, "/models/m/versions/2?against=1").await.1;
    assert!(diff.contains(">a.bin</td>") && diff.contains(">b.bin</td>"), "the version page: {diff}");
    assert!(page(&client, &app, &cookie, "/activity").await.1.contains("fresh-model"), "the activity");
}
