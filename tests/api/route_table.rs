//! The authorization table: every route the server registers — the API's table, the
//! dashboard's and the gateway's — against every kind of credential, each answered as this
//! table documents. A route without a row fails the test, so none ships without a decision.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::header::{LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, TestApp, client_with, sha256_digest, spawn_app};

/// The roles, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Viewer,
    Maintainer,
    Admin,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Anyone, with or without credentials (even bad ones).
    Public,
    /// The role, on the model in the path: a token limited to `team-a/*` is refused on
    /// `team-b`. Rows with `{team}` are walked once with `team-a` and once with `team-b`.
    Model(Role),
    /// The role; not about one model (lists are filtered to the caller's models).
    Any(Role),
    /// Totals over every model: the role, through a credential without model globs.
    Unscoped(Role),
    /// Instance-wide: an admin without model globs.
    Instance,
    /// A dashboard page or form: a session (a token is not one) with the role; forms carry
    /// the session's CSRF token.
    Page(Role),
    /// Signing out: a session with its CSRF token is sent to `/login`, signed out.
    SignOut,
    /// A Hugging Face Hub read (`/hf`): a viewer on the model in the path, and a model the
    /// caller may not read answers as a missing repo (404 `RepoNotFound`), not 403.
    Hub,
    /// A Hugging Face Hub write: as `Hub` for who may see the repo, then a maintainer on it
    /// (a reader is refused 403, as the Hub answers).
    HubWrite,
    /// An upload URL a Git LFS batch answer hands out: its signed ticket is the credential,
    /// so without one every caller, whatever it sends, is refused 401.
    Ticket,
}

/// The kinds of credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    Anonymous,
    Viewer,
    Maintainer,
    Admin,
    ScopedViewer,
    ScopedMaintainer,
    ScopedAdmin,
    Expired,
    Revoked,
    /// An admin's dashboard session, sending its CSRF token on changes.
    Session,
    /// The same session without its CSRF token.
    SessionWithoutCsrf,
    /// A viewer's dashboard session, with its CSRF token.
    ViewerSession,
}

const CREDS: [Cred; 12] = [
    Cred::Anonymous,
    Cred::Viewer,
    Cred::Maintainer,
    Cred::Admin,
    Cred::ScopedViewer,
    Cred::ScopedMaintainer,
    Cred::ScopedAdmin,
    Cred::Expired,
    Cred::Revoked,
    Cred::Session,
    Cred::SessionWithoutCsrf,
    Cred::ViewerSession,
];

/// The answer a row documents, by class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Past the authorization decision: anything but 401, 403, a sign-in redirect or a 5xx.
    Allowed,
    Unauthorized,
    Forbidden,
    /// The dashboard's answer without a session: 303 to `/login`.
    SignIn,
    /// The Hub's answer for a repo the caller may not see: 404 with `X-Error-Code: RepoNotFound`.
    Hidden,
}

/// The body a row sends.
#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Raw(&'static [u8]),
    /// A dashboard form; the session's CSRF token is added where the credential has one.
    Form(Vec<(&'static str, &'static str)>),
    /// The upload form: the CSRF token (where the credential has one), then a file.
    Upload,
}

struct Row {
    method: &'static str,
    /// The path as the route table writes it.
    route: &'static str,
    /// The URL to call; `{team}` becomes `team-a` and `team-b`.
    target: &'static str,
    rule: Rule,
    body: Body,
}

fn row(method: &'static str, route: &'static str, target: &'static str, rule: Rule, body: Body) -> Row {
    Row { method, route, target, rule, body }
}

const BLOB_A: &str = "/api/v1/blobs/sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0";

