//! Runtimes: how to serve a model format in a container (image, argv template, port, health
//! path, startup deadline, shared memory, environment, whether it speaks OpenAI), and the
//! built-in presets. A [`Runtime`] is checked when it is built, from a preset or from an
//! admin's [`RuntimeDraft`] (the `PUT /api/v1/runtimes/{name}` body, also what is stored
//! as JSON in SQLite), so every one that exists can be turned into a container spec.
//!
//! `draft` holds definitions as submitted, `runtime` the checked [`Runtime`], `builtin` the
//! preset table, `model_files` which files of a version a preset serves.

mod builtin;
mod draft;
mod model_files;
mod runtime;

pub use builtin::{PRESET_NAMES, preset, presets, presets_for_arch, refused_on_arch};
pub use draft::{PresetImage, RuntimeDefinition, RuntimeDraft, RuntimeError, RuntimeName};
pub use model_files::{ModelFiles, pick_model_files};
pub use runtime::Runtime;
pub(super) use runtime::{RESERVED_ENV, parse_env_entry};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Where every container sees its model, read-only.
pub const MODEL_DIR: &str = "/model";
