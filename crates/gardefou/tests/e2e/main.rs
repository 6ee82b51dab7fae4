//! End-to-end tests: the real server on port 0, real HTTP clients, fake upstreams, SQLite.

mod api;
mod clients;
mod harness;
mod reload;
mod resilience;
