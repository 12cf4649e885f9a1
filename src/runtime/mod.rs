//! Running model servers in Docker. This part is pure: runtimes and their presets, argv
//! templates, the GPU inventory and admission, and the container spec as a function of a
//! deployment's facts. `docker` is the only module that talks to Docker; `supervisor` runs
//! the reconcile loop on top of both.

pub mod docker;
pub mod engine;
pub mod gpu;
pub mod launch;
pub mod memory;
pub mod presets;
pub mod spec;
pub mod supervisor;
pub mod template;
pub mod traffic;

pub use gpu::{
    AdmissionError, Gpu, GpuAllocation, GpuConfig, GpuConfigError, GpuInventory, GpuRequest, GpuUsage, InventorySource,
    SharedHolder, admit, usage,
};
pub use memory::{MemInfo, MemoryBudget};
pub use presets::{
    MODEL_DIR, PRESET_NAMES, PresetImage, Runtime, RuntimeDefinition, RuntimeDraft, RuntimeError, RuntimeName, preset,
    presets, presets_for_arch,
};
pub use spec::{
    ContainerSpec, Devices, GpuMode, Mount, Overrides, OverridesError, Reach, SpecError, SpecInput, SpecSettings,
    container_name, container_spec,
};
pub use template::{ArgTemplate, Placeholder, RenderError, Template, TemplateError, Values};