#[expect(clippy::too_many_lines, reason = "the table is one list, one row per route")]
fn rows() -> Vec<Row> {
    use Body::{Form, Json, None, Raw, Upload};
    use Role::{Admin, Maintainer, Viewer};
    use Rule::{Any, Hub, HubWrite, Instance, Model, Page, Public, SignOut, Ticket, Unscoped};
    let runtime = json!({
        "image": "example/server:1", "args": ["--port", "{port}"], "port": 8000, "health_path": "/health",
        "startup_deadline_secs": 60,
    });
    let file = "/api/v1/models/{model}/versions/{version}/files/{path}";
    let digest_b = sha256_digest(b"bbb");
    vec![
        // The API.
        row("put", file, "/api/v1/models/{team}/m/versions/2/files/x.bin", Model(Maintainer), Raw(b"upload")),
        // Upload sessions: the session id is checked after the caller's right to write the
        // model, so an unknown id answers 404 only to those who may.
        row(
            "post",
            "/api/v1/models/{model}/versions/{version}/uploads",
            "/api/v1/models/{team}/m/versions/2/uploads",
            Model(Maintainer),
            Json(json!({"path": "big.bin", "size": 3, "digest": digest_b.clone()})),
        ),
        row(
            "get",
            "/api/v1/models/{model}/versions/{version}/uploads",
            "/api/v1/models/{team}/m/versions/2/uploads",
            Model(Maintainer),
            None,
        ),
        row(
            "get",
            "/api/v1/models/{model}/versions/{version}/uploads/{id}",
            "/api/v1/models/{team}/m/versions/2/uploads/0123456789abcdef0123456789abcdef",
            Model(Maintainer),
            None,
        ),
        row(
            "delete",
            "/api/v1/models/{model}/versions/{version}/uploads/{id}",
            "/api/v1/models/{team}/m/versions/2/uploads/0123456789abcdef0123456789abcdef",
            Model(Maintainer),
            None,
        ),
        row(
            "put",
            "/api/v1/models/{model}/versions/{version}/uploads/{id}/parts/{part}",
            "/api/v1/models/{team}/m/versions/2/uploads/0123456789abcdef0123456789abcdef/parts/0",
            Model(Maintainer),
            Raw(b"part"),
        ),
        row(
            "post",
            "/api/v1/models/{model}/versions/{version}/uploads/{id}/complete",
            "/api/v1/models/{team}/m/versions/2/uploads/0123456789abcdef0123456789abcdef/complete",
            Model(Maintainer),
            None,
        ),
        row(
            "post",
            file,
            "/api/v1/models/{team}/m/versions/2/files/y.bin",
            Model(Maintainer),
            Json(json!({"digest": digest_b, "size": 3})),
        ),
        row("get", file, "/api/v1/models/{team}/m/versions/1/files/a.bin", Model(Viewer), None),
        row("head", file, "/api/v1/models/{team}/m/versions/1/files/a.bin", Model(Viewer), None),
        row("delete", file, "/api/v1/models/{team}/m/versions/2/files/d.bin", Model(Maintainer), None),
        row(
            "get",
            "/api/v1/models/{model}/versions/{version}/files",
            "/api/v1/models/{team}/m/versions/1/files",
            Model(Viewer),
            None,
        ),
        row(
            "post",
            "/api/v1/models/{model}/versions/{version}/publish",
            "/api/v1/models/{team}/m/versions/2/publish",
            Model(Maintainer),
            None,
        ),
        row(
            "get",
            "/api/v1/models/{model}/versions/{version}",
            "/api/v1/models/{team}/m/versions/1",
            Model(Viewer),
            None,
        ),
        row(
            "patch",
            "/api/v1/models/{model}/versions/{version}",
            "/api/v1/models/{team}/m/versions/2",
            Model(Maintainer),
            Json(json!({"description": "d"})),
        ),
        row(
            "delete",
            "/api/v1/models/{model}/versions/{version}",
            "/api/v1/models/{team}/m/versions/3",
            Model(Admin),
            None,
        ),
        row("get", "/api/v1/models/{model}/versions", "/api/v1/models/{team}/m/versions", Model(Viewer), None),
        row(
            "post",
            "/api/v1/models/{model}/versions",
            "/api/v1/models/{team}/m/versions",
            Model(Maintainer),
            Json(json!({})),
        ),
        row(
            "put",
            "/api/v1/models/{model}/aliases/{alias}",
            "/api/v1/models/{team}/m/aliases/staging",
            Model(Maintainer),
            Json(json!({"version": "1"})),
        ),
        row(
            "put",
            "/api/v1/models/{model}/aliases/{alias}",
            "/api/v1/models/{team}/m/aliases/prod",
            Model(Admin),
            Json(json!({"version": "1"})),
        ),
        row(
            "get",
            "/api/v1/models/{model}/aliases/{alias}",
            "/api/v1/models/{team}/m/aliases/staging",
            Model(Viewer),
            None,
        ),
        row(
            "delete",
            "/api/v1/models/{model}/aliases/{alias}",
            "/api/v1/models/{team}/m/aliases/gone",
            Model(Maintainer),
            None,
        ),
        row("get", "/api/v1/models/{model}/aliases", "/api/v1/models/{team}/m/aliases", Model(Viewer), None),
        row("get", "/api/v1/models/{model}", "/api/v1/models/{team}/m", Model(Viewer), None),
        row(
            "patch",
            "/api/v1/models/{model}",
            "/api/v1/models/{team}/m",
            Model(Maintainer),
            Json(json!({"description": "d"})),
        ),
        row("delete", "/api/v1/models/{model}", "/api/v1/models/{team}/doomed", Model(Admin), None),
        row("get", "/api/v1/models", "/api/v1/models", Any(Viewer), None),
        row("post", "/api/v1/models", "/api/v1/models", Model(Maintainer), Json(json!({"name": "team-a/new"}))),
        row("post", "/api/v1/models", "/api/v1/models", Model(Maintainer), Json(json!({"name": "team-b/new"}))),
        row("head", "/api/v1/blobs/{digest}", BLOB_A, Any(Viewer), None),
        row("get", "/api/v1/blobs/{digest}", BLOB_A, Any(Viewer), None),
        row("get", "/api/v1/deployments", "/api/v1/deployments", Any(Viewer), None),
        // The model is checked against the globs first; the unknown runtime then stops an
        // allowed caller before Docker is asked.
        row(
            "post",
            "/api/v1/deployments",
            "/api/v1/deployments",
            Model(Maintainer),
            Json(json!({"model": "team-a/m:1", "runtime": "no-such-runtime"})),
        ),
        row(
            "post",
            "/api/v1/deployments",
            "/api/v1/deployments",
            Model(Maintainer),
            Json(json!({"model": "team-b/m:1", "runtime": "no-such-runtime"})),
        ),
        // A deployment that does not exist answers 404 to every caller of the right role,
        // whatever its globs: it cannot tell a scoped caller anything.
        row("get", "/api/v1/deployments/{name}", "/api/v1/deployments/ghost", Any(Viewer), None),
        row("delete", "/api/v1/deployments/{name}", "/api/v1/deployments/ghost", Any(Maintainer), None),
        row("post", "/api/v1/deployments/{name}/start", "/api/v1/deployments/ghost/start", Any(Maintainer), None),
        row("post", "/api/v1/deployments/{name}/stop", "/api/v1/deployments/ghost/stop", Any(Maintainer), None),
        row("post", "/api/v1/deployments/{name}/restart", "/api/v1/deployments/ghost/restart", Any(Maintainer), None),
        row("get", "/api/v1/deployments/{name}/logs", "/api/v1/deployments/ghost/logs", Any(Viewer), None),
        row(
            "post",
            "/api/v1/deployments/{name}/move",
            "/api/v1/deployments/ghost/move",
            Any(Maintainer),
            Json(json!({"node": "local"})),
        ),
        row("get", "/api/v1/nodes", "/api/v1/nodes", Any(Viewer), None),
        row("get", "/api/v1/runtimes", "/api/v1/runtimes", Any(Viewer), None),
        row("get", "/api/v1/runtimes/{name}", "/api/v1/runtimes/vllm", Any(Viewer), None),
        row("put", "/api/v1/runtimes/{name}", "/api/v1/runtimes/custom", Instance, Json(runtime)),
        row("delete", "/api/v1/runtimes/{name}", "/api/v1/runtimes/custom", Instance, None),
        row("get", "/api/v1/events", "/api/v1/events", Any(Viewer), None),
        row("get", "/api/v1/events/stream", "/api/v1/events/stream", Any(Viewer), None),
        row("get", "/api/v1/tokens", "/api/v1/tokens", Any(Viewer), None),
        row("post", "/api/v1/tokens", "/api/v1/tokens", Any(Viewer), Json(json!({"name": "t", "role": "viewer"}))),
        row("delete", "/api/v1/tokens/{id}", "/api/v1/tokens/999999", Any(Viewer), None),
        row(
            "post",
            "/api/v1/login",
            "/api/v1/login",
            Public,
            Json(json!({"user": "vera", "password": "vera-long-password"})),
        ),
        row("get", "/api/v1/me", "/api/v1/me", Any(Viewer), None),
        row("get", "/api/v1/users", "/api/v1/users", Instance, None),
        row("post", "/api/v1/users", "/api/v1/users", Instance, Json(json!({"name": "someone", "role": "viewer"}))),
        row("get", "/api/v1/users/{name}", "/api/v1/users/vera", Instance, None),
        row("patch", "/api/v1/users/{name}", "/api/v1/users/nobody", Instance, Json(json!({"role": "viewer"}))),
        row("post", "/api/v1/users/{name}/password", "/api/v1/users/nobody/password", Instance, Json(json!({}))),
        row("get", "/api/v1/system", "/api/v1/system", Any(Viewer), None),
        row("get", "/api/v1/usage", "/api/v1/usage", Any(Viewer), None),
        row("get", "/api/v1/limits", "/api/v1/limits", Instance, None),
        row("put", "/api/v1/limits/{subject}", "/api/v1/limits/user:vera", Instance, Json(json!({"concurrent": 50}))),
        row("delete", "/api/v1/limits/{subject}", "/api/v1/limits/user:nobody", Instance, None),
        row("get", "/api/v1/openapi.json", "/api/v1/openapi.json", Public, None),
        row("get", "/metrics", "/metrics", Unscoped(Viewer), None),
        row("get", "/healthz", "/healthz", Public, None),
        row("get", "/readyz", "/readyz", Public, None),
        row("get", "/api/v1/webhooks", "/api/v1/webhooks", Instance, None),
        row(
            "post",
            "/api/v1/webhooks",
            "/api/v1/webhooks",
            Instance,
            Json(json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]})),
        ),
        row("get", "/api/v1/webhooks/{id}", "/api/v1/webhooks/999999", Instance, None),
        row("patch", "/api/v1/webhooks/{id}", "/api/v1/webhooks/999999", Instance, Json(json!({"active": false}))),
        row("delete", "/api/v1/webhooks/{id}", "/api/v1/webhooks/999999", Instance, None),
        row("get", "/api/v1/webhooks/{id}/deliveries", "/api/v1/webhooks/999999/deliveries", Instance, None),
        row("post", "/api/v1/webhooks/{id}/ping", "/api/v1/webhooks/999999/ping", Instance, None),
        // The gateway: no deployment is running, so an allowed caller gets 404.
        row("get", "/v1/models", "/v1/models", Any(Viewer), None),
        row("post", "/v1/{tail}", "/v1/chat/completions", Any(Viewer), Json(json!({"model": "ghost", "messages": []}))),
        row("route", "/deployments/{name}/proxy/{path}", "/deployments/ghost/proxy/health", Any(Viewer), None),
        // The dashboard.
        row("get", "/static/{file}", "/static/app.css", Public, None),
        row("get", "/login", "/login", Public, None),
        row("post", "/login", "/login", Public, Form(vec![("user", "vera"), ("password", "vera-long-password")])),
        row("get", "/models/{model}/versions/{version}", "/models/{team}/m/versions/1", Page(Viewer), None),
        row("get", "/models/{model}/upload", "/models/{team}/m/upload", Page(Maintainer), None),
        row("post", "/models/{model}/upload", "/models/{team}/m/upload", Page(Maintainer), Upload),
        row(
            "post",
            "/models/{model}/aliases",
            "/models/{team}/m/aliases",
            Page(Maintainer),
            Form(vec![("alias", "staging"), ("version", "1")]),
        ),
        row("get", "/models/{model}", "/models/{team}/m", Page(Viewer), None),
        row("post", "/models", "/models", Page(Maintainer), Form(vec![("name", "team-a/page")])),
        row("get", "/deployments", "/deployments", Page(Viewer), None),
        row(
            "post",
            "/deployments",
            "/deployments",
            Page(Maintainer),
            Form(vec![("target", "team-a/m:1"), ("runtime", "no-such-runtime")]),
        ),
        row("get", "/deployments/{name}", "/deployments/ghost", Page(Viewer), None),
        row("get", "/deployments/{name}/traffic", "/deployments/ghost/traffic", Page(Viewer), None),
        // The same rule as the API's stop: the role first (a viewer is refused before the
        // lookup, so it learns nothing), then the deployment's model against the globs.
        row("post", "/deployments/{name}/{action}", "/deployments/ghost/stop", Page(Maintainer), Form(vec![])),
        row("get", "/system", "/system", Page(Viewer), None),
        row("get", "/system/memory", "/system/memory", Page(Viewer), None),
        row("get", "/activity", "/activity", Page(Viewer), None),
        row("get", "/usage", "/usage", Page(Viewer), None),
        row("get", "/usage/view", "/usage/view", Page(Viewer), None),
        row(
            "post",
            "/usage/limits",
            "/usage/limits",
            Page(Admin),
            Form(vec![("subject", "user:vera"), ("concurrent", "5"), ("action", "set")]),
        ),
        row("get", "/tokens", "/tokens", Page(Viewer), None),
        row("post", "/tokens", "/tokens", Page(Viewer), Form(vec![("name", "page-token"), ("role", "viewer")])),
        row("post", "/tokens/{id}/revoke", "/tokens/999999/revoke", Page(Viewer), Form(vec![])),
        row("get", "/users", "/users", Page(Admin), None),
        row("post", "/users", "/users", Page(Admin), Form(vec![("name", "from-page"), ("role", "viewer")])),
        row("post", "/users/{name}", "/users/nobody", Page(Admin), Form(vec![("role", "viewer")])),
        row("get", "/", "/", Page(Viewer), None),
        // The Hugging Face Hub protocol.
        row("get", "/hf/api/whoami-v2", "/hf/api/whoami-v2", Any(Viewer), None),
        row("get", "/hf/api/models/{repo}", "/hf/api/models/{team}/m", Hub, None),
        row("get", "/hf/api/models/{repo}/revision/{rev}", "/hf/api/models/{team}/m/revision/staging", Hub, None),
        row("get", "/hf/api/models/{repo}/tree/{rev}", "/hf/api/models/{team}/m/tree/main", Hub, None),
        row("get", "/hf/api/models/{repo}/refs", "/hf/api/models/{team}/m/refs", Hub, None),
        row("get", "/hf/api/models/{repo}/commits/{rev}", "/hf/api/models/{team}/m/commits/main", Hub, None),
        row("get", "/hf/{repo}/resolve/{rev}/{path}", "/hf/{team}/m/resolve/1/a.bin", Hub, None),
        row("head", "/hf/{repo}/resolve/{rev}/{path}", "/hf/{team}/m/resolve/1/a.bin", Hub, None),
        row(
            "post",
            "/hf/api/repos/create",
            "/hf/api/repos/create",
            Model(Maintainer),
            Json(json!({"name": "hub-made", "organization": "team-a"})),
        ),
        row(
            "post",
            "/hf/api/models/{repo}/preupload/{rev}",
            "/hf/api/models/{team}/m/preupload/main",
            HubWrite,
            Json(json!({"files": [{"path": "a.bin", "size": 3, "sample": ""}]})),
        ),
        // Committed to a revision that does not exist: past the decision, nothing is made.
        row(
            "post",
            "/hf/api/models/{repo}/commit/{rev}",
            "/hf/api/models/{team}/m/commit/nowhere",
            HubWrite,
            Raw(b"{\"key\": \"header\", \"value\": {\"summary\": \"s\"}}\n"),
        ),
        row(
            "post",
            "/hf/{repo}.git/info/lfs/objects/batch",
            "/hf/{team}/m.git/info/lfs/objects/batch",
            HubWrite,
            Json(json!({"operation": "upload", "transfers": ["basic"], "objects": []})),
        ),
        row(
            "post",
            "/hf/{repo}.git/info/lfs/objects/verify",
            "/hf/{team}/m.git/info/lfs/objects/verify",
            HubWrite,
            Json(json!({"oid": BLOB_A.rsplit(':').next(), "size": 3})),
        ),
        // A branch from a revision that does not exist, and one that does not exist deleted:
        // past the decision, nothing is made or removed.
        row(
            "post",
            "/hf/api/models/{repo}/branch/{branch}",
            "/hf/api/models/{team}/m/branch/exp",
            HubWrite,
            Json(json!({"startingPoint": "nowhere"})),
        ),
        row("delete", "/hf/api/models/{repo}/branch/{branch}", "/hf/api/models/{team}/m/branch/ghost", HubWrite, None),
        row(
            "put",
            "/hf/lfs/objects/{oid}",
            "/hf/lfs/objects/9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
            Ticket,
            Raw(b"aaa"),
        ),
        row(
            "put",
            "/hf/lfs/sessions/{id}/parts/{part}",
            "/hf/lfs/sessions/00000000000000000000000000000000/parts/1",
            Ticket,
            Raw(b"aaa"),
        ),
        row(
            "post",
            "/hf/lfs/sessions/{id}/complete",
            "/hf/lfs/sessions/00000000000000000000000000000000/complete",
            Ticket,
            None,
        ),
        // Last: signing out ends the sessions the rows above use.
        row("post", "/logout", "/logout", SignOut, Form(vec![])),
    ]
}

