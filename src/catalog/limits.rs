//! Fair-use limits as admins set them, one row per subject (`user:NAME`, `token:ID`). Each
//! change is audited and moves the catalog's write count, which is what tells the gateway to
//! read them again.

use super::events::{self, Actor};
use super::{CatalogError, Db, Result, begin_write, corrupt, now, on_conn, on_db};
use crate::domain::{Limits, Subject};

#[derive(sqlx::FromRow)]
struct Row {
    subject: String,
    requests_per_minute: Option<i64>,
    tokens_per_day: Option<i64>,
    concurrent: Option<i64>,
}

fn unsigned(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn signed(v: Option<u64>) -> Option<i64> {
    v.and_then(|v| i64::try_from(v).ok())
}

/// Every limit, by subject.
pub async fn list(pool: &Db) -> Result<Vec<(Subject, Limits)>> {
    let rows: Vec<Row> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT subject, requests_per_minute, tokens_per_day, concurrent FROM limits ORDER BY subject"
    )
    .fetch_all(pool)
    .await)?;
    rows.into_iter()
        .map(|r| {
            let subject = Subject::parse(&r.subject).map_err(corrupt)?;
            let limits = Limits {
                requests_per_minute: unsigned(r.requests_per_minute),
                tokens_per_day: unsigned(r.tokens_per_day),
                concurrent: unsigned(r.concurrent),
            };
            Ok((subject, limits))
        })
        .collect()
}

/// Sets (or replaces) the limits of `subject`.
pub async fn set(pool: &Db, actor: &Actor, subject: &Subject, limits: Limits) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    on_conn!(&mut tx, |tx| {
        sqlx::query(
        "INSERT INTO limits (subject, requests_per_minute, tokens_per_day, concurrent, updated_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (subject) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
             tokens_per_day = excluded.tokens_per_day, concurrent = excluded.concurrent,
             updated_by = excluded.updated_by, updated_at = $6",
    )
    .bind(subject.to_string())
    .bind(signed(limits.requests_per_minute))
    .bind(signed(limits.tokens_per_day))
    .bind(signed(limits.concurrent))
    .bind(actor.name())
        .bind(now())
    .execute(&mut *tx)
    .await.map(|done| done.rows_affected())
    })?;
    let details = serde_json::to_value(limits).map_err(corrupt)?;
    events::record(&mut tx, actor, "limits.set", None, &subject.to_string(), details).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes the limits of `subject`.
pub async fn delete(pool: &Db, actor: &Actor, subject: &Subject) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let done = on_conn!(&mut tx, |tx| sqlx::query("DELETE FROM limits WHERE subject = $1")
        .bind(subject.to_string())
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected()))?;
    if done == 0 {
        return Err(CatalogError::NotFound(format!("{subject} has no limits")));
    }
    events::record(&mut tx, actor, "limits.removed", None, &subject.to_string(), serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Tokens `subject` used today (UTC), from the usage rollups: where a restarted gateway
/// picks its daily count up again.
pub async fn tokens_since(pool: &Db, subject: &Subject, from_minute: i64) -> Result<u64> {
    let (user, token) = match subject {
        Subject::User(name) => (Some(name.to_string()), None),
        Subject::Token(id) => (None, Some(*id)),
    };
    let used: Option<i64> = on_db!(pool, |pool| sqlx::query_scalar(
        r#"SELECT CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT) FROM usage_minutes
         WHERE minute >= $1 AND ($2 IS NULL OR "user" = $2) AND ($3 IS NULL OR token_id = $3)"#,
    )
    .bind(from_minute)
    .bind(user)
    .bind(token)
    .fetch_one(pool)
    .await)?;
    Ok(unsigned(used).unwrap_or(0))
}
