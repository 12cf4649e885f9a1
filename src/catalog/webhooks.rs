//! Webhooks and their deliveries. `fan_out` turns new events into one delivery per matching
//! webhook and advances the persisted cursor in the same transaction; the delivery worker
//! (`crate::webhooks`) takes due deliveries from `due` and reports each attempt to
//! `finish_attempt`. A delivery's body is fixed when it is made, so every attempt sends,
//! and signs, the same bytes.

use std::time::{Duration, SystemTime};

use super::events::{self, Actor, Event};
use super::{CatalogError, ConnMut, Db, Result, begin_write, corrupt, json_each, now, on_conn, on_db};
use crate::domain::{DeliveryStatus, EventTypes, WebhookSecret, WebhookUrl};

/// A webhook as the API shows it: everything but the secret, of which only a hint is read.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: i64,
    pub url: WebhookUrl,
    pub events: EventTypes,
    pub description: String,
    pub active: bool,
    /// `…` and the secret's last four characters.
    pub secret_hint: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: i64,
    url: String,
    events: String,
    description: String,
    active: bool,
    secret_tail: String,
    created_by: Option<String>,
    created_at: String,
    updated_at: String,
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = CatalogError;

    fn try_from(row: WebhookRow) -> Result<Self> {
        let events: Vec<String> = serde_json::from_str(&row.events).map_err(corrupt)?;
        Ok(Self {
            id: row.id,
            url: WebhookUrl::parse(&row.url).map_err(corrupt)?,
            events: EventTypes::parse(&events).map_err(corrupt)?,
            description: row.description,
            active: row.active,
            secret_hint: format!("…{}", row.secret_tail),
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

macro_rules! select_webhook {
    ($tail:literal) => {
        concat!(
            "SELECT id, url, events, description, active, substr(secret, length(secret) - 3) AS secret_tail, created_by,
                    created_at, updated_at
               FROM webhooks ",
            $tail
        )
    };
}

/// The SELECT of due deliveries in dialect `$d`: `$1` the JSON array of busy webhooks, `$2`
/// the limit, `$3` the time now.
macro_rules! due_sql {
    ($d:ident) => {
        concat!(
            "SELECT d.id, d.uuid, d.webhook_id, d.action, d.body, d.attempts, w.url, w.secret
               FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
              WHERE d.status = 'pending' AND d.next_attempt_at <= $3
                AND w.active
                AND d.webhook_id NOT IN (SELECT CAST(b.value AS BIGINT) FROM ",
            json_each!($d, "$1", "b"),
            ")
                AND d.id = (SELECT MIN(o.id) FROM webhook_deliveries o
                             WHERE o.webhook_id = d.webhook_id AND o.status = 'pending'
                               AND o.next_attempt_at <= $3)
              ORDER BY d.id
              LIMIT $2"
        )
    };
}

/// Active webhooks subscribed to action `$2` that were made before event `$1`, in `$d`.
macro_rules! subscribers_sql {
    ($d:ident) => {
        concat!(
            "SELECT id FROM webhooks
              WHERE active AND since_event_id < $1
                AND EXISTS (SELECT 1 FROM ",
            json_each!($d, "webhooks.events", "e"),
            " WHERE e.value IN ('*', $2))
              ORDER BY id"
        )
    };
}

fn not_found(id: i64) -> CatalogError {
    CatalogError::NotFound(format!("webhook {id} does not exist; GET /api/v1/webhooks lists them"))
}

fn events_json(events: &EventTypes) -> Result<String> {
    serde_json::to_string(events.as_slice()).map_err(corrupt)
}

/// A webhook to register.
#[derive(Debug)]
pub struct NewWebhook<'a> {
    pub url: &'a WebhookUrl,
    pub events: &'a EventTypes,
    pub secret: &'a WebhookSecret,
    pub description: &'a str,
    pub active: bool,
}

/// Registers a webhook. It is told of events recorded after this one, never of older ones.
pub async fn create(pool: &Db, actor: &Actor, new: NewWebhook<'_>) -> Result<Webhook> {
    let mut tx = begin_write(pool).await?;
    let id: i64 = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "INSERT INTO webhooks (url, secret, events, description, active, since_event_id, created_by)
         VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING id",
    )
    .bind(new.url.as_str())
    .bind(new.secret.expose())
    .bind(events_json(new.events)?)
    .bind(new.description)
    .bind(new.active)
    .bind(actor.name())
    .fetch_one(&mut *tx)
    .await)?;
    // The audit log keeps the host only: a receiver's path often holds its own secret.
    let details = serde_json::json!({
        "id": id, "host": new.url.host(), "events": new.events, "active": new.active,
    });
    events::record(&mut tx, actor, "webhook.created", None, &format!("webhook/{id}"), details).await?;
    on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE webhooks SET since_event_id = (SELECT COALESCE(MAX(id), 0) FROM events) WHERE id = $1"
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .map(drop))?;
    tx.commit().await?;
    get(pool, id).await
}

pub async fn list(pool: &Db) -> Result<Vec<Webhook>> {
    let rows: Vec<WebhookRow> =
        on_db!(pool, |pool| sqlx::query_as(select_webhook!("ORDER BY id")).fetch_all(pool).await)?;
    rows.into_iter().map(Webhook::try_from).collect()
}

pub async fn get(pool: &Db, id: i64) -> Result<Webhook> {
    let row: Option<WebhookRow> =
        on_db!(pool, |pool| sqlx::query_as(select_webhook!("WHERE id = $1")).bind(id).fetch_optional(pool).await)?;
    row.ok_or_else(|| not_found(id))?.try_into()
}

/// What a PATCH changes; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct WebhookChange<'a> {
    pub url: Option<&'a WebhookUrl>,
    pub events: Option<&'a EventTypes>,
    pub secret: Option<&'a WebhookSecret>,
    pub description: Option<&'a str>,
    pub active: Option<bool>,
}

