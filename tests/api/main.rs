//! Integration tests: the real server on port 0, real SQLite files in a temp data dir.
//! One binary with modules, so the whole suite links once.

mod aliases;
mod auth;
mod authz;
mod bad_input;
mod browser;
mod cli;
mod concurrency;
mod dashboard;
mod deployments;
mod durability;
mod edges;
mod files;
mod gateway;
mod helpers;
mod hf;
mod launches;
mod llama;
mod machine;
mod models;
mod openapi;
mod route_table;
mod scope;
mod serve;
mod upgrade;
mod versions;
mod webhooks;
