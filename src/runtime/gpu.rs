//! GPUs: what this host has (NVML, or a `[[gpus]]` config table that overrides it) and who
//! may use which. Docker cannot cap GPU memory, so admission is Hangar's own: a request that
//! does not fit is refused here, with a message naming the deployments that hold the GPUs,
//! and never reaches Docker.

use std::collections::BTreeMap;
use std::fmt;

/// Slack for float comparisons of GiB, so 0.1 + 0.2 fits in 0.3.
const EPSILON_GIB: f64 = 1e-6;
const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;

/// One GPU. Its `id` is what Docker is given: the index when known, else the UUID.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Gpu {
    pub id: String,
    pub index: Option<u32>,
    pub uuid: Option<String>,
    pub name: String,
    /// The memory budget shared requests are placed in. `None` where NVML does not report
    /// it (GB10's unified memory): only whole-GPU requests can use such a GPU until
    /// `memory_gib` is set in `[[gpus]]`.
    pub memory_gib: Option<f64>,
}

impl Gpu {
    fn label(&self) -> String {
        format!("GPU {} ({})", self.id, self.name)
    }
}

/// One `[[gpus]]` entry of the config file: `index` or `uuid` (or both), and optionally a
/// name and the memory pool in GiB.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    pub index: Option<u32>,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub memory_gib: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[[gpus]] entry {entry}: {reason}")]
pub struct GpuConfigError {
    entry: usize,
    reason: String,
}

/// Where the inventory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InventorySource {
    Nvml,
    Config,
}

/// The GPUs Hangar may hand out.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GpuInventory {
    pub gpus: Vec<Gpu>,
    pub source: InventorySource,
    /// Why NVML gave nothing, shown when a GPU request is refused and in `/api/v1/system`.
    pub note: Option<String>,
}

impl GpuInventory {
    /// The `[[gpus]]` table when there is one (an empty table means "no GPUs"), else NVML.
    pub fn load(config: Option<&[GpuConfig]>) -> Result<Self, GpuConfigError> {
        match config {
            Some(entries) => Self::from_config(entries),
            None => Ok(Self::detect()),
        }
    }

