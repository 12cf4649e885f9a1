//! `GET /api/v1/openapi.json`: this server's OpenAPI 3.1 document, generated from each
//! handler's `#[utoipa::path]` and the view types it answers with, built once and served as
//! text. Also here: the error answers operations list (one type per status, each
//! `application/problem+json` with a [`Problem`] body), the security schemes, and the
//! gateway's routes, whose handlers answer in OpenAI's shapes rather than this API's.
//!
//! A route added to the table in `mod.rs` must be annotated and listed in `paths(…)` below:
//! the test `every_registered_route_is_in_the_document` fails otherwise.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, OpenApi, ToSchema};

use super::{
    aliases, deployments, events, files, limits, models, nodes, runtimes, system, tokens, uploads, usage, users,
    versions, webhooks,
};
use crate::auth::session;
use crate::error::{ApiError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hangar",
        description = "A self-hosted model registry and launcher: models, immutable versions and movable \
                       aliases, their files in a content-addressed store, and deployments in Docker behind an \
                       OpenAI-compatible gateway. Errors are `application/problem+json`. Authenticate with an \
                       API token (`Authorization: Bearer hgr_…`, from `POST /api/v1/login` or \
                       `POST /api/v1/tokens`), or the dashboard's session cookie plus its CSRF token in \
                       `X-CSRF-Token` on unsafe methods. With `anonymous_read = true`, GET and HEAD need no \
                       credentials.",
    ),
    paths(
        models::list_models, models::create_model, models::get_model, models::update_model, models::delete_model,
        versions::list_versions, versions::create_version, versions::get_version, versions::update_version,
        versions::delete_version, versions::publish_version,
        files::list_files, files::upload_file, files::link_file, files::download_file, files::head_file,
        files::delete_file, files::head_blob, files::get_blob,
        uploads::create_upload, uploads::list_uploads, uploads::get_upload, uploads::delete_upload,
        uploads::put_part, uploads::complete_upload,
        aliases::list_aliases, aliases::set_alias, aliases::get_alias, aliases::delete_alias,
        deployments::list_deployments, deployments::create_deployment, deployments::get_deployment,
        deployments::delete_deployment, deployments::start_deployment, deployments::stop_deployment,
        deployments::restart_deployment, deployments::deployment_logs, deployments::move_deployment,
        nodes::list_nodes,
        runtimes::list_runtimes, runtimes::get_runtime, runtimes::put_runtime, runtimes::delete_runtime,
        events::list_events, events::stream_events,
        tokens::login, tokens::list_tokens, tokens::create_token, tokens::revoke_token,
        users::get_me, users::list_users, users::create_user, users::get_user, users::update_user,
        users::reset_password,
        system::get_system, usage::get_usage, limits::list_limits, limits::set_limits, limits::delete_limits, get_openapi, system::get_metrics, system::healthz, system::readyz,
        webhooks::list_webhooks, webhooks::create_webhook, webhooks::get_webhook, webhooks::update_webhook,
        webhooks::delete_webhook, webhooks::list_deliveries, webhooks::ping_webhook,
        gateway::list_models, gateway::chat_completions, gateway::completions, gateway::embeddings,
        gateway::proxy_get, gateway::proxy_post,
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "models", description = "Models: a name, a description, tags."),
        (name = "versions", description = "Immutable versions of a model: drafts, then published."),
        (name = "files", description = "A version's files, streamed in and out; blobs by digest."),
        (name = "uploads", description = "Big files sent in parts that survive cut connections and restarts."),
        (name = "aliases", description = "Movable names that point at ready versions."),
        (name = "deployments", description = "Versions running in their own containers."),
        (name = "runtimes", description = "How each format is served: presets and admins' own."),
        (name = "events", description = "The audit log, paged or live."),
        (name = "tokens", description = "API tokens and password login."),
        (name = "users", description = "Users and their roles."),
        (name = "system", description = "Health, readiness, metrics, storage and this document."),
        (name = "webhooks", description = "Receivers told of events, signed, with every delivery recorded."),
        (name = "gateway", description = "OpenAI-compatible routing to deployments; errors in OpenAI's shape."),
    ),
)]
struct ApiDoc;

/// The document as JSON, built on first use.
static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| ApiDoc::openapi().to_json().map_err(|e| e.to_string()));

