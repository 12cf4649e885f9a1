//! The catalog: the only module that speaks SQL. Models, versions, files, blobs and aliases
//! live in SQLite (WAL, foreign keys on, a busy timeout) or, when `database_url` names one,
//! in Postgres shared by several nodes. Functions take a [`Db`]; each query is written once,
//! with `$N` placeholders both drivers read, and [`on_db!`] runs it on the pool's driver.
//! Every write runs in one [`WriteTx`] at a time: SQLite's `BEGIN IMMEDIATE`, or a Postgres
//! transaction holding one advisory lock, so concurrent writers queue instead of failing
//! on a lock upgrade or a serialization conflict.

pub mod aliases;
pub mod blobs;
pub mod deployments;
pub mod events;
pub mod files;
pub mod launches;
pub mod limits;
pub mod models;
pub mod nodes;
pub mod runtimes;
pub mod sessions;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod versions;
pub mod webhooks;

pub use events::Actor;

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

/// The catalog's database: the embedded SQLite file, or a Postgres server.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which SQL a statement that cannot be written once for both must be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `sqlite` or `postgres`, whichever this dialect reads.
    pub(crate) fn pick<T>(self, sqlite: T, postgres: T) -> T {
        match self {
            Self::Sqlite => sqlite,
            Self::Postgres => postgres,
        }
    }
}

/// Runs `$body` with `$pool` bound to the database's own pool (`&SqlitePool` or `&PgPool`):
/// the body is compiled once per driver, so its SQL must read the same in both.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::catalog::Db::Sqlite($pool) => $body,
            $crate::catalog::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// Runs `$body` with `$conn` bound to the driver's own connection (`&mut SqliteConnection`
/// or `&mut PgConnection`) of `$from`: a `&mut WriteTx`, a `&mut Conn` or a [`ConnMut`].
macro_rules! on_conn {
    ($from:expr, |$conn:ident| $body:expr) => {
        match $crate::catalog::ConnMut::from($from) {
            $crate::catalog::ConnMut::Sqlite($conn) => $body,
            $crate::catalog::ConnMut::Postgres($conn) => $body,
        }
    };
}
pub(crate) use on_conn;

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// A connection of the pool for several reads in a row.
    pub async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(pool) => Conn::Sqlite(pool.acquire().await?),
            Self::Postgres(pool) => Conn::Postgres(pool.acquire().await?),
        })
    }

    /// Whether the database answers at all (`GET /readyz`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await);
    }
}

/// A connection taken from a [`Db`]'s pool.
pub enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// A borrowed connection of either driver: what [`on_conn!`] runs a query on.
pub enum ConnMut<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl ConnMut<'_> {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }
}

impl<'c> From<&'c mut Conn> for ConnMut<'c> {
    fn from(conn: &'c mut Conn) -> Self {
        match conn {
            Conn::Sqlite(c) => Self::Sqlite(c),
            Conn::Postgres(c) => Self::Postgres(c),
        }
    }
}

impl<'c> From<&'c mut WriteTx> for ConnMut<'c> {
    fn from(tx: &'c mut WriteTx) -> Self {
        match tx {
            WriteTx::Sqlite(t) => Self::Sqlite(t),
            WriteTx::Postgres(t) => Self::Postgres(t),
        }
    }
}

impl<'c, 'r> From<&'r mut ConnMut<'c>> for ConnMut<'r> {
    fn from(conn: &'r mut ConnMut<'c>) -> Self {
        match conn {
            ConnMut::Sqlite(c) => Self::Sqlite(c),
            ConnMut::Postgres(c) => Self::Postgres(c),
        }
    }
}

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

/// Opens the catalog: the Postgres database `url` names when there is one, else the SQLite
/// file at `path` (created if needed); either way brings its schema up to date.
pub async fn connect(url: Option<&str>, path: &Path) -> anyhow::Result<Db> {
    match url {
        Some(url) => open_postgres(url).await.map(Db::Postgres),
        None => open(path).await.map(Db::Sqlite),
    }
}

