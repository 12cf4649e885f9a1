//! Activity: the audit log, newest first, filterable by model, actor and action.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use sqlx::SqlitePool;

use crate::catalog::events::{self, EventFilter};
use crate::domain::Role;
use crate::error::ApiError;
use crate::web::{WebCaller, WebError};

/// Events shown on the page: the newest this many that match.
const SHOWN: u32 = 200;

pub struct EventRow {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    details: String,
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    user: String,
    csrf: String,
    model: String,
    actor: String,
    action: String,
    events: Vec<EventRow>,
}

#[derive(Deserialize)]
pub struct ActivityQuery {
    #[serde(default)]
    model: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
}

pub async fn show(
    pool: web::Data<SqlitePool>,
    caller: WebCaller,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, WebError> {
    caller.caller.require(Role::Viewer)?;
    let query = query.into_inner();
    let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = EventFilter {
        after: None,
        model: nonempty(&query.model),
        actor: nonempty(&query.actor),
        action: nonempty(&query.action),
        model_globs: caller.caller.models.clone(),
        limit: SHOWN,
    };
    let rows: Vec<EventRow> = events::recent(&pool, &filter)
        .await?
        .into_iter()
        .map(|e| EventRow {
            id: e.id,
            at: e.at,
            actor: e.actor.unwrap_or_default(),
            action: e.action,
            target: e.target,
            details: e.details.to_string(),
        })
        .collect();
    let body = ActivityPage {
        user: caller.user(),
        csrf: caller.csrf,
        model: query.model,
        actor: query.actor,
        action: query.action,
        events: rows,
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}
