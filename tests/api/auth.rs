//! Who may do what: every `/api/v1` route against every kind of caller, tokens, users,
//! protected aliases, bootstrap, the login limiter and the audit log.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_TOKEN, ServerProcess, TestApp, client_with, problem, sha256_digest, spawn_app, spawn_app_with,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Anyone, with or without credentials (even bad ones).
    Public,
    Viewer,
    Maintainer,
    Admin,
}

/// One route: method, path, JSON body (or raw bytes for uploads), the role it needs, and
/// whether it touches one model (and so is subject to a token's model globs).
struct Route {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    needs: Needs,
    on_model: bool,
}

fn route(method: Method, path: &'static str, body: Option<Value>, needs: Needs, on_model: bool) -> Route {
    Route { method, path, body, needs, on_model }
}

fn routes() -> Vec<Route> {
    use Needs::{Admin, Maintainer, Public, Viewer};
    let digest = sha256_digest(b"aaa");
    let runtime = json!({
        "image": "example/server:1", "args": ["--port", "{port}"], "port": 8000, "health_path": "/health",
        "startup_deadline_secs": 60,
    });
    vec![
        route(Method::GET, "/api/v1/models", None, Viewer, false),
        route(Method::POST, "/api/v1/models", Some(json!({"name": "team-a/new"})), Maintainer, true),
        route(Method::GET, "/api/v1/models/team-a/m", None, Viewer, true),
        route(Method::PATCH, "/api/v1/models/team-a/m", Some(json!({"description": "d"})), Maintainer, true),
        route(Method::DELETE, "/api/v1/models/team-a/doomed", None, Admin, true),
        route(Method::GET, "/api/v1/models/team-a/m/versions", None, Viewer, true),
        route(Method::POST, "/api/v1/models/team-a/m/versions", Some(json!({})), Maintainer, true),
        route(Method::GET, "/api/v1/models/team-a/m/versions/1", None, Viewer, true),
        route(Method::PATCH, "/api/v1/models/team-a/m/versions/2", Some(json!({"description": "d"})), Maintainer, true),
        route(Method::DELETE, "/api/v1/models/team-a/m/versions/3", None, Admin, true),
        route(Method::GET, "/api/v1/models/team-a/m/versions/1/files", None, Viewer, true),
        route(Method::PUT, "/api/v1/models/team-a/m/versions/2/files/x.bin", None, Maintainer, true),
        route(
            Method::POST,
            "/api/v1/models/team-a/m/versions/2/files/y.bin",
            Some(json!({"digest": digest, "size": 3})),
            Maintainer,
            true,
        ),
        route(Method::GET, "/api/v1/models/team-a/m/versions/1/files/a.bin", None, Viewer, true),
        route(Method::HEAD, "/api/v1/models/team-a/m/versions/1/files/a.bin", None, Viewer, true),
        route(Method::DELETE, "/api/v1/models/team-a/m/versions/2/files/d.bin", None, Maintainer, true),
        route(Method::POST, "/api/v1/models/team-a/m/versions/2/publish", None, Maintainer, true),
        route(Method::GET, "/api/v1/models/team-a/m/aliases", None, Viewer, true),
        route(Method::PUT, "/api/v1/models/team-a/m/aliases/staging", Some(json!({"version": "1"})), Maintainer, true),
        route(Method::GET, "/api/v1/models/team-a/m/aliases/staging", None, Viewer, true),
        route(Method::DELETE, "/api/v1/models/team-a/m/aliases/gone", None, Maintainer, true),
        route(Method::PUT, "/api/v1/models/team-a/m/aliases/prod", Some(json!({"version": "1"})), Admin, true),
        route(
            Method::HEAD,
            "/api/v1/blobs/sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
            None,
            Viewer,
            false,
        ),
        route(Method::GET, "/api/v1/system", None, Viewer, false),
        route(Method::GET, "/api/v1/events", None, Viewer, false),
        route(Method::GET, "/api/v1/me", None, Viewer, false),
        route(Method::GET, "/api/v1/tokens", None, Viewer, false),
        route(Method::POST, "/api/v1/tokens", Some(json!({"name": "t", "role": "viewer"})), Viewer, false),
        route(Method::DELETE, "/api/v1/tokens/999999", None, Viewer, false),
        route(Method::GET, "/api/v1/users", None, Admin, false),
        route(Method::POST, "/api/v1/users", Some(json!({"name": "someone", "role": "viewer"})), Admin, false),
        route(Method::GET, "/api/v1/users/vera", None, Admin, false),
        route(Method::PATCH, "/api/v1/users/nobody", Some(json!({"role": "viewer"})), Admin, false),
        route(Method::POST, "/api/v1/users/nobody/password", Some(json!({})), Admin, false),
        route(
            Method::GET,
            "/api/v1/blobs/sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
            None,
            Viewer,
            false,
        ),
        route(Method::GET, "/api/v1/events/stream", None, Viewer, false),
        // Counts every model: a token limited to some models is refused.
        route(Method::GET, "/metrics", None, Viewer, true),
        route(Method::GET, "/api/v1/runtimes", None, Viewer, false),
        route(Method::GET, "/api/v1/runtimes/vllm", None, Viewer, false),
        route(Method::PUT, "/api/v1/runtimes/custom", Some(runtime), Admin, false),
        route(Method::DELETE, "/api/v1/runtimes/custom", None, Admin, false),
        route(Method::GET, "/api/v1/deployments", None, Viewer, false),
        // The model is checked against the token's globs before anything else is looked at;
        // the unknown runtime then stops an allowed caller before Docker is asked.
        route(
            Method::POST,
            "/api/v1/deployments",
            Some(json!({"model": "team-a/m:1", "runtime": "no-such-runtime"})),
            Maintainer,
            true,
        ),
        // A deployment that does not exist: the role is checked before the lookup, the
        // model globs (which need the deployment's model) after it, so these say 404 to a
        // caller of the right role whatever its globs.
        route(Method::GET, "/api/v1/deployments/ghost", None, Viewer, false),
        route(Method::DELETE, "/api/v1/deployments/ghost", None, Maintainer, false),
        route(Method::POST, "/api/v1/deployments/ghost/start", None, Maintainer, false),
        route(Method::POST, "/api/v1/deployments/ghost/stop", None, Maintainer, false),
        route(Method::POST, "/api/v1/deployments/ghost/restart", None, Maintainer, false),
        route(Method::GET, "/api/v1/deployments/ghost/logs", None, Viewer, false),
        route(Method::GET, "/api/v1/webhooks", None, Admin, false),
        route(
            Method::POST,
            "/api/v1/webhooks",
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]})),
            Admin,
            false,
        ),
        route(Method::GET, "/api/v1/webhooks/999999", None, Admin, false),
        route(Method::PATCH, "/api/v1/webhooks/999999", Some(json!({"active": false})), Admin, false),
        route(Method::DELETE, "/api/v1/webhooks/999999", None, Admin, false),
        route(Method::GET, "/api/v1/webhooks/999999/deliveries", None, Admin, false),
        route(Method::POST, "/api/v1/webhooks/999999/ping", None, Admin, false),
        route(Method::GET, "/api/v1/openapi.json", None, Public, false),
        route(Method::GET, "/healthz", None, Public, false),
        route(Method::GET, "/readyz", None, Public, false),
    ]
}