/// What `cred` gets from a route under `rule`, on team `b` or not.
fn expected(cred: Cred, rule: Rule, method: &Method, team_b: bool) -> Outcome {
    let safe = matches!(*method, Method::GET | Method::HEAD);
    let (role, scoped, session) = match cred {
        Cred::Anonymous | Cred::Expired | Cred::Revoked => (None, false, None),
        Cred::Viewer => (Some(Role::Viewer), false, None),
        Cred::Maintainer => (Some(Role::Maintainer), false, None),
        Cred::Admin => (Some(Role::Admin), false, None),
        Cred::ScopedViewer => (Some(Role::Viewer), true, None),
        Cred::ScopedMaintainer => (Some(Role::Maintainer), true, None),
        Cred::ScopedAdmin => (Some(Role::Admin), true, None),
        Cred::Session => (Some(Role::Admin), false, Some(true)),
        Cred::SessionWithoutCsrf => (Some(Role::Admin), false, Some(false)),
        Cred::ViewerSession => (Some(Role::Viewer), false, Some(true)),
    };
    if rule == Rule::Public {
        return Outcome::Allowed;
    }
    if rule == Rule::SignOut {
        return match session {
            Some(false) => Outcome::Forbidden,
            _ => Outcome::SignIn,
        };
    }
    if let Rule::Page(needs) = rule {
        return match (session, role) {
            (None, _) | (_, None) => Outcome::SignIn,
            (Some(false), _) if !safe => Outcome::Forbidden,
            (_, Some(role)) if role < needs => Outcome::Forbidden,
            _ => Outcome::Allowed,
        };
    }
    if rule == Rule::Ticket {
        return Outcome::Unauthorized;
    }
    let Some(role) = role else { return Outcome::Unauthorized };
    if rule == Rule::Hub {
        return if scoped && team_b { Outcome::Hidden } else { Outcome::Allowed };
    }
    if session == Some(false) && !safe {
        return Outcome::Forbidden;
    }
    if rule == Rule::HubWrite {
        return match () {
            () if scoped && team_b => Outcome::Hidden,
            () if role < Role::Maintainer => Outcome::Forbidden,
            () => Outcome::Allowed,
        };
    }
    let (needs, refused_when_scoped) = match rule {
        Rule::Model(needs) => (needs, team_b),
        Rule::Any(needs) => (needs, false),
        Rule::Unscoped(needs) => (needs, true),
        Rule::Instance => (Role::Admin, true),
        Rule::Public | Rule::Page(_) | Rule::SignOut | Rule::Hub | Rule::HubWrite | Rule::Ticket => {
            unreachable!("answered above")
        }
    };
    if role < needs || (scoped && refused_when_scoped) { Outcome::Forbidden } else { Outcome::Allowed }
}

