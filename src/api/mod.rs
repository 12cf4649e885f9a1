//! The REST API under `/api/v1`: one file per resource, handlers named `verb_noun`. Each
//! handler extracts, parses into domain types, calls the catalog or the blob store, and
//! maps the result to a JSON view. Every route is registered here, in one table, and
//! documented by its handler's `#[utoipa::path]` in the OpenAPI document (`openapi.rs`).

mod aliases;
mod body_timeout;
mod caller;
mod deployments;
mod events;
mod files;
mod limits;
mod models;
mod nodes;
pub mod openapi;
mod page;
pub(crate) mod range;
mod runtimes;
mod system;
mod tokens;
mod uploads;
mod usage;
mod users;
mod versions;
mod webhooks;

pub use body_timeout::cut_stalled_bodies;

use actix_web::web;

use crate::domain::{AliasName, ModelName, RelPath, VersionName};
use crate::error::ApiError;

/// A model name in a URL: `name` or `team/name` (the `/` may also be sent as `%2F`).
/// Anything is captured here and parsed in the handler, so a bad name is a 400 that says
/// why, not a 404 from the router.
const MODEL: &str = "{model:[^/]+(?:/[^/]+)?}";

/// Declares every route in one table: `configure` registers them in this order, and
/// [`ROUTES`] lists them, so a test can check that the OpenAPI document has each one. Paths
/// are written as the document writes them; [`router_pattern`] turns `{model}` and `{path}`
/// into the patterns the router matches.
macro_rules! routes {
    ($($path:literal => { $($method:ident: $handler:path),+ $(,)? })*) => {
        /// Every `(method, path)` that [`configure`] registers, as the OpenAPI document writes them.
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

        /// Registers every route of the table, each path a [`resource`].
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.service(resource(router_pattern($path))$(.route(web::$method().to($handler)))+);)*
        }
    };
}

// Most specific first: the router takes the first pattern that matches, and `{model}` can
// span two segments. Each handler carries its `#[utoipa::path]`, listed in `openapi.rs`.
routes! {
    "/api/v1/models/{model}/versions/{version}/files/{path}" => {
        put: files::upload_file,
        post: files::link_file,
        get: files::download_file,
        head: files::head_file,
        delete: files::delete_file,
    }
    "/api/v1/models/{model}/versions/{version}/files" => { get: files::list_files }
    "/api/v1/models/{model}/versions/{version}/uploads/{id}/parts/{part}" => { put: uploads::put_part }
    "/api/v1/models/{model}/versions/{version}/uploads/{id}/complete" => { post: uploads::complete_upload }
    "/api/v1/models/{model}/versions/{version}/uploads/{id}" => {
        get: uploads::get_upload,
        delete: uploads::delete_upload,
    }
    "/api/v1/models/{model}/versions/{version}/uploads" => {
        get: uploads::list_uploads,
        post: uploads::create_upload,
    }
    "/api/v1/models/{model}/versions/{version}/publish" => { post: versions::publish_version }
    "/api/v1/models/{model}/versions/{version}" => {
        get: versions::get_version,
        patch: versions::update_version,
        delete: versions::delete_version,
    }
    "/api/v1/models/{model}/versions" => { get: versions::list_versions, post: versions::create_version }
    "/api/v1/models/{model}/aliases/{alias}" => {
        put: aliases::set_alias,
        get: aliases::get_alias,
        delete: aliases::delete_alias,
    }
    "/api/v1/models/{model}/aliases" => { get: aliases::list_aliases }
    "/api/v1/models/{model}" => { get: models::get_model, patch: models::update_model, delete: models::delete_model }
    "/api/v1/models" => { get: models::list_models, post: models::create_model }
    "/api/v1/blobs/{digest}" => { head: files::head_blob, get: files::get_blob }
    "/api/v1/deployments" => { get: deployments::list_deployments, post: deployments::create_deployment }
    "/api/v1/deployments/{name}" => { get: deployments::get_deployment, delete: deployments::delete_deployment }
    "/api/v1/deployments/{name}/start" => { post: deployments::start_deployment }
    "/api/v1/deployments/{name}/stop" => { post: deployments::stop_deployment }
    "/api/v1/deployments/{name}/restart" => { post: deployments::restart_deployment }
    "/api/v1/deployments/{name}/logs" => { get: deployments::deployment_logs }
    "/api/v1/deployments/{name}/move" => { post: deployments::move_deployment }
    "/api/v1/nodes" => { get: nodes::list_nodes }
    "/api/v1/runtimes" => { get: runtimes::list_runtimes }
    "/api/v1/runtimes/{name}" => {
        get: runtimes::get_runtime,
        put: runtimes::put_runtime,
        delete: runtimes::delete_runtime,
    }
    "/api/v1/events" => { get: events::list_events }
    "/api/v1/events/stream" => { get: events::stream_events }
    "/api/v1/tokens" => { get: tokens::list_tokens, post: tokens::create_token }
    "/api/v1/tokens/{id}" => { delete: tokens::revoke_token }
    "/api/v1/login" => { post: tokens::login }
    "/api/v1/me" => { get: users::get_me }
    "/api/v1/users" => { get: users::list_users, post: users::create_user }
    "/api/v1/users/{name}" => { get: users::get_user, patch: users::update_user }
    "/api/v1/users/{name}/password" => { post: users::reset_password }
    "/api/v1/system" => { get: system::get_system }
    "/api/v1/usage" => { get: usage::get_usage }
    "/api/v1/limits" => { get: limits::list_limits }
    "/api/v1/limits/{subject}" => { put: limits::set_limits, delete: limits::delete_limits }
    "/api/v1/openapi.json" => { get: openapi::get_openapi }
    "/metrics" => { get: system::get_metrics }
    "/healthz" => { get: system::healthz }
    "/readyz" => { get: system::readyz }
    "/api/v1/webhooks" => { get: webhooks::list_webhooks, post: webhooks::create_webhook }
    "/api/v1/webhooks/{id}" => {
        get: webhooks::get_webhook,
        patch: webhooks::update_webhook,
        delete: webhooks::delete_webhook,
    }
    "/api/v1/webhooks/{id}/deliveries" => { get: webhooks::list_deliveries }
    "/api/v1/webhooks/{id}/ping" => { post: webhooks::ping_webhook }
}

