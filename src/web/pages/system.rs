//! System: GPU inventory and who holds what (a bar per GPU, and one for the shared memory
//! pool next to what the host itself uses of its memory), the host's memory and the pool
//! over the last hour and day (charts with tables, refreshed by the page every 30 s from
//! `/system/memory`), disk and dedup figures, and whether Docker answers.

use std::sync::Arc;

use crate::catalog::Db;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::human_size;
use crate::catalog;
use crate::config::Settings;
use crate::domain::Role;
use crate::error::ApiError;
use crate::nodes::Nodes;
use crate::runtime::GpuUsage;
use crate::runtime::memory::MemInfo;
use crate::runtime::supervisor::Supervisor;
use crate::web::cache::{PageCache, Recent};
use crate::web::chart::{Chart, Series};
use crate::web::history::{self, MemoryHistory, Sample};
use crate::web::{Frame, WebCaller, WebError};

pub struct GpuRow {
    name: String,
    id: String,
    pool: String,
    /// 0-100, for the bar.
    used_percent: u32,
    holders: String,
}

/// The memory pool that `gpu_memory_gib` requests are placed in, summed over the GPUs
/// whose memory is known: what deployments hold of it, as one bar.
#[derive(Debug, PartialEq)]
pub struct PoolRow {
    pub known: bool,
    /// 0-100, for the bar.
    pub used_percent: u32,
    /// `40 of 119.6 GiB held: 40 GiB shared by 2 deployments`.
    pub text: String,
}

/// The host's own memory, from `/proc/meminfo`. On unified-memory machines (DGX Spark's
/// GB10) it is the same memory as the GPU pool, so what the CPU side uses is not free for
/// models, whatever the pool's budget says.
#[derive(Debug, PartialEq)]
pub struct HostMemoryRow {
    /// 0-100, for the bar.
    pub used_percent: u32,
    /// `12.3 of 119.6 GiB in use, 107.3 GiB available`.
    pub text: String,
}

/// What the system page shows of the catalog and the GPU ledger.
pub struct SystemData {
    gpus: Vec<GpuRow>,
    pool: PoolRow,
    gpu_note: String,
    models: i64,
    versions: i64,
    files: i64,
    blobs: i64,
    logical: String,
    stored: String,
    saved: String,
}

/// Whether Docker answers, and what to say about it.
pub struct DockerStatus {
    ok: bool,
    text: String,
}

/// How long the page goes on showing the Docker status it last asked for.
pub const DOCKER_STATUS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    frame: Frame,
    docker: Arc<DockerStatus>,
    data: Arc<SystemData>,
    host: Option<HostMemoryRow>,
    free: String,
    total: String,
    memory: String,
    nodes: Vec<NodeRow>,
}

/// A node sharing the catalog, as the system page lists it.
struct NodeRow {
    name: String,
    url: String,
    up: bool,
    this: bool,
    heartbeat_at: String,
    gpus: usize,
}

/// The memory charts with their tables, for the page and for its refresh.
#[derive(Template)]
#[template(path = "system_memory.html")]
struct MemoryCharts {
    windows: Vec<ChartView>,
}

struct ChartView {
    heading: &'static str,
    svg: String,
    /// A sample every few minutes: time, host memory, shared pool.
    rows: Vec<[String; 3]>,
}

/// The two windows drawn: their heading, chart id, length and how many table rows.
const WINDOWS: [(&str, &str, i64, usize); 2] =
    [("Last hour", "mem-hour", 3600, 12), ("Last day", "mem-day", 86_400, 12)];

fn memory_charts(history: &MemoryHistory) -> MemoryCharts {
    let now = crate::auth::now_unix();
    let windows = WINDOWS
        .iter()
        .map(|&(heading, id, span, table_rows)| {
            let samples = history.since(now - span);
            ChartView {
                heading,
                svg: memory_chart(id, heading, &samples, now - span, now).svg(),
                rows: rows(&samples, table_rows),
            }
        })
        .collect();
    MemoryCharts { windows }
}