/// What an answer is, by class.
fn outcome(status: StatusCode, location: Option<&str>, error_code: Option<&str>) -> Outcome {
    match status {
        StatusCode::NOT_FOUND if error_code == Some("RepoNotFound") => Outcome::Hidden,
        StatusCode::UNAUTHORIZED => Outcome::Unauthorized,
        StatusCode::FORBIDDEN => Outcome::Forbidden,
        StatusCode::SEE_OTHER if location.is_some_and(|l| l.starts_with("/login")) => Outcome::SignIn,
        _ => Outcome::Allowed,
    }
}

/// The seed: team-a/m and team-b/m with a published version 1, a draft 2 with a file, a
/// draft 3, a doomed model each, and an alias.
async fn seed(app: &TestApp) {
    for team in ["team-a", "team-b"] {
        let model = format!("{team}/m");
        app.published(&model, &[("a.bin", b"aaa")]).await;
        app.create_model(&format!("{team}/doomed")).await;
        app.create_version(&model, "2").await;
        app.upload(&model, "2", "d.bin", b"ddd").await;
        app.create_version(&model, "3").await;
        app.put_json(&format!("/api/v1/models/{model}/aliases/staging"), &json!({"version": "1"})).await;
    }
    app.upload("team-b/m", "2", "b.bin", b"bbb").await;
}

