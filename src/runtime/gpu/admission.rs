//! Who may use which GPU: admission of a request against the inventory and what deployments
//! already hold, the usage report, and which deployments to evict to make room.

use std::collections::BTreeMap;

use super::memory::{MemInfo, MemoryBudget};
use super::{Gpu, GpuAllocation, GpuInventory, GpuRequest, InventorySource};
use crate::domain::gib_text;

/// Slack for float comparisons of GiB, so 0.1 + 0.2 fits in 0.3.
const EPSILON_GIB: f64 = 1e-6;

/// Allocations are domain types; the memory budget they give the templates is the runtime's.
impl GpuAllocation {
    /// The budget behind the memory placeholders; whole GPUs have none.
    pub fn memory_budget(&self) -> MemoryBudget {
        match self {
            Self::Exclusive { .. } => MemoryBudget::default(),
            Self::Shared { memory_gib, mem_fraction, device_gib, others_gib, .. } => MemoryBudget {
                budget_gib: Some(*memory_gib),
                // Allocations stored before the device's total was kept: the pool.
                device_gib: device_gib.or_else(|| (*mem_fraction > 0.0).then(|| memory_gib / mem_fraction)),
                others_gib: *others_gib,
            },
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
/// On a unified-memory GPU the request must also fit in the host's MemAvailable, read from
/// `/proc/meminfo` now.
pub fn admit(
    inventory: &GpuInventory,
    allocations: &BTreeMap<String, GpuAllocation>,
    request: GpuRequest,
) -> Result<GpuAllocation, AdmissionError> {
    let host = if inventory.gpus.iter().any(|g| g.unified) { MemInfo::read() } else { None };
    admit_on_host(inventory, allocations, request, host)
}

/// [`admit`] with the host's memory given (`None`: unknown, not checked).
pub fn admit_on_host(
    inventory: &GpuInventory,
    allocations: &BTreeMap<String, GpuAllocation>,
    request: GpuRequest,
    host: Option<MemInfo>,
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
                    (left >= -EPSILON_GIB).then_some((left, pool, u))
                })
                // Stable: among equal fits the first (lowest) GPU wins.
                .min_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, pool, u)) = best {
                if let (true, Some(host)) = (u.gpu.unified, host)
                    && host.available_gib + EPSILON_GIB < gib
                {
                    // Running deployments' memory is already out of MemAvailable; what
                    // else is missing is the host's own use (page cache counts as
                    // available).
                    let held: f64 = usage.iter().filter(|u| u.gpu.unified).map(GpuUsage::used_gib).sum();
                    let host_use = (host.total_gib - host.available_gib - held).max(0.0);
                    let why = format!(
                        "{} has unified memory and the host has {} GiB available (MemAvailable); \
                         the host itself uses {} GiB beside the {} GiB deployments hold",
                        u.gpu.label(),
                        gib_text(host.available_gib),
                        gib_text(host_use),
                        gib_text(held)
                    );
                    return refuse(why, usage);
                }
                return Ok(GpuAllocation::Shared {
                    device_id: u.gpu.id.clone(),
                    memory_gib: gib,
                    mem_fraction: (gib / pool).min(1.0),
                    device_gib: Some(u.gpu.device_gib.unwrap_or(pool)),
                    others_gib: u.used_gib(),
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

#[cfg(test)]
mod tests {
    use super::super::inventory::tests::spark_meminfo;
    use super::super::{GpuConfig, NvmlMemory, classify_memory};
    use super::*;

    fn gpu(id: u32, memory_gib: Option<f64>) -> Gpu {
        Gpu {
            id: id.to_string(),
            index: Some(id),
            uuid: None,
            name: "H100".into(),
            memory_gib,
            device_gib: None,
            unified: false,
        }
    }

    fn inventory(gpus: Vec<Gpu>) -> GpuInventory {
        GpuInventory { gpus, source: InventorySource::Config, note: None }
    }

    fn exclusive(ids: &[&str]) -> GpuAllocation {
        GpuAllocation::Exclusive { device_ids: ids.iter().map(|s| (*s).to_owned()).collect() }
    }

    fn shared(id: &str, gib: f64, pool: f64) -> GpuAllocation {
        GpuAllocation::Shared {
            device_id: id.into(),
            memory_gib: gib,
            mem_fraction: gib / pool,
            device_gib: Some(pool),
            others_gib: 0.0,
        }
    }

    /// `allocation`, placed while others held `others` GiB of its GPU.
    fn beside(mut allocation: GpuAllocation, others: f64) -> GpuAllocation {
        if let GpuAllocation::Shared { others_gib, .. } = &mut allocation {
            *others_gib = others;
        }
        allocation
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
                want: Ok(beside(shared("2", 15.0, 40.0), 22.0)),
            },
            Case {
                what: "an exact fit is a fit",
                held: vec![("a", shared("2", 10.1, 40.0))],
                request: GpuRequest::MemoryGib(29.9),
                want: Ok(beside(shared("2", 29.9, 40.0), 10.1)),
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
    fn on_unified_memory_a_request_must_fit_in_mem_available_and_the_refusal_says_what_the_host_uses() {
        let (pool, device_gib, unified) =
            classify_memory("NVIDIA GB10", NvmlMemory::NotSupported, Some(spark_meminfo(121.5, 110.0)), 8.0);
        let spark = inventory(vec![Gpu { name: "NVIDIA GB10".into(), device_gib, unified, ..gpu(0, pool) }]);
        let holding = held(&[("a", beside(shared("0", 40.0, 113.5), 0.0))]);
        // 40 GiB held by a, 20 GiB used by the host itself, the rest available (page cache
        // included).
        let host = spark_meminfo(121.5, 61.5);
        let got = admit_on_host(&spark, &holding, GpuRequest::MemoryGib(60.0), Some(host)).expect("fits both");
        let budget = got.memory_budget();
        assert_eq!((budget.device_gib, budget.others_gib), (Some(121.5), 40.0));
        assert!((budget.device_fraction() - 60.0 / 121.5).abs() < 1e-9, "vLLM's share of the whole device");

        let err = admit_on_host(&spark, &holding, GpuRequest::MemoryGib(70.0), Some(host)).expect_err("host too full");
        let message = err.to_string();
        assert!(message.contains("the host has 61.5 GiB available (MemAvailable)"), "{message}");
        assert!(message.contains("the host itself uses 20 GiB beside the 40 GiB deployments hold"), "{message}");
        assert!(
            admit_on_host(&spark, &holding, GpuRequest::MemoryGib(70.0), None).is_ok(),
            "the pool alone (113.5 - 40) admits it"
        );
        let discrete = inventory(vec![gpu(0, Some(80.0))]);
        assert!(
            admit_on_host(&discrete, &BTreeMap::new(), GpuRequest::MemoryGib(70.0), Some(host)).is_ok(),
            "a discrete GPU's memory is not the host's"
        );
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
}