/// This document: every route of the server with its parameters, bodies, answers and errors.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "system",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
pub async fn get_openapi() -> Result<HttpResponse, ApiError> {
    let document = DOCUMENT.as_ref().map_err(|e| ApiError::internal(anyhow::anyhow!("OpenAPI document: {e}")))?;
    Ok(HttpResponse::Ok().content_type("application/json").body(document.clone()))
}

// A body without a schema makes client generators skip its operation (`openapi-python-client`
// does), so raw bodies get this one: `format: binary`, which generators turn into a file
// argument, and 3.1's `contentMediaType` for tools that read that instead.
/// The bytes themselves, not wrapped in JSON.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
pub struct RawBytes(#[expect(dead_code, reason = "only describes a body the handler streams")] Vec<u8>);

/// The `bearer` (API token) and `session` (dashboard cookie) schemes that `security` names.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("hgr_…")
            .description(Some(
                "An API token, `hgr_` and 43 more characters: from `POST /api/v1/login` or `POST /api/v1/tokens`, \
                 shown once.",
            ))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let cookie = ApiKeyValue::with_description(
            session::COOKIE,
            "The dashboard's session; unsafe methods also need the page's CSRF token in `X-CSRF-Token`.",
        );
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(cookie)));
    }
}

/// A path, query parameter, header or JSON field does not parse, or breaks a rule; `detail`
/// says which and what a valid value looks like.
#[derive(IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub struct BadRequest(pub Problem);

/// No usable credentials: missing, malformed, unknown, expired or revoked.
#[derive(IntoResponses)]
#[response(
    status = 401,
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"hangar\"`")),
)]
pub struct Unauthorized(pub Problem);

/// The caller is known but may not do this: its role is too low, its token is limited to
/// other models, the alias is protected, or a browser request lacks its CSRF token.
#[derive(IntoResponses)]
#[response(status = 403, content_type = "application/problem+json")]
pub struct Forbidden(pub Problem);

/// Something named in the request does not exist; `detail` says what.
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
pub struct NotFound(pub Problem);

/// The request contradicts the current state (it exists already, it is published, it is in
/// use, no GPU is free); `detail` says what is in the way.
#[derive(IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
pub struct Conflict(pub Problem);

/// The JSON body is larger than the server accepts (`json_limit`).
#[derive(IntoResponses)]
#[response(status = 413, content_type = "application/problem+json")]
pub struct PayloadTooLarge(pub Problem);

/// The body is not sent as `Content-Type: application/json`.
#[derive(IntoResponses)]
#[response(status = 415, content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub Problem);

/// The `Range` starts past the end of the file.
#[derive(IntoResponses)]
#[response(
    status = 416,
    content_type = "application/problem+json",
    headers(("Content-Range" = String, description = "`bytes */<size>`: the file's size")),
)]
pub struct RangeNotSatisfiable(pub Problem);

/// Too many failed logins for this user or address; try again later.
#[derive(IntoResponses)]
#[response(
    status = 429,
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds until a login is tried again")),
)]
pub struct TooManyRequests(pub Problem);

/// Docker is not reachable; `detail` names the socket that was tried.
#[derive(IntoResponses)]
#[response(status = 503, content_type = "application/problem+json")]
pub struct Unavailable(pub Problem);

/// The gateway's routes (`crate::gateway`), described here: the handlers are plain actix
/// handlers that answer in OpenAI's shapes, so these functions exist only to carry the
/// annotations.
#[expect(dead_code, reason = "the functions only carry #[utoipa::path]; the handlers are in crate::gateway")]
mod gateway {
    use serde::Serialize;
    use utoipa::{IntoResponses, ToSchema};

    use crate::catalog::deployments::State;

    /// `GET /v1/models`: the deployments a caller may use.
    #[derive(Serialize, ToSchema)]
    pub struct ModelList {
        /// `list`.
        object: String,
        data: Vec<ModelEntry>,
    }

    /// One deployment, as OpenAI lists a model.
    #[derive(Serialize, ToSchema)]
    pub struct ModelEntry {
        /// The deployment's name: what a request's `model` names.
        id: String,
        /// `model`.
        object: String,
        created: i64,
        /// `hangar`.
        owned_by: String,
        /// What it serves: `model@alias` or `model:version`.
        root: String,
        state: State,
    }

    /// A failure on `/v1/*` and the proxy, in OpenAI's shape so OpenAI clients show it.
    #[derive(Serialize, ToSchema)]
    pub struct OpenAiError {
        error: OpenAiErrorBody,
    }

