//! The dashboard: server-rendered askama pages over the same catalog the API serves. Every
//! core action works without JavaScript (plain forms with a CSRF token); `app.js` only
//! enhances. Everything a user typed reaches the page escaped, or, for model cards,
//! rendered from Markdown and sanitized.

mod assets;
mod cache;
mod error;
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
        .app_data(web::Data::new(cache::Recent::<pages::system::DockerStatus>::new(pages::system::DOCKER_STATUS_TTL)))
        .service(web::resource("/static/{file}").route(web::get().to(assets::asset)))
        .service(
            web::resource("/login")
                .route(web::get().to(pages::login::show))
                .route(web::post().to(pages::login::sign_in)),
        )
        .service(web::resource("/logout").route(web::post().to(pages::login::sign_out)))
        .service(
            web::resource(format!("/models/{MODEL}/versions/{{version}}")).route(web::get().to(pages::version::show)),
        )
        .service(
            web::resource(format!("/models/{MODEL}/upload"))
                .route(web::get().to(pages::upload::show))
                .route(web::post().to(pages::upload::receive)),
        )
        .service(web::resource(format!("/models/{MODEL}/aliases")).route(web::post().to(pages::model::promote)))
        .service(web::resource(format!("/models/{MODEL}")).route(web::get().to(pages::model::show)))
        .service(web::resource("/models").route(web::post().to(pages::models::create)))
        .service(
            web::resource("/deployments")
                .route(web::get().to(pages::deployments::list))
                .route(web::post().to(pages::deployments::create)),
        )
        .service(web::resource("/deployments/{name}").route(web::get().to(pages::deployments::show)))
        .service(web::resource("/deployments/{name}/{action}").route(web::post().to(pages::deployments::act)))
        .service(web::resource("/system").route(web::get().to(pages::system::show)))
        .service(web::resource("/activity").route(web::get().to(pages::activity::show)))
        .service(
            web::resource("/tokens")
                .route(web::get().to(pages::tokens::list))
                .route(web::post().to(pages::tokens::create)),
        )
        .service(web::resource("/tokens/{id}/revoke").route(web::post().to(pages::tokens::revoke)))
        .service(
            web::resource("/users")
                .route(web::get().to(pages::users::list))
                .route(web::post().to(pages::users::create)),
        )
        .service(web::resource("/users/{name}").route(web::post().to(pages::users::update)))
        .service(web::resource("/").route(web::get().to(pages::models::list)));
}