/// The kinds of caller in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Anonymous,
    Viewer,
    Maintainer,
    Admin,
    Expired,
    Revoked,
    /// A maintainer token limited to `team-b/*`.
    WrongGlob,
}

/// What the table expects: refused with 401, with 403, or let through to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unauthorized,
    Forbidden,
    Allowed,
}

fn expected(kind: Kind, route: &Route) -> Expect {
    if route.needs == Needs::Public {
        return Expect::Allowed;
    }
    let role = match kind {
        Kind::Anonymous | Kind::Expired | Kind::Revoked => return Expect::Unauthorized,
        Kind::Viewer => Needs::Viewer,
        Kind::Maintainer | Kind::WrongGlob => Needs::Maintainer,
        Kind::Admin => Needs::Admin,
    };
    let rank = |n: Needs| match n {
        Needs::Public | Needs::Viewer => 0,
        Needs::Maintainer => 1,
        Needs::Admin => 2,
    };
    if rank(role) < rank(route.needs) || (kind == Kind::WrongGlob && route.on_model) {
        Expect::Forbidden
    } else {
        Expect::Allowed
    }
}

async fn fixture(app: &TestApp) {
    app.published("team-a/m", &[("a.bin", b"aaa")]).await;
    app.create_model("team-a/doomed").await;
    app.create_version("team-a/m", "2").await;
    app.upload("team-a/m", "2", "d.bin", b"ddd").await;
    app.create_version("team-a/m", "3").await;
    app.put_json("/api/v1/models/team-a/m/aliases/staging", &json!({"version": "1"})).await;
}

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_roles_say() {
    let app = spawn_app().await;
    fixture(&app).await;
    let viewer = app.user_token("vera", "viewer").await;
    let maintainer = app.user_token("max", "maintainer").await;
    let expired = app.login("max", "max-long-password", Some("1s")).await;
    let revoked = app.login("max", "max-long-password", None).await;
    let revoked_id =
        client_with(&revoked).get(app.url("/api/v1/me")).send().await.expect("me").json::<Value>().await.expect("json")
            ["token_id"]
            .as_i64()
            .expect("id");
    assert_eq!(app.delete(&format!("/api/v1/tokens/{revoked_id}")).await.status(), StatusCode::NO_CONTENT);
    let created = client_with(&maintainer)
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "ci-b", "models": ["team-b/*"]}))
        .send()
        .await
        .expect("token");
    assert_eq!(created.status(), StatusCode::CREATED);
    let wrong_glob = created.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let callers = [
        (Kind::Anonymous, reqwest::Client::new()),
        (Kind::Expired, client_with(&expired)),
        (Kind::Revoked, client_with(&revoked)),
        (Kind::WrongGlob, client_with(&wrong_glob)),
        (Kind::Viewer, client_with(&viewer)),
        (Kind::Maintainer, client_with(&maintainer)),
        (Kind::Admin, client_with(ADMIN_TOKEN)),
    ];
    let mut failures = Vec::new();
    for route in routes() {
        for (kind, client) in &callers {
            let mut request = client.request(route.method.clone(), app.url(route.path));
            request = match &route.body {
                Some(body) => request.json(body),
                None if route.method == Method::PUT => request.body("upload"),
                None => request,
            };
            let response = request.send().await.expect("request");
            let status = response.status();
            let got = match status {
                StatusCode::UNAUTHORIZED => Expect::Unauthorized,
                StatusCode::FORBIDDEN => Expect::Forbidden,
                _ => Expect::Allowed,
            };
            let want = expected(*kind, &route);
            if got != want || status.is_server_error() {
                failures.push(format!("{} {} as {kind:?}: {status}, expected {want:?}", route.method, route.path));
            }
            if status == StatusCode::UNAUTHORIZED {
                assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"hangar\"");
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn refusals_say_which_role_or_model_is_needed() {
    let app = spawn_app().await;
    app.create_model("team-a/m").await;
    let viewer = app.user_token("vera", "viewer").await;
    let response =
        client_with(&viewer).post(app.url("/api/v1/models")).json(&json!({"name": "x"})).send().await.expect("post");
    let detail = problem(response, StatusCode::FORBIDDEN).await;
    assert!(detail.contains("needs the maintainer role") && detail.contains("'vera' has viewer"), "{detail}");

    let limited = client_with(ADMIN_TOKEN)
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "ci", "role": "maintainer", "models": ["team-b/*"]}))
        .send()
        .await
        .expect("token")
        .json::<Value>()
        .await
        .expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let response = client_with(&limited).get(app.url("/api/v1/models/team-a/m")).send().await.expect("get");
    let detail = problem(response, StatusCode::FORBIDDEN).await;
    assert!(detail.contains("limited to models team-b/*") && detail.contains("'team-a/m'"), "{detail}");
    let listed: Value =
        client_with(&limited).get(app.url("/api/v1/models")).send().await.expect("list").json().await.expect("json");
    assert_eq!(listed["items"], json!([]), "a limited token lists only its models");

    let response = reqwest::Client::new().get(app.url("/api/v1/models")).send().await.expect("get");
    let detail = problem(response, StatusCode::UNAUTHORIZED).await;
    assert!(detail.contains("Authorization: Bearer"), "{detail}");
}

