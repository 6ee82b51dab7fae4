//! gardefou-core: the nouns of the gateway. Canonical chat types (in OpenAI's wire shape),
//! config as code, the error type, cost maths. No runtime, no HTTP client, no SQL.

pub mod anthropic;
pub mod calendar;
pub mod chat;
pub mod config;
pub mod cost;
pub mod error;
pub mod prices;

pub use error::{Error, Fault, Result};
