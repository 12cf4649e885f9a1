//! System: GPU inventory and who holds what (a bar per GPU), disk and dedup figures, and
//! whether Docker answers.

use actix_web::{HttpResponse, web};
use askama::Template;
use sqlx::SqlitePool;

use super::human_size;
use crate::catalog;
use crate::config::Settings;
use crate::domain::Role;
use crate::error::ApiError;
use crate::runtime::supervisor::Supervisor;
use crate::web::{WebCaller, WebError};

pub struct GpuRow {
    name: String,
    id: String,
    pool: String,
    /// 0-100, for the bar.
    used_percent: u32,
    holders: String,
}

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    user: String,
    csrf: String,
    docker: String,
    docker_ok: bool,
    gpus: Vec<GpuRow>,
    gpu_note: String,
    models: i64,
    versions: i64,
    files: i64,
    blobs: i64,
    logical: String,
    stored: String,
    saved: String,
    free: String,
    total: String,
}

pub async fn show(
    pool: web::Data<SqlitePool>,
    settings: web::Data<Settings>,
    supervisor: web::Data<Supervisor>,
    caller: WebCaller,
) -> Result<HttpResponse, WebError> {
    caller.caller.require(Role::Viewer)?;
    let totals = catalog::blobs::totals(&pool).await?;
    let (docker, docker_ok) = match supervisor.docker().ping().await {
        Ok(()) => (format!("reachable at {}", supervisor.docker().socket()), true),
        Err(e) => (e.to_string(), false),
    };
    let usage = supervisor.gpu_usage().await.map_err(ApiError::from)?;
    let gpus = usage
        .into_iter()
        .map(|u| {
            let (used_percent, pool_text) = match (u.exclusive.is_some(), u.gpu.memory_gib) {
                (true, _) => (100, u.gpu.memory_gib.map_or_else(|| "memory unknown".into(), |m| format!("{m} GiB"))),
                (false, Some(total)) if total > 0.0 => {
                    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a percentage 0-100")]
                    let percent = ((u.used_gib() / total) * 100.0).round().clamp(0.0, 100.0) as u32;
                    (percent, format!("{} of {total} GiB in use", u.used_gib()))
                }
                _ => (0, "memory unknown (set memory_gib in [[gpus]])".into()),
            };
            let mut holders: Vec<String> = u.exclusive.iter().map(|d| format!("{d} (whole)")).collect();
            holders.extend(u.shared.iter().map(|h| format!("{} ({} GiB)", h.deployment, h.memory_gib)));
            GpuRow {
                name: u.gpu.name.clone(),
                id: u.gpu.id.clone(),
                pool: pool_text,
                used_percent,
                holders: if holders.is_empty() { "free".into() } else { holders.join(", ") },
            }
        })
        .collect();
    let disk = rustix::fs::statvfs(&settings.data_dir).map_err(|e| ApiError::internal(std::io::Error::from(e)))?;
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let body = SystemPage {
        user: caller.user(),
        csrf: caller.csrf,
        docker,
        docker_ok,
        gpus,
        gpu_note: supervisor.inventory().note.clone().unwrap_or_default(),
        models: totals.models,
        versions: totals.versions,
        files: totals.files,
        blobs: totals.blobs,
        logical: human_size(totals.logical_bytes),
        stored: human_size(totals.stored_bytes),
        saved: human_size(totals.logical_bytes - totals.stored_bytes),
        free: human_size(to_i64(disk.f_bavail.saturating_mul(disk.f_frsize))),
        total: human_size(to_i64(disk.f_blocks.saturating_mul(disk.f_frsize))),
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}
