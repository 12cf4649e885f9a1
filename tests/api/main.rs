//! Integration tests: the real server on port 0, real SQLite files in a temp data dir, or a
//! database of its own on a real Postgres server (tests/with-postgres.sh).
//! One binary with modules, so the whole suite links once.

mod aliases;
mod auth;
mod authz;
mod backup;
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
mod generated_client;
mod helpers;
mod hf;
mod launches;
mod llama;
mod machine;
mod metrics;
mod models;
mod nodes;
mod openapi;
mod postgres;
mod proxy;
mod route_table;
mod s3;
mod scope;
mod serve;
mod tls;
mod upgrade;
mod uploads;
mod usage;
mod versions;
mod webhooks;
