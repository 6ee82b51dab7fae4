//! End-to-end tests: the real server on port 0, real HTTP clients, fake upstreams, SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod classifier;
mod cli;
mod clients;
mod dashboards;
mod embedded;
mod escalations;
mod eval;
mod eval_export;
mod eval_history;
mod feedback;
mod guards;
mod guards_schema;
mod guards_stream;
mod harness;
mod keys;
mod limits;
#[cfg(feature = "local-models")]
mod local;
mod matrix;
mod messages;
mod models_pull;
mod otel;
mod params;
mod quality;
mod reload;
mod replicas;
mod resilience;
mod secrets;
mod usage;
