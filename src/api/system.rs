//! `GET /api/v1/system`, `/healthz` and `/readyz`.

use std::fmt::Write as _;

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{Forbidden, Unauthorized};
use crate::auth::Caller;
use crate::blobs::BlobStore;
use crate::catalog;
use crate::config::Settings;
use crate::domain::Role;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::ops;
use crate::runtime::gpu::{Gpu, GpuUsage, InventorySource, SharedHolder};
use crate::runtime::supervisor::Supervisor;

/// The server's state: catalog counts, storage and dedup, disk, Docker and GPUs.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemView {
    /// Hangar's version.
    version: &'static str,
    /// The commit it was built from (`unknown` when the build could not tell).
    commit: &'static str,
    docker: DockerView,
    gpus: GpusView,
    /// Left out for a token limited to some models: the counts cover every model.
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<CountsView>,
    /// Left out for a token limited to some models.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<StorageView>,
    disk: DiskView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DockerView {
    reachable: bool,
    /// The socket tried (`DOCKER_HOST`, or the default).
    socket: String,
    /// Why it is not reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GpusView {
    /// `nvml` (detected) or `config` (the `[[gpus]]` table).
    source: &'static str,
    /// Why NVML gave nothing.
    note: Option<String>,
    devices: Vec<GpuUsageView>,
}

/// One GPU and who holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GpuUsageView {
    gpu: GpuView,
    /// The deployment holding it whole; `(outside your models)` for a token limited to
    /// other models.
    exclusive: Option<String>,
    /// Deployments sharing it, named as `exclusive` is.
    shared: Vec<SharedHolderView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GpuView {
    /// What Docker is given: the index when known, else the UUID.
    id: String,
    index: Option<u32>,
    uuid: Option<String>,
    name: String,
    /// The memory budget shared requests are placed in; `null` where unknown.
    memory_gib: Option<f64>,
    /// Unified memory (GB10): the pool is the host's memory less `gpu_host_reserve_gib`.
    unified: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SharedHolderView {
    deployment: String,
    memory_gib: f64,
}

impl From<GpuUsage> for GpuUsageView {
    fn from(usage: GpuUsage) -> Self {
        let GpuUsage { gpu, exclusive, shared } = usage;
        let shared = shared
            .into_iter()
            .map(|SharedHolder { deployment, memory_gib }| SharedHolderView { deployment, memory_gib })
            .collect();
        Self { gpu: gpu.into(), exclusive, shared }
    }
}

impl From<Gpu> for GpuView {
    fn from(Gpu { id, index, uuid, name, memory_gib, unified, .. }: Gpu) -> Self {
        Self { id, index, uuid, name, memory_gib, unified }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountsView {
    models: i64,
    versions: i64,
    files: i64,
    blobs: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorageView {
    /// Sum of file sizes: what the versions would take without dedup.
    logical_bytes: i64,
    /// Sum of blob sizes: what is on disk.
    stored_bytes: i64,
    dedup_saved_bytes: i64,
    /// `dedup_saved_bytes` over `logical_bytes`.
    dedup_saving_ratio: f64,
    uploads_in_flight: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiskView {
    /// The data dir.
    path: String,
    total_bytes: u64,
    free_bytes: u64,
}

/// Counts, logical vs stored bytes, the dedup saving, free disk, Docker and GPUs. A token
/// limited to some models gets no counts or storage, and GPU holders outside its models
/// unnamed.
#[utoipa::path(
    get,
    path = "/api/v1/system",
    responses((status = 200, description = "The server's state", body = SystemView), Unauthorized, Forbidden),
)]
pub async fn get_system(
    pool: web::Data<Db>,
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
    let socket = supervisor.engine().socket().to_owned();
    let docker = match supervisor.engine().ping().await {
        Ok(()) => DockerView { reachable: true, socket, error: None },
        Err(e) => DockerView { reachable: false, socket, error: Some(e.to_string()) },
    };
    let inventory = supervisor.inventory();
    let gpus = GpusView {
        source: match inventory.source {
            InventorySource::Nvml => "nvml",
            InventorySource::Config => "config",
        },
        note: inventory.note.clone(),
        devices: ops::system::gpu_usage(&pool, &supervisor, &caller)
            .await?
            .into_iter()
            .map(GpuUsageView::from)
            .collect(),
    };
    let sees_totals = ops::system::sees_totals(&caller);
    let counts =
        CountsView { models: totals.models, versions: totals.versions, files: totals.files, blobs: totals.blobs };
    let storage = StorageView {
        logical_bytes: totals.logical_bytes,
        stored_bytes: totals.stored_bytes,
        dedup_saved_bytes: saved,
        dedup_saving_ratio: saving_ratio,
        uploads_in_flight: blobs.tmp_entries().map_err(ApiError::internal)?,
    };
    Ok(HttpResponse::Ok().json(SystemView {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("HANGAR_COMMIT"),
        docker,
        gpus,
        counts: sees_totals.then_some(counts),
        storage: sees_totals.then_some(storage),
        disk,
    }))
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
/// catalog's and blob store's gauges. Needs a token without model globs unless
/// `metrics_public = true`.
#[utoipa::path(
    get,
    path = "/metrics",
    security(("bearer" = []), ("session" = []), ()),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        Unauthorized, Forbidden,
    ),
)]
pub async fn get_metrics(
    pool: web::Data<Db>,
    blobs: web::Data<BlobStore>,
    settings: web::Data<Settings>,
    gateway: web::Data<Gateway>,
    http: web::Data<crate::metrics::HttpMetrics>,
    caller: Result<Caller, ApiError>,
) -> Result<HttpResponse, ApiError> {
    if !settings.metrics_public {
        let caller = caller?;
        caller.require(Role::Viewer)?;
        ops::system::require_metrics(&caller)?;
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
    let _ = writeln!(
        out,
        "# HELP hangar_upload_bytes_received_total Upload bytes clients sent since start (stored, deduplicated or dropped).\n\
         # TYPE hangar_upload_bytes_received_total counter\nhangar_upload_bytes_received_total {}",
        blobs.bytes_received()
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
    http.render(&mut out);
    crate::metrics::render_process(&mut out);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(out))
}

/// What `/healthz` and `/readyz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `ok`, `ready`, or what is wrong.
    status: &'static str,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    security(()),
    responses((status = 200, description = "Up", body = HealthView, example = json!({"status": "ok"}))),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthView { status: "ok" })
}

/// The process can serve: the database answers and the data dir takes writes.
#[utoipa::path(
    get,
    path = "/readyz",
    security(()),
    responses(
        (status = 200, description = "Ready", body = HealthView, example = json!({"status": "ready"})),
        (status = 503, description = "The database does not answer, or the data dir takes no writes (a full disk)", body = HealthView,
            example = json!({"status": "database unavailable"})),
    ),
)]
pub async fn readyz(pool: web::Data<Db>, blobs: web::Data<BlobStore>) -> HttpResponse {
    if let Err(e) = pool.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return HttpResponse::ServiceUnavailable().json(HealthView { status: "database unavailable" });
    }
    if let Err(e) = blobs.check_writable().await {
        tracing::warn!(error = %e, "readiness check failed: the data dir takes no writes");
        return HttpResponse::ServiceUnavailable().json(HealthView { status: "data dir not writable" });
    }
    HttpResponse::Ok().json(HealthView { status: "ready" })
}