#[tokio::test]
async fn a_token_secret_is_shown_once_and_never_again_nor_logged() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let log_path = data_dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut command = crate::helpers::hangar_command();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir.path().join("data"))
        .env("HANGAR_ADMIN_PASSWORD", "admin-long-password");
    let server = ServerProcess::spawn_logging(command, log, "debug");
    let admin = client_with(ADMIN_TOKEN);
    let api = |path: &str| format!("{}/api/v1{path}", server.address);
    let created: Value = admin
        .post(api("/tokens"))
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let secret = created["token"].as_str().expect("token").to_owned();
    assert!(secret.starts_with("hgr_") && secret.len() >= 47, "{secret}");

    let ci = client_with(&secret);
    let mut bodies = Vec::new();
    for path in ["/me", "/tokens", "/events", "/models", "/models/nope"] {
        bodies.push(ci.get(api(path)).send().await.expect("get").text().await.expect("text"));
        bodies.push(admin.get(api(path)).send().await.expect("get").text().await.expect("text"));
    }
    let mut wrong = secret.clone();
    wrong.pop();
    wrong.push('x');
    bodies.push(client_with(&wrong).get(api("/me")).send().await.expect("get").text().await.expect("text"));
    let login = reqwest::Client::new()
        .post(api("/login"))
        .json(&json!({"user": "admin", "password": "admin-long-password"}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::CREATED, "HANGAR_ADMIN_PASSWORD is the admin's password");
    for body in &bodies {
        assert!(!body.contains(&secret) && !body.contains(&secret[12..]), "a response shows the secret: {body}");
    }
    drop(server);
    let logged = std::fs::read_to_string(&log_path).expect("log");
    assert!(logged.contains("/api/v1/me"), "the log has the requests");
    for token in [secret.as_str(), ADMIN_TOKEN, &wrong] {
        assert!(!logged.contains(&token[12..]), "the log shows a token");
    }
    assert!(!logged.contains("admin-long-password"), "the log shows a password");
}

