//! Activity: the audit log, newest first, a page at a time, filterable by model, actor and
//! action.

use std::sync::Arc;

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::catalog::events::{self, EventFilter};
use crate::domain::Role;
use crate::error::ApiError;
use crate::ops;
use crate::web::cache::PageCache;
use crate::web::error::encode_query;
use crate::web::{Frame, WebCaller, WebError};

/// Events on a page: the newest this many that match (before `before=`).
const SHOWN: u32 = 50;

pub struct EventRow {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    details: String,
}

/// What one page of the log, under one filter, shows.
pub struct ActivityData {
    events: Vec<EventRow>,
    /// The link to the next (older) page.
    older: Option<String>,
}

/// The filter (model, actor, action), the page (`before=`), the caller's model globs and
/// whether it sees instance-wide events.
pub type ActivityKey = (String, String, String, Option<i64>, Option<Vec<String>>, bool);

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    frame: Frame,
    model: String,
    actor: String,
    action: String,
    data: Arc<ActivityData>,
    paged: bool,
}

#[derive(Deserialize)]
pub struct ActivityQuery {
    #[serde(default)]
    model: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    /// Events older than this one (its id, from the "older events" link).
    before: Option<String>,
}

pub async fn show(
    pool: web::Data<Db>,
    cache: web::Data<PageCache<ActivityKey, ActivityData>>,
    caller: WebCaller,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, WebError> {
    caller.caller.require(Role::Viewer)?;
    let query = query.into_inner();
    let before =
        query.before.as_deref().map(str::parse::<i64>).transpose().map_err(|_| {
            ApiError::BadRequest("before= is not a link this page made; start again from Activity".into())
        })?;
    let globs = caller.caller.models.as_ref().map(|g| g.iter().map(|g| g.as_str().to_owned()).collect());
    let instance_wide = caller.caller.is_instance_admin();
    let key = (query.model.clone(), query.actor.clone(), query.action.clone(), before, globs, instance_wide);
    let data = cache.get_or_load(key, || load(&pool, &caller, &query, before)).await?;
    let body = ActivityPage {
        frame: caller.frame(),
        model: query.model,
        actor: query.actor,
        action: query.action,
        data,
        paged: before.is_some(),
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

async fn load(
    pool: &Db,
    caller: &WebCaller,
    query: &ActivityQuery,
    before: Option<i64>,
) -> Result<ActivityData, WebError> {
    let nonempty = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let filter = EventFilter {
        model: nonempty(&query.model),
        actor: nonempty(&query.actor),
        action: nonempty(&query.action),
        limit: SHOWN + 1,
        ..EventFilter::default()
    };
    let filter = ops::events::visible_to(&caller.caller, filter);
    let mut found = match before {
        Some(id) => events::recent_before(pool, &filter, id).await?,
        None => events::recent(pool, &filter).await?,
    };
    let older = (found.len() > SHOWN as usize).then(|| {
        found.truncate(SHOWN as usize);
        let last = found.last().map_or(0, |e| e.id);
        format!(
            "/activity?model={}&actor={}&action={}&before={last}",
            encode_query(&query.model),
            encode_query(&query.actor),
            encode_query(&query.action)
        )
    });
    let rows: Vec<EventRow> = found
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
    Ok(ActivityData { events: rows, older })
}
