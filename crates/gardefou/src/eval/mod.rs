//! Eval suites as code: a TOML file of cases (messages or a templated prompt, optional context
//! documents, assertions) and thresholds, run through a real gateway so every case takes the
//! production path (guards, routing, recording). `gardefou eval run` is the release gate.
//!
//! - [`suite`]: the file format, parsed and validated (file:line:column and the case id).
//! - [`assert`]: each assertion type as a pure check of the observed answer; the judge prompt.
//! - [`run`]: sending the cases with bounded concurrency, retries, repeats and Ctrl-C.
//! - [`report`]: thresholds, the terminal table, the JSON report and JUnit XML.
//! - [`compare`]: two JSON reports side by side: regressions, fixes, score deltas.
//! - [`export`]: stored inferences and answered escalations written as a suite (dataset building).
//! - [`history`]: runs stored with their regressions against the previous run.
//! - [`schedule`]: suites attached to routes, replayed by the server on cron schedules.

pub mod assert;
pub mod compare;
pub mod export;
pub mod history;
pub mod report;
pub mod run;
pub mod schedule;
pub mod suite;

use std::collections::BTreeMap;
use std::sync::Arc;

use gardefou_core::config::{Config, Price};

pub use report::Report;
pub use suite::Suite;

use run::Similarity;
use suite::Assertion;

/// Reads every suite the config schedules, stopping at the first that does not load (its
/// file:line:column). The number of scheduled suites when all load.
pub fn check_scheduled(config: &Config) -> Result<usize, gardefou_core::config::ConfigError> {
    let mut n = 0;
    for route in config.routes.values() {
        for spec in &route.evals {
            Suite::load(&spec.suite)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Model name → price, to cost the answers of a run.
pub fn prices(config: &Config) -> BTreeMap<String, Price> {
    config.models.iter().filter_map(|(name, m)| m.price.map(|p| (name.clone(), p))).collect()
}

/// The embedding similarity, loaded only when a case asks for it.
pub fn similarity(suite: &Suite) -> Result<Option<Similarity>, String> {
    let wanted = suite.cases.iter().flat_map(|c| &c.assert).any(|a| matches!(a, Assertion::Similar { .. }));
    if !wanted {
        return Ok(None);
    }
    let dir = crate::classifier::model_dir();
    let embedder = gardefou_embed::Embedder::load(&dir).map_err(|e| {
        format!(
            "the `similar` assertion needs the embedding model in {}: {e}\n  hint: run scripts/fetch-models.sh, or set GARDEFOU_MODELS_DIR to the folder holding all-MiniLM-L6-v2",
            dir.display()
        )
    })?;
    let embedder = Arc::new(embedder);
    Ok(Some(Arc::new(move |a: &str, b: &str| {
        let v = embedder.embed(&[a, b]).map_err(|e| e.to_string())?;
        match v.as_slice() {
            [x, y] => Ok(f64::from(gardefou_embed::cosine(x, y))),
            _ => Err("the embedder returned no vectors".to_owned()),
        }
    })))
}