#[tokio::test]
async fn revocation_and_demotion_take_effect_on_the_next_request() {
    let app = spawn_app().await;
    let token = app.user_token("max", "maintainer").await;
    let max = client_with(&token);
    assert_eq!(
        max.post(app.url("/api/v1/models")).json(&json!({"name": "one"})).send().await.expect("post").status(),
        201
    );
    app.patch_json("/api/v1/users/max", &json!({"role": "viewer"})).await;
    let demoted = max.post(app.url("/api/v1/models")).json(&json!({"name": "two"})).send().await.expect("post");
    assert_eq!(demoted.status(), StatusCode::FORBIDDEN, "the token is capped by the user's new role");
    let me: Value = max.get(app.url("/api/v1/me")).send().await.expect("me").json().await.expect("json");
    app.delete(&format!("/api/v1/tokens/{}", me["token_id"])).await;
    let revoked = max.get(app.url("/api/v1/me")).send().await.expect("me");
    let detail = problem(revoked, StatusCode::UNAUTHORIZED).await;
    assert!(detail.contains("revoked"), "{detail}");
    app.patch_json("/api/v1/users/max", &json!({"disabled": true})).await;
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/login"))
        .json(&json!({"user": "max", "password": "max-long-password"}))
        .send()
        .await
        .expect("login");
    problem(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_disabled() {
    let app = spawn_app().await;
    for change in [json!({"role": "maintainer"}), json!({"disabled": true})] {
        let detail = problem(app.patch_json("/api/v1/users/admin", &change).await, StatusCode::CONFLICT).await;
        assert!(detail.contains("no enabled admin"), "{detail}");
    }
}

#[tokio::test]
async fn a_token_cannot_outrank_its_creator() {
    let app = spawn_app().await;
    let viewer = app.user_token("vera", "viewer").await;
    let response = client_with(&viewer)
        .post(app.url("/api/v1/tokens"))
        .json(&json!({"name": "x", "role": "admin"}))
        .send()
        .await
        .expect("post");
    let detail = problem(response, StatusCode::FORBIDDEN).await;
    assert!(detail.contains("cannot have more than"), "{detail}");
}

#[tokio::test]
async fn protected_aliases_move_for_admins_only_and_say_which_rule() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"a")]).await;
    let max = client_with(&app.user_token("max", "maintainer").await);
    let response =
        max.put(app.url("/api/v1/models/m/aliases/prod-eu")).json(&json!({"version": "1"})).send().await.expect("put");
    let detail = problem(response, StatusCode::FORBIDDEN).await;
    assert!(detail.contains("'prod*'") && detail.contains("only an admin"), "{detail}");
    let staging =
        max.put(app.url("/api/v1/models/m/aliases/staging")).json(&json!({"version": "1"})).send().await.expect("put");
    assert_eq!(staging.status(), StatusCode::CREATED);
    assert_eq!(app.put_json("/api/v1/models/m/aliases/prod-eu", &json!({"version": "1"})).await.status(), 201);
    let delete = max.delete(app.url("/api/v1/models/m/aliases/prod-eu")).send().await.expect("delete");
    problem(delete, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn an_alias_move_records_from_to_and_who() {
    let app = spawn_app().await;
    app.published("m", &[("a.bin", b"one")]).await;
    app.create_version("m", "2").await;
    app.upload("m", "2", "a.bin", b"two").await;
    app.publish("m", "2").await;
    let max = client_with(&app.user_token("max", "maintainer").await);
    for version in ["1", "2"] {
        max.put(app.url("/api/v1/models/m/aliases/staging"))
            .json(&json!({"version": version}))
            .send()
            .await
            .expect("put");
    }
    let events: Value = app.get("/api/v1/events?action=alias.moved&model=m").await.json().await.expect("json");
    let moves = events["items"].as_array().expect("items");
    assert_eq!(moves.len(), 2);
    assert_eq!(moves[1]["actor"], "max");
    assert_eq!(moves[1]["target"], "m@staging");
    assert_eq!(moves[1]["details"], json!({"alias": "staging", "from": "1", "to": "2"}));
    assert!(moves[1]["token_id"].is_i64());
    assert_eq!(moves[1]["remote_addr"], "127.0.0.1");
    let alias: Value = app.get("/api/v1/models/m/aliases/staging").await.json().await.expect("json");
    assert_eq!(alias["updated_by"], "max");
    let version: Value = app.get("/api/v1/models/m/versions/2").await.json().await.expect("json");
    assert_eq!(version["created_by"], "admin");
    assert_eq!(version["published_by"], "admin");

    let by_max: Value = app.get("/api/v1/events?actor=max").await.json().await.expect("json");
    assert!(by_max["items"].as_array().expect("items").iter().all(|e| e["actor"] == "max"));
    let all: Value = app.get("/api/v1/events?limit=1000").await.json().await.expect("json");
    let actions: Vec<&str> =
        all["items"].as_array().expect("items").iter().map(|e| e["action"].as_str().expect("a")).collect();
    for action in
        ["model.created", "version.created", "file.uploaded", "version.published", "user.created", "token.created"]
    {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
}

/// Reads SSE frames until `count` events have arrived; returns their ids.
async fn read_events(response: reqwest::Response, count: usize) -> Vec<i64> {
    use futures_util::StreamExt as _;
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut ids = Vec::new();
    while ids.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("an event in time");
        buffer.push_str(std::str::from_utf8(&chunk.expect("open").expect("bytes")).expect("utf8"));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if let Some(id) = frame.lines().find_map(|l| l.strip_prefix("id: ")) {
                ids.push(id.parse().expect("id"));
            }
        }
    }
    ids
}