    pub fn from_config(entries: &[GpuConfig]) -> Result<Self, GpuConfigError> {
        let mut gpus: Vec<Gpu> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let err = |reason: String| GpuConfigError { entry: i + 1, reason };
            let uuid = entry.uuid.as_deref().map(str::trim).filter(|u| !u.is_empty());
            let id = match (entry.index, uuid) {
                (Some(index), _) => index.to_string(),
                (None, Some(uuid)) => {
                    if uuid.chars().any(|c| !(c.is_ascii_alphanumeric() || c == '-')) {
                        return Err(err(format!("uuid {uuid:?} is not a GPU UUID such as GPU-5f3c…")));
                    }
                    uuid.to_owned()
                }
                (None, None) => {
                    return Err(err("give index (as nvidia-smi shows it) or uuid".into()));
                }
            };
            if let Some(gib) = entry.memory_gib
                && !(gib.is_finite() && gib > 0.0)
            {
                return Err(err(format!("memory_gib {gib} must be a positive number of GiB")));
            }
            if let Some(dup) = gpus.iter().find(|g| g.id == id || (g.uuid.is_some() && g.uuid.as_deref() == uuid)) {
                return Err(err(format!("GPU {} is listed twice", dup.id)));
            }
            gpus.push(Gpu {
                id,
                index: entry.index,
                uuid: uuid.map(str::to_owned),
                name: entry.name.clone().unwrap_or_else(|| "GPU".to_owned()),
                memory_gib: entry.memory_gib,
            });
        }
        Ok(Self { gpus, source: InventorySource::Config, note: None })
    }

    /// Asks NVML (`libnvidia-ml.so.1`, loaded at run time). When it does not load, or fails,
    /// the inventory is empty and `note` says why: a host without the driver still runs
    /// Hangar, it just has no GPUs to give.
    pub fn detect() -> Self {
        match detect_nvml() {
            Ok(gpus) => Self { gpus, source: InventorySource::Nvml, note: None },
            Err(why) => {
                tracing::info!(reason = %why, "no GPUs from NVML");
                Self { gpus: Vec::new(), source: InventorySource::Nvml, note: Some(why) }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.gpus.is_empty()
    }
}

fn detect_nvml() -> Result<Vec<Gpu>, String> {
    use nvml_wrapper::Nvml;
    use nvml_wrapper::error::NvmlError;

    // The versioned name: drivers >= 560 no longer ship the unversioned libnvidia-ml.so.
    let nvml = Nvml::builder()
        .lib_path(std::ffi::OsStr::new("libnvidia-ml.so.1"))
        .init()
        .map_err(|e| format!("NVML did not load (libnvidia-ml.so.1): {e}"))?;
    let count = nvml.device_count().map_err(|e| format!("NVML could not count GPUs: {e}"))?;
    let mut gpus = Vec::new();
    for index in 0..count {
        let device = nvml.device_by_index(index).map_err(|e| format!("NVML could not open GPU {index}: {e}"))?;
        let memory_gib = match device.memory_info() {
            Ok(info) => Some(info.total as f64 / BYTES_PER_GIB),
            // GB10: unified memory is not reported; the config must give the pool.
            Err(NvmlError::NotSupported) => None,
            Err(e) => return Err(format!("NVML could not read GPU {index}'s memory: {e}")),
        };
        gpus.push(Gpu {
            id: index.to_string(),
            index: Some(index),
            uuid: device.uuid().ok(),
            name: device.name().unwrap_or_else(|_| "GPU".to_owned()),
            memory_gib,
        });
    }
    Ok(gpus)
}

/// What a deployment asks for.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawGpuRequest", into = "RawGpuRequest")]
pub enum GpuRequest {
    /// `gpus: N`: N whole GPUs, no one else on them.
    Gpus(u32),
    /// `gpu_memory_gib: X`: X GiB of one GPU, shared with other such requests.
    MemoryGib(f64),
}

/// The JSON form: `{"gpus": 2}` or `{"gpu_memory_gib": 16}`.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawGpuRequest {
    Gpus(u32),
    GpuMemoryGib(f64),
}

/// `GpuRequest` is (de)serialized as `RawGpuRequest`, so that is its schema too.
impl utoipa::PartialSchema for GpuRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <RawGpuRequest as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for GpuRequest {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("GpuRequest")
    }
}

impl GpuRequest {
    pub fn gpus(n: u32) -> Result<Self, String> {
        if n == 0 {
            return Err("gpus must be at least 1; leave it out for no GPU".into());
        }
        Ok(Self::Gpus(n))
    }

    pub fn memory_gib(gib: f64) -> Result<Self, String> {
        if !(gib.is_finite() && gib > 0.0) {
            return Err(format!("gpu_memory_gib {gib} must be a positive number of GiB"));
        }
        Ok(Self::MemoryGib(gib))
    }
}

impl TryFrom<RawGpuRequest> for GpuRequest {
    type Error = String;

    fn try_from(raw: RawGpuRequest) -> Result<Self, Self::Error> {
        match raw {
            RawGpuRequest::Gpus(n) => Self::gpus(n),
            RawGpuRequest::GpuMemoryGib(gib) => Self::memory_gib(gib),
        }
    }
}

impl From<GpuRequest> for RawGpuRequest {
    fn from(request: GpuRequest) -> Self {
        match request {
            GpuRequest::Gpus(n) => Self::Gpus(n),
            GpuRequest::MemoryGib(gib) => Self::GpuMemoryGib(gib),
        }
    }
}

impl fmt::Display for GpuRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gpus(1) => f.write_str("1 whole GPU"),
            Self::Gpus(n) => write!(f, "{n} whole GPUs"),
            Self::MemoryGib(gib) => write!(f, "{} GiB of one GPU", gib_text(*gib)),
        }
    }
}

