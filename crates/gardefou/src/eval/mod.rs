//! Eval suites as code: a TOML file of cases (messages or a templated prompt, optional context
//! documents, assertions) and thresholds, run through a real gateway so every case takes the
//! production path (guards, routing, recording). `gardefou eval run` is the release gate.
//!
//! - [`suite`]: the file format, parsed and validated (file:line:column and the case id).
//! - [`assert`]: each assertion type as a pure check of the observed answer; the judge prompt.
//! - [`run`]: sending the cases with bounded concurrency, retries, repeats and Ctrl-C.
//! - [`report`]: thresholds, the terminal table, the JSON report and JUnit XML.
//! - [`compare`]: two JSON reports side by side: regressions, fixes, score deltas.

pub mod assert;
pub mod compare;
pub mod report;
pub mod run;
pub mod suite;

pub use report::Report;
pub use suite::Suite;