/// Connects to the Postgres database `url` names and brings its schema up to date.
async fn open_postgres(url: &str) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("database_url is not a postgres:// URL sqlx reads")?;
    let shown = format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or(""));
    // As SQLite's busy timeout: a writer that waits longer than this for the write lock (or
    // any row lock) gives up with `lock_not_available`, answered 503, instead of waiting on.
    let options = options.options([("lock_timeout", "10s")]);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        // And a request that finds no connection (Postgres gone, or every connection busy)
        // waits as long, not sqlx's 30 s, before its 503.
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to Postgres at {shown}"))?;
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .with_context(|| format!("cannot migrate the Postgres database at {shown}"))?;
    Ok(pool)
}

/// Opens (creating if needed) the SQLite database file and brings its schema up to date.
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

/// The channel every Postgres write transaction notifies at its commit (`WriteTx::commit`
/// spells it out: NOTIFY takes no bind parameter).
const CHANGES_CHANNEL: &str = "hangar_catalog";

/// Moves [`generation`] (and calls `changed`) whenever any node commits a write to the
/// Postgres catalog, so what this process keeps from the catalog (the gateway's routes, the
/// page cache) is as fresh as after its own writes, and its supervisor wakes for another
/// node's deployment calls. Runs until the process ends; a lost connection is reopened, the
/// count moved then too, since what was said meanwhile is unknown.
pub async fn follow_other_writers(db: Db, changed: impl Fn() + Send + 'static) {
    let Db::Postgres(pool) = db else { return };
    loop {
        if let Err(e) = listen(&pool, &changed).await {
            tracing::warn!(error = %e, "lost the catalog's change notifications; listening again");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Listens until the connection fails, counting a change once listening starts (what came
/// before it is unknown) and at each notification.
async fn listen(pool: &PgPool, changed: &impl Fn()) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANGES_CHANNEL).await?;
    loop {
        GENERATION.fetch_add(1, Ordering::AcqRel);
        changed();
        // `None`: the connection was lost and is reopened; what was said meanwhile is
        // unknown, so that counts as a change too.
        listener.try_recv().await?;
    }
}

/// A write transaction: a connection holding SQLite's write lock, or Postgres' catalog
/// write lock, whose commit moves [`generation`]. Dropped without a commit, it rolls back.
pub(crate) enum WriteTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// The advisory lock every Postgres write transaction holds until it ends: catalog writes
/// run one at a time, as on SQLite, so what one reads before it writes (the next version
/// number, whether a name is free) still holds at its commit, on every node.
const WRITE_LOCK: i64 = 0x4841_4e47_4152; // "HANGAR"

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.commit().await?,
            Self::Postgres(mut tx) => {
                // Delivered at commit to every node listening (`follow_other_writers`).
                sqlx::query("NOTIFY hangar_catalog").execute(&mut *tx).await?;
                tx.commit().await?
            }
        }
        GENERATION.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// Starts a write transaction that holds the catalog's write lock from its first statement.
pub(crate) async fn begin_write(db: &Db) -> Result<WriteTx> {
    Ok(match db {
        Db::Sqlite(pool) => WriteTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
            WriteTx::Postgres(tx)
        }
    })
}

/// `at` as the catalog writes times: UTC, RFC 3339 with milliseconds, the text SQLite's
/// `strftime('%Y-%m-%dT%H:%M:%fZ')` makes, so stored times compare as text.
pub(crate) fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    // Days since the epoch to a civil date (Howard Hinnant's algorithm), to avoid a
    // date-time dependency for one format.
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The current time as [`timestamp`] writes it.
pub(crate) fn now() -> String {
    timestamp(SystemTime::now())
}

/// A value that should have round-tripped through the database did not: a bug or a
/// database written by something else, never the client's fault.
#[track_caller]
pub(crate) fn corrupt<E: std::error::Error + Send + Sync + 'static>(err: E) -> CatalogError {
    sqlx::Error::Decode(Box::new(err)).into()
}