pub async fn update(pool: &Db, actor: &Actor, id: i64, change: WebhookChange<'_>) -> Result<Webhook> {
    let mut tx = begin_write(pool).await?;
    let updated = on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE webhooks SET url = COALESCE($1, url), events = COALESCE($2, events), secret = COALESCE($3, secret),
                description = COALESCE($4, description), active = COALESCE($5, active),
                updated_at = $7
          WHERE id = $6",
    )
    .bind(change.url.map(WebhookUrl::as_str))
    .bind(change.events.map(events_json).transpose()?)
    .bind(change.secret.map(WebhookSecret::expose))
    .bind(change.description)
    .bind(change.active)
    .bind(id)
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()))?;
    if updated == 0 {
        return Err(not_found(id));
    }
    let details = serde_json::json!({
        "id": id,
        "host": change.url.map(WebhookUrl::host),
        "events": change.events,
        "active": change.active,
        "secret_changed": change.secret.is_some(),
    });
    events::record(&mut tx, actor, "webhook.updated", None, &format!("webhook/{id}"), details).await?;
    tx.commit().await?;
    get(pool, id).await
}

/// Deletes a webhook and its deliveries, pending ones included.
pub async fn delete(pool: &Db, actor: &Actor, id: i64) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let deleted = on_conn!(&mut tx, |tx| sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected()))?;
    if deleted == 0 {
        return Err(not_found(id));
    }
    events::record(&mut tx, actor, "webhook.deleted", None, &format!("webhook/{id}"), serde_json::json!({ "id": id }))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A delivery as the API shows it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub uuid: String,
    pub webhook_id: i64,
    pub event_id: Option<i64>,
    pub action: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub response_status: Option<i64>,
    pub error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    uuid: String,
    webhook_id: i64,
    event_id: Option<i64>,
    action: String,
    status: String,
    attempts: i64,
    response_status: Option<i64>,
    error: Option<String>,
    next_attempt_at: Option<String>,
    last_attempt_at: Option<String>,
    delivered_at: Option<String>,
    created_at: String,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = CatalogError;

    fn try_from(row: DeliveryRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            uuid: row.uuid,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            action: row.action,
            status: DeliveryStatus::parse(&row.status).map_err(corrupt)?,
            attempts: row.attempts,
            response_status: row.response_status,
            error: row.error,
            next_attempt_at: row.next_attempt_at,
            last_attempt_at: row.last_attempt_at,
            delivered_at: row.delivered_at,
            created_at: row.created_at,
        })
    }
}

