//! Memory budgets in each model server's own terms, and the host's memory on unified-memory
//! GPUs (GB10). Admission hands a deployment an absolute budget in GiB; every server reads
//! its memory flag differently, so each flag is computed here from that budget:
//!
//! - vLLM `--gpu-memory-utilization` and TGI `--cuda-memory-fraction`: a fraction of the
//!   device's *total* memory ([`MemoryBudget::device_fraction`]).
//! - SGLang `--mem-fraction-static`: a fraction of the memory *free when it starts*
//!   ([`MemoryBudget::free_fraction`]).
//! - llama.cpp `--fit-target`: MiB to leave free on the device while it grows its context
//!   to fit ([`MemoryBudget::fit_target_mib`]).
//!
//! Every value is rounded so a server never takes more than its budget. On unified memory
//! (GB10) the device's memory is the host's: [`MemInfo`] reads `/proc/meminfo`.

/// `{device_fraction}` on whole GPUs: room for the host on unified memory (NVIDIA's Spark
/// recipes run vLLM at 0.85 at most; vLLM's own default, 0.9, leaves too little there).
pub const WHOLE_GPU_DEVICE_FRACTION: f64 = 0.85;
/// `{free_fraction}` on whole GPUs: SGLang's Spark recipe.
pub const WHOLE_GPU_FREE_FRACTION: f64 = 0.75;
/// `{fit_target_mib}` on whole GPUs: llama.cpp's own default margin.
pub const WHOLE_GPU_FIT_TARGET_MIB: u64 = 1024;

const BYTES_PER_GIB: f64 = (1u64 << 30) as f64;

/// What one container may use of its device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MemoryBudget {
    /// The deployment's budget in GiB; `None` on whole GPUs and without a GPU.
    pub budget_gib: Option<f64>,
    /// The device's total memory as CUDA reports it (on GB10: the host's MemTotal).
    pub device_gib: Option<f64>,
    /// What other deployments held on the device when this one was placed.
    pub others_gib: f64,
}

impl MemoryBudget {
    /// The budget and the device's total, when both are known and the device is not empty.
    fn shared(&self) -> Option<(f64, f64)> {
        match (self.budget_gib, self.device_gib) {
            (Some(budget), Some(device)) if device > 0.0 => Some((budget.max(0.0), device)),
            _ => None,
        }
    }

    /// The budget as a fraction of the device's total memory (vLLM, TGI); in (0, 1].
    pub fn device_fraction(&self) -> f64 {
        self.shared().map_or(WHOLE_GPU_DEVICE_FRACTION, |(budget, device)| (budget / device).min(1.0))
    }

    /// The budget as a fraction of what is free when the server starts (SGLang): the
    /// device's total less what the other deployments hold. Memory the host or a server
    /// takes beyond its budget only makes the server's share smaller, never larger.
    pub fn free_fraction(&self) -> f64 {
        self.shared().map_or(WHOLE_GPU_FREE_FRACTION, |(budget, device)| {
            let free = device - self.others_gib;
            if free <= budget { 1.0 } else { budget / free }
        })
    }

    /// MiB to leave free when llama.cpp fits its context to the device: what is free at
    /// start less the budget, rounded up.
    pub fn fit_target_mib(&self) -> u64 {
        self.shared().map_or(WHOLE_GPU_FIT_TARGET_MIB, |(budget, device)| {
            let margin_gib = (device - self.others_gib - budget).max(0.0);
            // Whole MiB; the float product is far below u64::MAX.
            (margin_gib * 1024.0).ceil() as u64
        })
    }

    /// The budget in GiB (at most two decimals, rounded down), `None` on whole GPUs.
    pub fn budget_gib_text(&self) -> Option<String> {
        self.budget_gib.map(|gib| {
            let floored = (gib.max(0.0) * 100.0).floor() / 100.0;
            let text = format!("{floored:.2}");
            let text = text.trim_end_matches('0');
            text.strip_suffix('.').unwrap_or(text).to_owned()
        })
    }

    /// The budget in bytes, `None` on whole GPUs.
    pub fn budget_bytes(&self) -> Option<u64> {
        self.budget_gib.map(|gib| (gib.max(0.0) * BYTES_PER_GIB).floor() as u64)
    }
}

