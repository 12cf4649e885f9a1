//! Issue 12, the identity half: instance-wide operations need an admin without model globs,
//! a token caps the tokens it creates, a reset or a disable ends sessions, and a scoped
//! token sees only its models in the events, `/metrics` and `/api/v1/system`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, ServerProcess, TestApp, client_with, problem, spawn_app};

/// A token created by the bootstrap admin with `body`.
async fn token(app: &TestApp, body: Value) -> String {
    let response = app.post_json("/api/v1/tokens", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "create token {body}");
    response.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
}

/// Signs `user` in on the dashboard; the `name=value` of the session cookie.
async fn session(app: &TestApp, user: &str, password: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = client
        .post(app.url("/login"))
        .form(&[("user", user), ("password", password), ("next", "/")])
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign in {user}");
    let cookie = response.headers()[SET_COOKIE].to_str().expect("ascii");
    cookie.split(';').next().expect("pair").to_owned()
}

/// The status of `GET /api/v1/me` with the session cookie.
async fn me_with_cookie(app: &TestApp, cookie: &str) -> StatusCode {
    reqwest::Client::new().get(app.url("/api/v1/me")).header("cookie", cookie).send().await.expect("me").status()
}

async fn me_with_token(app: &TestApp, token: &str) -> StatusCode {
    client_with(token).get(app.url("/api/v1/me")).send().await.expect("me").status()
}

#[tokio::test]
async fn a_scoped_admin_token_cannot_do_anything_instance_wide() {
    let app = spawn_app().await;
    let vera = app.user_token("vera", "viewer").await;
    let scoped = client_with(&token(&app, json!({"name": "team-a", "role": "admin", "models": ["team-a/*"]})).await);
    let runtime = json!({
        "image": "example/server:1", "args": ["--port", "{port}"], "port": 8000, "health_path": "/health",
        "startup_deadline_secs": 60,
    });
    let refused = [
        scoped.post(app.url("/api/v1/users")).json(&json!({"name": "root2", "role": "admin"})),
        scoped.get(app.url("/api/v1/users")),
        scoped.get(app.url("/api/v1/users/vera")),
        scoped.post(app.url("/api/v1/users/vera/password")).json(&json!({})),
        scoped.patch(app.url("/api/v1/users/vera")).json(&json!({"role": "admin"})),
        scoped.patch(app.url("/api/v1/users/vera")).json(&json!({"disabled": true})),
        scoped.put(app.url("/api/v1/runtimes/custom")).json(&runtime),
        scoped.delete(app.url("/api/v1/runtimes/custom")),
        scoped.get(app.url("/api/v1/webhooks")),
    ];
    for request in refused {
        let request = request.build().expect("request");
        let what = format!("{} {}", request.method(), request.url().path());
        let response = scoped.execute(request).await.expect("send");
        let detail = problem(response, StatusCode::FORBIDDEN).await;
        assert!(
            detail.contains("limited to some models") && detail.contains("without model globs"),
            "{what}: {detail}"
        );
    }
    assert_eq!(app.get("/api/v1/users/root2").await.status(), StatusCode::NOT_FOUND, "no user was created");
    assert_eq!(me_with_token(&app, &vera).await, StatusCode::OK, "vera's password, role and tokens are intact");
    let me: Value = client_with(&vera).get(app.url("/api/v1/me")).send().await.expect("me").json().await.expect("json");
    assert_eq!(me["role"], "viewer");

    // Other users' tokens are instance-wide too: the scoped admin sees and revokes its own only.
    let listed: Value = scoped.get(app.url("/api/v1/tokens")).send().await.expect("list").json().await.expect("json");
    let users: Vec<&str> =
        listed["items"].as_array().expect("items").iter().filter_map(|t| t["user"].as_str()).collect();
    assert!(!users.is_empty() && users.iter().all(|u| *u == "admin"), "only the admin's own tokens: {users:?}");
    let vera_token: Value =
        client_with(&vera).get(app.url("/api/v1/tokens")).send().await.expect("list").json().await.expect("json");
    let vera_id = vera_token["items"][0]["id"].as_i64().expect("id");
    assert!(!listed["items"].as_array().expect("items").iter().any(|t| t["id"] == vera_id));
    let revoke = scoped.delete(app.url(&format!("/api/v1/tokens/{vera_id}"))).send().await.expect("revoke");
    assert_eq!(revoke.status(), StatusCode::NOT_FOUND, "answered as if it did not exist");
    assert_eq!(me_with_token(&app, &vera).await, StatusCode::OK);
}

