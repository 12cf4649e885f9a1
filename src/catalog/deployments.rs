//! Deployments: what should run (target, runtime, GPUs, desired state: written by people)
//! and what does (state, reason, container, address, allocation: written by the
//! supervisor). GPU requests and allocations are stored as the runtime module's JSON.

use std::collections::BTreeMap;

use sqlx::types::Json;

use super::events::{self, Actor};
use super::versions::{self, VersionState};
use super::{
    CatalogError, ConnMut, Db, JsonList, Result, begin_write, bool_from_int, corrupt, is_unique_violation, models, now,
    on_conn, on_db,
};
use crate::domain::{
    AliasName, DeploymentName, Digest, GpuAllocation, GpuRequest, ModelName, NodeName, RelPath, VersionName,
};

/// What a deployment serves: a pinned version, or whatever an alias points at.
pub use crate::domain::Target;

/// What people asked for: the supervisor converges the container towards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = DesiredState)]
pub enum Desired {
    Running,
    Stopped,
}

/// What the supervisor last saw: `pending → starting → running → stopping → stopped`, or
/// `failed` with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = DeploymentState)]
pub enum State {
    Pending,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
    /// Shown, never stored: the node that runs it stopped heartbeating, so what it does now
    /// is not known.
    Unknown,
}

impl State {
    /// Every stored state; each change into one is recorded as the event `deployment.<state>`.
    pub const ALL: [Self; 6] =
        [Self::Pending, Self::Starting, Self::Running, Self::Stopping, Self::Stopped, Self::Failed];

    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "starting" => Self::Starting,
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub id: i64,
    pub name: DeploymentName,
    pub model: ModelName,
    pub target: Target,
    pub runtime: String,
    pub gpu_request: Option<GpuRequest>,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub autostart: bool,
    pub idle_timeout_secs: Option<i64>,
    pub desired: Desired,
    pub observed: Observed,
    /// The node that runs it; `None` only for a deployment made before nodes, until a node
    /// starts and takes it.
    pub node: Option<NodeName>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What the supervisor last saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub state: State,
    pub reason: Option<String>,
    pub serving_version: Option<String>,
    pub container_id: Option<String>,
    pub address: Option<String>,
    pub gpu_allocation: Option<GpuAllocation>,
    pub started_at: Option<String>,
    pub restarts: i64,
}

#[derive(sqlx::FromRow, serde::Deserialize)]
struct DeploymentRow {
    id: i64,
    name: String,
    model: String,
    version: Option<String>,
    alias: Option<String>,
    runtime: String,
    gpu_request: Option<String>,
    env: String,
    args: String,
    #[serde(deserialize_with = "bool_from_int")]
    autostart: bool,
    idle_timeout_secs: Option<i64>,
    desired: String,
    state: String,
    reason: Option<String>,
    serving_version: Option<String>,
    container_id: Option<String>,
    address: Option<String>,
    gpu_allocation: Option<String>,
    started_at: Option<String>,
    restarts: i64,
    node: Option<String>,
    created_by: Option<String>,
    created_at: String,
    updated_at: String,
}

impl TryFrom<DeploymentRow> for Deployment {
    type Error = CatalogError;

