//! Guardrail scanners: pure functions over text, no runtime, no I/O.
//!
//! A *guard* is a check on input or output text with an action (`block`, `redact`, `flag`,
//! `escalate`). This crate owns the checks and the decision; the gateway owns where they run.
//!
//! - [`pii`]: personal data with validators (checksums, number plans), not bare regexes.
//! - [`secrets`]: API keys, tokens, private keys and high-entropy values in assignments.
//! - [`injection`]: prompt-injection and jailbreak detection over [`normalize`]d text, with a
//!   [`injection::Classifier`] hook for a learned model.
//! - [`topics`]: deny-lists and custom regular expressions per policy.
//! - [`schema`]: JSON-schema validation of structured outputs (cargo feature `json-schema`).
//! - [`redact`]: typed numbered placeholders (`[EMAIL_1]`) and their restoration.
//! - [`policy`]: which guards run with which action, and the resulting [`Verdict`].
//! - [`stream`]: the same policy over a stream of deltas with a bounded hold-back window.
//!
//! # Offsets
//! Every [`Finding`] carries Unicode *character* offsets (`start`, `end`) for clients, and byte
//! offsets ([`Finding::bytes`]) for slicing and redaction inside Rust.
//!
//! # Cost on hostile input
//! All patterns use the `regex` crate (finite automata, linear time, no backtracking). A single
//! [`Policy::check`] scans at most [`PolicyConfig::max_scan_bytes`] bytes (1 MiB by default);
//! larger inputs get the policy's `oversize` action (block by default) without being scanned.
//! Encoded payloads are decoded and rescanned at most [`injection::MAX_DECODE_DEPTH`] levels deep.
//! Nothing in this crate panics on any input. The injection rule set keeps a lazy-DFA cache of
//! up to 32 MiB per scanning thread (grown on demand, typically a few MiB).
//!
//! # Left out on purpose
//! Postal addresses and person names are not detected: without a gazetteer or a trained
//! sequence model, rule-based detection of either is far below the precision this crate holds
//! its other types to (street names, company names and ordinary capitalised words collide),
//! and a redaction that fires on ordinary prose damages prompts more than it protects them.
//! The embedding crate is the place for a learned recogniser.

pub mod error;
pub mod finding;
pub mod injection;
pub mod normalize;
pub mod pii;
pub mod policy;
pub mod redact;
pub mod schema;
pub mod secrets;
pub mod stream;
mod text;
pub mod topics;

pub use error::GuardError;
pub use finding::{Finding, GuardKind};
pub use policy::{Action, Policy, PolicyConfig, Verdict, VerdictKind};
pub use redact::Redactions;
pub use stream::{StreamChunk, StreamScanner};
