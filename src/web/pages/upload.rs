//! The upload page. The work happens in the browser (`app.js`): each file is hashed in
//! slices, linked if the server has its bytes, else streamed with its digest through the
//! same REST API as any client, with a progress bar, speed and ETA per file.

use actix_web::{HttpResponse, web};
use askama::Template;
use sqlx::SqlitePool;

use crate::catalog;
use crate::domain::{ModelName, Role};
use crate::error::ApiError;
use crate::web::pages::model::ModelPath;
use crate::web::{WebCaller, WebError};

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    user: String,
    csrf: String,
    model: String,
    next_version: String,
}

pub async fn show(
    pool: web::Data<SqlitePool>,
    caller: WebCaller,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, WebError> {
    let model = ModelName::parse(path.model()).map_err(ApiError::from)?;
    caller.caller.require_on(Role::Maintainer, &model)?;
    let found = catalog::models::get(&pool, &model).await?;
    let body = UploadPage {
        user: caller.user(),
        csrf: caller.csrf,
        model: found.name.to_string(),
        next_version: format!("next number after {}", found.version_count),
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}