/// True when the database could not write because its disk is full: SQLite's `SQLITE_FULL`,
/// Postgres' `disk_full` (SQLSTATE 53100).
pub(crate) fn is_disk_full(err: &sqlx::Error) -> bool {
    const SQLITE_FULL: i32 = 13;
    let sqlx::Error::Database(db) = err else { return false };
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return pg.code() == "53100";
    }
    db.code().and_then(|code| code.parse::<i32>().ok()).is_some_and(|code| code & 0xff == SQLITE_FULL)
}

/// True when the database turned a call away for now, not for what it asked: SQLite still
/// locked after the busy timeout, a Postgres serialization failure, deadlock or shutdown, or
/// no connection to be had. Nothing was changed; the same call may well pass later.
pub(crate) fn is_transient(err: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            // serialization_failure, deadlock_detected, lock_not_available, then the
            // operator_intervention class (admin_shutdown, cannot_connect_now, …).
            Some(pg) => matches!(pg.code(), "40001" | "40P01" | "55P03") || pg.code().starts_with("57P"),
            None => db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)),
        },
        _ => false,
    }
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

/// A list read as one row: a JSON array of objects whose keys are `columns` (columns of
/// `inner`, named as the row struct's fields), in `order`.
///
/// Lists are read this way because sqlx's SQLite driver hands every row from its worker
/// thread to the reader on its own, waking the reader for each; a list as one JSON row is
/// one hand-off however long it is (50 rows: about a third of the time; benches/dashboard.sh).
/// Postgres builds the same array with its own functions.
pub(crate) struct JsonList {
    /// The inner SELECT in SQLite's dialect, then in Postgres'.
    inner: [&'static str; 2],
    columns: &'static [&'static str],
    order: &'static str,
    sqlite: OnceLock<String>,
    postgres: OnceLock<String>,
}

impl JsonList {
    pub(crate) const fn new(inner: &'static str, columns: &'static [&'static str], order: &'static str) -> Self {
        Self::per_dialect(inner, inner, columns, order)
    }

    /// A list whose inner SELECT must be written once per dialect.
    pub(crate) const fn per_dialect(
        sqlite: &'static str,
        postgres: &'static str,
        columns: &'static [&'static str],
        order: &'static str,
    ) -> Self {
        Self { inner: [sqlite, postgres], columns, order, sqlite: OnceLock::new(), postgres: OnceLock::new() }
    }

    /// The statement in `dialect`, built on first use.
    pub(crate) fn sql(&'static self, dialect: Dialect) -> &'static str {
        let cell = dialect.pick(&self.sqlite, &self.postgres);
        let inner = dialect.pick(self.inner[0], self.inner[1]);
        cell.get_or_init(|| json_list_sql(dialect, inner, self.columns, self.order))
    }
}

fn json_list_sql(dialect: Dialect, inner: &str, columns: &[&str], order: &str) -> String {
    let pairs: Vec<String> = columns.iter().map(|c| format!("'{c}', {c}")).collect();
    let pairs = pairs.join(", ");
    match dialect {
        Dialect::Sqlite => format!("SELECT json_group_array(json_object({pairs}) ORDER BY {order}) FROM ({inner})"),
        Dialect::Postgres => {
            format!("SELECT COALESCE(json_agg(json_build_object({pairs}) ORDER BY {order}), '[]') FROM ({inner}) AS l")
        }
    }
}

/// Reads a flag of a row that arrives as JSON: SQLite's 0/1, or Postgres' `true`/`false`.
pub(crate) fn bool_from_int<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match <Flag as serde::Deserialize>::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(i) => i != 0,
    })
}

