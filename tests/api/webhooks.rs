//! Webhooks against real receivers on loopback: signed deliveries of the events subscribed
//! to and no others, retries with backoff, a receiver that hangs, a restart, who may manage
//! them, bad input, and a secret that never comes back.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hangar::config::Settings;
use hmac::{Hmac, KeyInit as _, Mac as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{
    ADMIN_TOKEN, ServerProcess, TestApp, catalog_execute, client_with, problem, spawn_app, spawn_app_with, wait_until,
};

pub const SECRET: &str = "correct-horse-battery-staple";

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    at: Instant,
    headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// An HTTP server on loopback that records what it is sent and answers the statuses of a
/// script in order, then 200.
pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(script: &[u16]) -> Self {
        Self::serve(script, None)
    }

    /// The same over HTTPS, with `tls`'s certificate (tls.rs gives it one a test CA signed).
    pub fn start_https(script: &[u16], tls: rustls::ServerConfig) -> Self {
        Self::serve(script, Some(tls))
    }

    fn serve(script: &[u16], tls: Option<rustls::ServerConfig>) -> Self {
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<u16>>()));
        let state = (Arc::clone(&seen), script);
        let server = HttpServer::new(move || {
            let (seen, script) = state.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (seen, script) = (Arc::clone(&seen), Arc::clone(&script));
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    seen.lock().expect("lock").push(Received { at: Instant::now(), headers, body: body.to_vec() });
                    let status = script.lock().expect("lock").pop_front().unwrap_or(200);
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).finish()
                }
            }))
        })
        .workers(1);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = match tls {
            Some(tls) => server.bind_rustls_0_23(("127.0.0.1", 0), tls),
            None => server.bind(("127.0.0.1", 0)),
        }
        .expect("bind the receiver");
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self { url: format!("{scheme}://127.0.0.1:{port}/hook"), seen }
    }

    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().expect("lock").clone()
    }

    /// Waits until `n` requests have arrived, and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        wait_until(&format!("the receiver got {n} requests"), Duration::from_secs(15), || {
            self.seen.lock().expect("lock").len() >= n
        })
        .await;
        self.received()
    }

    /// Waits until `n` deliveries of `event` have arrived, and returns those.
    async fn wait_for_event(&self, event: &str, n: usize) -> Vec<Received> {
        let of_event =
            || self.received().into_iter().filter(|r| r.header("x-hangar-event") == event).collect::<Vec<_>>();
        wait_until(&format!("the receiver got {n} of {event}"), Duration::from_secs(15), || of_event().len() >= n)
            .await;
        of_event()
    }
}

/// The receivers here listen on 127.0.0.1, which webhooks may reach only when allowed.
pub fn allow_private(settings: &mut Settings) {
    settings.webhook_allow_private = true;
}

pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn create_webhook(app: &TestApp, body: Value) -> Value {
    let response = app.post_json("/api/v1/webhooks", &body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "create webhook {body}");
    response.json().await.expect("json")
}

async fn deliveries(app: &TestApp, webhook: &Value) -> Vec<Value> {
    let path = format!("/api/v1/webhooks/{}/deliveries", webhook["id"]);
    let listed: Value = app.get(&path).await.json().await.expect("json");
    listed["items"].as_array().expect("items").clone()
}