    fn try_from(row: DeploymentRow) -> Result<Self> {
        let target = match (row.version, row.alias) {
            (Some(v), None) => Target::Version(VersionName::parse(&v).map_err(corrupt)?),
            (None, Some(a)) => Target::Alias(AliasName::parse(&a).map_err(corrupt)?),
            _ => return Err(corrupt(std::io::Error::other("a deployment has neither or both of version and alias"))),
        };
        Ok(Self {
            id: row.id,
            name: DeploymentName::parse(&row.name).map_err(corrupt)?,
            model: ModelName::parse(&row.model).map_err(corrupt)?,
            target,
            runtime: row.runtime,
            gpu_request: row.gpu_request.as_deref().map(serde_json::from_str).transpose().map_err(corrupt)?,
            env: serde_json::from_str(&row.env).map_err(corrupt)?,
            args: serde_json::from_str(&row.args).map_err(corrupt)?,
            autostart: row.autostart,
            idle_timeout_secs: row.idle_timeout_secs,
            desired: if row.desired == "running" { Desired::Running } else { Desired::Stopped },
            observed: Observed {
                state: State::parse(&row.state).ok_or_else(|| corrupt(std::io::Error::other("unknown state")))?,
                reason: row.reason,
                serving_version: row.serving_version,
                container_id: row.container_id,
                address: row.address,
                gpu_allocation: row.gpu_allocation.as_deref().map(serde_json::from_str).transpose().map_err(corrupt)?,
                started_at: row.started_at,
                restarts: row.restarts,
            },
            node: row.node.as_deref().map(NodeName::parse).transpose().map_err(corrupt)?,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

macro_rules! select_deployment {
    ($tail:literal) => {
        concat!(
            "SELECT d.id, d.name, m.name AS model, d.version, d.alias, d.runtime, d.gpu_request, d.env, d.args,
                    d.autostart, d.idle_timeout_secs, d.desired, d.state, d.reason, d.serving_version,
                    d.container_id, d.address, d.gpu_allocation, d.started_at, d.restarts, d.node,
                    d.created_by, d.created_at, d.updated_at
               FROM deployments d JOIN models m ON m.id = d.model_id ",
            $tail
        )
    };
}

/// Every deployment, by name, as one JSON row (see `json_list_sql`).
static LIST: JsonList = JsonList::new(
    select_deployment!(""),
    &[
        "id",
        "name",
        "model",
        "version",
        "alias",
        "runtime",
        "gpu_request",
        "env",
        "args",
        "autostart",
        "idle_timeout_secs",
        "desired",
        "state",
        "reason",
        "serving_version",
        "container_id",
        "address",
        "gpu_allocation",
        "started_at",
        "restarts",
        "node",
        "created_by",
        "created_at",
        "updated_at",
    ],
    "name",
);

fn not_found(name: &DeploymentName) -> CatalogError {
    CatalogError::NotFound(format!("deployment '{name}' does not exist"))
}

/// A deployment to create.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub name: DeploymentName,
    pub model: ModelName,
    pub target: Target,
    pub runtime: String,
    pub gpu_request: Option<GpuRequest>,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
    pub autostart: bool,
    pub idle_timeout_secs: Option<i64>,
    pub desired: Desired,
    /// Where it runs: the node the request named, or (`None`) the one placement chooses.
    pub node: Option<NodeName>,
}

/// Creates a deployment after checking its target names a ready version now.
pub async fn create(pool: &Db, actor: &Actor, new: &NewDeployment) -> Result<Deployment> {
    let env = serde_json::to_string(&new.env).map_err(corrupt)?;
    let args = serde_json::to_string(&new.args).map_err(corrupt)?;
    let gpu_request = new.gpu_request.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let resolved = resolve_in(&mut tx, &new.model, &new.target).await?;
    let (version, alias) = match &new.target {
        Target::Version(v) => (Some(v.as_str()), None),
        Target::Alias(a) => (None, Some(a.as_str())),
    };
    let inserted = on_conn!(&mut tx, |tx| sqlx::query(
        "INSERT INTO deployments (name, model_id, version, alias, runtime, gpu_request, env, args, autostart,
                                  idle_timeout_secs, desired, created_by, node)
         VALUES ($1, (SELECT id FROM models WHERE name = $2), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(new.name.as_str())
    .bind(new.model.as_str())
    .bind(version)
    .bind(alias)
    .bind(&new.runtime)
    .bind(gpu_request.as_deref())
    .bind(&env)
    .bind(&args)
    .bind(new.autostart)
    .bind(new.idle_timeout_secs)
    .bind(if new.desired == Desired::Running { "running" } else { "stopped" })
    .bind(actor.name())
    .bind(new.node.as_ref().map(NodeName::as_str))
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()));
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            return Err(CatalogError::Conflict(format!("deployment '{}' already exists; pick another name", new.name)));
        }
        other => other?,
    };
    let details = serde_json::json!({
        "model": new.model, "target": new.target.to_string(), "version": resolved, "runtime": new.runtime,
        "gpu_request": new.gpu_request, "desired": new.desired, "node": new.node,
    });
    events::record(&mut tx, actor, "deployment.created", Some(new.model.as_str()), new.name.as_str(), details).await?;
    tx.commit().await?;
    get(pool, &new.name).await
}

pub async fn get(pool: &Db, name: &DeploymentName) -> Result<Deployment> {
    let row: Option<DeploymentRow> = on_db!(pool, |pool| sqlx::query_as(select_deployment!("WHERE d.name = $1"))
        .bind(name.as_str())
        .fetch_optional(pool)
        .await)?;
    row.ok_or_else(|| not_found(name))?.try_into()
}

pub async fn list(pool: &Db) -> Result<Vec<Deployment>> {
    let sql = LIST.sql(pool.dialect());
    let rows: Vec<DeploymentRow> =
        on_db!(pool, |pool| sqlx::query_scalar::<_, Json<Vec<DeploymentRow>>>(sql).fetch_one(pool).await)?.0;
    rows.into_iter().map(Deployment::try_from).collect()
}

/// Sets what should happen (`running` or `stopped`); the supervisor converges.
pub async fn set_desired(pool: &Db, actor: &Actor, name: &DeploymentName, desired: Desired) -> Result<Deployment> {
    let mut tx = begin_write(pool).await?;
    let model: Option<String> = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "UPDATE deployments SET desired = $1, updated_at = $3
          WHERE name = $2 RETURNING (SELECT name FROM models WHERE id = deployments.model_id)",
    )
    .bind(if desired == Desired::Running { "running" } else { "stopped" })
    .bind(name.as_str())
    .bind(now())
    .fetch_optional(&mut *tx)
    .await)?;
    let Some(model) = model else { return Err(not_found(name)) };
    let action = if desired == Desired::Running { "deployment.start" } else { "deployment.stop" };
    events::record(&mut tx, actor, action, Some(&model), name.as_str(), serde_json::json!({})).await?;
    tx.commit().await?;
    get(pool, name).await
}