/// The SQL that is true when column `$col` matches one of the globs in the JSON array that
/// parameter `$param` holds (bound with [`globs_param`]): SQLite's GLOB reads our globs as
/// they are; Postgres gets them as LIKE patterns.
macro_rules! any_glob {
    (sqlite, $col:literal, $param:literal) => {
        concat!("EXISTS (SELECT 1 FROM json_each(", $param, ") g WHERE ", $col, " GLOB g.value)")
    };
    (postgres, $col:literal, $param:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM json_array_elements_text(CAST(",
            $param,
            " AS json)) g WHERE ",
            $col,
            " LIKE g ESCAPE '\\')"
        )
    };
}
pub(crate) use any_glob;

/// A table `$alias` with one row per element of the JSON array `$json`, in column `value`
/// (as text on Postgres).
macro_rules! json_each {
    (sqlite, $json:literal, $alias:literal) => {
        concat!("json_each(", $json, ") ", $alias)
    };
    (postgres, $json:literal, $alias:literal) => {
        concat!("json_array_elements_text(CAST(", $json, " AS json)) AS ", $alias, "(value)")
    };
}
pub(crate) use json_each;

/// The JSON array of `globs` that [`any_glob!`] reads in `dialect`; `None`: no filter.
pub(crate) fn globs_param(dialect: Dialect, globs: Option<&[crate::domain::Glob]>) -> Result<Option<String>> {
    let Some(globs) = globs else { return Ok(None) };
    let patterns: Vec<String> = globs
        .iter()
        .map(|g| match dialect {
            Dialect::Sqlite => g.as_str().to_owned(),
            // A glob holds no `%` or `\`; its `_` is literal.
            Dialect::Postgres => g.as_str().replace('_', "\\_").replace('*', "%").replace('?', "_"),
        })
        .collect();
    serde_json::to_string(&patterns).map(Some).map_err(corrupt)
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
            json_list_sql(Dialect::Sqlite, "SELECT id, name FROM t", &["id", "name"], "id DESC"),
            "SELECT json_group_array(json_object('id', id, 'name', name) ORDER BY id DESC) FROM (SELECT id, name FROM t)"
        );
        assert_eq!(
            json_list_sql(Dialect::Postgres, "SELECT id, name FROM t", &["id", "name"], "id DESC"),
            "SELECT COALESCE(json_agg(json_build_object('id', id, 'name', name) ORDER BY id DESC), '[]') \
             FROM (SELECT id, name FROM t) AS l"
        );
    }

    #[test]
    fn globs_become_like_patterns_for_postgres_only() {
        let globs = [crate::domain::Glob::parse("team_a/*-v?").expect("glob")];
        assert_eq!(globs_param(Dialect::Sqlite, Some(&globs)).expect("json").as_deref(), Some(r#"["team_a/*-v?"]"#));
        assert_eq!(
            globs_param(Dialect::Postgres, Some(&globs)).expect("json").as_deref(),
            Some(r#"["team\\_a/%-v_"]"#)
        );
        assert_eq!(globs_param(Dialect::Postgres, None).expect("none"), None);
    }

    #[test]
    fn timestamps_read_as_sqlite_writes_them() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_780_000_000_123);
        assert_eq!(timestamp(at), "2026-05-28T20:26:40.123Z");
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

    #[tokio::test]
    async fn sqlite_binds_dollar_placeholders_by_their_number_as_postgres_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::Sqlite(open(&dir.path().join("hangar.db")).await.expect("open"));
        let row: (String, String) =
            on_db!(&db, |pool| sqlx::query_as("SELECT $2 || $1, $1").bind("a").bind("b").fetch_one(pool).await)
                .expect("query");
        assert_eq!(row, ("ba".to_owned(), "a".to_owned()), "numbered, reused, out of order");
    }

    #[tokio::test]
    async fn a_locked_sqlite_file_or_no_connection_is_transient_and_a_bad_query_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.db");
        let db = Db::Sqlite(open(&path).await.expect("open"));
        let options = SqliteConnectOptions::new().filename(&path).busy_timeout(Duration::ZERO);
        let mut other = SqliteConnection::connect_with(&options).await.expect("second connection");
        let _held = begin_write(&db).await.expect("write lock");
        let busy = sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.expect_err("the file is locked");
        assert!(is_transient(&busy), "{busy:?}");
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        let bad = on_db!(&db, |pool| sqlx::query("SELECT * FROM nowhere").execute(pool).await.map(drop))
            .expect_err("no such table");
        assert!(!is_transient(&bad), "{bad:?}");
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(like_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
