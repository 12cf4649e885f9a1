//! `/api/v1/webhooks` (admins): receivers told of events, and each delivery made to them.
//! A webhook's secret is write-only: set at creation (or generated and returned that once)
//! and by PATCH, otherwise shown only as a hint of its last four characters.

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::{BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType};
use super::page::Items;
use crate::auth::Caller;
use crate::catalog;
use crate::catalog::webhooks::{Delivery, NewWebhook, Webhook, WebhookChange};
use crate::config::Settings;
use crate::domain::{DeliveryStatus, EventTypes, FreeText, Lines, WebhookSecret, WebhookUrl};
use crate::error::ApiError;
use crate::webhooks::generate_secret;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    id: i64,
    /// Where deliveries are POSTed (`http://` only).
    #[schema(value_type = String, example = "http://ci.internal:8080/hangar")]
    url: WebhookUrl,
    /// The event actions delivered, or `["*"]` for all.
    #[schema(value_type = Vec<String>, example = json!(["version.published", "alias.moved"]))]
    events: EventTypes,
    description: String,
    active: bool,
    /// The secret's last four characters.
    secret_hint: String,
    created_by: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events,
            description: w.description,
            active: w.active,
            secret_hint: w.secret_hint,
            created_by: w.created_by,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// The creation response: the view, plus the secret when Hangar generated it (this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    view: WebhookView,
    /// The generated secret, shown this once (absent when the request gave one).
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    id: i64,
    uuid: String,
    webhook_id: i64,
    event_id: Option<i64>,
    action: String,
    status: DeliveryStatus,
    attempts: i64,
    response_status: Option<i64>,
    error: Option<String>,
    next_attempt_at: Option<String>,
    last_attempt_at: Option<String>,
    delivered_at: Option<String>,
    created_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            uuid: d.uuid,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            action: d.action,
            status: d.status,
            attempts: d.attempts,
            response_status: d.response_status,
            error: d.error,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: String,
    /// Event actions, or `["*"]` for all.
    events: Vec<String>,
    /// Left out: one is generated and returned once.
    secret: Option<String>,
    description: Option<String>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    url: Option<String>,
    events: Option<Vec<String>>,
    secret: Option<String>,
    description: Option<String>,
    active: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct WebhookPath {
    id: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// At most this many, 1 to 1000 (default 100).
    limit: Option<u32>,
}

/// Admins only, and not through a token limited to some models: a webhook is told of the
/// events of every model.
fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    Ok(caller.require_instance_admin("manage webhooks")?)
}

fn description(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let parse = |d: String| FreeText::parse("description", &d, Lines::Many, MAX_DESCRIPTION_CHARS);
    Ok(raw.map(parse).transpose()?.map(FreeText::into_string))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    responses((status = 200, description = "Every webhook", body = Items<WebhookView>), Unauthorized, Forbidden),
)]
pub async fn list_webhooks(pool: web::Data<Db>, caller: Caller) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let webhooks = catalog::webhooks::list(&pool).await?;
    Ok(HttpResponse::Ok().json(Items::new(webhooks, WebhookView::from)))
}

/// Registers a receiver; it is told of events from now on.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Registered", body = CreatedWebhook),
        BadRequest, Unauthorized, Forbidden, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn create_webhook(
    pool: web::Data<Db>,
    settings: web::Data<Settings>,
    caller: Caller,
    body: web::Json<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let body = body.into_inner();
    let url = WebhookUrl::parse(&body.url)?;
    url.check_destination(settings.webhook_allow_private)?;
    let events = EventTypes::parse(&body.events)?;
    let description = description(body.description)?.unwrap_or_default();
    let (secret, generated) = match body.secret {
        Some(given) => (WebhookSecret::parse(&given)?, false),
        None => (generate_secret(), true),
    };
    let new = NewWebhook {
        url: &url,
        events: &events,
        secret: &secret,
        description: &description,
        active: body.active.unwrap_or(true),
    };
    let webhook = catalog::webhooks::create(&pool, &caller.actor(), new).await?;
    let secret = generated.then(|| secret.expose().to_owned());
    Ok(HttpResponse::Created().json(CreatedWebhook { view: webhook.into(), secret }))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's `id`")),
    responses((status = 200, description = "The webhook", body = WebhookView), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn get_webhook(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let webhook = catalog::webhooks::get(&pool, path.id).await?;
    Ok(HttpResponse::Ok().json(WebhookView::from(webhook)))
}

/// Changes the URL, events, secret, description, or pauses (`active: false`) a webhook.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's `id`")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "Changed", body = WebhookView),
        BadRequest, Unauthorized, Forbidden, NotFound, PayloadTooLarge, UnsupportedMediaType,
    ),
)]
pub async fn update_webhook(
    pool: web::Data<Db>,
    settings: web::Data<Settings>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    body: web::Json<UpdateWebhook>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let body = body.into_inner();
    let url = body.url.as_deref().map(WebhookUrl::parse).transpose()?;
    if let Some(url) = &url {
        url.check_destination(settings.webhook_allow_private)?;
    }
    let events = body.events.as_deref().map(EventTypes::parse).transpose()?;
    let secret = body.secret.as_deref().map(WebhookSecret::parse).transpose()?;
    let description = description(body.description)?;
    let change = WebhookChange {
        url: url.as_ref(),
        events: events.as_ref(),
        secret: secret.as_ref(),
        description: description.as_deref(),
        active: body.active,
    };
    let webhook = catalog::webhooks::update(&pool, &caller.actor(), path.id, change).await?;
    Ok(HttpResponse::Ok().json(WebhookView::from(webhook)))
}

/// Deletes a webhook with its deliveries; pending ones are not sent.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's `id`")),
    responses((status = 204, description = "Deleted"), BadRequest, Unauthorized, Forbidden, NotFound),
)]
pub async fn delete_webhook(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    catalog::webhooks::delete(&pool, &caller.actor(), path.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A webhook's deliveries, newest first; `status` narrows to pending, delivered or failed.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's `id`"), DeliveryQuery),
    responses(
        (status = 200, description = "Its deliveries, newest first", body = Items<DeliveryView>),
        BadRequest, Unauthorized, Forbidden, NotFound,
    ),
)]
pub async fn list_deliveries(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<WebhookPath>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let status = query.status.as_deref().map(DeliveryStatus::parse).transpose()?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(n @ 1..=MAX_LIMIT) => n,
        Some(n) => return Err(ApiError::BadRequest(format!("limit={n} is out of range; use 1 to {MAX_LIMIT}"))),
    };
    let deliveries = catalog::webhooks::deliveries(&pool, path.id, status, limit).await?;
    Ok(HttpResponse::Ok().json(Items::new(deliveries, DeliveryView::from)))
}

/// Queues a signed `ping` to this webhook alone; 202 with the delivery to watch.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/ping",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's `id`")),
    responses(
        (status = 202, description = "Queued; watch it in the deliveries", body = DeliveryView),
        BadRequest, Unauthorized, Forbidden, NotFound,
    ),
)]
pub async fn ping_webhook(
    pool: web::Data<Db>,
    caller: Caller,
    path: web::Path<WebhookPath>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&caller)?;
    let delivery = catalog::webhooks::ping(&pool, &caller.actor(), path.id).await?;
    Ok(HttpResponse::Accepted().json(DeliveryView::from(delivery)))
}
