//! What GPUs this host has: NVML's devices (with unified memory, as on a GB10, sized from the
//! host's memory), or the `[[gpus]]` config table that overrides them.

use super::memory::MemInfo;

const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;

/// One GPU. Its `id` is what Docker is given: the index when known, else the UUID.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gpu {
    pub id: String,
    pub index: Option<u32>,
    pub uuid: Option<String>,
    pub name: String,
    /// The memory budget shared requests are placed in. `None` where NVML does not report
    /// it (GB10's unified memory): only whole-GPU requests can use such a GPU until
    /// `memory_gib` is set in `[[gpus]]`. On a detected unified-memory GPU: the host's
    /// MemTotal less `gpu_host_reserve_gib`.
    pub memory_gib: Option<f64>,
    /// The device's total as CUDA reports it, which servers take fractions of; `None`:
    /// the pool is taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_gib: Option<f64>,
    /// Unified memory (GB10): the GPU's memory is the host's, so a memory request must also
    /// fit in the host's MemAvailable.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unified: bool,
}

impl Gpu {
    pub(super) fn label(&self) -> String {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InventorySource {
    Nvml,
    Config,
}

/// The GPUs Hangar may hand out. Stored as JSON in the catalog's `nodes` row, where the
/// other nodes read it to place deployments here.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GpuInventory {
    pub gpus: Vec<Gpu>,
    pub source: InventorySource,
    /// Why NVML gave nothing, shown when a GPU request is refused and in `/api/v1/system`.
    pub note: Option<String>,
}

impl GpuInventory {
    /// The `[[gpus]]` table when there is one (an empty table means "no GPUs"), else NVML.
    pub fn load(config: Option<&[GpuConfig]>, host_reserve_gib: f64) -> Result<Self, GpuConfigError> {
        match config {
            Some(entries) => Self::from_config(entries),
            None => Ok(Self::detect(host_reserve_gib)),
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
                device_gib: None,
                unified: false,
            });
        }
        Ok(Self { gpus, source: InventorySource::Config, note: None })
    }

    /// Asks NVML (`libnvidia-ml.so.1`, loaded at run time). When it does not load, or fails,
    /// the inventory is empty and `note` says why: a host without the driver still runs
    /// Hangar, it just has no GPUs to give. A unified-memory GPU's pool is the host's
    /// memory less `host_reserve_gib`.
    pub fn detect(host_reserve_gib: f64) -> Self {
        match detect_nvml(host_reserve_gib) {
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

/// What NVML said about one device's memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NvmlMemory {
    /// Total bytes.
    Total(u64),
    /// `NVML_ERROR_NOT_SUPPORTED`: unified memory (GB10 on driver 580).
    NotSupported,
}

/// The pool, the device's total and whether memory is unified, for one NVML device. A GPU
/// is unified when NVML does not report its memory or it is a GB10 (some drivers report
/// MemTotal for it, which is still the host's memory). Its pool is then the host's
/// MemTotal less the reserve; without `/proc/meminfo` it stays unknown.
pub fn classify_memory(
    name: &str,
    nvml: NvmlMemory,
    meminfo: Option<MemInfo>,
    host_reserve_gib: f64,
) -> (Option<f64>, Option<f64>, bool) {
    let unified = nvml == NvmlMemory::NotSupported || name.contains("GB10");
    match (nvml, unified, meminfo) {
        (NvmlMemory::Total(bytes), false, _) => {
            let gib = bytes as f64 / BYTES_PER_GIB;
            (Some(gib), Some(gib), false)
        }
        (_, _, Some(host)) => (Some((host.total_gib - host_reserve_gib).max(0.0)), Some(host.total_gib), true),
        (_, _, None) => (None, None, true),
    }
}

fn detect_nvml(host_reserve_gib: f64) -> Result<Vec<Gpu>, String> {
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
        let memory = match device.memory_info() {
            Ok(info) => NvmlMemory::Total(info.total),
            Err(NvmlError::NotSupported) => NvmlMemory::NotSupported,
            Err(e) => return Err(format!("NVML could not read GPU {index}'s memory: {e}")),
        };
        let name = device.name().unwrap_or_else(|_| "GPU".to_owned());
        let (memory_gib, device_gib, unified) = classify_memory(&name, memory, MemInfo::read(), host_reserve_gib);
        gpus.push(Gpu {
            id: index.to_string(),
            index: Some(index),
            uuid: device.uuid().ok(),
            name,
            memory_gib,
            device_gib,
            unified,
        });
    }
    Ok(gpus)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::runtime::gpu) fn spark_meminfo(total_gib: f64, available_gib: f64) -> MemInfo {
        let kib = |gib: f64| (gib * 1024.0 * 1024.0) as u64;
        let text = format!("MemTotal: {} kB\nMemFree: 1 kB\nMemAvailable: {} kB\n", kib(total_gib), kib(available_gib));
        MemInfo::parse(&text).expect("fake meminfo")
    }

    #[test]
    fn a_gpu_whose_memory_nvml_does_not_report_is_sized_from_the_hosts_memory() {
        let host = Some(spark_meminfo(121.5, 110.0));
        assert_eq!(
            classify_memory("NVIDIA GB10", NvmlMemory::NotSupported, host, 8.0),
            (Some(113.5), Some(121.5), true),
            "NVML_ERROR_NOT_SUPPORTED: MemTotal less the reserve"
        );
        let (pool, device, unified) = classify_memory("NVIDIA GB10", NvmlMemory::Total(130_567_000_000), host, 8.0);
        assert_eq!((pool, device, unified), (Some(113.5), Some(121.5), true), "a driver that reports MemTotal");
        assert_eq!(
            classify_memory("NVIDIA H100 80GB HBM3", NvmlMemory::Total(80 << 30), host, 8.0),
            (Some(80.0), Some(80.0), false),
            "a discrete GPU keeps NVML's total"
        );
        assert_eq!(classify_memory("NVIDIA GB10", NvmlMemory::NotSupported, None, 8.0), (None, None, true));
        assert_eq!(
            classify_memory("NVIDIA GB10", NvmlMemory::NotSupported, Some(spark_meminfo(4.0, 3.0)), 8.0).0,
            Some(0.0)
        );
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
        let inv = GpuInventory::load(Some(&file.gpus), 8.0).expect("valid");
        assert_eq!(inv.gpus.len(), 2);
        assert_eq!(inv.gpus[0].memory_gib, Some(119.6));
        assert!(toml::from_str::<File>("[[gpus]]\nindx = 0\n").is_err(), "typos are refused");
    }

    #[test]
    fn without_nvidia_ml_detection_gives_an_empty_inventory_with_the_reason() {
        // This machine has no NVIDIA driver; on one that has, there is nothing to assert.
        let inv = GpuInventory::detect(8.0);
        if inv.is_empty() {
            assert_eq!(inv.source, InventorySource::Nvml);
            let note = inv.note.expect("a reason");
            assert!(note.contains("libnvidia-ml.so.1"), "{note}");
        }
    }
}
