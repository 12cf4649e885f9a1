//! The upload page. The work happens in the browser (`app.js`): each file is hashed in
//! slices, linked if the server has its bytes, else streamed with its digest through the
//! same REST API as any client, with a progress bar, speed and ETA per file.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::catalog;
use crate::config::Settings;
use crate::domain::{AliasName, ModelName, Role};
use crate::error::ApiError;
use crate::ops;
use crate::runtime::supervisor::Supervisor;
use crate::web::pages::model::ModelPath;
use crate::web::{Frame, WebCaller, WebError};

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    frame: Frame,
    model: String,
    next_version: String,
}

pub async fn show(
    pool: web::Data<Db>,
    caller: WebCaller,
    path: web::Path<ModelPath>,
) -> Result<HttpResponse, WebError> {
    let model = ModelName::parse(path.model()).map_err(ApiError::from)?;
    caller.caller.require_on(Role::Maintainer, &model)?;
    let found = catalog::models::get(&pool, &model).await?;
    let body = UploadPage {
        frame: caller.frame(),
        model: found.name.to_string(),
        next_version: format!("next number after {}", found.version_count),
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

/// The upload form without JavaScript: a multipart post whose fields come in the form's
/// order (the CSRF token first), each file streamed straight into the blob store. The
/// server hashes what arrives; there is no client digest to check it against.
pub async fn receive(
    pool: web::Data<Db>,
    blobs: web::Data<crate::blobs::BlobStore>,
    settings: web::Data<Settings>,
    supervisor: web::Data<Supervisor>,
    caller: WebCaller,
    path: web::Path<ModelPath>,
    mut form: actix_multipart::Multipart,
) -> Result<HttpResponse, WebError> {
    use futures_util::StreamExt as _;

    let model = ModelName::parse(path.model()).map_err(ApiError::from)?;
    caller.caller.require_on(Role::Maintainer, &model)?;
    let mut csrf_ok = false;
    let mut requested: Option<String> = None;
    let mut version: Option<crate::domain::VersionName> = None;
    let mut publish = false;
    let mut alias = String::new();
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| ApiError::BadRequest(format!("the upload form could not be read: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        if name == "files" {
            if !csrf_ok {
                return Err(WebError::forbidden("the form's CSRF token must come before its files; reload the page"));
            }
            let Some(filename) = field.content_disposition().and_then(|d| d.get_filename()).map(str::to_owned) else {
                continue;
            };
            if filename.is_empty() {
                continue;
            }
            let rel = crate::domain::RelPath::parse(&filename).map_err(ApiError::from)?;
            let version = match &version {
                Some(v) => v.clone(),
                None => {
                    let name = requested
                        .as_deref()
                        .filter(|v| !v.is_empty())
                        .map(crate::domain::VersionName::parse)
                        .transpose()
                        .map_err(ApiError::from)?;
                    let new = catalog::versions::NewVersion { name, ..Default::default() };
                    let created = ops::versions::create(&pool, &caller.caller, &model, new).await?;
                    version = Some(created.name.clone());
                    created.name
                }
            };
            let body = futures_util::stream::poll_fn(move |cx| field.poll_next_unpin(cx));
            ops::files::upload(&pool, &blobs, &caller.caller, &model, &version, &rel, body, None, None).await?;
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("the upload form could not be read: {e}")))?;
            if value.len() + chunk.len() > 4096 {
                return Err(ApiError::BadRequest(format!("the form field {name} is too long")).into());
            }
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8_lossy(&value).trim().to_owned();
        match name.as_str() {
            "csrf" => {
                caller.check_csrf(&value)?;
                csrf_ok = true;
            }
            "version" => requested = Some(value),
            "publish" => publish = true,
            "alias" => alias = value,
            _ => {}
        }
    }
    let Some(version) = version else {
        return Err(ApiError::BadRequest("choose at least one file to upload".into()).into());
    };
    if publish {
        let alias = Some(alias.as_str()).filter(|a| !a.is_empty()).map(AliasName::parse).transpose();
        let alias = alias.map_err(ApiError::from)?;
        // An alias the caller may not move leaves the upload a draft, not published half-way.
        if let Some(alias) = &alias {
            ops::aliases::authorize_change(&caller.caller, &settings, &model, alias)?;
        }
        ops::versions::publish(&pool, &caller.caller, &model, &version).await?;
        if let Some(alias) = &alias {
            ops::aliases::set(&pool, &settings, &supervisor, &caller.caller, &model, alias, &version).await?;
        }
    }
    let target = format!("/models/{model}/versions/{version}");
    Ok(HttpResponse::SeeOther().insert_header((actix_web::http::header::LOCATION, target)).finish())
}
