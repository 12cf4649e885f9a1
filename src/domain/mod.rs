//! Pure types that parse, not validate: once a value of one of these types exists, it is
//! well-formed, so nothing downstream checks it again. None of them knows HTTP or SQL.

mod digest;
mod glob;
mod gpu;
pub mod latency;
mod limits;
mod model_ref;
mod names;
mod rel_path;
mod role;
mod schema;
mod text;
mod webhook;

pub use digest::{Digest, DigestError};
pub use glob::{Glob, GlobError};
pub(crate) use gpu::gib_text;
pub use gpu::{GpuAllocation, GpuRequest};
pub use limits::{LimitError, Limits, Subject};
pub use model_ref::{ModelRef, Target};
pub use names::{AliasName, DeploymentName, ModelName, NameError, NodeName, UserName, VersionName};
pub use rel_path::{RelPath, RelPathError};
pub use role::{Role, RoleError};
pub use text::{FreeText, Lines, TextError};
pub use webhook::{
    ALL_EVENTS, DeliveryStatus, EVENT_ACTIONS, EventTypes, WebhookError, WebhookSecret, WebhookUrl, check_address,
};