/// Polls a webhook's deliveries until `done` holds for them.
pub async fn wait_for_deliveries(
    app: &TestApp,
    webhook: &Value,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let items = deliveries(app, webhook).await;
        if done(&items) {
            return items;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}: {items:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event with `id` as GET /api/v1/events shows it.
async fn event(app: &TestApp, id: i64) -> Value {
    let page: Value = app.get(&format!("/api/v1/events?after={}&limit=1", id - 1)).await.json().await.expect("json");
    page["items"][0].clone()
}

#[tokio::test]
async fn published_versions_and_alias_moves_are_delivered_signed_and_other_events_are_not() {
    let app = spawn_app_with(allow_private).await;
    let receiver = Receiver::start(&[]);
    let hook = create_webhook(
        &app,
        json!({"url": receiver.url, "events": ["version.published", "alias.moved"], "secret": SECRET}),
    )
    .await;
    assert_eq!(hook["events"], json!(["alias.moved", "version.published"]));

    app.published("m", &[("a.bin", b"aaa")]).await;
    let moved = app.put_json("/api/v1/models/m/aliases/staging", &json!({"version": "1"})).await;
    assert!(moved.status().is_success(), "{}", moved.status());

    let got = receiver.wait_for(2).await;
    let actions: Vec<&str> = got.iter().map(|r| r.header("x-hangar-event")).collect();
    assert_eq!(actions, ["version.published", "alias.moved"]);
    let listed = wait_for_deliveries(&app, &hook, "both are recorded delivered", |items| {
        items.len() == 2 && items.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    for request in &got {
        assert_eq!(request.header("x-hangar-signature"), signature(SECRET, &request.body));
        assert_ne!(request.header("x-hangar-signature"), signature("another-secret-entirely", &request.body));
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.header("x-hangar-attempt"), "1");
        let body = request.json();
        assert_eq!(body["action"], request.header("x-hangar-event"));
        assert_eq!(
            body,
            event(&app, body["id"].as_i64().expect("id")).await,
            "the body is the event as the API shows it"
        );
        let delivery = listed.iter().find(|d| d["event_id"] == body["id"]).expect("a recorded delivery");
        assert_eq!(delivery["uuid"], request.header("x-hangar-delivery"));
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["response_status"], 200);
        assert!(delivery["delivered_at"].is_string() && delivery["next_attempt_at"].is_null());
    }
    assert_eq!(got[0].json()["target"], "m:1");
    assert_eq!(got[1].json()["target"], "m@staging");
    assert_eq!(got[1].json()["details"]["to"], "1");
    // model.created, version.created and file.uploaded came before and were not subscribed to.
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_backoff_until_it_answers() {
    let app = spawn_app_with(|s| {
        allow_private(s);
        s.webhook_backoff_ms = 100;
    })
    .await;
    let receiver = Receiver::start(&[500, 500]);
    let hook = create_webhook(&app, json!({"url": receiver.url, "events": ["model.created"], "secret": SECRET})).await;
    app.create_model("m").await;

    let got = receiver.wait_for(3).await;
    let listed = wait_for_deliveries(&app, &hook, "the delivery is delivered", |items| {
        items.first().is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    assert_eq!(listed.len(), 1);
    let delivery = &listed[0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["response_status"], 200);
    assert!(delivery["error"].is_null() && delivery["next_attempt_at"].is_null());
    assert!(delivery["delivered_at"].is_string());

    assert_eq!(got.len(), 3);
    let attempts: Vec<&str> = got.iter().map(|r| r.header("x-hangar-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    for request in &got {
        assert_eq!(request.header("x-hangar-delivery"), delivery["uuid"], "one delivery id on every attempt");
        assert_eq!(request.body, got[0].body, "the same bytes on every attempt");
        assert_eq!(request.header("x-hangar-signature"), signature(SECRET, &request.body));
    }
    let first_wait = got[1].at - got[0].at;
    let second_wait = got[2].at - got[1].at;
    assert!(first_wait >= Duration::from_millis(100), "waited {first_wait:?} after the first failure");
    assert!(second_wait >= Duration::from_millis(200), "waited {second_wait:?} after the second failure");
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_ends_failed_after_the_last_attempt() {
    let app = spawn_app_with(|s| {
        allow_private(s);
        s.webhook_backoff_ms = 20;
        s.webhook_max_attempts = 3;
    })
    .await;
    let receiver = Receiver::start(&[503, 503, 503, 503]);
    let hook = create_webhook(&app, json!({"url": receiver.url, "events": ["*"], "secret": SECRET})).await;
    app.create_model("m").await;

    let listed = wait_for_deliveries(&app, &hook, "the delivery has failed", |items| {
        items.first().is_some_and(|d| d["status"] == "failed")
    })
    .await;
    let delivery = &listed[0];
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["response_status"], 503);
    assert_eq!(delivery["error"], "the receiver answered 503 Service Unavailable");
    assert!(delivery["next_attempt_at"].is_null() && delivery["delivered_at"].is_null());
    assert_eq!(receiver.received().len(), 3, "no attempt after the last one");

    let path = format!("/api/v1/webhooks/{}/deliveries", hook["id"]);
    let failed: Value = app.get(&format!("{path}?status=failed")).await.json().await.expect("json");
    assert_eq!(failed["items"].as_array().expect("items").len(), 1);
    let delivered: Value = app.get(&format!("{path}?status=delivered")).await.json().await.expect("json");
    assert_eq!(delivered["items"], json!([]));
    let detail = problem(app.get(&format!("{path}?status=done")).await, StatusCode::BAD_REQUEST).await;
    assert!(detail.contains("pending, delivered or failed"), "{detail}");
}

#[tokio::test]
async fn a_receiver_that_hangs_holds_up_only_its_own_deliveries() {
    let app = spawn_app_with(|s| {
        allow_private(s);
        s.webhook_timeout_secs = 60;
    })
    .await;
    // Accepts connections and never answers.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hung_url = format!("http://{}/hook", hung.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let stuck = create_webhook(&app, json!({"url": hung_url, "events": ["model.created"]})).await;
    let receiver = Receiver::start(&[]);
    create_webhook(&app, json!({"url": receiver.url, "events": ["model.created"]})).await;

    app.create_model("a").await;
    app.create_model("b").await;
    let started = Instant::now();
    let got = receiver.wait_for(2).await;
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let targets: Vec<Value> = got.iter().map(|r| r.json()["target"].clone()).collect();
    assert_eq!(targets, [json!("a"), json!("b")]);
    let waiting = deliveries(&app, &stuck).await;
    assert_eq!(waiting.len(), 2);
    assert!(waiting.iter().all(|d| d["status"] == "pending" && d["attempts"] == 0), "{waiting:#?}");
}

#[tokio::test]
async fn deliveries_survive_a_restart_with_nothing_lost_or_repeated() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let config = data_dir.path().join("hangar.toml");
    std::fs::write(&config, "webhook_allow_private = true\n").expect("config");
    let config = config.to_str().expect("utf-8").to_owned();
    let receiver = Receiver::start(&[]);
    let admin = client_with(ADMIN_TOKEN);
    let hook_id = {
        let server = ServerProcess::start_with(data_dir.path(), &["--config", &config]);
        let api = |path: &str| format!("{}/api/v1{path}", server.address);
        let body = json!({"url": receiver.url, "events": ["model.created", "user.created"], "secret": SECRET});
        let hook: Value =
            admin.post(api("/webhooks")).json(&body).send().await.expect("create").json().await.expect("json");
        admin.post(api("/models")).json(&json!({"name": "before"})).send().await.expect("model");
        receiver.wait_for(1).await;
        let path = api(&format!("/webhooks/{}/deliveries", hook["id"]));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let listed: Value = admin.get(&path).send().await.expect("list").json().await.expect("json");
            if listed["items"][0]["status"] == "delivered" {
                break;
            }
            assert!(Instant::now() < deadline, "the delivery was never recorded: {listed}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        hook["id"].clone()
        // The server is killed here.
    };

    // An event recorded while no server runs.
    let offline = crate::helpers::admin_command(
        data_dir.path(),
        &["admin", "user", "create", "offline-olga", "--role", "viewer"],
    )
    .output()
    .expect("run");
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));

    let server = ServerProcess::start_with(data_dir.path(), &["--config", &config]);
    admin
        .post(format!("{}/api/v1/models", server.address))
        .json(&json!({"name": "after"}))
        .send()
        .await
        .expect("model");
    let got = receiver.wait_for(3).await;
    let events: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let body = r.json();
            (body["action"].as_str().expect("action").to_owned(), body["target"].as_str().expect("target").to_owned())
        })
        .collect();
    assert_eq!(
        events,
        [
            ("model.created".to_owned(), "before".to_owned()),
            ("user.created".to_owned(), "offline-olga".to_owned()),
            ("model.created".to_owned(), "after".to_owned()),
        ]
    );
    let listed: Value = admin
        .get(format!("{}/api/v1/webhooks/{hook_id}/deliveries", server.address))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"].as_array().expect("items").len(), 3, "one delivery per event: {listed:#}");
    for request in &got {
        assert_eq!(request.header("x-hangar-signature"), signature(SECRET, &request.body));
    }
}

#[tokio::test]
async fn only_admins_without_model_limits_manage_webhooks() {
    let app = spawn_app_with(allow_private).await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]});
    for role in ["viewer", "maintainer"] {
        let client = client_with(&app.user_token(&format!("{role}-user"), role).await);
        let listed = client.get(app.url("/api/v1/webhooks")).send().await.expect("list");
        let detail = problem(listed, StatusCode::FORBIDDEN).await;
        assert!(detail.contains("needs the admin role"), "{detail}");
        let created = client.post(app.url("/api/v1/webhooks")).json(&body).send().await.expect("create");
        problem(created, StatusCode::FORBIDDEN).await;
    }
    let scoped: Value = app
        .post_json("/api/v1/tokens", &json!({"name": "scoped", "role": "admin", "models": ["team-a/*"]}))
        .await
        .json()
        .await
        .expect("json");
    let scoped = client_with(scoped["token"].as_str().expect("token"));
    let created = scoped.post(app.url("/api/v1/webhooks")).json(&body).send().await.expect("create");
    let detail = problem(created, StatusCode::FORBIDDEN).await;
    assert!(detail.contains("limited to some models"), "{detail}");
    let listed: Value = app.get("/api/v1/webhooks").await.json().await.expect("json");
    assert_eq!(listed["items"], json!([]), "nothing was created");
}

