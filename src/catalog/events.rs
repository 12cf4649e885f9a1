//! The audit log: every mutation, with who made it, recorded in the same transaction as
//! the change itself, so the log and the catalog never disagree.

use std::sync::LazyLock;

use sqlx::types::Json;
use sqlx::{SqliteConnection, SqlitePool};

use super::{Result, corrupt, json_list_sql};
use crate::domain::{EVENT_ACTIONS, Glob};

/// Who is making a change. Built from the authenticated caller at the HTTP edge, or
/// `Actor::system()` for Hangar's own changes and offline admin commands.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub user: Option<String>,
    pub token_id: Option<i64>,
    pub remote_addr: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self { user: Some("system".into()), ..Self::default() }
    }

    /// The name shown in `created_by` and friends.
    pub fn name(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Event {
    /// Its position in the log; the SSE `id`, and what `after=` and `Last-Event-ID` take.
    pub id: i64,
    pub at: String,
    pub actor: Option<String>,
    pub token_id: Option<i64>,
    pub remote_addr: Option<String>,
    /// `model.created`, `version.published`, `alias.moved`, `deployment.running`, …
    pub action: String,
    pub model: Option<String>,
    pub target: String,
    /// What changed, as the action records it.
    pub details: serde_json::Value,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct EventRow {
    id: i64,
    at: String,
    actor: Option<String>,
    token_id: Option<i64>,
    remote_addr: Option<String>,
    action: String,
    model: Option<String>,
    target: String,
    details: String,
}

/// Appends one event inside the caller's transaction.
pub(crate) async fn record(
    conn: &mut SqliteConnection,
    actor: &Actor,
    action: &str,
    model: Option<&str>,
    target: &str,
    details: serde_json::Value,
) -> Result<()> {
    debug_assert!(
        EVENT_ACTIONS.contains(&action),
        "event action {action:?} is missing from domain::EVENT_ACTIONS; add it there so webhooks can subscribe to it"
    );
    sqlx::query(
        "INSERT INTO events (actor, actor_id, token_id, remote_addr, action, model, target, details)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(actor.user.as_deref())
    .bind(actor.user_id)
    .bind(actor.token_id)
    .bind(actor.remote_addr.as_deref())
    .bind(action)
    .bind(model)
    .bind(target)
    .bind(details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// The id of the newest event, 0 when there is none.
pub async fn latest_id(pool: &SqlitePool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(pool).await?)
}

/// Which events to list; every field narrows.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub after: Option<i64>,
    pub model: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Only events of models these globs match; `None`: all.
    pub model_globs: Option<Vec<Glob>>,
    /// Leave out the events of no model (users, tokens, runtimes, webhooks).
    pub hide_instance_wide: bool,
    pub limit: u32,
}

/// The one SELECT of events under a filter, ordered by `$order` (a string literal).
macro_rules! select_events {
    ($order:literal) => {
        concat!(
            "SELECT id, at, actor, token_id, remote_addr, action, model, target, details FROM events
              WHERE id > ?1 AND id < ?7
                AND (?2 IS NULL OR model = ?2)
                AND (?3 IS NULL OR actor = ?3)
                AND (?4 IS NULL OR action = ?4 OR action LIKE ?4 || '.%')
                AND (?5 IS NULL OR EXISTS (SELECT 1 FROM json_each(?5) g WHERE model GLOB g.value))
                AND (?8 = 0 OR model IS NOT NULL)
              ORDER BY id ",
            $order,
            " LIMIT ?6"
        )
    };
}

const COLUMNS: &[&str] = &["id", "at", "actor", "token_id", "remote_addr", "action", "model", "target", "details"];
static OLDEST_FIRST: LazyLock<String> = LazyLock::new(|| json_list_sql(select_events!("ASC"), COLUMNS, "id"));
static NEWEST_FIRST: LazyLock<String> = LazyLock::new(|| json_list_sql(select_events!("DESC"), COLUMNS, "id DESC"));
static ABOUT: LazyLock<String> = LazyLock::new(|| {
    json_list_sql(
        "SELECT id, at, actor, token_id, remote_addr, action, model, target, details FROM events
          WHERE model = ?1 AND target = ?2 ORDER BY id DESC LIMIT ?3",
        COLUMNS,
        "id DESC",
    )
});

/// Events in order of id, oldest first, after `filter.after`.
pub async fn list(pool: &SqlitePool, filter: &EventFilter) -> Result<Vec<Event>> {
    fetch(pool, filter, None, OLDEST_FIRST.as_str()).await
}

/// The newest events that match, newest first (for people reading the log).
pub async fn recent(pool: &SqlitePool, filter: &EventFilter) -> Result<Vec<Event>> {
    fetch(pool, filter, None, NEWEST_FIRST.as_str()).await
}

/// Up to `limit` events after `after`, oldest first, read inside the caller's transaction.
pub(crate) async fn after_in(conn: &mut SqliteConnection, after: i64, limit: u32) -> Result<Vec<Event>> {
    let filter = EventFilter { after: Some(after), limit, ..EventFilter::default() };
    fetch(conn, &filter, None, OLDEST_FIRST.as_str()).await
}

/// As `recent`, among the events older than the event `before`: the next page back.
pub async fn recent_before(pool: &SqlitePool, filter: &EventFilter, before: i64) -> Result<Vec<Event>> {
    fetch(pool, filter, Some(before), NEWEST_FIRST.as_str()).await
}

/// The newest events about one target of a model (say, a deployment's transitions), newest
/// first.
pub async fn recent_about(pool: &SqlitePool, model: &str, target: &str, limit: u32) -> Result<Vec<Event>> {
    let rows: Vec<EventRow> = sqlx::query_scalar::<_, Json<Vec<EventRow>>>(ABOUT.as_str())
        .bind(model)
        .bind(target)
        .bind(i64::from(limit))
        .fetch_one(pool)
        .await?
        .0;
    rows.into_iter().map(Event::try_from).collect()
}

async fn fetch<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    filter: &EventFilter,
    before: Option<i64>,
    sql: &'static str,
) -> Result<Vec<Event>> {
    let globs = filter
        .model_globs
        .as_ref()
        .map(|g| serde_json::to_string(&g.iter().map(Glob::as_str).collect::<Vec<_>>()))
        .transpose()
        .map_err(corrupt)?;
    let rows: Vec<EventRow> = sqlx::query_scalar::<_, Json<Vec<EventRow>>>(sql)
        .bind(filter.after.unwrap_or(0))
        .bind(filter.model.as_deref())
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(globs)
        .bind(i64::from(filter.limit))
        .bind(before.unwrap_or(i64::MAX))
        .bind(filter.hide_instance_wide)
        .fetch_one(executor)
        .await?
        .0;
    rows.into_iter().map(Event::try_from).collect()
}

impl TryFrom<EventRow> for Event {
    type Error = super::CatalogError;

    fn try_from(row: EventRow) -> Result<Self> {
        Ok(Self {
            id: row.id,
            at: row.at,
            actor: row.actor,
            token_id: row.token_id,
            remote_addr: row.remote_addr,
            action: row.action,
            model: row.model,
            target: row.target,
            details: serde_json::from_str(&row.details).map_err(corrupt)?,
        })
    }
}
