//! Nodes: the Hangar servers that share this catalog, each with its own Docker engine and
//! GPUs. A node registers itself at start (its URL and GPU inventory) and heartbeats; which
//! nodes are up is read from the heartbeats. Heartbeats are written outside the write lock
//! and do not move the generation count: they change nothing a cache holds.
//!
//! Claims: a node's supervisor converges the deployments that name it. On Postgres a node
//! also holds a session advisory lock on its name for as long as it runs, so a second
//! process started with the same name is refused instead of fighting over containers.

use std::time::{Duration, SystemTime};

use sqlx::{Connection as _, PgConnection};

use super::{Db, Result, corrupt, on_db, timestamp};
use crate::domain::NodeName;
use crate::runtime::GpuInventory;

/// A node as the catalog knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: NodeName,
    /// Where the other nodes reach its HTTP server.
    pub url: String,
    pub gpus: GpuInventory,
    /// Hangar's version on that node.
    pub version: String,
    pub started_at: String,
    pub heartbeat_at: String,
}

impl Node {
    /// Whether its last heartbeat is more recent than `down_after` ago (by this box's clock:
    /// nodes are expected to keep time with NTP, as anything sharing a database does).
    pub fn is_up(&self, down_after: Duration) -> bool {
        let since = SystemTime::now().checked_sub(down_after).unwrap_or(SystemTime::UNIX_EPOCH);
        // Both are the catalog's fixed-width UTC format, which sorts as time does.
        self.heartbeat_at >= timestamp(since)
    }
}

#[derive(sqlx::FromRow)]
struct NodeRow {
    name: String,
    url: String,
    gpus: String,
    version: String,
    started_at: String,
    heartbeat_at: String,
}

impl TryFrom<NodeRow> for Node {
    type Error = super::CatalogError;

    fn try_from(row: NodeRow) -> Result<Self> {
        Ok(Self {
            name: NodeName::parse(&row.name).map_err(corrupt)?,
            url: row.url,
            gpus: serde_json::from_str(&row.gpus).map_err(corrupt)?,
            version: row.version,
            started_at: row.started_at,
            heartbeat_at: row.heartbeat_at,
        })
    }
}

/// Records this node at start: its URL and GPUs, started and heartbeating now.
pub async fn register(pool: &Db, name: &NodeName, url: &str, gpus: &GpuInventory) -> Result<()> {
    let gpus = serde_json::to_string(gpus).map_err(corrupt)?;
    let now = super::now();
    on_db!(pool, |pool| sqlx::query(
        "INSERT INTO nodes (name, url, gpus, version, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url, gpus = excluded.gpus, version = excluded.version,
                                          started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
    )
    .bind(name.as_str())
    .bind(url)
    .bind(&gpus)
    .bind(env!("CARGO_PKG_VERSION"))
    .bind(&now)
    .execute(pool)
    .await
    .map(|done| done.rows_affected()))?;
    Ok(())
}

/// Says this node is alive.
pub async fn heartbeat(pool: &Db, name: &NodeName) -> Result<()> {
    on_db!(pool, |pool| sqlx::query("UPDATE nodes SET heartbeat_at = $1 WHERE name = $2")
        .bind(super::now())
        .bind(name.as_str())
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(())
}

/// Every node, by name.
pub async fn list(pool: &Db) -> Result<Vec<Node>> {
    let rows: Vec<NodeRow> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT name, url, gpus, version, started_at, heartbeat_at FROM nodes ORDER BY name"
    )
    .fetch_all(pool)
    .await)?;
    rows.into_iter().map(Node::try_from).collect()
}

/// Gives deployments to `node`: on SQLite every one (a SQLite catalog is one box's, whatever
/// its node is called), on Postgres those made before nodes existed. Not an audited change:
/// nothing moves, the rows only learn where they already run.
pub async fn take_unplaced(pool: &Db, node: &NodeName) -> Result<u64> {
    let sql = pool.dialect().pick(
        "UPDATE deployments SET node = $1 WHERE node IS NOT $1",
        "UPDATE deployments SET node = $1 WHERE node IS NULL",
    );
    Ok(on_db!(pool, |pool| sqlx::query(sql).bind(node.as_str()).execute(pool).await.map(|done| done.rows_affected()))?)
}

