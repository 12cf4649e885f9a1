//! Running model servers in Docker. This part is pure: runtimes and their presets, argv
//! templates, the GPU inventory and admission, and the container spec as a function of a
//! deployment's facts. The supervisor that talks to Docker builds on it.

pub mod template;

pub use template::{ArgTemplate, Placeholder, RenderError, Template, TemplateError, Values};