/// What a deployment was given. Stored with the deployment (JSON) so a restarted Hangar
/// knows who holds what.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GpuAllocation {
    Exclusive {
        device_ids: Vec<String>,
    },
    Shared {
        device_id: String,
        memory_gib: f64,
        /// `memory_gib / pool`: what `{mem_fraction}` renders to.
        mem_fraction: f64,
    },
}

impl GpuAllocation {
    pub fn device_ids(&self) -> Vec<String> {
        match self {
            Self::Exclusive { device_ids } => device_ids.clone(),
            Self::Shared { device_id, .. } => vec![device_id.clone()],
        }
    }

    /// The share of memory to hand the server; `None` for whole GPUs.
    pub fn mem_fraction(&self) -> Option<f64> {
        match self {
            Self::Exclusive { .. } => None,
            Self::Shared { mem_fraction, .. } => Some(*mem_fraction),
        }
    }
}

/// Who holds one GPU, for `/api/v1/system` and for refusals.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GpuUsage {
    pub gpu: Gpu,
    /// The deployment holding it whole.
    pub exclusive: Option<String>,
    /// Deployments sharing it, by name.
    pub shared: Vec<SharedHolder>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SharedHolder {
    pub deployment: String,
    pub memory_gib: f64,
}

impl GpuUsage {
    pub fn used_gib(&self) -> f64 {
        self.shared.iter().map(|h| h.memory_gib).sum()
    }

    /// `None` when the pool is unknown or the GPU is held whole.
    pub fn free_gib(&self) -> Option<f64> {
        if self.exclusive.is_some() {
            return Some(0.0);
        }
        self.gpu.memory_gib.map(|pool| (pool - self.used_gib()).max(0.0))
    }

    fn is_free(&self) -> bool {
        self.exclusive.is_none() && self.shared.is_empty()
    }

    fn describe(&self) -> String {
        let label = self.gpu.label();
        if let Some(holder) = &self.exclusive {
            return format!("{label} is held whole by {holder}");
        }
        let pool = self.gpu.memory_gib.map_or_else(|| "memory unknown".to_owned(), |p| format!("{} GiB", gib_text(p)));
        if self.shared.is_empty() {
            return format!("{label}, {pool}, is free");
        }
        let holders: Vec<String> =
            self.shared.iter().map(|h| format!("{} ({} GiB)", h.deployment, gib_text(h.memory_gib))).collect();
        let free = self.free_gib().map_or_else(String::new, |f| format!(", {} GiB free", gib_text(f)));
        format!("{label}, {pool}, is shared by {}{free}", holders.join(", "))
    }
}

/// The inventory with who holds each GPU. Allocations on GPUs no longer in the inventory
/// are not shown.
pub fn usage(inventory: &GpuInventory, allocations: &BTreeMap<String, GpuAllocation>) -> Vec<GpuUsage> {
    inventory
        .gpus
        .iter()
        .map(|gpu| {
            let mut usage = GpuUsage { gpu: gpu.clone(), exclusive: None, shared: Vec::new() };
            for (deployment, allocation) in allocations {
                match allocation {
                    GpuAllocation::Exclusive { device_ids } if device_ids.contains(&gpu.id) => {
                        usage.exclusive = Some(deployment.clone());
                    }
                    GpuAllocation::Shared { device_id, memory_gib, .. } if *device_id == gpu.id => {
                        usage.shared.push(SharedHolder { deployment: deployment.clone(), memory_gib: *memory_gib })
                    }
                    _ => {}
                }
            }
            usage
        })
        .collect()
}

/// A request that does not fit: a 409 whose message says what is in use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct AdmissionError {
    pub request: GpuRequest,
    /// Every GPU with its holders, for a structured answer.
    pub usage: Vec<GpuUsage>,
    message: String,
}