/// The router's pattern for a path of the table: `{model}` may be `team/name`, and a file's
/// `{path}` is the rest of the URL, slashes and all.
fn router_pattern(path: &str) -> String {
    path.replace("{model}", MODEL).replace("{path}", "{path:.*}")
}

/// A resource whose other methods answer 405 as problem+json, not actix's empty body.
fn resource(path: impl AsRef<str>) -> actix_web::Resource {
    web::resource(path.as_ref()).default_service(web::to(method_not_allowed))
}

/// Answers a known URL called with a method it does not take.
async fn method_not_allowed(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(format!(
        "{} does not take {}; see the API table in the README",
        req.path(),
        req.method()
    )))
}

/// Answers a URL no route matches.
pub async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no such endpoint: {} {}", req.method(), req.path())))
}

/// Makes extractor failures (bad JSON, oversized bodies, bad query strings) problem+json
/// with a message that says what was wrong.
pub fn extractor_configs(json_limit: usize) -> (web::JsonConfig, web::QueryConfig, web::PathConfig) {
    use actix_web::error::JsonPayloadError;
    let json = web::JsonConfig::default().limit(json_limit).error_handler(move |err, _req| {
        match err {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::PayloadTooLarge(format!("the JSON body is larger than the {json_limit} bytes accepted"))
            }
            JsonPayloadError::ContentType => {
                ApiError::UnsupportedMediaType("send the body as JSON, with Content-Type: application/json".into())
            }
            JsonPayloadError::Deserialize(e) => ApiError::BadRequest(format!("the JSON body is invalid: {e}")),
            other => ApiError::BadRequest(format!("the JSON body could not be read: {other}")),
        }
        .into()
    });
    let query = web::QueryConfig::default()
        .error_handler(|err, _req| ApiError::BadRequest(format!("invalid query string: {err}")).into());
    let path = web::PathConfig::default()
        .error_handler(|err, _req| ApiError::BadRequest(format!("invalid path: {err}")).into());
    (json, query, path)
}

/// `{model}` of a URL, as sent (actix has decoded `%XX`, `%2F` included).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct ModelPath {
    #[param(value_type = ModelName)]
    model: String,
}

impl ModelPath {
    fn parse(&self) -> Result<ModelName, ApiError> {
        Ok(ModelName::parse(&self.model)?)
    }
}

/// `{model}/versions/{version}` of a URL.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct VersionPath {
    #[param(value_type = ModelName)]
    model: String,
    #[param(value_type = VersionName)]
    version: String,
}

impl VersionPath {
    fn parse(&self) -> Result<(ModelName, VersionName), ApiError> {
        Ok((ModelName::parse(&self.model)?, VersionName::parse(&self.version)?))
    }
}

/// `{model}/versions/{version}/files/{path}` of a URL.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct FilePath {
    #[param(value_type = ModelName)]
    model: String,
    #[param(value_type = VersionName)]
    version: String,
    /// The rest of the URL: a file's path, its `/` sent as is or as `%2F`.
    #[param(value_type = RelPath)]
    path: String,
}

impl FilePath {
    fn parse(&self) -> Result<(ModelName, VersionName, RelPath), ApiError> {
        Ok((ModelName::parse(&self.model)?, VersionName::parse(&self.version)?, RelPath::parse(&self.path)?))
    }
}

/// `{model}/aliases/{alias}` of a URL.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct AliasPath {
    #[param(value_type = ModelName)]
    model: String,
    #[param(value_type = AliasName)]
    alias: String,
}

impl AliasPath {
    fn parse(&self) -> Result<(ModelName, AliasName), ApiError> {
        Ok((ModelName::parse(&self.model)?, AliasName::parse(&self.alias)?))
    }
}