    #[derive(Serialize, ToSchema)]
    pub struct OpenAiErrorBody {
        message: String,
        /// `invalid_request_error`, `authentication_error`, `permission_error` or `server_error`.
        r#type: String,
        /// `model_not_found`, `invalid_api_key`, `deployment_unavailable`, `upstream_timeout`, …
        code: String,
        param: Option<String>,
    }

    /// Why the gateway did not pass a request on (or the model server failed it), each in
    /// OpenAI's shape.
    #[derive(IntoResponses)]
    pub enum Refused {
        /// The body is not a JSON object with a `model`, or the method cannot be proxied.
        #[response(status = 400)]
        BadRequest(OpenAiError),
        /// No usable credentials.
        #[response(status = 401)]
        Unauthorized(OpenAiError),
        /// The caller may not use this model.
        #[response(status = 403)]
        Forbidden(OpenAiError),
        /// No deployment serves this model.
        #[response(status = 404)]
        NotFound(OpenAiError),
        /// The model server refused or broke the connection.
        #[response(status = 502)]
        BadGateway(OpenAiError),
        /// The deployment is not running and cannot be started now.
        #[response(status = 503)]
        Unavailable(OpenAiError),
        /// The model server did not answer in time.
        #[response(status = 504)]
        GatewayTimeout(OpenAiError),
    }

    /// A request for a model server: any JSON object with a `model`.
    #[derive(Serialize, ToSchema)]
    pub struct ModelRequest {
        /// A deployment's name, or a model (`model`, `model@alias`) one deployment serves.
        model: String,
    }

    /// The deployments a caller may use: running ones, and stopped ones that start on demand
    /// (`autostart`).
    #[utoipa::path(
        get,
        path = "/v1/models",
        operation_id = "gateway_list_models",
        responses(
            (status = 200, description = "The deployments", body = ModelList),
            (status = 401, description = "No usable credentials", body = OpenAiError),
            (status = 403, description = "The caller may not use models", body = OpenAiError),
        ),
    )]
    fn list_models() {}

    /// Routes the request by its `model` to the deployment that serves it (starting it if it
    /// is an `autostart` one) and streams the model server's answer back, SSE tokens included.
    #[utoipa::path(
        post,
        path = "/v1/chat/completions",
        request_body = ModelRequest,
        responses(
            (status = 200, description = "The model server's answer, passed through", content(
                ("application/json"),
                ("text/event-stream"),
            )),
            Refused,
        ),
    )]
    fn chat_completions() {}

    /// As `/v1/chat/completions`: any `POST /v1/…` with a JSON `model` is routed the same way.
    #[utoipa::path(
        post,
        path = "/v1/completions",
        request_body = ModelRequest,
        responses(
            (status = 200, description = "The model server's answer, passed through", content(
                ("application/json"),
                ("text/event-stream"),
            )),
            Refused,
        ),
    )]
    fn completions() {}

    /// As `/v1/chat/completions`.
    #[utoipa::path(
        post,
        path = "/v1/embeddings",
        request_body = ModelRequest,
        responses(
            (status = 200, description = "The model server's answer, passed through", content(("application/json"))),
            Refused,
        ),
    )]
    fn embeddings() {}

    /// Passes a request through to a deployment's container as it is, for runtimes that do
    /// not speak OpenAI (Triton's `/v2/…`). Every method is passed; GET and POST are shown.
    #[utoipa::path(
        get,
        path = "/deployments/{name}/proxy/{path}",
        params(
            ("name" = crate::domain::DeploymentName, Path, description = "The deployment"),
            ("path" = String, Path, description = "The path on the model server"),
        ),
        responses(
            (status = 200, description = "Whatever the model server answers, passed through"),
            Refused,
        ),
    )]
    fn proxy_get() {}

    /// As `GET`, with the request body passed through too.
    #[utoipa::path(
        post,
        path = "/deployments/{name}/proxy/{path}",
        params(
            ("name" = crate::domain::DeploymentName, Path, description = "The deployment"),
            ("path" = String, Path, description = "The path on the model server"),
        ),
        request_body(
            content = inline(super::RawBytes), content_type = "application/octet-stream", description = "Passed through",
        ),
        responses(
            (status = 200, description = "Whatever the model server answers, passed through"),
            Refused,
        ),
    )]
    fn proxy_post() {}
}