/// The host's memory, from `/proc/meminfo`. On unified memory it is also the GPU's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemInfo {
    pub total_gib: f64,
    /// MemAvailable: free memory plus page cache the kernel can drop. CUDA on GB10 can take
    /// it (cgroup limits do not bind CUDA there), so it is what admission checks against.
    pub available_gib: f64,
}

impl MemInfo {
    /// Parses `/proc/meminfo` text (`MemTotal:  127535212 kB`); `None` without both lines.
    pub fn parse(text: &str) -> Option<Self> {
        let field = |name: &str| -> Option<f64> {
            let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
            let kib: u64 = line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()?;
            Some(kib as f64 / (1024.0 * 1024.0))
        };
        Some(Self { total_gib: field("MemTotal")?, available_gib: field("MemAvailable")? })
    }

    /// Reads this host's `/proc/meminfo`; `None` where there is none (not Linux).
    pub fn read() -> Option<Self> {
        std::fs::read_to_string("/proc/meminfo").ok().as_deref().and_then(Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(budget: f64, device: f64, others: f64) -> MemoryBudget {
        MemoryBudget { budget_gib: Some(budget), device_gib: Some(device), others_gib: others }
    }

    #[test]
    fn a_budget_on_a_device_becomes_each_runtimes_flag() {
        // (budget GiB, device GiB, held by others) → (vLLM/TGI, SGLang, llama.cpp fit MiB)
        let cases = [
            // 16 GiB of an 80 GiB H100, alone: 0.2 of the total, 0.2 of what is free.
            (16.0, 80.0, 0.0, 0.2, 0.2, 64 * 1024),
            // The same with 48 GiB held by others: vLLM still 0.2 of the total; SGLang sees
            // 32 GiB free at start, so half of it; llama.cpp leaves 16 GiB.
            (16.0, 80.0, 48.0, 0.2, 0.5, 16 * 1024),
            // A Spark: 30 GiB of 121.6 with 60 held by others.
            (30.0, 121.6, 60.0, 30.0 / 121.6, 30.0 / 61.6, 32_359),
            // A budget as large as what is free.
            (32.0, 80.0, 48.0, 0.4, 1.0, 0),
        ];
        for (budget, device, others, device_fraction, free_fraction, fit_mib) in cases {
            let m = shared(budget, device, others);
            assert!((m.device_fraction() - device_fraction).abs() < 1e-9, "{m:?}: {}", m.device_fraction());
            assert!((m.free_fraction() - free_fraction).abs() < 1e-9, "{m:?}: {}", m.free_fraction());
            assert_eq!(m.fit_target_mib(), fit_mib, "{m:?}");
        }
    }

    #[test]
    fn whole_gpus_get_defaults_that_leave_room_on_unified_memory() {
        let whole = MemoryBudget { budget_gib: None, device_gib: Some(121.6), others_gib: 0.0 };
        assert_eq!(whole.device_fraction(), 0.85);
        assert_eq!(whole.free_fraction(), 0.75);
        assert_eq!(whole.fit_target_mib(), 1024);
        assert_eq!((whole.budget_gib_text(), whole.budget_bytes()), (None, None));
        assert_eq!(MemoryBudget::default().device_fraction(), 0.85);
    }

    #[test]
    fn the_budget_is_written_in_gib_and_bytes_rounded_down() {
        let m = shared(16.5, 80.0, 0.0);
        assert_eq!(m.budget_gib_text().as_deref(), Some("16.5"));
        assert_eq!(m.budget_bytes(), Some(16 * (1 << 30) + (1 << 29)));
        assert_eq!(shared(7.0 / 3.0, 80.0, 0.0).budget_gib_text().as_deref(), Some("2.33"));
        assert_eq!(shared(8.0, 80.0, 0.0).budget_gib_text().as_deref(), Some("8"));
    }

    #[test]
    fn meminfo_is_read_in_kib() {
        let text =
            "MemTotal:       127535212 kB\nMemFree:         1048576 kB\nMemAvailable:   100663296 kB\nCached: 9 kB\n";
        let info = MemInfo::parse(text).expect("parses");
        assert!((info.total_gib - 127_535_212.0 / 1_048_576.0).abs() < 1e-9);
        assert_eq!(info.available_gib, 96.0);
        assert_eq!(MemInfo::parse("MemTotal: 1 kB\n"), None, "no MemAvailable");
        assert_eq!(MemInfo::parse("MemTotal: x kB\nMemAvailable: 1 kB\n"), None);
    }
}
