//! GPUs: what this host has (NVML, or a `[[gpus]]` config table that overrides it) and who
//! may use which. Docker cannot cap GPU memory, so admission is Hangar's own: a request that
//! does not fit is refused here, with a message naming the deployments that hold the GPUs,
//! and never reaches Docker.
//!
//! `inventory` knows the GPUs, `admission` decides who gets them; the request and allocation
//! types live in `domain` and are re-exported here.

mod admission;
mod inventory;

use super::memory;

pub use crate::domain::{GpuAllocation, GpuRequest};
pub use admission::{AdmissionError, GpuUsage, SharedHolder, admit, admit_on_host, evictions_needed, usage};
pub use inventory::{Gpu, GpuConfig, GpuConfigError, GpuInventory, InventorySource, NvmlMemory, classify_memory};
