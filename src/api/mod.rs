//! The REST API under `/api/v1`: one file per resource, handlers named `verb_noun`. Each
//! handler extracts, parses into domain types, calls the catalog or the blob store, and
//! maps the result to a JSON view. Every route is registered here, in one list.

mod aliases;
mod caller;
mod deployments;
mod events;
mod files;
mod models;
mod page;
mod range;
mod runtimes;
mod system;
mod tokens;
mod users;
mod versions;
mod webhooks;

use actix_web::web;

use crate::domain::{AliasName, ModelName, RelPath, VersionName};
use crate::error::ApiError;

/// A model name in a URL: `name` or `team/name` (the `/` may also be sent as `%2F`).
/// Anything is captured here and parsed in the handler, so a bad name is a 400 that says
/// why, not a 404 from the router.
const MODEL: &str = "{model:[^/]+(?:/[^/]+)?}";

/// Registers every `/api/v1` route, most specific first: the router takes the first pattern
/// that matches, and `MODEL` can span two segments.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let at = |tail: &str| format!("/api/v1/models/{MODEL}{tail}");
    cfg.service(
        resource(at("/versions/{version}/files/{path:.*}"))
            .route(web::put().to(files::upload_file))
            .route(web::post().to(files::link_file))
            .route(web::get().to(files::download_file))
            .route(web::head().to(files::download_file))
            .route(web::delete().to(files::delete_file)),
    )
    .service(resource(at("/versions/{version}/files")).route(web::get().to(files::list_files)))
    .service(resource(at("/versions/{version}/publish")).route(web::post().to(versions::publish_version)))
    .service(
        resource(at("/versions/{version}"))
            .route(web::get().to(versions::get_version))
            .route(web::patch().to(versions::update_version))
            .route(web::delete().to(versions::delete_version)),
    )
    .service(
        resource(at("/versions"))
            .route(web::get().to(versions::list_versions))
            .route(web::post().to(versions::create_version)),
    )
    .service(
        resource(at("/aliases/{alias}"))
            .route(web::put().to(aliases::set_alias))
            .route(web::get().to(aliases::get_alias))
            .route(web::delete().to(aliases::delete_alias)),
    )
    .service(resource(at("/aliases")).route(web::get().to(aliases::list_aliases)))
    .service(
        resource(at(""))
            .route(web::get().to(models::get_model))
            .route(web::patch().to(models::update_model))
            .route(web::delete().to(models::delete_model)),
    )
    .service(
        resource("/api/v1/models")
            .route(web::get().to(models::list_models))
            .route(web::post().to(models::create_model)),
    )
    .service(
        resource("/api/v1/blobs/{digest}")
            .route(web::head().to(files::head_blob))
            .route(web::get().to(files::head_blob)),
    )
    .service(
        resource("/api/v1/deployments")
            .route(web::get().to(deployments::list_deployments))
            .route(web::post().to(deployments::create_deployment)),
    )
    .service(
        resource("/api/v1/deployments/{name}")
            .route(web::get().to(deployments::get_deployment))
            .route(web::delete().to(deployments::delete_deployment)),
    )
    .service(resource("/api/v1/deployments/{name}/start").route(web::post().to(deployments::start_deployment)))
    .service(resource("/api/v1/deployments/{name}/stop").route(web::post().to(deployments::stop_deployment)))
    .service(resource("/api/v1/deployments/{name}/restart").route(web::post().to(deployments::restart_deployment)))
    .service(resource("/api/v1/deployments/{name}/logs").route(web::get().to(deployments::deployment_logs)))
    .service(resource("/api/v1/runtimes").route(web::get().to(runtimes::list_runtimes)))
    .service(
        resource("/api/v1/runtimes/{name}")
            .route(web::get().to(runtimes::get_runtime))
            .route(web::put().to(runtimes::put_runtime))
            .route(web::delete().to(runtimes::delete_runtime)),
    )
    .service(resource("/api/v1/events").route(web::get().to(events::list_events)))
    .service(resource("/api/v1/events/stream").route(web::get().to(events::stream_events)))
    .service(
        resource("/api/v1/tokens")
            .route(web::get().to(tokens::list_tokens))
            .route(web::post().to(tokens::create_token)),
    )
    .service(resource("/api/v1/tokens/{id}").route(web::delete().to(tokens::revoke_token)))
    .service(resource("/api/v1/login").route(web::post().to(tokens::login)))
    .service(resource("/api/v1/me").route(web::get().to(users::get_me)))
    .service(
        resource("/api/v1/users").route(web::get().to(users::list_users)).route(web::post().to(users::create_user)),
    )
    .service(
        resource("/api/v1/users/{name}")
            .route(web::get().to(users::get_user))
            .route(web::patch().to(users::update_user)),
    )
    .service(resource("/api/v1/users/{name}/password").route(web::post().to(users::reset_password)))
    .service(resource("/api/v1/system").route(web::get().to(system::get_system)))
    .service(resource("/metrics").route(web::get().to(system::get_metrics)))
    .service(resource("/healthz").route(web::get().to(system::healthz)))
    .service(resource("/readyz").route(web::get().to(system::readyz)))
    .service(
        resource("/api/v1/webhooks")
            .route(web::get().to(webhooks::list_webhooks))
            .route(web::post().to(webhooks::create_webhook)),
    )
    .service(
        resource("/api/v1/webhooks/{id}")
            .route(web::get().to(webhooks::get_webhook))
            .route(web::patch().to(webhooks::update_webhook))
            .route(web::delete().to(webhooks::delete_webhook)),
    )
    .service(resource("/api/v1/webhooks/{id}/deliveries").route(web::get().to(webhooks::list_deliveries)))
    .service(resource("/api/v1/webhooks/{id}/ping").route(web::post().to(webhooks::ping_webhook)));
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
#[derive(serde::Deserialize)]
struct ModelPath {
    model: String,
}

impl ModelPath {
    fn parse(&self) -> Result<ModelName, ApiError> {
        Ok(ModelName::parse(&self.model)?)
    }
}

/// `{model}/versions/{version}` of a URL.
#[derive(serde::Deserialize)]
struct VersionPath {
    model: String,
    version: String,
}

impl VersionPath {
    fn parse(&self) -> Result<(ModelName, VersionName), ApiError> {
        Ok((ModelName::parse(&self.model)?, VersionName::parse(&self.version)?))
    }
}

/// `{model}/versions/{version}/files/{path}` of a URL.
#[derive(serde::Deserialize)]
struct FilePath {
    model: String,
    version: String,
    path: String,
}

impl FilePath {
    fn parse(&self) -> Result<(ModelName, VersionName, RelPath), ApiError> {
        Ok((ModelName::parse(&self.model)?, VersionName::parse(&self.version)?, RelPath::parse(&self.path)?))
    }
}

/// `{model}/aliases/{alias}` of a URL.
#[derive(serde::Deserialize)]
struct AliasPath {
    model: String,
    alias: String,
}

impl AliasPath {
    fn parse(&self) -> Result<(ModelName, AliasName), ApiError> {
        Ok((ModelName::parse(&self.model)?, AliasName::parse(&self.alias)?))
    }
}