#[tokio::test]
async fn a_token_with_an_expiry_cannot_mint_one_that_outlives_it() {
    let app = spawn_app().await;
    app.user_token("max", "maintainer").await;
    let parent = app.login("max", "max-long-password", Some("1h")).await;
    let parent_expiry = client_with(&parent).get(app.url("/api/v1/tokens")).send().await.expect("list");
    let parent_expiry =
        parent_expiry.json::<Value>().await.expect("json")["items"][0]["expires_at"].as_i64().expect("at");

    for asked in [json!({"name": "forever"}), json!({"name": "later", "expires_in": "30d"})] {
        let response = client_with(&parent).post(app.url("/api/v1/tokens")).json(&asked).send().await.expect("post");
        if asked.get("expires_in").is_some() {
            let detail = problem(response, StatusCode::FORBIDDEN).await;
            assert!(detail.contains("cannot outlive it"), "{detail}");
        } else {
            assert_eq!(response.status(), StatusCode::CREATED);
            let child: Value = response.json().await.expect("json");
            let expiry = child["expires_at"].as_i64().expect("a child of an expiring token expires");
            assert!(expiry <= parent_expiry, "child {expiry} outlives parent {parent_expiry}");
        }
    }
    let sooner =
        client_with(&parent).post(app.url("/api/v1/tokens")).json(&json!({"name": "soon", "expires_in": "10m"}));
    assert_eq!(sooner.send().await.expect("post").status(), StatusCode::CREATED);
    let wider = client_with(&parent)
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "up", "role": "admin"}))
        .send()
        .await
        .expect("post");
    assert_eq!(wider.status(), StatusCode::FORBIDDEN, "nor a higher role");
}

#[tokio::test]
async fn a_password_reset_ends_sessions_and_revokes_tokens_unless_asked_to_keep_them() {
    let app = spawn_app().await;
    let token = app.user_token("vera", "viewer").await;
    let cookie = session(&app, "vera", "vera-long-password").await;
    assert_eq!(me_with_cookie(&app, &cookie).await, StatusCode::OK);

    let reset = app.post_json("/api/v1/users/vera/password", &json!({"password": "a-new-long-password"})).await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_with_cookie(&app, &cookie).await, StatusCode::UNAUTHORIZED, "the session ended");
    assert_eq!(me_with_token(&app, &token).await, StatusCode::UNAUTHORIZED, "the token was revoked");

    let kept = app.login("vera", "a-new-long-password", None).await;
    let cookie = session(&app, "vera", "a-new-long-password").await;
    let reset = app
        .post_json("/api/v1/users/vera/password", &json!({"password": "a-third-long-password", "keep_tokens": true}))
        .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(me_with_cookie(&app, &cookie).await, StatusCode::UNAUTHORIZED, "sessions end either way");
    assert_eq!(me_with_token(&app, &kept).await, StatusCode::OK, "tokens kept as asked");
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_for_good() {
    let app = spawn_app().await;
    app.user_token("vera", "viewer").await;
    let cookie = session(&app, "vera", "vera-long-password").await;
    assert_eq!(app.patch_json("/api/v1/users/vera", &json!({"disabled": true})).await.status(), StatusCode::OK);
    assert_eq!(me_with_cookie(&app, &cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.patch_json("/api/v1/users/vera", &json!({"disabled": false})).await.status(), StatusCode::OK);
    assert_eq!(me_with_cookie(&app, &cookie).await, StatusCode::UNAUTHORIZED, "enabling again revives no session");
}

/// The actions of every event in a page of the log.
async fn actions(client: &reqwest::Client, app: &TestApp) -> Vec<(String, Option<String>)> {
    let page: Value =
        client.get(app.url("/api/v1/events?limit=1000")).send().await.expect("events").json().await.expect("json");
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| (e["action"].as_str().expect("action").to_owned(), e["model"].as_str().map(str::to_owned)))
        .collect()
}