/// Deletes a deployment the supervisor has already stopped (its container gone).
pub async fn delete(pool: &Db, actor: &Actor, name: &DeploymentName) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let model: Option<String> = on_conn!(&mut tx, |tx| {
        sqlx::query_scalar(
        "DELETE FROM deployments WHERE name = $1 RETURNING (SELECT name FROM models WHERE id = deployments.model_id)",
    )
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await
    })?;
    let Some(model) = model else { return Err(not_found(name)) };
    events::record(&mut tx, actor, "deployment.deleted", Some(&model), name.as_str(), serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Records what the supervisor observed. A change of state is an event
/// (`deployment.running`, `deployment.failed`, …); the rest is bookkeeping.
pub async fn observe(pool: &Db, name: &DeploymentName, observed: &Observed) -> Result<()> {
    let gpu_allocation = observed.gpu_allocation.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let previous: Option<(String, String)> = on_conn!(&mut tx, |tx| sqlx::query_as(
        "SELECT d.state, m.name FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.name = $1"
    )
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await)?;
    let Some((previous, model)) = previous else { return Err(not_found(name)) };
    on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE deployments SET state = $1, reason = $2, serving_version = $3, container_id = $4, address = $5,
                gpu_allocation = $6, started_at = $7, restarts = $8, updated_at = $10
          WHERE name = $9",
    )
    .bind(observed.state.as_str())
    .bind(observed.reason.as_deref())
    .bind(observed.serving_version.as_deref())
    .bind(observed.container_id.as_deref())
    .bind(observed.address.as_deref())
    .bind(gpu_allocation.as_deref())
    .bind(observed.started_at.as_deref())
    .bind(observed.restarts)
    .bind(name.as_str())
    .bind(now())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()))?;
    if previous != observed.state.as_str() {
        let details = serde_json::json!({
            "from": previous, "reason": observed.reason, "version": observed.serving_version,
            "container_id": observed.container_id, "restarts": observed.restarts,
        });
        let action = format!("deployment.{}", observed.state.as_str());
        events::record(&mut tx, &Actor::system(), &action, Some(&model), name.as_str(), details).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Hands a deployment to another node with what placement gave it there: it is pending
/// there, with no container; the node it leaves removes its container as one no deployment
/// of its own wants. Audited as `deployment.moved`.
pub async fn move_to(
    pool: &Db,
    actor: &Actor,
    name: &DeploymentName,
    node: &NodeName,
    gpu_allocation: Option<&GpuAllocation>,
) -> Result<Deployment> {
    let allocation = gpu_allocation.map(serde_json::to_string).transpose().map_err(corrupt)?;
    let mut tx = begin_write(pool).await?;
    let before: Option<(Option<String>, String)> = on_conn!(&mut tx, |tx| sqlx::query_as(
        "SELECT d.node, m.name FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.name = $1"
    )
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await)?;
    let Some((from, model)) = before else { return Err(not_found(name)) };
    on_conn!(&mut tx, |tx| sqlx::query(
        "UPDATE deployments
            SET node = $1, state = 'pending', reason = $2, container_id = NULL, address = NULL,
                gpu_allocation = $3, started_at = NULL, restarts = 0, updated_at = $4
          WHERE name = $5",
    )
    .bind(node.as_str())
    .bind(format!("moving to node '{node}'"))
    .bind(allocation.as_deref())
    .bind(now())
    .bind(name.as_str())
    .execute(&mut *tx)
    .await
    .map(|done| done.rows_affected()))?;
    let details = serde_json::json!({ "from": from, "to": node, "gpus": gpu_allocation });
    events::record(&mut tx, actor, "deployment.moved", Some(&model), name.as_str(), details).await?;
    tx.commit().await?;
    get(pool, name).await
}

/// Records an event about a deployment that is not a state change (a rollout).
pub async fn note(pool: &Db, name: &DeploymentName, action: &str, details: serde_json::Value) -> Result<()> {
    let mut tx = begin_write(pool).await?;
    let model: Option<String> = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "SELECT m.name FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.name = $1"
    )
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await)?;
    let Some(model) = model else { return Err(not_found(name)) };
    events::record(&mut tx, &Actor::system(), action, Some(&model), name.as_str(), details).await?;
    tx.commit().await?;
    Ok(())
}

