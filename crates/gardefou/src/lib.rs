//! gardefou: an LLM Ops gateway in one binary. One OpenAI-compatible endpoint in front of every
//! configured model, with routing, retries, fallbacks and circuit breakers, config as code with
//! live reload, virtual keys and roles, rate limits and budgets, guardrails with a human
//! fallback, every inference recorded, Prometheus metrics and OpenTelemetry traces.

pub mod auth;
pub mod classifier;
pub mod cli;
pub mod control;
pub mod eval;
pub mod limits;
pub mod pipeline;
pub mod quality;
pub mod runtime;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod tokens;
