//! The catalog: the only module that speaks SQL. Models, versions, files, blobs and aliases
//! live in SQLite (WAL, foreign keys on, a busy timeout). Functions take a `&SqlitePool`;
//! every write runs in a `BEGIN IMMEDIATE` transaction so concurrent writers queue on the
//! busy timeout instead of failing on a lock upgrade.

pub mod aliases;
pub mod blobs;
pub mod deployments;
pub mod events;
pub mod files;
pub mod models;
pub mod runtimes;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod versions;
pub mod webhooks;

pub use events::Actor;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

/// What went wrong in a catalog call, in terms the HTTP edge can map to a status.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The named thing does not exist; the message names it.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the current state; the message says what to do instead.
    #[error("{0}")]
    Conflict(String),
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Opens (creating if needed) the database file and brings its schema up to date.
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // WAL + NORMAL is durable across a process crash; only an OS crash can lose the
        // last commits, and blobs are fsynced before their rows commit either way.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open database {}", path.display()))?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .with_context(|| format!("cannot migrate database {}", path.display()))?;
    Ok(pool)
}

/// Starts a write transaction that holds SQLite's write lock from its first statement.
pub(crate) async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// A value that should have round-tripped through the database did not: a bug or a
/// database written by something else, never the client's fault.
pub(crate) fn corrupt<E: std::error::Error + Send + Sync + 'static>(err: E) -> CatalogError {
    CatalogError::Db(sqlx::Error::Decode(Box::new(err)))
}

/// True when `err` is a UNIQUE or PRIMARY KEY violation.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Escapes `%`, `_` and `\` so user text matches literally inside `LIKE … ESCAPE '\'`.
pub(crate) fn like_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A page of results and the opaque cursor that fetches the next one.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
