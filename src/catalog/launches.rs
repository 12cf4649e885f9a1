//! Launch records: what each container start of a deployment ran (image and its content
//! digest, argv, environment with secrets masked, the version's manifest digest, the runtime
//! definition), so a floating tag that changed under a deployment shows. Each start is also
//! a `deployment.launched` event, which says when the image digest differs from the last
//! start's. The newest [`KEPT`] launches per deployment are kept; they go with it.

use std::collections::BTreeMap;

use sqlx::types::Json;

use super::events::{self, Actor};
use super::{Db, Result, begin_write, corrupt, on_conn, on_db};
use crate::domain::DeploymentName;

/// Launches kept per deployment: a crash loop must not grow the table without bound.
pub const KEPT: i64 = 20;

/// One container start, as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Launch {
    pub container_id: String,
    /// The image reference the runtime names (`vllm/vllm-openai:latest`, or `name@sha256:…`).
    pub image: String,
    /// The image ID Docker resolved it to (`sha256:…`): its content digest; `null` when
    /// Docker did not say.
    pub image_digest: Option<String>,
    /// The entrypoint (when the runtime replaces it) followed by the arguments, as run.
    pub argv: Vec<String>,
    /// The container's environment; values of names containing KEY, TOKEN, SECRET or
    /// PASSWORD are `***`.
    pub env: BTreeMap<String, String>,
    pub version: String,
    /// The served version's manifest digest (`sha256:…`).
    pub manifest_digest: Option<String>,
    /// The runtime's definition when it started (name, image, args, env, …).
    #[schema(value_type = Object)]
    pub runtime: serde_json::Value,
    /// RFC 3339; set when recorded.
    #[serde(default)]
    pub started_at: String,
}

#[derive(sqlx::FromRow)]
struct LaunchRow {
    container_id: String,
    image: String,
    image_digest: Option<String>,
    argv: Json<Vec<String>>,
    env: Json<BTreeMap<String, String>>,
    version: String,
    manifest_digest: Option<String>,
    runtime: String,
    started_at: String,
}

impl TryFrom<LaunchRow> for Launch {
    type Error = super::CatalogError;

    fn try_from(row: LaunchRow) -> Result<Self> {
        Ok(Self {
            container_id: row.container_id,
            image: row.image,
            image_digest: row.image_digest,
            argv: row.argv.0,
            env: row.env.0,
            version: row.version,
            manifest_digest: row.manifest_digest,
            runtime: serde_json::from_str(&row.runtime).map_err(corrupt)?,
            started_at: row.started_at,
        })
    }
}

/// Records a start of `name` and its `deployment.launched` event; returns the previous
/// start's image digest when it differs from this one's.
pub async fn record(pool: &Db, name: &DeploymentName, launch: &Launch) -> Result<Option<String>> {
    let mut tx = begin_write(pool).await?;
    let found: Option<(i64, String)> = on_conn!(&mut tx, |tx| sqlx::query_as(
        "SELECT d.id, m.name FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.name = $1"
    )
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await)?;
    let Some((deployment_id, model)) = found else {
        return Err(super::CatalogError::NotFound(format!("deployment '{name}' does not exist")));
    };
    let previous: Option<Option<String>> = on_conn!(&mut tx, |tx| sqlx::query_scalar(
        "SELECT image_digest FROM deployment_launches WHERE deployment_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(deployment_id)
    .fetch_optional(&mut *tx)
    .await)?;
    let runtime = serde_json::to_string(&launch.runtime).map_err(corrupt)?;
    on_conn!(&mut tx, |tx| sqlx::query(
        "INSERT INTO deployment_launches
             (deployment_id, container_id, image, image_digest, argv, env, version, manifest_digest, runtime)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(deployment_id)
    .bind(&launch.container_id)
    .bind(&launch.image)
    .bind(launch.image_digest.as_deref())
    .bind(Json(&launch.argv))
    .bind(Json(&launch.env))
    .bind(&launch.version)
    .bind(launch.manifest_digest.as_deref())
    .bind(runtime)
    .execute(&mut *tx)
    .await
    .map(drop))?;
    on_conn!(&mut tx, |tx| sqlx::query(
        "DELETE FROM deployment_launches WHERE deployment_id = $1 AND id NOT IN
             (SELECT id FROM deployment_launches WHERE deployment_id = $1 ORDER BY id DESC LIMIT $2)",
    )
    .bind(deployment_id)
    .bind(KEPT)
    .execute(&mut *tx)
    .await
    .map(drop))?;
    // Only a digest known on both sides can be said to have changed.
    let changed_from = match (previous.flatten(), &launch.image_digest) {
        (Some(before), Some(now)) if before != *now => Some(before),
        _ => None,
    };
    let mut details = serde_json::json!({
        "container_id": launch.container_id, "image": launch.image, "image_digest": launch.image_digest,
        "version": launch.version, "manifest_digest": launch.manifest_digest,
        "image_changed": changed_from.is_some(),
    });
    if let Some(before) = &changed_from {
        details["previous_image_digest"] = serde_json::json!(before);
        details["message"] = serde_json::json!(format!(
            "the image {} is a different build than at the last start: {} before, {} now",
            launch.image,
            before,
            launch.image_digest.as_deref().unwrap_or("?")
        ));
    }
    events::record(&mut tx, &Actor::system(), "deployment.launched", Some(&model), name.as_str(), details).await?;
    tx.commit().await?;
    Ok(changed_from)
}

/// The newest start of `name`; `None` before its first.
pub async fn latest(pool: &Db, name: &DeploymentName) -> Result<Option<Launch>> {
    let row: Option<LaunchRow> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT l.container_id, l.image, l.image_digest, l.argv, l.env, l.version, l.manifest_digest, l.runtime,
                l.started_at
           FROM deployment_launches l JOIN deployments d ON d.id = l.deployment_id
          WHERE d.name = $1 ORDER BY l.id DESC LIMIT 1",
    )
    .bind(name.as_str())
    .fetch_optional(pool)
    .await)?;
    row.map(Launch::try_from).transpose()
}
