//! The catalog: the only module that speaks SQL. Models, versions, files, blobs and aliases
//! live in SQLite (WAL, foreign keys on, a busy timeout). Functions take a `&SqlitePool`;
//! every write runs in a `BEGIN IMMEDIATE` transaction so concurrent writers queue on the
//! busy timeout instead of failing on a lock upgrade.

pub mod aliases;
pub mod blobs;
pub mod deployments;
pub mod events;
pub mod files;
pub mod launches;
pub mod limits;
pub mod models;
pub mod runtimes;
pub mod sessions;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod versions;
pub mod webhooks;

pub use events::Actor;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, Sqlite, SqliteConnection, SqlitePool, Transaction};

/// What went wrong in a catalog call, in terms the HTTP edge can map to a status.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The named thing does not exist; the message names it.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts the current state; the message says what to do instead.
    #[error("{0}")]
    Conflict(String),
    /// The database failed; `at` is the catalog line whose query it was, for the log.
    #[error("database error at {at}")]
    Db { source: sqlx::Error, at: &'static std::panic::Location<'static> },
}

impl From<sqlx::Error> for CatalogError {
    /// Records where the error was raised: `?` passes its own location down to here.
    #[track_caller]
    fn from(source: sqlx::Error) -> Self {
        Self::Db { source, at: std::panic::Location::caller() }
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Opens (creating if needed) the database file and brings its schema up to date.
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    create_private(path).with_context(|| format!("cannot create database {}", path.display()))?;
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
        .after_release(|conn, _| Box::pin(async move { settled(conn).await }))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open database {}", path.display()))?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .with_context(|| format!("cannot migrate database {}", path.display()))?;
    Ok(pool)
}

/// Writes a consistent copy of the database at `source` to `dest` (which must not exist) with
/// `VACUUM INTO`, on a connection of its own: it reads one snapshot of the WAL database, so a
/// server may keep writing meanwhile. The copy is created with mode 0600 first, as it holds
/// password and token hashes; SQLite fills the empty file.
pub async fn copy_consistent(source: &Path, dest: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    let options = SqliteConnectOptions::new().filename(source).read_only(true).busy_timeout(Duration::from_secs(10));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open database {}", source.display()))?;
    let dest_text = dest.to_str().context("the destination path is not UTF-8")?;
    sqlx::query("VACUUM INTO ?")
        .bind(dest_text)
        .execute(&mut conn)
        .await
        .with_context(|| format!("cannot copy database {} to {}", source.display(), dest.display()))?;
    conn.close().await?;
    Ok(())
}

/// Creates the database file readable by its owner only, if it is missing: it holds password
/// and token hashes. SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::File::options().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a connection coming back to the pool may serve again. A transaction whose COMMIT
/// failed (a full disk: SQLite rolls it back itself) leaves sqlx counting it as open, and its
/// rollback on drop then fails too; such a connection would refuse every later `BEGIN`, so
/// it is closed and the pool opens a fresh one.
async fn settled(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    // Waits for the rollback a dropped transaction queued on the connection's worker.
    conn.ping().await?;
    let settled = !conn.is_in_transaction();
    if !settled {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Ok(settled)
}

/// Counts the write transactions committed in this process, so that a reader can keep what
/// it read for as long as this has not moved (the dashboard's page cache). It is bumped
/// after the commit returns: a reader that takes it before reading can only ever file what
/// it read under an older count, never stale rows under a newer one. Every catalog write
/// goes through [`begin_write`]; sessions and token use times, written without it, are
/// never cached.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The current write count; see [`GENERATION`].
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// A write transaction: a connection holding SQLite's write lock, whose commit moves
/// [`generation`]. Dropped without a commit, it rolls back.
pub(crate) struct WriteTx(Transaction<'static, Sqlite>);

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.0.commit().await?;
        GENERATION.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.0
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
}

/// Starts a write transaction that holds SQLite's write lock from its first statement.
pub(crate) async fn begin_write(pool: &SqlitePool) -> Result<WriteTx> {
    Ok(WriteTx(pool.begin_with("BEGIN IMMEDIATE").await?))
}

/// A value that should have round-tripped through the database did not: a bug or a
/// database written by something else, never the client's fault.
#[track_caller]
pub(crate) fn corrupt<E: std::error::Error + Send + Sync + 'static>(err: E) -> CatalogError {
    sqlx::Error::Decode(Box::new(err)).into()
}

/// True when SQLite could not write because the disk is full (`SQLITE_FULL`).
pub(crate) fn is_disk_full(err: &sqlx::Error) -> bool {
    const SQLITE_FULL: i32 = 13;
    matches!(err, sqlx::Error::Database(db)
        if db.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| code & 0xff == SQLITE_FULL))
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

/// The SQL that answers `inner`'s rows as one row: a JSON array of objects whose keys are
/// `columns` (columns of `inner`, named as the row struct's fields), in `order`.
///
/// Lists are read this way because sqlx's SQLite driver hands every row from its worker
/// thread to the reader on its own, waking the reader for each; a list as one JSON row is
/// one hand-off however long it is (50 rows: about a third of the time; benches/dashboard.sh).
pub(crate) fn json_list_sql(inner: &str, columns: &[&str], order: &str) -> String {
    let pairs: Vec<String> = columns.iter().map(|c| format!("'{c}', {c}")).collect();
    format!("SELECT json_group_array(json_object({}) ORDER BY {order}) FROM ({inner})", pairs.join(", "))
}

/// Reads SQLite's 0/1 as a bool, for rows that arrive as JSON.
pub(crate) fn bool_from_int<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    Ok(<i64 as serde::Deserialize>::deserialize(d)? != 0)
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
    fn a_json_list_keeps_the_order_and_names_the_columns() {
        assert_eq!(
            json_list_sql("SELECT id, name FROM t", &["id", "name"], "id DESC"),
            "SELECT json_group_array(json_object('id', id, 'name', name) ORDER BY id DESC) FROM (SELECT id, name FROM t)"
        );
    }

    #[test]
    fn a_database_error_names_the_catalog_line_that_raised_it() {
        fn failing() -> Result<()> {
            Err(sqlx::Error::RowNotFound)?
        }
        let err = failing().expect_err("fails");
        let CatalogError::Db { at, .. } = &err else { panic!("a database error: {err:?}") };
        assert!(at.file().ends_with("catalog/mod.rs"), "{at}");
        assert_eq!(at.line(), line!() - 5, "the line of the `?`");
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
