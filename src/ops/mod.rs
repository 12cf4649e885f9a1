//! The operations every front end calls (REST handlers, dashboard forms with and without
//! JavaScript, the gateway): each checks role, scope and protection, writes the audit
//! event and wakes the supervisor where the desired state changed. Handlers only parse
//! input into domain types, call one of these, and map the result.

pub mod aliases;
pub mod deployments;
pub mod error;
pub mod files;
pub mod versions;