fn memory_chart(id: &'static str, heading: &str, samples: &[Sample], from: i64, to: i64) -> Chart {
    let points = |value: fn(&Sample) -> Option<f64>| -> Vec<(i64, f64)> {
        samples.iter().filter_map(|s| value(s).map(|v| (s.at, v))).collect()
    };
    let host = points(|s| s.host_used_gib);
    let pool = points(|s| s.pool_held_gib);
    let top = samples
        .iter()
        .flat_map(|s| [s.host_total_gib, s.pool_total_gib, s.host_used_gib, s.pool_held_gib])
        .flatten()
        .fold(0.0_f64, f64::max);
    let describe = |what: &str, series: &[(i64, f64)], total: Option<f64>| match series.last() {
        None => format!("{what}: no samples yet."),
        Some((_, last)) => {
            let (low, high) = series.iter().fold((f64::MAX, 0.0_f64), |(lo, hi), (_, v)| (lo.min(*v), hi.max(*v)));
            let of = total.map(|t| format!(" of {} GiB", gib(t))).unwrap_or_default();
            format!("{what}: {} GiB{of} now, between {} and {} GiB.", gib(*last), gib(low), gib(high))
        }
    };
    let latest = samples.last();
    let description = format!(
        "{} {}",
        describe("Host memory in use", &host, latest.and_then(|s| s.host_total_gib)),
        describe("Shared GPU pool held by deployments", &pool, latest.and_then(|s| s.pool_total_gib))
    );
    Chart {
        id,
        title: format!("Memory, {}", heading.to_lowercase()),
        description,
        from,
        to,
        y_max: if top > 0.0 { (top * 1.05).ceil() } else { 1.0 },
        unit: "GiB",
        series: vec![
            Series { name: "host memory in use".into(), class: "a", points: host },
            Series { name: "shared GPU pool held".into(), class: "b", points: pool },
        ],
        // A missed sample or two is drawn through; a longer stop (a restart) is a gap.
        max_gap: 3 * history::EVERY.as_secs() as i64,
    }
}

/// At most `count` samples, evenly spaced, newest last, as table rows.
fn rows(samples: &[Sample], count: usize) -> Vec<[String; 3]> {
    let step = samples.len().div_ceil(count.max(1)).max(1);
    let figure = |used: Option<f64>, total: Option<f64>| match (used, total) {
        (Some(used), Some(total)) => format!("{} of {} GiB", gib(used), gib(total)),
        (Some(used), None) => format!("{} GiB", gib(used)),
        _ => "unknown".to_owned(),
    };
    samples
        .iter()
        .rev()
        .step_by(step)
        .take(count)
        .rev()
        .map(|s| [clock(s.at), figure(s.host_used_gib, s.host_total_gib), figure(s.pool_held_gib, s.pool_total_gib)])
        .collect()
}

/// `HH:MM UTC` of Unix seconds.
pub(super) fn clock(at: i64) -> String {
    let day = at.rem_euclid(86_400);
    format!("{:02}:{:02} UTC", day / 3600, day % 3600 / 60)
}

/// The charts alone, for the page's refresh.
pub async fn memory(history: web::Data<MemoryHistory>, caller: WebCaller) -> Result<HttpResponse, WebError> {
    caller.caller.require(Role::Viewer)?;
    let body = memory_charts(&history).render().map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

#[expect(clippy::too_many_arguments, reason = "actix extractors, one per argument")]
pub async fn show(
    pool: web::Data<Db>,
    settings: web::Data<Settings>,
    supervisor: web::Data<Supervisor>,
    cache: web::Data<PageCache<(), SystemData>>,
    docker: web::Data<Recent<DockerStatus>>,
    history: web::Data<MemoryHistory>,
    nodes: web::Data<Nodes>,
    caller: WebCaller,
) -> Result<HttpResponse, WebError> {
    caller.caller.require(Role::Viewer)?;
    // Heartbeats move without a catalog write: read at every view (one small query).
    let nodes = catalog::nodes::list(&pool)
        .await?
        .into_iter()
        .map(|n| NodeRow {
            up: nodes.is_node_up(&n),
            this: n.name == *nodes.me(),
            name: n.name.to_string(),
            url: n.url,
            heartbeat_at: n.heartbeat_at,
            gpus: n.gpus.gpus.len(),
        })
        .collect();
    let data = cache.get_or_load((), || load(&pool, &supervisor)).await?;
    let docker = docker
        .get_or_load(|| async {
            match supervisor.engine().ping().await {
                Ok(()) => DockerStatus { ok: true, text: format!("reachable at {}", supervisor.engine().socket()) },
                Err(e) => DockerStatus { ok: false, text: e.to_string() },
            }
        })
        .await;
    // Memory and disk change without the catalog knowing: read at every view (two syscalls).
    let host = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| host_memory_row(&text));
    let disk = rustix::fs::statvfs(&settings.data_dir).map_err(|e| ApiError::internal(std::io::Error::from(e)))?;
    let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let body = SystemPage {
        frame: caller.frame(),
        docker,
        data,
        host,
        free: human_size(to_i64(disk.f_bavail.saturating_mul(disk.f_frsize))),
        total: human_size(to_i64(disk.f_blocks.saturating_mul(disk.f_frsize))),
        memory: memory_charts(&history).render().map_err(ApiError::internal)?,
        nodes,
    }
    .render()
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body))
}