#[tokio::test]
async fn a_scoped_token_sees_only_its_models_in_events_metrics_and_system() {
    let app = spawn_app().await;
    app.published("team-a/m", &[("a.bin", b"aaa")]).await;
    app.published("team-b/m", &[("b.bin", b"bbb")]).await;
    app.user_token("vera", "viewer").await;
    let scoped = client_with(&token(&app, json!({"name": "a", "role": "viewer", "models": ["team-a/*"]})).await);

    // The log: team-a's events only, nothing instance-wide.
    let seen = actions(&scoped, &app).await;
    assert!(seen.iter().any(|(_, m)| m.as_deref() == Some("team-a/m")), "{seen:?}");
    assert!(seen.iter().all(|(_, m)| m.as_deref() == Some("team-a/m")), "{seen:?}");
    let everything = actions(&client_with(ADMIN_TOKEN), &app).await;
    assert!(everything.iter().any(|(a, _)| a == "user.created"), "an unscoped admin sees all: {everything:?}");
    assert!(everything.iter().any(|(a, _)| a == "token.created"));

    // The live stream: a new user, token and team-b model reach the admin, not the scoped token.
    let stream = scoped.get(app.url("/api/v1/events/stream")).send().await.expect("stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let admin_stream = client_with(ADMIN_TOKEN).get(app.url("/api/v1/events/stream")).send().await.expect("stream");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.user_token("walt", "viewer").await;
    app.create_model("team-b/other").await;
    app.create_model("team-a/other").await;
    let scoped_text = read_until(stream, "team-a/other").await;
    assert!(!scoped_text.contains("user.created") && !scoped_text.contains("token.created"), "{scoped_text}");
    assert!(!scoped_text.contains("team-b/"), "{scoped_text}");
    let admin_text = read_until(admin_stream, "team-a/other").await;
    assert!(admin_text.contains("user.created") && admin_text.contains("team-b/other"), "{admin_text}");

    // Metrics cover every model: refused. The system view: no totals.
    let metrics = scoped.get(app.url("/metrics")).send().await.expect("metrics");
    let detail = problem(metrics, StatusCode::FORBIDDEN).await;
    assert!(detail.contains("limited to some models"), "{detail}");
    let system: Value = scoped.get(app.url("/api/v1/system")).send().await.expect("system").json().await.expect("json");
    assert!(system.get("counts").is_none() && system.get("storage").is_none(), "{system}");
    let full = app.system().await;
    assert_eq!(full["counts"]["models"], 4, "{full}");
}

/// The stream's text up to and including the first frame that mentions `needle`.
async fn read_until(mut response: reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await.expect("in time").expect("read");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("stream open")));
    }
    text
}

#[tokio::test]
async fn the_offline_password_reset_revokes_tokens_unless_told_to_keep_them() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    drop(ServerProcess::start(data_dir.path()));
    let run = |args: &[&str]| {
        let output = crate::helpers::admin_command(data_dir.path(), args).output().expect("run");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf8").trim().to_owned()
    };
    run(&["admin", "user", "create", "carol", "--role", "viewer"]);
    let token =
        |run: &dyn Fn(&[&str]) -> String| run(&["admin", "token", "create", "--user", "carol", "--role", "viewer"]);
    let revoked = token(&run);
    run(&["admin", "user", "reset-password", "carol"]);
    let kept = token(&run);
    run(&["admin", "user", "reset-password", "carol", "--keep-tokens"]);

    let server = ServerProcess::start(data_dir.path());
    let me = |token: String| {
        let url = format!("{}/api/v1/me", server.address);
        async move { client_with(&token).get(url).send().await.expect("me").status() }
    };
    assert_eq!(me(revoked).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(kept).await, StatusCode::OK);
}
