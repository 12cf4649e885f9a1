//! `GET /api/v1/system`, `/healthz` and `/readyz`.

use std::fmt::Write as _;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use sqlx::SqlitePool;

use crate::auth::Caller;
use crate::blobs::BlobStore;
use crate::catalog;
use crate::config::Settings;
use crate::domain::Role;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::runtime::supervisor::Supervisor;

#[derive(Debug, Serialize)]
struct DiskView {
    path: String,
    total_bytes: u64,
    free_bytes: u64,
}

/// Counts, logical vs stored bytes, the dedup saving and free disk.
pub async fn get_system(
    pool: web::Data<SqlitePool>,
    supervisor: web::Data<Supervisor>,
    caller: Caller,
    blobs: web::Data<BlobStore>,
    settings: web::Data<Settings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let totals = catalog::blobs::totals(&pool).await?;
    let disk = disk_usage(&settings.data_dir).map_err(ApiError::internal)?;
    let saved = totals.logical_bytes - totals.stored_bytes;
    #[expect(clippy::cast_precision_loss, reason = "a ratio for people; f64 is ample")]
    let saving_ratio = if totals.logical_bytes > 0 { saved as f64 / totals.logical_bytes as f64 } else { 0.0 };
    let docker = match supervisor.docker().ping().await {
        Ok(()) => serde_json::json!({ "reachable": true, "socket": supervisor.docker().socket() }),
        Err(e) => {
            serde_json::json!({ "reachable": false, "socket": supervisor.docker().socket(), "error": e.to_string() })
        }
    };
    let inventory = supervisor.inventory();
    let gpus = serde_json::json!({
        "source": inventory.source,
        "note": inventory.note,
        "devices": supervisor.gpu_usage().await?,
    });
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "docker": docker,
        "gpus": gpus,
        "counts": {
            "models": totals.models,
            "versions": totals.versions,
            "files": totals.files,
            "blobs": totals.blobs,
        },
        "storage": {
            "logical_bytes": totals.logical_bytes,
            "stored_bytes": totals.stored_bytes,
            "dedup_saved_bytes": saved,
            "dedup_saving_ratio": saving_ratio,
            "uploads_in_flight": blobs.tmp_entries().map_err(ApiError::internal)?,
        },
        "disk": disk,
    })))
}

fn disk_usage(data_dir: &std::path::Path) -> std::io::Result<DiskView> {
    let stat = rustix::fs::statvfs(data_dir)?;
    Ok(DiskView {
        path: data_dir.display().to_string(),
        total_bytes: stat.f_blocks.saturating_mul(stat.f_frsize),
        free_bytes: stat.f_bavail.saturating_mul(stat.f_frsize),
    })
}

/// Prometheus text: the gateway's per-deployment series, deployments by state, and the
/// catalog's and blob store's gauges. Needs a token unless `metrics_public = true`.
pub async fn get_metrics(
    pool: web::Data<SqlitePool>,
    blobs: web::Data<BlobStore>,
    settings: web::Data<Settings>,
    gateway: web::Data<Gateway>,
    caller: Result<Caller, ApiError>,
) -> Result<HttpResponse, ApiError> {
    if !settings.metrics_public {
        caller?.require(Role::Viewer)?;
    }
    let totals = catalog::blobs::totals(&pool).await?;
    let mut out = String::new();
    let gauges = [
        ("hangar_models", "Models in the catalog.", totals.models),
        ("hangar_versions", "Versions in the catalog.", totals.versions),
        ("hangar_files", "Files of all versions.", totals.files),
        ("hangar_blobs", "Blobs in the store.", totals.blobs),
        ("hangar_logical_bytes", "Sum of file sizes, as if nothing were deduplicated.", totals.logical_bytes),
        ("hangar_stored_bytes", "Bytes of the blobs on disk.", totals.stored_bytes),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    }
    let uploads = blobs.tmp_entries().map_err(ApiError::internal)?;
    let _ = writeln!(
        out,
        "# HELP hangar_uploads_in_flight Uploads being received.\n# TYPE hangar_uploads_in_flight gauge\nhangar_uploads_in_flight {uploads}"
    );
    let _ = writeln!(out, "# HELP hangar_deployments Deployments by observed state.\n# TYPE hangar_deployments gauge");
    let mut by_state: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for d in catalog::deployments::list(&pool).await? {
        *by_state.entry(d.observed.state.as_str()).or_default() += 1;
    }
    for (state, n) in by_state {
        let _ = writeln!(out, "hangar_deployments{{state=\"{state}\"}} {n}");
    }
    gateway.render_metrics(&mut out);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(out))
}

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The process can serve: the database answers.
pub async fn readyz(pool: web::Data<SqlitePool>) -> HttpResponse {
    match sqlx::query("SELECT 1").execute(pool.get_ref()).await {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "database unavailable" }))
        }
    }
}