async fn load(pool: &Db, supervisor: &Supervisor) -> Result<SystemData, WebError> {
    let totals = catalog::blobs::totals(pool).await?;
    let usage = supervisor.gpu_usage().await.map_err(ApiError::from)?;
    let pool_row = pool_row(&usage);
    let gpus = usage
        .into_iter()
        .map(|u| {
            let (used_percent, pool_text) = match (u.exclusive.is_some(), u.gpu.memory_gib) {
                (true, _) => (100, u.gpu.memory_gib.map_or_else(|| "memory unknown".into(), |m| format!("{m} GiB"))),
                (false, Some(total)) if total > 0.0 => {
                    (percent(u.used_gib(), total), format!("{} of {total} GiB in use", gib(u.used_gib())))
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
    Ok(SystemData {
        gpus,
        pool: pool_row,
        gpu_note: supervisor.inventory().note.clone().unwrap_or_default(),
        models: totals.models,
        versions: totals.versions,
        files: totals.files,
        blobs: totals.blobs,
        logical: human_size(totals.logical_bytes),
        stored: human_size(totals.stored_bytes),
        saved: human_size(totals.logical_bytes - totals.stored_bytes),
    })
}

/// `part / whole` as a whole percentage, 0-100.
fn percent(part: f64, whole: f64) -> u32 {
    if whole <= 0.0 {
        return 0;
    }
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a percentage 0-100")]
    let p = ((part / whole) * 100.0).round().clamp(0.0, 100.0) as u32;
    p
}

/// GiB for people: one decimal at most.
fn gib(value: f64) -> String {
    // + 0.0 turns the -0.0 that an empty f64 sum gives into 0.0.
    let text = format!("{:.1}", value + 0.0);
    text.strip_suffix(".0").map_or_else(|| text.clone(), str::to_owned)
}

/// The shared pool over every GPU whose memory is known. A GPU held whole counts as held in
/// full: nothing of it is left to share.
pub fn pool_row(usage: &[GpuUsage]) -> PoolRow {
    let known: Vec<(&GpuUsage, f64)> = usage.iter().filter_map(|u| u.gpu.memory_gib.map(|m| (u, m))).collect();
    let Some((held, total)) = pool_gib(usage) else {
        let text = if usage.is_empty() {
            "no GPU, so no pool".to_owned()
        } else {
            "no GPU's memory is known (NVML reports none on unified-memory GPUs such as DGX Spark's GB10); set memory_gib in [[gpus]] in the config to share it".to_owned()
        };
        return PoolRow { known: false, used_percent: 0, text };
    };
    let whole: f64 = known.iter().filter(|(u, _)| u.exclusive.is_some()).map(|(_, m)| m).sum();
    let shared: f64 = known.iter().filter(|(u, _)| u.exclusive.is_none()).map(|(u, _)| u.used_gib()).sum();
    let holders: usize = known.iter().map(|(u, _)| u.shared.len()).sum();
    let mut parts = Vec::new();
    if holders > 0 {
        let plural = if holders == 1 { "" } else { "s" };
        parts.push(format!("{} GiB shared by {holders} deployment{plural}", gib(shared)));
    }
    if whole > 0.0 {
        parts.push(format!("{} GiB on GPUs held whole", gib(whole)));
    }
    let detail = if parts.is_empty() { "all free".to_owned() } else { parts.join(", ") };
    PoolRow {
        known: true,
        used_percent: percent(held, total),
        text: format!("{} of {} GiB held: {detail}", gib(held), gib(total)),
    }
}

/// What deployments hold of the shared pool and its size, in GiB, over the GPUs whose memory
/// is known (a GPU held whole counts in full); `None` when no GPU's memory is known.
pub fn pool_gib(usage: &[GpuUsage]) -> Option<(f64, f64)> {
    let known: Vec<(&GpuUsage, f64)> = usage.iter().filter_map(|u| u.gpu.memory_gib.map(|m| (u, m))).collect();
    if known.is_empty() {
        return None;
    }
    let total = known.iter().map(|(_, m)| m).sum();
    let held = known.iter().map(|(u, m)| if u.exclusive.is_some() { *m } else { u.used_gib() }).sum();
    Some((held, total))
}

/// `MemTotal` and `MemAvailable` from the text of `/proc/meminfo` (in kB).
pub fn host_memory_row(meminfo: &str) -> Option<HostMemoryRow> {
    let memory = MemInfo::parse(meminfo)?;
    let (total, available) = (memory.total_gib, memory.available_gib.min(memory.total_gib));
    let used = total - available;
    Some(HostMemoryRow {
        used_percent: percent(used, total),
        text: format!("{} of {} GiB in use, {} GiB available", gib(used), gib(total), gib(available)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Gpu, SharedHolder};

    fn usage(id: &str, memory_gib: Option<f64>, exclusive: Option<&str>, shared: &[(&str, f64)]) -> GpuUsage {
        GpuUsage {
            gpu: Gpu {
                id: id.into(),
                index: None,
                uuid: None,
                name: "NVIDIA GB10".into(),
                memory_gib,
                device_gib: None,
                unified: true,
            },
            exclusive: exclusive.map(str::to_owned),
            shared: shared.iter().map(|(d, m)| SharedHolder { deployment: (*d).into(), memory_gib: *m }).collect(),
        }
    }

    #[test]
    fn the_pool_bar_counts_shares_and_gpus_held_whole() {
        let spark = [usage("0", Some(119.6), None, &[("chat", 40.0), ("embed", 8.0)])];
        let row = pool_row(&spark);
        assert_eq!(row.used_percent, 40);
        assert_eq!(row.text, "48 of 119.6 GiB held: 48 GiB shared by 2 deployments");
        let two = [usage("0", Some(80.0), Some("big"), &[]), usage("1", Some(80.0), None, &[("chat", 20.0)])];
        let row = pool_row(&two);
        assert_eq!((row.known, row.used_percent), (true, 63));
        assert_eq!(row.text, "100 of 160 GiB held: 20 GiB shared by 1 deployment, 80 GiB on GPUs held whole");
        assert_eq!(pool_row(&[usage("0", Some(119.6), None, &[])]).text, "0 of 119.6 GiB held: all free");
    }

    #[test]
    fn without_a_known_pool_the_bar_says_how_to_set_one() {
        let row = pool_row(&[usage("0", None, None, &[])]);
        assert!(!row.known);
        assert!(row.text.contains("set memory_gib in [[gpus]]"), "{}", row.text);
        assert_eq!(pool_row(&[]).text, "no GPU, so no pool");
    }

    fn sample(at: i64, host: f64, pool: Option<f64>) -> Sample {
        Sample {
            at,
            host_used_gib: Some(host),
            host_total_gib: Some(119.6),
            pool_held_gib: pool,
            pool_total_gib: pool.map(|_| 111.6),
        }
    }

    #[test]
    fn the_memory_chart_says_its_figures_in_words_and_its_table_thins_the_samples() {
        let samples: Vec<Sample> = (0..240).map(|i| sample(i * 15, 20.0 + (i % 10) as f64, Some(48.0))).collect();
        let chart = memory_chart("m", "Last hour", &samples, 0, 3600);
        assert_eq!(chart.y_max, 126.0, "5% over the largest total, rounded up");
        assert_eq!(
            chart.description,
            "Host memory in use: 29 GiB of 119.6 GiB now, between 20 and 29 GiB. \
             Shared GPU pool held by deployments: 48 GiB of 111.6 GiB now, between 48 and 48 GiB."
        );
        let table = rows(&samples, 12);
        assert_eq!(table.len(), 12);
        assert_eq!(table.last().expect("newest")[0], clock(239 * 15), "the newest sample is the last row");
        assert_eq!(table[11][1], "29 of 119.6 GiB");
        assert_eq!(clock(3 * 3600 + 7 * 60 + 59), "03:07 UTC");
        let empty = memory_chart("m", "Last hour", &[], 0, 3600);
        assert!(empty.description.contains("no samples yet"), "{}", empty.description);
    }

    #[test]
    fn host_memory_reads_from_proc_meminfo() {
        let meminfo = "MemTotal:       125411328 kB\nMemFree:         1000000 kB\nMemAvailable:   94058496 kB\n";
        let row = host_memory_row(meminfo).expect("parses");
        assert_eq!(row.used_percent, 25);
        assert_eq!(row.text, "29.9 of 119.6 GiB in use, 89.7 GiB available");
        assert_eq!(host_memory_row("MemTotal: 10 kB\n"), None, "no MemAvailable: no bar");
    }
}
