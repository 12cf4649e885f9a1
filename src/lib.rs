//! Hangar: a self-hosted model registry and launcher for one GPU box.

pub mod admin;
pub mod api;
pub mod auth;
pub mod blobs;
pub mod catalog;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod forwarded;
pub mod gateway;
pub mod gc;
pub mod hf;
pub mod metrics;
pub mod nodes;
pub mod ops;
pub mod request_id;
pub mod runtime;
pub mod startup;
pub mod tasks;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod webhooks;

/// The release and the commit it was built from, as `hangar --version` shows them.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HANGAR_COMMIT"), ")");
