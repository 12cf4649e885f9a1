//! The audit log: every mutation, with who made it, recorded in the same transaction as
//! the change itself, so the log and the catalog never disagree.

use sqlx::types::Json;

use super::{ConnMut, Db, JsonList, Result, any_glob, corrupt, globs_param, on_conn, on_db};
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
    conn: impl Into<ConnMut<'_>>,
    actor: &Actor,
    action: &str,
    model: Option<&str>,
    target: &str,
    details: serde_json::Value,
) -> Result<()> {
    let mut conn: ConnMut<'_> = conn.into();
    debug_assert!(
        EVENT_ACTIONS.contains(&action),
        "event action {action:?} is missing from domain::EVENT_ACTIONS; add it there so webhooks can subscribe to it"
    );
    on_conn!(&mut conn, |conn| sqlx::query(
        "INSERT INTO events (actor, actor_id, token_id, remote_addr, action, model, target, details)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(actor.user.as_deref())
    .bind(actor.user_id)
    .bind(actor.token_id)
    .bind(actor.remote_addr.as_deref())
    .bind(action)
    .bind(model)
    .bind(target)
    .bind(details.to_string())
    .execute(&mut *conn)
    .await
    .map(drop))?;
    Ok(())
}

/// The id of the newest event, 0 when there is none.
pub async fn latest_id(pool: &Db) -> Result<i64> {
    Ok(on_db!(pool, |pool| sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(pool).await)?)
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
    ($d:ident, $order:literal) => {
        concat!(
            "SELECT id, at, actor, token_id, remote_addr, action, model, target, details FROM events
              WHERE id > $1 AND id < $7
                AND ($2 IS NULL OR model = $2)
                AND ($3 IS NULL OR actor = $3)
                AND ($4 IS NULL OR action = $4 OR action LIKE $4 || '.%')
                AND ($5 IS NULL OR ",
            any_glob!($d, "model", "$5"),
            ")
                AND (NOT $8 OR model IS NOT NULL)
              ORDER BY id ",
            $order,
            " LIMIT $6"
        )
    };
}

const COLUMNS: &[&str] = &["id", "at", "actor", "token_id", "remote_addr", "action", "model", "target", "details"];
static OLDEST_FIRST: JsonList =
    JsonList::per_dialect(select_events!(sqlite, "ASC"), select_events!(postgres, "ASC"), COLUMNS, "id");
static NEWEST_FIRST: JsonList =
    JsonList::per_dialect(select_events!(sqlite, "DESC"), select_events!(postgres, "DESC"), COLUMNS, "id DESC");
static ABOUT: JsonList = JsonList::new(
    "SELECT id, at, actor, token_id, remote_addr, action, model, target, details FROM events
      WHERE model = $1 AND target = $2 ORDER BY id DESC LIMIT $3",
    COLUMNS,
    "id DESC",
);

/// Events in order of id, oldest first, after `filter.after`.
pub async fn list(pool: &Db, filter: &EventFilter) -> Result<Vec<Event>> {
    fetch(&mut pool.acquire().await?, filter, None, &OLDEST_FIRST).await
}

/// The newest events that match, newest first (for people reading the log).
pub async fn recent(pool: &Db, filter: &EventFilter) -> Result<Vec<Event>> {
    fetch(&mut pool.acquire().await?, filter, None, &NEWEST_FIRST).await
}

/// Up to `limit` events after `after`, oldest first, read inside the caller's transaction.
pub(crate) async fn after_in(conn: impl Into<ConnMut<'_>>, after: i64, limit: u32) -> Result<Vec<Event>> {
    let filter = EventFilter { after: Some(after), limit, ..EventFilter::default() };
    fetch(conn, &filter, None, &OLDEST_FIRST).await
}

/// As `recent`, among the events older than the event `before`: the next page back.
pub async fn recent_before(pool: &Db, filter: &EventFilter, before: i64) -> Result<Vec<Event>> {
    fetch(&mut pool.acquire().await?, filter, Some(before), &NEWEST_FIRST).await
}

/// The newest events about one target of a model (say, a deployment's transitions), newest
/// first.
pub async fn recent_about(pool: &Db, model: &str, target: &str, limit: u32) -> Result<Vec<Event>> {
    let sql = ABOUT.sql(pool.dialect());
    let rows: Vec<EventRow> = on_db!(pool, |pool| sqlx::query_scalar::<_, Json<Vec<EventRow>>>(sql)
        .bind(model)
        .bind(target)
        .bind(i64::from(limit))
        .fetch_one(pool)
        .await)?
    .0;
    rows.into_iter().map(Event::try_from).collect()
}

async fn fetch(
    conn: impl Into<ConnMut<'_>>,
    filter: &EventFilter,
    before: Option<i64>,
    list: &'static JsonList,
) -> Result<Vec<Event>> {
    let mut conn: ConnMut<'_> = conn.into();
    let dialect = conn.dialect();
    let globs = globs_param(dialect, filter.model_globs.as_deref())?;
    let sql = list.sql(dialect);
    let rows: Vec<EventRow> = on_conn!(&mut conn, |conn| sqlx::query_scalar::<_, Json<Vec<EventRow>>>(sql)
        .bind(filter.after.unwrap_or(0))
        .bind(filter.model.as_deref())
        .bind(filter.actor.as_deref())
        .bind(filter.action.as_deref())
        .bind(globs)
        .bind(i64::from(filter.limit))
        .bind(before.unwrap_or(i64::MAX))
        .bind(filter.hide_instance_wide)
        .fetch_one(&mut *conn)
        .await)?
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
