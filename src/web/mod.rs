//! The dashboard: server-rendered askama pages over the same catalog the API serves. Every
//! core action works without JavaScript (plain forms with a CSRF token); `app.js` only
//! enhances. Everything a user typed reaches the page escaped, or, for model cards,
//! rendered from Markdown and sanitized.

mod assets;
mod cache;
mod chart;
mod error;
pub mod history;
mod markdown;
mod pages;
mod session;

use actix_web::web;

use cache::PageCache;

pub use error::WebError;
pub use session::{Frame, WebCaller};

/// A model name in a URL, as in the API.
const MODEL: &str = "{model:[^/]+(?:/[^/]+)?}";

pub fn configure(cfg: &mut web::ServiceConfig) {
    let forms = web::FormConfig::default().error_handler(|err, _req| {
        WebError::Page {
            status: actix_web::http::StatusCode::BAD_REQUEST,
            message: format!("the form could not be read: {err}"),
        }
        .into()
    });
    // Per worker, as the App is built per worker: a card is rendered at most once by each,
    // and each keeps the pages it served until the catalog changes.
    cfg.app_data(forms)
        .app_data(web::Data::new(markdown::CardCache::default()))
        .app_data(web::Data::new(PageCache::<pages::models::ModelsKey, pages::models::ModelsData>::default()))
        .app_data(web::Data::new(PageCache::<pages::model::ModelKey, pages::model::ModelData>::default()))
        .app_data(web::Data::new(PageCache::<pages::version::VersionKey, pages::version::VersionData>::default()))
        .app_data(web::Data::new(PageCache::<pages::activity::ActivityKey, pages::activity::ActivityData>::default()))
        .app_data(web::Data::new(PageCache::<(), pages::deployments::DeploymentsData>::default()))
        .app_data(web::Data::new(PageCache::<(), pages::system::SystemData>::default()))
        .app_data(web::Data::new(cache::Recent::<pages::system::DockerStatus>::new(pages::system::DOCKER_STATUS_TTL)));
    register(cfg);
}

/// Declares every dashboard route in one table: [`register`] registers them in this order,
/// and [`ROUTES`] lists them, so the authorization test can check it has a row for each.
/// `{model}` in a path may be `team/name`.
macro_rules! routes {
    ($($path:literal => { $($method:ident: $handler:path),+ $(,)? })*) => {
        /// Every `(method, path)` that [`register`] registers.
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

        fn register(cfg: &mut web::ServiceConfig) {
            $(cfg.service(web::resource($path.replace("{model}", MODEL))$(.route(web::$method().to($handler)))+);)*
        }
    };
}

routes! {
    "/static/{file}" => { get: assets::asset }
    "/login" => { get: pages::login::show, post: pages::login::sign_in }
    "/logout" => { post: pages::login::sign_out }
    "/models/{model}/versions/{version}" => { get: pages::version::show }
    "/models/{model}/upload" => { get: pages::upload::show, post: pages::upload::receive }
    "/models/{model}/aliases" => { post: pages::model::promote }
    "/models/{model}" => { get: pages::model::show }
    "/models" => { post: pages::models::create }
    "/deployments" => { get: pages::deployments::list, post: pages::deployments::create }
    "/deployments/{name}" => { get: pages::deployments::show }
    "/deployments/{name}/traffic" => { get: pages::deployments::traffic }
    "/deployments/{name}/{action}" => { post: pages::deployments::act }
    "/system" => { get: pages::system::show }
    "/system/memory" => { get: pages::system::memory }
    "/activity" => { get: pages::activity::show }
    "/usage" => { get: pages::usage::show }
    "/usage/limits" => { post: pages::usage::limits }
    "/usage/view" => { get: pages::usage::view }
    "/tokens" => { get: pages::tokens::list, post: pages::tokens::create }
    "/tokens/{id}/revoke" => { post: pages::tokens::revoke }
    "/users" => { get: pages::users::list, post: pages::users::create }
    "/users/{name}" => { post: pages::users::update }
    "/" => { get: pages::models::list }
}