macro_rules! select_delivery {
    ($tail:literal) => {
        concat!(
            "SELECT id, uuid, webhook_id, event_id, action, status, attempts, response_status, error,
                    next_attempt_at, last_attempt_at, delivered_at, created_at
               FROM webhook_deliveries ",
            $tail
        )
    };
}

/// A webhook's deliveries, newest first, optionally only those in one status.
pub async fn deliveries(
    pool: &Db,
    webhook_id: i64,
    status: Option<DeliveryStatus>,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let exists: Option<i64> = on_db!(pool, |pool| sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1")
        .bind(webhook_id)
        .fetch_optional(pool)
        .await)?;
    if exists.is_none() {
        return Err(not_found(webhook_id));
    }
    let rows: Vec<DeliveryRow> = on_db!(pool, |pool| sqlx::query_as(select_delivery!(
        "WHERE webhook_id = $1 AND ($2 IS NULL OR status = $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(webhook_id)
    .bind(status.map(DeliveryStatus::as_str))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await)?;
    rows.into_iter().map(Delivery::try_from).collect()
}

/// Queues a `ping` to one webhook, whatever it subscribes to: an event-shaped body with id
/// 0 (no event in the log has it), for checking a receiver and its signature check.
pub async fn ping(pool: &Db, actor: &Actor, id: i64) -> Result<Delivery> {
    let mut tx = begin_write(pool).await?;
    let found: Option<(String, bool)> =
        on_conn!(&mut tx, |tx| sqlx::query_as("SELECT events, active FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await)?;
    let Some((subscribed, active)) = found else { return Err(not_found(id)) };
    if !active {
        return Err(CatalogError::Conflict(format!(
            "webhook {id} is inactive, so nothing would be sent; PATCH it with {{\"active\": true}} first"
        )));
    }
    let subscribed: serde_json::Value = serde_json::from_str(&subscribed).map_err(corrupt)?;
    let event = Event {
        id: 0,
        at: now(),
        actor: actor.user.clone(),
        token_id: actor.token_id,
        remote_addr: actor.remote_addr.clone(),
        action: "ping".to_owned(),
        model: None,
        target: format!("webhook/{id}"),
        details: serde_json::json!({ "webhook": id, "events": subscribed }),
    };
    let body = serde_json::to_string(&event).map_err(corrupt)?;
    let delivery_id = insert_delivery(&mut tx, id, None, "ping", &body).await?;
    tx.commit().await?;
    let row: DeliveryRow =
        on_db!(pool, |pool| sqlx::query_as(select_delivery!("WHERE id = $1")).bind(delivery_id).fetch_one(pool).await)?;
    row.try_into()
}

async fn insert_delivery(
    conn: impl Into<ConnMut<'_>>,
    webhook_id: i64,
    event_id: Option<i64>,
    action: &str,
    body: &str,
) -> Result<i64> {
    let mut conn: ConnMut<'_> = conn.into();
    Ok(on_conn!(&mut conn, |conn| {
        sqlx::query_scalar(
        "INSERT INTO webhook_deliveries (webhook_id, uuid, event_id, action, body) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(webhook_id)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(event_id)
    .bind(action)
    .bind(body)
    .fetch_one(&mut *conn)
    .await
    })?)
}

/// Turns up to `limit` events after the cursor into deliveries, one per active webhook that
/// subscribes to the event's action, and moves the cursor past them, in one transaction.
/// Returns how many events were read; fewer than `limit` means it has caught up.
pub async fn fan_out(pool: &Db, limit: u32) -> Result<usize> {
    // Read-only first: an idle server should not take the write lock on every tick.
    let newer: bool = on_db!(pool, |pool| sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE id > (SELECT last_event_id FROM webhook_cursor WHERE id = 1))",
    )
    .fetch_one(pool)
    .await)?;
    if !newer {
        return Ok(0);
    }
    let mut tx = begin_write(pool).await?;
    let cursor: i64 =
        on_conn!(&mut tx, |tx| sqlx::query_scalar("SELECT last_event_id FROM webhook_cursor WHERE id = 1")
            .fetch_one(&mut *tx)
            .await)?;
    let batch = events::after_in(&mut tx, cursor, limit).await?;
    let subscribers = tx.dialect().pick(subscribers_sql!(sqlite), subscribers_sql!(postgres));
    for event in &batch {
        let webhooks: Vec<i64> = on_conn!(&mut tx, |tx| sqlx::query_scalar(subscribers)
            .bind(event.id)
            .bind(&event.action)
            .fetch_all(&mut *tx)
            .await)?;
        if webhooks.is_empty() {
            continue;
        }
        // The body is the event exactly as GET /api/v1/events shows it.
        let body = serde_json::to_string(event).map_err(corrupt)?;
        for webhook in webhooks {
            insert_delivery(&mut tx, webhook, Some(event.id), &event.action, &body).await?;
        }
    }
    if let Some(last) = batch.last() {
        on_conn!(&mut tx, |tx| sqlx::query("UPDATE webhook_cursor SET last_event_id = $1 WHERE id = 1")
            .bind(last.id)
            .execute(&mut *tx)
            .await
            .map(drop))?;
    }
    tx.commit().await?;
    Ok(batch.len())
}

/// A delivery to attempt, with what sending it needs.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub id: i64,
    pub uuid: String,
    pub webhook_id: i64,
    pub action: String,
    pub body: String,
    /// Attempts already made.
    pub attempts: u32,
    pub url: String,
    pub secret: WebhookSecret,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    uuid: String,
    webhook_id: i64,
    action: String,
    body: String,
    attempts: i64,
    url: String,
    secret: String,
}

/// The oldest due delivery of each active webhook not in `busy`, at most `limit` of them:
/// one at a time per webhook, so a receiver that is down holds up only its own deliveries.
pub async fn due(pool: &Db, busy: &[i64], limit: u32) -> Result<Vec<DeliveryJob>> {
    let busy = serde_json::to_string(busy).map_err(corrupt)?;
    let sql = pool.dialect().pick(due_sql!(sqlite), due_sql!(postgres));
    let rows: Vec<JobRow> =
        on_db!(pool, |pool| sqlx::query_as(sql).bind(busy).bind(i64::from(limit)).bind(now()).fetch_all(pool).await)?;
    rows.into_iter()
        .map(|row| {
            Ok(DeliveryJob {
                id: row.id,
                uuid: row.uuid,
                webhook_id: row.webhook_id,
                action: row.action,
                body: row.body,
                attempts: u32::try_from(row.attempts).map_err(corrupt)?,
                url: row.url,
                secret: WebhookSecret::parse(&row.secret).map_err(corrupt)?,
            })
        })
        .collect()
}

/// How one attempt ended, and so what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// It failed; try again after `after`.
    Retry { status: Option<u16>, error: String, after: Duration },
    /// It failed and it was the last attempt.
    Failed { status: Option<u16>, error: String },
}

/// Records attempt number `attempts` of delivery `id`.
pub async fn finish_attempt(pool: &Db, id: i64, attempts: u32, outcome: &AttemptOutcome) -> Result<()> {
    let (status, response_status, error, retry_in) = match outcome {
        AttemptOutcome::Delivered { status } => (DeliveryStatus::Delivered, Some(*status), None, None),
        AttemptOutcome::Retry { status, error, after } => {
            (DeliveryStatus::Pending, *status, Some(error.as_str()), Some(super::timestamp(SystemTime::now() + *after)))
        }
        AttemptOutcome::Failed { status, error } => (DeliveryStatus::Failed, *status, Some(error.as_str()), None),
    };
    on_db!(pool, |pool| sqlx::query(
        "UPDATE webhook_deliveries
            SET status = $1, attempts = $2, response_status = $3, error = $4,
                next_attempt_at = $5,
                last_attempt_at = $7,
                delivered_at = CASE WHEN $1 = 'delivered' THEN $7 END
          WHERE id = $6 AND status = 'pending'",
    )
    .bind(status.as_str())
    .bind(i64::from(attempts))
    .bind(response_status.map(i64::from))
    .bind(error)
    .bind(retry_in)
    .bind(id)
    .bind(now())
    .execute(pool)
    .await
    .map(drop))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::catalog::deployments::State;
    use crate::domain::EVENT_ACTIONS;

    #[test]
    fn every_deployment_state_is_a_subscribable_action() {
        for state in State::ALL {
            let action = format!("deployment.{}", state.as_str());
            assert!(EVENT_ACTIONS.contains(&action.as_str()), "{action} is missing from EVENT_ACTIONS");
        }
    }
}
