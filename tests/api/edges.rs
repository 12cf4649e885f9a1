//! Issue 12's edges: where sign-in may send you, who may post the sign-in form, the login
//! limiter's key and timing, and what an error answer tells (a request id, no internals).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{TestApp, catalog_execute, problem, spawn_app};

/// A client that follows no redirects, sending from `source` (any 127.x address reaches the
/// server), so that each test's failures count against an address of its own.
fn client_from(source: &str) -> reqwest::Client {
    let source: IpAddr = source.parse().expect("address");
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(source)
        .build()
        .expect("client")
}

async fn create_user(app: &TestApp, name: &str) {
    let body = json!({"name": name, "role": "viewer", "password": format!("{name}-long-password")});
    assert_eq!(app.post_json("/api/v1/users", &body).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn sign_in_sends_you_only_to_paths_on_this_site_and_refuses_the_rest_with_400() {
    let app = spawn_app().await;
    create_user(&app, "olga").await;
    let client = client_from("127.0.0.1");
    for next in [
        "/%09/evil.example",
        "//evil.example/",
        "/%5C/evil.example",
        "/%0D%0ASet-Cookie:%20x=1",
        "https://evil.example/",
        "evil",
    ] {
        let response = client.get(app.url(&format!("/login?next={next}"))).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "GET next={next}");
    }
    for next in ["/\t/evil.example", "/\r\nSet-Cookie: x=1", "/\\evil.example", "//evil.example"] {
        let form = [("user", "olga"), ("password", "olga-long-password"), ("next", next)];
        let response = client.post(app.url("/login")).form(&form).send().await.expect("post");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "POST next={next:?}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "no session for {next:?}");
    }
    let page = client.get(app.url("/login?next=/models/m%3Fx%3D1")).send().await.expect("get");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("text").contains("name=\"next\" value=\"/models/m?x=1\""));
    let form = [("user", "olga"), ("password", "olga-long-password"), ("next", "/models/m?x=1")];
    let signed_in = client.post(app.url("/login")).form(&form).send().await.expect("post");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()[LOCATION], "/models/m?x=1");
}

#[tokio::test]
async fn a_sign_in_form_posted_from_another_site_is_refused() {
    let app = spawn_app().await;
    create_user(&app, "olga").await;
    let client = client_from("127.0.0.1");
    let form = [("user", "olga"), ("password", "olga-long-password"), ("next", "/")];
    for (header, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let response = client.post(app.url("/login")).header(header, value).form(&form).send().await.expect("post");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{header}: {value}");
    }
    // A forwarded host is no one's word but a trusted proxy's: it cannot make another
    // site's origin look like ours.
    for (header, value) in [("x-forwarded-host", "evil.example"), ("forwarded", "host=evil.example")] {
        let response = client
            .post(app.url("/login"))
            .header("origin", "http://evil.example")
            .header(header, value)
            .form(&form)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{header}: {value}");
    }
    let own = client
        .post(app.url("/login"))
        .header("origin", app.address.as_str())
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .expect("post");
    assert_eq!(own.status(), StatusCode::SEE_OTHER, "a post from Hangar's own page signs in");
}

#[tokio::test]
async fn spaces_around_a_locked_out_name_do_not_get_past_the_limiter() {
    let app = spawn_app().await;
    create_user(&app, "auser").await;
    let attacker = client_from("127.0.0.2");
    for _ in 0..10 {
        let body = json!({"user": "auser", "password": "wrong-password-x"});
        let response = attacker.post(app.url("/api/v1/login")).json(&body).send().await.expect("login");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // From another address, so that only the user's own lockout can refuse it.
    let other = client_from("127.0.0.3");
    for user in [" auser", "auser ", "\tauser"] {
        let body = json!({"user": user, "password": "auser-long-password"});
        let api = other.post(app.url("/api/v1/login")).json(&body).send().await.expect("login");
        assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS, "API login as {user:?}");
        let form = [("user", user), ("password", "auser-long-password"), ("next", "/")];
        let page = other.post(app.url("/login")).form(&form).send().await.expect("post");
        assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS, "sign-in form as {user:?}");
        assert!(page.headers().get(SET_COOKIE).is_none());
    }
}