/// A token the admin creates with `body`.
async fn token(app: &TestApp, body: &Value) -> String {
    let response = app.post_json("/api/v1/tokens", body).await;
    assert_eq!(response.status(), StatusCode::CREATED, "token {body}");
    response.json::<Value>().await.expect("json")["token"].as_str().expect("token").to_owned()
}

/// A dashboard session of a new user with `role`: its cookie and its CSRF token.
async fn session(app: &TestApp, user: &str, role: &str) -> (String, String) {
    let password = format!("{user}-long-password");
    let created = app.post_json("/api/v1/users", &json!({"name": user, "role": role, "password": password})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let response = client
        .post(app.url("/login"))
        .form(&[("user", user), ("password", password.as_str()), ("next", "/")])
        .send()
        .await
        .expect("sign in");
    let cookie = response.headers()[SET_COOKIE].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let home = client.get(app.url("/tokens")).header("cookie", &cookie).send().await.expect("page");
    let html = home.text().await.expect("html");
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    (cookie, html[at..].split('"').next().expect("value").to_owned())
}

#[tokio::test]
async fn every_route_answers_every_credential_as_the_table_documents() {
    let registered: BTreeSet<(&str, &str)> = hangar::api::ROUTES
        .iter()
        .chain(hangar::web::ROUTES)
        .chain(hangar::gateway::ROUTES)
        .chain(hangar::hf::ROUTES)
        .copied()
        .collect();
    let rows = rows();
    let covered: BTreeSet<(&str, &str)> = rows.iter().map(|r| (r.method, r.route)).collect();
    let missing: Vec<_> = registered.difference(&covered).collect();
    assert!(missing.is_empty(), "routes without a row in the authorization table: {missing:?}");
    let stale: Vec<_> = covered.difference(&registered).collect();
    assert!(stale.is_empty(), "rows for routes that are not registered: {stale:?}");

    let app = spawn_app().await;
    seed(&app).await;
    let viewer = app.user_token("vera", "viewer").await;
    let maintainer = app.user_token("max", "maintainer").await;
    let expired = app.login("max", "max-long-password", Some("1s")).await;
    let revoked = app.login("max", "max-long-password", None).await;
    let me: Value =
        client_with(&revoked).get(app.url("/api/v1/me")).send().await.expect("me").json().await.expect("json");
    let revoked_id = me["token_id"].as_i64().expect("id");
    assert_eq!(app.delete(&format!("/api/v1/tokens/{revoked_id}")).await.status(), StatusCode::NO_CONTENT);
    let scoped = |role: &str| json!({"name": format!("team-a {role}"), "role": role, "models": ["team-a/*"]});
    let scoped_viewer = token(&app, &scoped("viewer")).await;
    let scoped_maintainer = token(&app, &scoped("maintainer")).await;
    let scoped_admin = token(&app, &scoped("admin")).await;
    let (admin_cookie, admin_csrf) = session(&app, "sam", "admin").await;
    let (viewer_cookie, viewer_csrf) = session(&app, "val", "viewer").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let bearer = |token: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("header"));
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .expect("client")
    };
    let mut failures = Vec::new();
    let mut requests = 0;
    for row in &rows {
        let teams: &[&str] = if row.target.contains("{team}") { &["team-a", "team-b"] } else { &["team-a"] };
        for team in teams {
            let target = row.target.replace("{team}", team);
            let team_b = *team == "team-b" || matches!(&row.body, Body::Json(b) if b.to_string().contains("team-b/"));
            // Signing out ends a session: the one without its CSRF token is refused first.
            let creds: Vec<Cred> =
                if row.rule == Rule::SignOut { CREDS.iter().rev().copied().collect() } else { CREDS.to_vec() };
            for cred in creds {
                let (client, cookie, csrf) = match cred {
                    Cred::Anonymous => (plain.clone(), None, None),
                    Cred::Viewer => (bearer(&viewer), None, None),
                    Cred::Maintainer => (bearer(&maintainer), None, None),
                    Cred::Admin => (bearer(ADMIN_TOKEN), None, None),
                    Cred::ScopedViewer => (bearer(&scoped_viewer), None, None),
                    Cred::ScopedMaintainer => (bearer(&scoped_maintainer), None, None),
                    Cred::ScopedAdmin => (bearer(&scoped_admin), None, None),
                    Cred::Expired => (bearer(&expired), None, None),
                    Cred::Revoked => (bearer(&revoked), None, None),
                    Cred::Session => (plain.clone(), Some(&admin_cookie), Some(&admin_csrf)),
                    Cred::SessionWithoutCsrf => (plain.clone(), Some(&admin_cookie), None),
                    Cred::ViewerSession => (plain.clone(), Some(&viewer_cookie), Some(&viewer_csrf)),
                };
                let method = match row.method {
                    "route" => Method::GET,
                    other => other.to_uppercase().parse().expect("method"),
                };
                let mut request = client.request(method.clone(), app.url(&target));
                if let Some(cookie) = cookie {
                    request = request.header("cookie", cookie);
                }
                request = match &row.body {
                    Body::None => request,
                    Body::Json(body) => request.json(body),
                    Body::Raw(bytes) => request.body(*bytes),
                    Body::Form(fields) => {
                        let mut fields: Vec<(&str, &str)> = fields.clone();
                        if let Some(csrf) = csrf {
                            fields.push(("csrf", csrf));
                        }
                        request.form(&fields)
                    }
                    Body::Upload => {
                        let mut form = reqwest::multipart::Form::new();
                        if let Some(csrf) = csrf {
                            form = form.text("csrf", csrf.clone());
                        }
                        let file = reqwest::multipart::Part::bytes(b"page".to_vec()).file_name("page.bin");
                        request.multipart(form.text("version", "9").part("files", file))
                    }
                };
                if let (Some(csrf), false) = (csrf, matches!(row.body, Body::Form(_) | Body::Upload)) {
                    request = request.header("x-csrf-token", csrf.as_str());
                }
                let response = request.send().await.expect("request");
                requests += 1;
                let status = response.status();
                let location = response.headers().get(LOCATION).and_then(|l| l.to_str().ok()).map(str::to_owned);
                let error_code = response.headers().get("x-error-code").and_then(|c| c.to_str().ok());
                let got = outcome(status, location.as_deref(), error_code);
                let want = expected(cred, row.rule, &method, team_b);
                if got != want || status.is_server_error() {
                    failures.push(format!("{} {target} as {cred:?}: {status}, expected {want:?}", row.method));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {requests} answers differ from the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