#[tokio::test]
async fn bad_urls_event_types_and_secrets_are_refused_and_nothing_is_stored() {
    let app = spawn_app_with(allow_private).await;
    let cases = [
        (json!({"url": "ftp://ci.example/hook", "events": ["*"]}), "the scheme is ftp:, not http://"),
        (json!({"url": "not a url", "events": ["*"]}), "give an absolute URL"),
        (json!({"url": "http://", "events": ["*"]}), "empty host"),
        (json!({"url": "http://ci.example/hook", "events": []}), "at least one event type"),
        (
            json!({"url": "http://ci.example/hook", "events": ["alias.moved", "version.publish"]}),
            "unknown event type \"version.publish\"; use \"*\" or any of: alias.deleted, alias.moved,",
        ),
        (json!({"url": "http://ci.example/hook", "events": ["*"], "secret": "short"}), "must be 16-256"),
        (json!({"url": "http://ci.example/hook", "events": ["*"], "description": "d".repeat(501)}), "longer than 500"),
        (json!({"url": "http://ci.example/hook", "events": ["*"], "evnts": ["*"]}), "unknown field"),
        (json!({"events": ["*"]}), "missing field `url`"),
    ];
    for (body, expected) in &cases {
        let detail = problem(app.post_json("/api/v1/webhooks", body).await, StatusCode::BAD_REQUEST).await;
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    let detail = problem(
        app.post_json("/api/v1/webhooks", &json!({"url": "http://ci.example/hook", "events": ["nope"]})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        detail.contains("version.published") && detail.contains("deployment.failed"),
        "lists the valid types: {detail}"
    );
    let listed: Value = app.get("/api/v1/webhooks").await.json().await.expect("json");
    assert_eq!(listed["items"], json!([]));
    let logged: Value = app.get("/api/v1/events?action=webhook").await.json().await.expect("json");
    assert_eq!(logged["items"], json!([]));

    // A bad PATCH changes nothing either.
    let hook = create_webhook(&app, json!({"url": "http://ci.example/hook", "events": ["model.created"]})).await;
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    for body in [json!({"url": "ftp://x/y", "active": false}), json!({"events": ["model.create"], "active": false})] {
        problem(app.patch_json(&path, &body).await, StatusCode::BAD_REQUEST).await;
    }
    let after: Value = app.get(&path).await.json().await.expect("json");
    assert_eq!(
        after,
        hook.as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("secret");
                Value::Object(o)
            })
            .expect("object")
    );
    problem(app.get("/api/v1/webhooks/999").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn the_secret_is_never_returned_and_a_generated_one_is_shown_once() {
    let app = spawn_app_with(allow_private).await;
    let receiver = Receiver::start(&[]);
    let response =
        app.post_json("/api/v1/webhooks", &json!({"url": receiver.url, "events": ["*"], "secret": SECRET})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = response.text().await.expect("text");
    assert!(!text.contains(SECRET), "{text}");
    let given: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(given["secret_hint"], "…aple");
    assert!(given.get("secret").is_none());
    let path = format!("/api/v1/webhooks/{}", given["id"]);
    let patched = app.patch_json(&path, &json!({"description": "CI"})).await.text().await.expect("text");
    for text in [
        patched,
        app.get(&path).await.text().await.expect("text"),
        app.get("/api/v1/webhooks").await.text().await.expect("text"),
        app.get("/api/v1/events").await.text().await.expect("text"),
    ] {
        assert!(!text.contains(SECRET) && !text.contains("battery"), "{text}");
    }

    // Without a secret, one is generated and shown in this response only.
    let generated = create_webhook(&app, json!({"url": receiver.url, "events": ["alias.moved"]})).await;
    let secret = generated["secret"].as_str().expect("a generated secret").to_owned();
    assert_eq!(secret.len(), 64);
    let path = format!("/api/v1/webhooks/{}", generated["id"]);
    let shown: Value = app.get(&path).await.json().await.expect("json");
    assert!(shown.get("secret").is_none());
    assert_eq!(shown["secret_hint"], format!("…{}", &secret[60..]));

    // A ping goes to that webhook alone, signed with that secret.
    let ping = app.client.post(app.url(&format!("{path}/ping"))).send().await.expect("ping");
    assert_eq!(ping.status(), StatusCode::ACCEPTED);
    let ping: Value = ping.json().await.expect("json");
    assert_eq!(ping["action"], "ping");
    let pings = receiver.wait_for_event("ping", 1).await;
    let pinged = &pings[0];
    assert_eq!(pinged.header("x-hangar-signature"), signature(&secret, &pinged.body));
    assert_eq!(pinged.header("x-hangar-delivery"), ping["uuid"]);
    let body = pinged.json();
    assert_eq!((body["id"].clone(), body["target"].clone()), (json!(0), json!(format!("webhook/{}", generated["id"]))));

    // A new secret signs what follows.
    let rotated = "a-brand-new-secret-0123456789";
    let changed = app.patch_json(&path, &json!({"secret": rotated})).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert!(!changed.text().await.expect("text").contains(rotated));
    app.client.post(app.url(&format!("{path}/ping"))).send().await.expect("ping");
    let pings = receiver.wait_for_event("ping", 2).await;
    let second = &pings[1];
    assert_eq!(second.header("x-hangar-signature"), signature(rotated, &second.body));
}

#[tokio::test]
async fn a_paused_webhook_is_told_nothing_and_a_deleted_one_is_gone() {
    let app = spawn_app_with(allow_private).await;
    let paused_receiver = Receiver::start(&[]);
    let receiver = Receiver::start(&[]);
    let paused =
        create_webhook(&app, json!({"url": paused_receiver.url, "events": ["model.created"], "active": false})).await;
    assert_eq!(paused["active"], false);
    create_webhook(&app, json!({"url": receiver.url, "events": ["model.created"]})).await;
    let path = format!("/api/v1/webhooks/{}", paused["id"]);
    let detail =
        problem(app.client.post(app.url(&format!("{path}/ping"))).send().await.expect("ping"), StatusCode::CONFLICT)
            .await;
    assert!(detail.contains("inactive"), "{detail}");

    app.create_model("while-paused").await;
    receiver.wait_for(1).await;
    assert_eq!(deliveries(&app, &paused).await, Vec::<Value>::new(), "a paused webhook gets no deliveries");

    let resumed: Value = app.patch_json(&path, &json!({"active": true})).await.json().await.expect("json");
    assert_eq!(resumed["active"], true);
    app.create_model("after-resume").await;
    let got = paused_receiver.wait_for(1).await;
    assert_eq!(got[0].json()["target"], "after-resume");

    assert_eq!(app.delete(&path).await.status(), StatusCode::NO_CONTENT);
    problem(app.get(&path).await, StatusCode::NOT_FOUND).await;
    problem(app.get(&format!("{path}/deliveries")).await, StatusCode::NOT_FOUND).await;
    let logged: Value = app.get("/api/v1/events?action=webhook").await.json().await.expect("json");
    let actions: Vec<&str> =
        logged["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["webhook.created", "webhook.created", "webhook.updated", "webhook.deleted"]);
}

#[tokio::test]
async fn webhooks_to_local_addresses_or_with_credentials_in_the_url_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/hook",
        "http://10.0.0.7/hook",
        "http://192.168.1.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let detail = problem(
            app.post_json("/api/v1/webhooks", &json!({"url": url, "events": ["*"]})).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(detail.contains("webhook_allow_private"), "{url}: {detail}");
    }
    let with_credentials = json!({"url": "http://ci:hunter2-pass@ci.example/hook", "events": ["*"]});
    let response = app.post_json("/api/v1/webhooks", &with_credentials).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.text().await.expect("text");
    assert!(body.contains("credentials") && !body.contains("hunter2"), "{body}");
    let listed: Value = app.get("/api/v1/webhooks").await.json().await.expect("json");
    assert_eq!(listed["items"], json!([]));

    let hook = create_webhook(&app, json!({"url": "http://ci.example/hook", "events": ["model.created"]})).await;
    let path = format!("/api/v1/webhooks/{}", hook["id"]);
    for url in ["http://127.0.0.1:8080/hook", "http://u:hunter2-pass@ci.example/hook"] {
        let response = app.patch_json(&path, &json!({"url": url})).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        assert!(!response.text().await.expect("text").contains("hunter2"));
    }
    let after: Value = app.get(&path).await.json().await.expect("json");
    assert_eq!(after["url"], "http://ci.example/hook");
}

#[tokio::test]
async fn a_host_name_that_resolves_to_a_local_address_is_refused_at_delivery_time() {
    let app = spawn_app_with(|s| s.webhook_max_attempts = 1).await;
    let receiver = Receiver::start(&[]);
    // A name passes registration (what it resolves to can change); the address it resolves
    // to when a delivery is made is what is checked, as a rebinding DNS would have it.
    let url = receiver.url.replace("127.0.0.1", "localhost");
    let hook = create_webhook(&app, json!({"url": url, "events": ["model.created"], "secret": SECRET})).await;
    app.create_model("m").await;
    let listed = wait_for_deliveries(&app, &hook, "the delivery has failed", |items| {
        items.first().is_some_and(|d| d["status"] == "failed")
    })
    .await;
    let error = listed[0]["error"].as_str().expect("error");
    assert!(error.contains("webhook_allow_private"), "{error}");
    assert!(listed[0]["response_status"].is_null());
    assert!(receiver.received().is_empty(), "nothing reached the local receiver");
}

#[tokio::test]
async fn credentials_stored_in_a_webhook_url_by_an_earlier_version_are_dropped_on_upgrade() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let admin = client_with(ADMIN_TOKEN);
    let hook_id = {
        let server = ServerProcess::start(data_dir.path());
        let body = json!({"url": "http://ci.example:8080/hook?x=a@b", "events": ["*"]});
        let created =
            admin.post(format!("{}/api/v1/webhooks", server.address)).json(&body).send().await.expect("create");
        assert_eq!(created.status(), StatusCode::CREATED);
        created.json::<Value>().await.expect("json")["id"].as_i64().expect("id")
    };
    // As an earlier version stored it, before the migration that removes credentials ran.
    let sql = format!(
        "UPDATE webhooks SET url = 'http://ci:hunter2%40x@ci.example:8080/hook?x=a@b' WHERE id = {hook_id};
         DELETE FROM _sqlx_migrations WHERE description = 'webhook url credentials';"
    );
    catalog_execute(data_dir.path(), &sql).await;

    let server = ServerProcess::start(data_dir.path());
    let listed = admin.get(format!("{}/api/v1/webhooks", server.address)).send().await.expect("list");
    assert_eq!(listed.status(), StatusCode::OK);
    let text = listed.text().await.expect("text");
    assert!(!text.contains("hunter2"), "{text}");
    let listed: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(listed["items"][0]["url"], "http://ci.example:8080/hook?x=a@b");
}
