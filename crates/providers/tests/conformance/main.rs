//! Conformance of the provider adapters against fake upstreams on 127.0.0.1 port 0: the exact
//! request each sends, and what the gateway sees back. One module per adapter; the fake
//! upstreams they share live in `support`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod anthropic;
mod gemini;
mod openai;
mod support;
