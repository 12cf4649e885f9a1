//! The operations every front end calls — REST handlers, dashboard forms, the CLI's server
//! side — with their role, scope and protection checks, the audit event (written by the
//! catalog in the same transaction) and the cache invalidation or supervisor wake-up that
//! follows. Handlers parse input into domain types, call one operation and map its result;
//! the rules live here, once.
//!
//! Instance-wide operations (users, other users' tokens, runtimes, webhooks; settings and
//! GC when they get an endpoint) all go through
//! [`crate::auth::Caller::require_instance_admin`].

pub mod aliases;
pub mod deployments;
pub mod error;
pub mod events;
pub mod files;
pub mod hub;
pub mod limits;
pub mod runtimes;
pub mod system;
pub mod tokens;
pub mod uploads;
pub mod usage;
pub mod users;
pub mod versions;