/// Places `request` given what `allocations` (deployment name → allocation; leave out the
/// deployment being placed) already hold. Whole GPUs go to the lowest free ids and are
/// never shared; a GPU with any shared tenant is not given whole. A memory request goes to
/// the GPU it fits best (least memory left over), so large holes stay open for large models.
pub fn admit(
    inventory: &GpuInventory,
    allocations: &BTreeMap<String, GpuAllocation>,
    request: GpuRequest,
) -> Result<GpuAllocation, AdmissionError> {
    let usage = usage(inventory, allocations);
    let refuse = |why: String, usage: Vec<GpuUsage>| {
        let mut message = format!("cannot place {request}: {why}");
        let busy: Vec<String> = usage.iter().filter(|u| !u.is_free()).map(GpuUsage::describe).collect();
        if !busy.is_empty() {
            message.push_str(&format!(". In use: {}", busy.join("; ")));
        }
        Err(AdmissionError { request, usage, message })
    };
    if inventory.is_empty() {
        let why = match (&inventory.source, &inventory.note) {
            (InventorySource::Config, _) => "the [[gpus]] table in the config lists no GPU".to_owned(),
            (InventorySource::Nvml, Some(note)) => format!(
                "this host has no GPUs Hangar knows of ({note}); install the NVIDIA driver or list GPUs in [[gpus]] in the config"
            ),
            (InventorySource::Nvml, None) => "NVML reports no GPUs on this host".to_owned(),
        };
        return refuse(why, usage);
    }
    match request {
        GpuRequest::Gpus(n) => {
            let wanted = usize::try_from(n).unwrap_or(usize::MAX);
            if wanted > usage.len() {
                let why = format!("this host has {} GPU(s)", usage.len());
                return refuse(why, usage);
            }
            let free: Vec<String> = usage.iter().filter(|u| u.is_free()).map(|u| u.gpu.id.clone()).collect();
            if free.len() < wanted {
                let why = format!("{} of {} GPU(s) are free", free.len(), usage.len());
                return refuse(why, usage);
            }
            Ok(GpuAllocation::Exclusive { device_ids: free.into_iter().take(wanted).collect() })
        }
        GpuRequest::MemoryGib(gib) => {
            let best = usage
                .iter()
                .filter(|u| u.exclusive.is_none())
                .filter_map(|u| {
                    let pool = u.gpu.memory_gib?;
                    let left = pool - u.used_gib() - gib;
                    (left >= -EPSILON_GIB).then_some((left, pool, &u.gpu))
                })
                // Stable: among equal fits the first (lowest) GPU wins.
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, pool, gpu)) = best {
                return Ok(GpuAllocation::Shared {
                    device_id: gpu.id.clone(),
                    memory_gib: gib,
                    mem_fraction: (gib / pool).min(1.0),
                });
            }
            let pools: Vec<f64> = usage.iter().filter_map(|u| u.gpu.memory_gib).collect();
            let why = if pools.is_empty() {
                "no GPU's memory is known (NVML does not report it on unified-memory GPUs such as GB10); set memory_gib in [[gpus]] in the config".to_owned()
            } else if pools.iter().all(|p| *p + EPSILON_GIB < gib) {
                let largest = pools.iter().copied().fold(0.0, f64::max);
                format!("the largest GPU has {} GiB", gib_text(largest))
            } else {
                "no GPU has that much memory free".to_owned()
            };
            refuse(why, usage)
        }
    }
}

/// After `request` was refused: how many of `candidates`, in the order they would be
/// stopped, must give up what they hold in `allocations` for `request` to fit; `None` when
/// even all of them would not make room, so that an eviction never stops anything for
/// nothing.
pub fn evictions_needed(
    inventory: &GpuInventory,
    allocations: &BTreeMap<String, GpuAllocation>,
    candidates: &[&str],
    request: GpuRequest,
) -> Option<usize> {
    let mut held = allocations.clone();
    let fits = |held: &BTreeMap<String, GpuAllocation>| admit(inventory, held, request).is_ok();
    candidates
        .iter()
        .position(|candidate| {
            held.remove(*candidate);
            fits(&held)
        })
        .map(|i| i + 1)
}

