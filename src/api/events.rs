//! `/api/v1/events`: the audit log, as pages and as a Server-Sent Events stream that a
//! client resumes with `Last-Event-ID` (each event's `id` is its position in the log).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::catalog::Db;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::{BadRequest, Forbidden, Unauthorized};
use crate::auth::Caller;
use crate::catalog::{self, events::Event, events::EventFilter};
use crate::domain::Role;
use crate::error::ApiError;
use crate::ops;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
/// How often the stream looks for new events.
const POLL: Duration = Duration::from_millis(200);
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Events after this id (the `next_after` of the page before).
    after: Option<i64>,
    /// Only this model's events.
    model: Option<String>,
    /// Only this user's.
    actor: Option<String>,
    /// Only this action; `alias` matches every `alias.*`.
    action: Option<String>,
    /// Events per page: 1-1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// A page of the log, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    items: Vec<Event>,
    /// Pass as `after` for the next page: the last event's id (or `after` again if none came).
    next_after: Option<i64>,
}

impl EventQuery {
    fn filter(self, caller: &Caller) -> Result<EventFilter, ApiError> {
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(n @ 1..=MAX_LIMIT) => n,
            Some(n) => return Err(ApiError::BadRequest(format!("limit={n} is out of range; use 1 to {MAX_LIMIT}"))),
        };
        let filter = EventFilter {
            after: self.after,
            model: self.model,
            actor: self.actor,
            action: self.action,
            limit,
            ..EventFilter::default()
        };
        Ok(ops::events::visible_to(caller, filter))
    }
}

/// Events after `after`, oldest first; filter by `model`, `actor`, `action` (`alias` matches
/// every `alias.*`). A token limited to some models sees only their events; events of no
/// model (users, tokens, runtimes, webhooks) only an admin without model globs sees.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    params(EventQuery),
    responses((status = 200, description = "A page of events", body = EventPage), BadRequest, Unauthorized, Forbidden),
)]
pub async fn list_events(
    pool: web::Data<Db>,
    caller: Caller,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let filter = query.into_inner().filter(&caller)?;
    let events = catalog::events::list(&pool, &filter).await?;
    let next_after = events.last().map_or(filter.after, |e| Some(e.id));
    Ok(HttpResponse::Ok().json(EventPage { items: events, next_after }))
}

/// The live log as SSE. Starts after `Last-Event-ID` (or `?after=`); without either, with
/// what happens from now on. Each message: `id` (the event's), `event` (its action), `data`
/// (the event as JSON); a comment line every 15 s keeps the connection open.
#[utoipa::path(
    get,
    path = "/api/v1/events/stream",
    params(EventQuery, ("Last-Event-ID" = Option<i64>, Header, nullable = false, description = "Resume after this event")),
    responses(
        (status = 200, description = "The stream; it does not end", content_type = "text/event-stream", body = String),
        BadRequest, Unauthorized, Forbidden,
    ),
)]
pub async fn stream_events(
    pool: web::Data<Db>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let mut filter = query.into_inner().filter(&caller)?;
    let resume = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim);
    filter.after = match resume {
        Some(id) => {
            Some(id.parse().map_err(|_| ApiError::BadRequest(format!("Last-Event-ID {id:?} is not an event id")))?)
        }
        None => match filter.after {
            Some(after) => Some(after),
            None => Some(catalog::events::latest_id(&pool).await?),
        },
    };
    let state = Tail { pool: pool.into_inner(), filter, pending: VecDeque::new(), last_sent: Instant::now() };
    let stream = futures_util::stream::unfold(state, |mut tail| async move {
        let chunk = tail.next_chunk().await;
        Some((chunk, tail))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

struct Tail {
    pool: std::sync::Arc<Db>,
    filter: EventFilter,
    pending: VecDeque<Event>,
    last_sent: Instant,
}

impl Tail {
    /// The next SSE frame: an event, a keep-alive comment, or an error that ends the stream.
    async fn next_chunk(&mut self) -> Result<Bytes, actix_web::Error> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.last_sent = Instant::now();
                let data = serde_json::to_string(&event).map_err(actix_web::error::ErrorInternalServerError)?;
                return Ok(Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", event.id, event.action)));
            }
            if self.last_sent.elapsed() >= KEEP_ALIVE {
                self.last_sent = Instant::now();
                return Ok(Bytes::from_static(b": keep-alive\n\n"));
            }
            let events = catalog::events::list(&self.pool, &self.filter).await.map_err(|e| {
                tracing::error!(error = ?e, "event stream query failed");
                actix_web::error::ErrorInternalServerError("event stream failed")
            })?;
            match events.last() {
                Some(last) => {
                    self.filter.after = Some(last.id);
                    self.pending.extend(events);
                }
                None => tokio::time::sleep(POLL).await,
            }
        }
    }
}