/// The ready version a target names now, with its files: what a deployment would serve.
pub async fn resolve(pool: &Db, model: &ModelName, target: &Target) -> Result<(VersionName, Vec<(RelPath, Digest)>)> {
    let mut conn = pool.acquire().await?;
    let version = resolve_in(&mut conn, model, target).await?;
    let files = super::files::list(pool, model, &version).await?;
    Ok((version, files.into_iter().map(|f| (f.path, f.digest)).collect()))
}

async fn resolve_in(conn: impl Into<ConnMut<'_>>, model: &ModelName, target: &Target) -> Result<VersionName> {
    let mut conn: ConnMut<'_> = conn.into();
    match target {
        Target::Version(version) => match versions::locate(conn, model, version).await? {
            (_, VersionState::Ready) => Ok(version.clone()),
            (_, VersionState::Draft) => Err(CatalogError::Conflict(format!(
                "version '{version}' of '{model}' is a draft; publish it before deploying it"
            ))),
        },
        Target::Alias(alias) => {
            let version: Option<String> = on_conn!(&mut conn, |conn| {
                sqlx::query_scalar(
                "SELECT v.name FROM aliases a JOIN models m ON m.id = a.model_id JOIN versions v ON v.id = a.version_id
                  WHERE m.name = $1 AND a.name = $2",
            )
            .bind(model.as_str())
            .bind(alias.as_str())
            .fetch_optional(&mut *conn)
            .await
            })?;
            match version {
                Some(v) => VersionName::parse(&v).map_err(corrupt),
                None => {
                    let exists: Option<i64> =
                        on_conn!(&mut conn, |conn| sqlx::query_scalar("SELECT id FROM models WHERE name = $1")
                            .bind(model.as_str())
                            .fetch_optional(&mut *conn)
                            .await)?;
                    Err(match exists {
                        Some(_) => CatalogError::NotFound(format!("model '{model}' has no alias '{alias}'")),
                        None => models::not_found(model),
                    })
                }
            }
        }
    }
}

