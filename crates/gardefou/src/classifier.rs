//! The prompt-injection embedding classifier for the policies that ask for it
//! (`injection = { action = "block", threshold = 0.8, classifier = true }`).
//!
//! When a loaded config has such a policy, the model (all-MiniLM-L6-v2, from
//! `$GARDEFOU_MODELS_DIR`, else `models/`, as `scripts/fetch-models.sh` writes it) is loaded once
//! per process and plugged, with its shipped head, into:
//! - every route's *input* policy that asks for it (the request's messages and tool results);
//!   output policies keep the heuristics alone, as streamed answers are scanned chunk by chunk;
//! - the named policies of `[guards]`, for `gardefou guard check`.
//!
//! A missing or broken model is a config error naming the policy, so a policy never silently
//! runs without the classifier it asked for. Scoring costs milliseconds of CPU: the pipeline runs
//! an input check with a classifier where blocking is allowed ([`blocking`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use gardefou_core::config::{Config, ConfigError};
use gardefou_embed::classifier::EmbeddingClassifier;
use gardefou_guard::Policy;

/// The model folder's name under the models folder.
pub const MODEL: &str = "all-MiniLM-L6-v2";

/// `$GARDEFOU_MODELS_DIR/all-MiniLM-L6-v2`, else `models/all-MiniLM-L6-v2`.
pub fn model_dir() -> PathBuf {
    std::env::var_os("GARDEFOU_MODELS_DIR").map_or_else(|| PathBuf::from("models"), PathBuf::from).join(MODEL)
}

/// The classifier of this process, loaded on first use; a later call for another folder loads
/// that one instead.
fn shared() -> Result<Arc<EmbeddingClassifier>, gardefou_embed::EmbedError> {
    static LOADED: Mutex<Option<(PathBuf, Arc<EmbeddingClassifier>)>> = Mutex::new(None);
    let dir = model_dir();
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((at, classifier)) = loaded.as_ref() {
        if *at == dir {
            return Ok(classifier.clone());
        }
    }
    let classifier = Arc::new(EmbeddingClassifier::load(&dir)?);
    *loaded = Some((dir, classifier.clone()));
    Ok(classifier)
}

/// Plugs the classifier into the policies that ask for it (see the module docs); `source`
/// names the config in errors.
pub fn plug(config: &mut Config, source: &str) -> Result<(), ConfigError> {
    let Some(name) = config.guards.iter().find(|(_, p)| p.wants_classifier()).map(|(n, _)| n.clone()) else {
        return Ok(());
    };
    let classifier = shared().map_err(|e| ConfigError {
        file: source.to_owned(),
        line: 0,
        column: 0,
        path: format!("guards.{name}.injection.classifier"),
        message: format!("the injection classifier cannot load its model: {e}"),
        hint: Some(
            "run scripts/fetch-models.sh, or set GARDEFOU_MODELS_DIR to the folder holding all-MiniLM-L6-v2"
                .to_owned(),
        ),
    })?;
    let with = |p: &Arc<Policy>| Arc::new((**p).clone().with_classifier(classifier.clone()));
    for route in config.routes.values_mut() {
        if let Some((_, policy)) = route.guards.input.as_mut().filter(|(_, p)| p.wants_classifier()) {
            *policy = with(policy);
        }
    }
    for policy in config.guards.values_mut().filter(|p| p.wants_classifier()) {
        *policy = with(policy);
    }
    Ok(())
}

/// Runs `check` where it may block for milliseconds: through `block_in_place` on a
/// multi-threaded runtime when `policy` has a classifier, directly otherwise.
pub fn blocking<T>(policy: Option<&Policy>, check: impl FnOnce() -> T) -> T {
    let heavy = policy.is_some_and(Policy::has_classifier);
    match tokio::runtime::Handle::try_current() {
        Ok(h) if heavy && h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(check)
        }
        _ => check(),
    }
}