/// The median time of `n` failed API logins as `user`.
async fn median_refusal(app: &TestApp, client: &reqwest::Client, users: &[&str]) -> Duration {
    let mut times = Vec::new();
    for user in users {
        let started = Instant::now();
        let body = json!({"user": user, "password": "wrong-password-x"});
        let response = client.post(app.url("/api/v1/login")).json(&body).send().await.expect("login");
        times.push(started.elapsed());
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn an_unknown_user_costs_a_password_hash_like_a_known_one() {
    let app = spawn_app().await;
    create_user(&app, "kate").await;
    let client = client_from("127.0.0.4");
    // Four of each stays under the limiter's ten failures per address.
    let unknown = median_refusal(&app, &client, &["ghost-a", "ghost-b", "ghost-c", "ghost-d"]).await;
    let known = median_refusal(&app, &client, &["kate"; 4]).await;
    // Without the dummy hash an unknown user answered in ~6 ms and a known one in ~38 ms.
    assert!(unknown * 3 >= known, "unknown users answer in {unknown:?}, known ones in {known:?}");
}

#[tokio::test]
async fn every_answer_has_a_request_id_and_a_server_error_shows_only_that_id() {
    let app = spawn_app().await;
    let missing = app.get("/api/v1/models/nope").await;
    let id = missing.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["request_id"], id.as_str(), "the problem body repeats the header");
    let again = app.get("/api/v1/models/nope").await;
    assert_ne!(again.headers()["x-request-id"].to_str().expect("ascii"), id, "one id per request");
    let ok = app.get("/healthz").await;
    assert!(ok.headers().contains_key("x-request-id"), "successes carry one too");

    // Break the catalog under the running server: reading models now fails inside it.
    catalog_execute(app.data_dir.path(), "ALTER TABLE models RENAME TO models_gone").await;
    let failed = app.get("/api/v1/models").await;
    let id = failed.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let raw = failed.text().await.expect("text");
    let body: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(body["status"], 500);
    assert_eq!(body["request_id"], id.as_str());
    assert!(body["detail"].as_str().expect("detail").contains(&id), "the detail names the id: {raw}");
    for internal in ["models", "sqlite", "SQL", "no such table", "src/"] {
        assert!(!raw.contains(internal), "{internal} in {raw}");
    }
}

#[tokio::test]
async fn extractor_errors_are_problems_with_a_request_id_too() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/models"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("post");
    let id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let raw = response.text().await.expect("text");
    let body: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(body["status"], 400);
    assert_eq!(body["request_id"], id.as_str(), "{raw}");
    problem(app.get("/api/v1/models/nope").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn control_characters_and_bidi_overrides_are_refused_in_names_and_descriptions_and_nothing_is_stored() {
    let app = spawn_app().await;
    for name in ["ci\u{202E}gnp.exe", "red\u{1b}[31m", "nul\u{0}", "iso\u{2066}late"] {
        let detail =
            problem(app.post_json("/api/v1/tokens", &json!({"name": name})).await, StatusCode::BAD_REQUEST).await;
        assert!(detail.contains("token name"), "{name:?}: {detail}");
    }
    let tokens: Value = app.get("/api/v1/tokens").await.json().await.expect("json");
    assert_eq!(tokens["items"].as_array().expect("items").len(), 1, "only the bootstrap token: {tokens}");

    for description in ["a\u{0}b", "\u{1b}]8;;http://evil.example\u{7}click", "safe\u{202E}txt"] {
        let body = json!({"name": "m", "description": description});
        let detail = problem(app.post_json("/api/v1/models", &body).await, StatusCode::BAD_REQUEST).await;
        assert!(detail.contains("description holds the character U+"), "{description:?}: {detail}");
    }
    problem(app.get("/api/v1/models/m").await, StatusCode::NOT_FOUND).await;
    let tagged = json!({"name": "m", "tags": ["gpu\u{202E}"]});
    problem(app.post_json("/api/v1/models", &tagged).await, StatusCode::BAD_REQUEST).await;

    // Line breaks and tabs are text in a description.
    let card = json!({"name": "m", "description": "Line one\n\tindented"});
    assert_eq!(app.post_json("/api/v1/models", &card).await.status(), StatusCode::CREATED);
    problem(app.patch_json("/api/v1/models/m", &json!({"description": "x\u{202D}y"})).await, StatusCode::BAD_REQUEST)
        .await;
    let model: Value = app.get("/api/v1/models/m").await.json().await.expect("json");
    assert_eq!(model["description"], "Line one\n\tindented");
    let version = json!({"version": "1", "description": "\u{1b}[2J"});
    problem(app.post_json("/api/v1/models/m/versions", &version).await, StatusCode::BAD_REQUEST).await;
    problem(app.get("/api/v1/models/m/versions/1").await, StatusCode::NOT_FOUND).await;
    let hook = json!({"url": "http://ci.example/hook", "events": ["*"], "description": "d\u{202E}"});
    problem(app.post_json("/api/v1/webhooks", &hook).await, StatusCode::BAD_REQUEST).await;
}