/// Names of the deployments of a model, to refuse deleting what is deployed.
pub(crate) async fn names_for_model(conn: impl Into<ConnMut<'_>>, model: &ModelName) -> Result<Vec<String>> {
    let mut conn: ConnMut<'_> = conn.into();
    Ok(on_conn!(&mut conn, |conn| sqlx::query_scalar(
        "SELECT d.name FROM deployments d JOIN models m ON m.id = d.model_id WHERE m.name = $1 ORDER BY d.name",
    )
    .bind(model.as_str())
    .fetch_all(&mut *conn)
    .await)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A catalog with one model and the raw row `(gpu_request, gpu_allocation)` of a
    /// deployment `d`, as an earlier release (or a damaged file) left them.
    async fn with_row(request: &str, allocation: &str) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = super::super::open(&dir.path().join("hangar.db")).await.expect("open");
        sqlx::query("INSERT INTO models (name) VALUES ('m')").execute(&pool).await.expect("model");
        sqlx::query(
            "INSERT INTO deployments (name, model_id, version, runtime, gpu_request, gpu_allocation, desired)
             VALUES ('d', (SELECT id FROM models), '1', 'vllm', $1, $2, 'running')",
        )
        .bind(request)
        .bind(allocation)
        .execute(&pool)
        .await
        .expect("deployment");
        (dir, Db::Sqlite(pool))
    }

    #[tokio::test]
    async fn gpu_columns_read_back_typed_and_are_written_as_the_same_text() {
        let request = r#"{"gpu_memory_gib":16.0}"#;
        let allocation = r#"{"kind":"shared","device_id":"0","memory_gib":16.0,"mem_fraction":0.5,"device_gib":32.0,"others_gib":4.0}"#;
        let (_dir, pool) = with_row(request, allocation).await;
        let name = DeploymentName::parse("d").expect("name");
        let d = get(&pool, &name).await.expect("a row of an earlier release reads");
        assert_eq!(d.gpu_request, Some(GpuRequest::memory_gib(16.0).expect("request")));
        assert!(
            matches!(&d.observed.gpu_allocation, Some(GpuAllocation::Shared { memory_gib, .. }) if *memory_gib == 16.0)
        );

        observe(&pool, &name, &d.observed).await.expect("observe");
        let (stored,): (String,) =
            on_db!(&pool, |pool| sqlx::query_as("SELECT gpu_allocation FROM deployments").fetch_one(pool).await)
                .expect("row");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stored).expect("json"),
            serde_json::from_str::<serde_json::Value>(allocation).expect("json")
        );
    }

    #[tokio::test]
    async fn a_corrupt_gpu_column_is_an_error_not_a_panic() {
        let (_dir, pool) = with_row(r#"{"gpus": "many"}"#, "null").await;
        let name = DeploymentName::parse("d").expect("name");
        assert!(matches!(get(&pool, &name).await, Err(CatalogError::Db { .. })));
        assert!(list(&pool).await.is_err(), "the list reads every row the same way");
    }
}