#[tokio::test]
async fn the_event_stream_resumes_from_last_event_id_without_loss_or_duplicates() {
    let app = spawn_app().await;
    app.create_model("m").await;
    let start: Value = app.get("/api/v1/events?limit=1000").await.json().await.expect("json");
    let resume_from = start["next_after"].as_i64().expect("after");

    let stream = app
        .client
        .get(app.url("/api/v1/events/stream"))
        .header("last-event-id", resume_from.to_string())
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let writer = async {
        for _ in 0..20 {
            app.post_json("/api/v1/models/m/versions", &json!({})).await;
        }
    };
    let (ids, ()) = tokio::join!(read_events(stream, 20), writer);
    assert_eq!(ids, ((resume_from + 1)..=(resume_from + 20)).collect::<Vec<_>>());

    // A client that saw up to the 10th reconnects and gets exactly the rest.
    let tenth = ids[9];
    let again = app
        .client
        .get(app.url("/api/v1/events/stream"))
        .header("last-event-id", tenth.to_string())
        .send()
        .await
        .expect("stream");
    let rest = read_events(again, 10).await;
    assert_eq!(rest, ids[10..].to_vec());
}

#[tokio::test]
async fn logins_are_refused_for_a_while_after_ten_failures() {
    let app = spawn_app().await;
    app.user_token("max", "maintainer").await;
    let client = reqwest::Client::new();
    let attempt = |password: &'static str| {
        client.post(app.url("/api/v1/login")).json(&json!({"user": "max", "password": password})).send()
    };
    for _ in 0..10 {
        assert_eq!(attempt("wrong-password-x").await.expect("login").status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = attempt("max-long-password").await.expect("login");
    assert!(blocked.headers().contains_key("retry-after"));
    let detail = problem(blocked, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(detail.contains("try again in"), "{detail}");
}

#[tokio::test]
async fn anonymous_read_lets_anyone_read_but_not_write() {
    let app = spawn_app_with(|s| s.anonymous_read = true).await;
    app.published("m", &[("a.bin", b"abc")]).await;
    let anonymous = reqwest::Client::new();
    let file = anonymous.get(app.url("/api/v1/models/m/versions/1/files/a.bin")).send().await.expect("get");
    assert_eq!(file.status(), StatusCode::OK);
    let write = anonymous.post(app.url("/api/v1/models")).json(&json!({"name": "x"})).send().await.expect("post");
    problem(write, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn first_start_writes_the_generated_admin_password_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(data_dir.path());
    let path = data_dir.path().join("initial-admin-password");
    let mode = std::fs::metadata(&path).expect("password file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&path).expect("read").trim().to_owned();
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/login", server.address))
        .json(&json!({"user": "admin", "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::CREATED);
    let me: Value = client_with(ADMIN_TOKEN)
        .get(format!("{}/api/v1/me", server.address))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["role"], "admin", "the bootstrap token is an admin token");
}

#[tokio::test]
async fn admin_commands_work_offline_on_the_data_dir() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    drop(ServerProcess::start(data_dir.path()));
    let run = |args: &[&str]| {
        let output = crate::helpers::admin_command(data_dir.path(), args).output().expect("run");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf8")
    };
    let created = run(&["admin", "user", "create", "carol", "--role", "maintainer"]);
    assert!(created.contains("created carol (maintainer) with password"), "{created}");
    let token = run(&["admin", "token", "create", "--role", "maintainer", "--user", "carol", "--expires", "1d"]);
    let token = token.trim().to_owned();
    assert!(token.starts_with("hgr_"), "{token}");
    assert!(run(&["admin", "user", "list"]).contains("carol\tmaintainer\tenabled"));

    let server = ServerProcess::start(data_dir.path());
    let me: Value = client_with(&token)
        .get(format!("{}/api/v1/me", server.address))
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(me["user"], "carol");
    assert_eq!(me["role"], "maintainer");
}