/// A node's claim on its name, held while the process runs (Postgres only: a SQLite catalog
/// has one server, which the data dir's lock already ensures).
pub struct Claim {
    held: Option<Held>,
}

/// The session that holds the advisory lock, and what it takes to take it again.
struct Held {
    conn: PgConnection,
    url: String,
    node: NodeName,
}

/// The advisory-lock space of node claims, beside the catalog's write lock.
const CLAIM_LOCKS: i32 = 0x4847_4e44; // "HGND"

/// Claims `node`'s name, or says which process already runs it.
pub async fn claim(pool: &Db, url: Option<&str>, node: &NodeName) -> anyhow::Result<Claim> {
    let (Db::Postgres(_), Some(url)) = (pool, url) else { return Ok(Claim { held: None }) };
    let conn = take(url, node).await?;
    Ok(Claim { held: Some(Held { conn, url: url.to_owned(), node: node.clone() }) })
}

/// A connection of its own, outside the pool, holding the lock for as long as it lives.
async fn take(url: &str, node: &NodeName) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::connect(url).await?;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
        .bind(CLAIM_LOCKS)
        .bind(node.as_str())
        .fetch_one(&mut conn)
        .await?;
    anyhow::ensure!(
        taken,
        "node '{node}' is already running (another process holds its claim in the catalog); give each \
         server its own name with node / --node / HANGAR_NODE"
    );
    Ok(conn)
}

impl Claim {
    /// Checks the claim still holds, taking it again after its session was lost (Postgres
    /// restarted): an error if another process took the name meanwhile.
    pub async fn keep(&mut self) -> anyhow::Result<()> {
        let Some(held) = &mut self.held else { return Ok(()) };
        if held.conn.ping().await.is_ok() {
            return Ok(());
        }
        held.conn = take(&held.url, &held.node).await?;
        tracing::info!(node = %held.node, "took this node's claim again after its database session was lost");
        Ok(())
    }
}

/// Serializes GPU placement across every node: admission reads what each deployment holds,
/// then writes what it gave, and two nodes placing on one GPU at once must not both see it
/// free. Dropping the guard releases it.
pub struct PlacementLock {
    _tx: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

const PLACEMENT_LOCK: i64 = 0x4847_504c_4143; // "HGPLAC"

/// Takes the placement lock (a transaction-scoped advisory lock on Postgres, held by an
/// otherwise empty transaction; nothing on SQLite, whose one server serializes in-process).
pub async fn placement_lock(pool: &Db) -> Result<PlacementLock> {
    match pool {
        Db::Sqlite(_) => Ok(PlacementLock { _tx: None }),
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PLACEMENT_LOCK).execute(&mut *tx).await?;
            Ok(PlacementLock { _tx: Some(tx) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::GpuConfig;

    #[tokio::test]
    async fn a_node_registers_heartbeats_and_is_down_once_its_heartbeats_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = Db::Sqlite(super::super::open(&dir.path().join("hangar.db")).await.expect("open"));
        let a = NodeName::parse("a").expect("name");
        let gpus = GpuInventory::from_config(&[GpuConfig {
            index: Some(0),
            uuid: None,
            name: Some("GB10".into()),
            memory_gib: Some(100.0),
        }])
        .expect("inventory");
        register(&pool, &a, "http://10.0.0.1:8080", &gpus).await.expect("register");
        let nodes = list(&pool).await.expect("list");
        assert_eq!(nodes.len(), 1);
        assert_eq!((nodes[0].url.as_str(), &nodes[0].gpus), ("http://10.0.0.1:8080", &gpus), "read back as written");
        assert!(nodes[0].is_up(Duration::from_secs(30)));

        // A heartbeat a minute old: down after 30 s, up after 2 minutes.
        let old = timestamp(SystemTime::now() - Duration::from_secs(60));
        on_db!(&pool, |p| sqlx::query("UPDATE nodes SET heartbeat_at = $1").bind(&old).execute(p).await.map(|_| ()))
            .expect("age it");
        let stale = &list(&pool).await.expect("list")[0];
        assert!(!stale.is_up(Duration::from_secs(30)));
        assert!(stale.is_up(Duration::from_secs(120)));
        heartbeat(&pool, &a).await.expect("heartbeat");
        assert!(list(&pool).await.expect("list")[0].is_up(Duration::from_secs(30)), "a heartbeat brings it back");
    }
}