/// GiB for people: at most two decimals, no trailing zeros.
fn gib_text(gib: f64) -> String {
    let text = format!("{gib:.2}");
    let text = text.trim_end_matches('0');
    text.strip_suffix('.').unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(id: u32, memory_gib: Option<f64>) -> Gpu {
        Gpu { id: id.to_string(), index: Some(id), uuid: None, name: "H100".into(), memory_gib }
    }

    fn inventory(gpus: Vec<Gpu>) -> GpuInventory {
        GpuInventory { gpus, source: InventorySource::Config, note: None }
    }

    fn exclusive(ids: &[&str]) -> GpuAllocation {
        GpuAllocation::Exclusive { device_ids: ids.iter().map(|s| (*s).to_owned()).collect() }
    }

    fn shared(id: &str, gib: f64, pool: f64) -> GpuAllocation {
        GpuAllocation::Shared { device_id: id.into(), memory_gib: gib, mem_fraction: gib / pool }
    }

    fn held(pairs: &[(&str, GpuAllocation)]) -> BTreeMap<String, GpuAllocation> {
        pairs.iter().map(|(name, a)| ((*name).to_owned(), a.clone())).collect()
    }

    #[test]
    fn admission_table() {
        let four = inventory(vec![gpu(0, Some(80.0)), gpu(1, Some(80.0)), gpu(2, Some(40.0)), gpu(3, Some(80.0))]);
        struct Case {
            what: &'static str,
            held: Vec<(&'static str, GpuAllocation)>,
            request: GpuRequest,
            want: Result<GpuAllocation, &'static [&'static str]>,
        }
        let cases = [
            Case {
                what: "whole GPUs go to the lowest free ids",
                held: vec![],
                request: GpuRequest::Gpus(2),
                want: Ok(exclusive(&["0", "1"])),
            },
            Case {
                what: "held and shared GPUs are skipped for whole requests",
                held: vec![("a", exclusive(&["0"])), ("b", shared("1", 8.0, 80.0))],
                request: GpuRequest::Gpus(2),
                want: Ok(exclusive(&["2", "3"])),
            },
            Case {
                what: "a shared GPU cannot be taken whole",
                held: vec![("a", exclusive(&["0", "1", "3"])), ("b", shared("2", 1.0, 40.0))],
                request: GpuRequest::Gpus(1),
                want: Err(&[
                    "cannot place 1 whole GPU: 0 of 4 GPU(s) are free",
                    "GPU 0 (H100) is held whole by a",
                    "GPU 2 (H100), 40 GiB, is shared by b (1 GiB), 39 GiB free",
                ]),
            },
            Case {
                what: "more GPUs than the host has",
                held: vec![],
                request: GpuRequest::Gpus(5),
                want: Err(&["cannot place 5 whole GPUs: this host has 4 GPU(s)"]),
            },
            Case {
                what: "memory goes to the best fit: the smallest GPU it fits",
                held: vec![],
                request: GpuRequest::MemoryGib(30.0),
                want: Ok(shared("2", 30.0, 40.0)),
            },
            Case {
                what: "best fit counts what others already use",
                held: vec![("a", shared("1", 60.0, 80.0)), ("b", shared("2", 22.0, 40.0))],
                request: GpuRequest::MemoryGib(15.0),
                want: Ok(shared("2", 15.0, 40.0)),
            },
            Case {
                what: "an exact fit is a fit",
                held: vec![("a", shared("2", 10.1, 40.0))],
                request: GpuRequest::MemoryGib(29.9),
                want: Ok(shared("2", 29.9, 40.0)),
            },
            Case {
                what: "memory never lands on a GPU held whole",
                held: vec![("a", exclusive(&["2"]))],
                request: GpuRequest::MemoryGib(30.0),
                want: Ok(shared("0", 30.0, 80.0)),
            },
            Case {
                what: "memory larger than every GPU",
                held: vec![],
                request: GpuRequest::MemoryGib(100.0),
                want: Err(&["cannot place 100 GiB of one GPU: the largest GPU has 80 GiB"]),
            },
            Case {
                what: "memory that would fit but is taken names the holders",
                held: vec![
                    ("a", exclusive(&["0", "1"])),
                    ("b", shared("2", 30.0, 40.0)),
                    ("c", shared("3", 50.5, 80.0)),
                ],
                request: GpuRequest::MemoryGib(40.0),
                want: Err(&[
                    "no GPU has that much memory free",
                    "GPU 0 (H100) is held whole by a; GPU 1 (H100) is held whole by a",
                    "GPU 2 (H100), 40 GiB, is shared by b (30 GiB), 10 GiB free",
                    "GPU 3 (H100), 80 GiB, is shared by c (50.5 GiB), 29.5 GiB free",
                ]),
            },
        ];
        for case in cases {
            let got = admit(&four, &held(&case.held), case.request);
            match (got, case.want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{}", case.what),
                (Err(err), Err(needles)) => {
                    let message = err.to_string();
                    for needle in needles {
                        assert!(message.contains(needle), "{}: {message}", case.what);
                    }
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.what),
            }
        }
    }

    #[test]
    fn an_empty_inventory_refuses_gpus_and_says_why() {
        let none = GpuInventory {
            gpus: vec![],
            source: InventorySource::Nvml,
            note: Some("NVML did not load (libnvidia-ml.so.1): a library was not found".into()),
        };
        let err = admit(&none, &BTreeMap::new(), GpuRequest::Gpus(1)).expect_err("no GPU");
        let message = err.to_string();
        assert!(message.starts_with("cannot place 1 whole GPU: this host has no GPUs"), "{message}");
        assert!(message.contains("libnvidia-ml.so.1"), "{message}");
        assert!(message.contains("[[gpus]]"), "says how to fix it: {message}");
        let from_config = inventory(vec![]);
        let err = admit(&from_config, &BTreeMap::new(), GpuRequest::MemoryGib(1.0)).expect_err("none");
        assert!(err.to_string().contains("lists no GPU"), "{err}");
    }

    #[test]
    fn unified_memory_without_a_configured_pool_takes_only_whole_requests() {
        let spark = inventory(vec![gpu(0, None)]);
        let err = admit(&spark, &BTreeMap::new(), GpuRequest::MemoryGib(16.0)).expect_err("unknown pool");
        assert!(err.to_string().contains("set memory_gib in [[gpus]]"), "{err}");
        assert_eq!(admit(&spark, &BTreeMap::new(), GpuRequest::Gpus(1)), Ok(exclusive(&["0"])));
    }

    #[test]
    fn a_configured_spark_pool_gives_fractions_of_the_pool() {
        let spark = GpuInventory::from_config(&[GpuConfig {
            index: Some(0),
            uuid: None,
            name: Some("NVIDIA GB10".into()),
            memory_gib: Some(119.6),
        }])
        .expect("valid");
        let got = admit(&spark, &BTreeMap::new(), GpuRequest::MemoryGib(16.0)).expect("fits");
        let Some(fraction) = got.mem_fraction() else { panic!("shared: {got:?}") };
        assert!((fraction - 16.0 / 119.6).abs() < 1e-12);
        assert_eq!(got.device_ids(), ["0"]);
        let held = held(&[("a", got)]);
        let second = admit(&spark, &held, GpuRequest::MemoryGib(100.0)).expect("fits beside");
        assert_eq!(second.device_ids(), ["0"]);
        let err = admit(&spark, &held, GpuRequest::MemoryGib(104.0)).expect_err("too much");
        assert!(err.to_string().contains("shared by a (16 GiB), 103.6 GiB free"), "{err}");
    }

    #[test]
    fn eviction_stops_the_fewest_in_order_and_none_when_that_cannot_make_room() {
        let two = inventory(vec![gpu(0, Some(80.0)), gpu(1, Some(80.0))]);
        let held = held(&[("a", shared("0", 40.0, 80.0)), ("b", shared("0", 40.0, 80.0)), ("c", exclusive(&["1"]))]);
        let need = |candidates: &[&str], request| evictions_needed(&two, &held, candidates, request);
        assert_eq!(need(&["a", "b"], GpuRequest::MemoryGib(30.0)), Some(1));
        assert_eq!(need(&["a", "b"], GpuRequest::MemoryGib(70.0)), Some(2));
        assert_eq!(need(&["b", "c", "a"], GpuRequest::Gpus(1)), Some(2), "c frees GPU 1; b alone frees nothing whole");
        assert_eq!(need(&["a", "b"], GpuRequest::Gpus(2)), None, "c holds GPU 1 and is no candidate");
        assert_eq!(need(&["a"], GpuRequest::MemoryGib(90.0)), None, "no GPU is that large");
        assert_eq!(need(&[], GpuRequest::MemoryGib(1.0)), None);
    }

    #[test]
    fn config_entries_are_checked() {
        let entry = |index, uuid: Option<&str>, memory_gib| GpuConfig {
            index,
            uuid: uuid.map(str::to_owned),
            name: None,
            memory_gib,
        };
        let by_uuid = GpuInventory::from_config(&[entry(None, Some("GPU-5f3c1a2b"), None)]).expect("uuid");
        assert_eq!(by_uuid.gpus[0].id, "GPU-5f3c1a2b");
        assert_eq!(by_uuid.source, InventorySource::Config);
        for (entries, needle) in [
            (vec![entry(None, None, None)], "entry 1: give index"),
            (vec![entry(Some(0), None, Some(0.0))], "positive"),
            (vec![entry(Some(0), None, Some(f64::NAN))], "positive"),
            (vec![entry(Some(0), None, None), entry(Some(0), None, None)], "entry 2: GPU 0 is listed twice"),
            (vec![entry(None, Some("GPU 1"), None)], "not a GPU UUID"),
        ] {
            let err = GpuInventory::from_config(&entries).expect_err(needle).to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn the_config_table_parses_from_toml() {
        #[derive(serde::Deserialize)]
        struct File {
            gpus: Vec<GpuConfig>,
        }
        let file: File = toml::from_str(
            "[[gpus]]\nindex = 0\nname = \"NVIDIA GB10\"\nmemory_gib = 119.6\n\n[[gpus]]\nuuid = \"GPU-1\"\n",
        )
        .expect("valid toml");
        let inv = GpuInventory::load(Some(&file.gpus)).expect("valid");
        assert_eq!(inv.gpus.len(), 2);
        assert_eq!(inv.gpus[0].memory_gib, Some(119.6));
        assert!(toml::from_str::<File>("[[gpus]]\nindx = 0\n").is_err(), "typos are refused");
    }

    #[test]
    fn requests_parse_from_json_and_refuse_nonsense() {
        let parse = |json: &str| serde_json::from_str::<GpuRequest>(json);
        assert_eq!(parse(r#"{"gpus": 2}"#).expect("valid"), GpuRequest::Gpus(2));
        assert_eq!(parse(r#"{"gpu_memory_gib": 16}"#).expect("valid"), GpuRequest::MemoryGib(16.0));
        assert!(parse(r#"{"gpus": 0}"#).expect_err("zero").to_string().contains("at least 1"));
        assert!(parse(r#"{"gpu_memory_gib": -1}"#).is_err());
        assert!(parse(r#"{"gpus": 1, "gpu_memory_gib": 2}"#).is_err());
        assert_eq!(
            serde_json::to_string(&GpuRequest::MemoryGib(8.5)).expect("serializes"),
            r#"{"gpu_memory_gib":8.5}"#
        );
    }

    #[test]
    fn allocations_round_trip_as_json() {
        for allocation in [exclusive(&["0", "1"]), shared("0", 16.0, 64.0)] {
            let json = serde_json::to_string(&allocation).expect("serializes");
            let back: GpuAllocation = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, allocation, "{json}");
        }
    }

    #[test]
    fn without_nvidia_ml_detection_gives_an_empty_inventory_with_the_reason() {
        // This machine has no NVIDIA driver; on one that has, there is nothing to assert.
        let inv = GpuInventory::detect();
        if inv.is_empty() {
            assert_eq!(inv.source, InventorySource::Nvml);
            let note = inv.note.expect("a reason");
            assert!(note.contains("libnvidia-ml.so.1"), "{note}");
        }
    }
}
