//! The application state every handler gets: the live runtime (swapped atomically on reload),
//! the recorder, the metrics, the store and the owner of every spawned task.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gardefou_core::config::{Config, ConfigError};
use gardefou_store::{Recorder, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::KeyTable;
use crate::limits::Limits;

use crate::runtime::{HealthRegistry, Runtime};
use crate::telemetry::{Metrics, Traces};

/// Where the live config comes from, for reloads.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// The example config compiled into the binary.
    Bundled,
}

pub const BUNDLED_CONFIG: &str = include_str!("../../../examples/gardefou.toml");

impl ConfigSource {
    /// Reads and validates the config, with the injection classifier plugged into the input
    /// policies that ask for it; every suite it schedules must load too (a reload with a
    /// malformed suite is rejected like any invalid config).
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match self {
            ConfigSource::File(p) => Config::load(p),
            ConfigSource::Bundled => Config::parse(BUNDLED_CONFIG, "examples/gardefou.toml (bundled)"),
        }?;
        crate::classifier::plug(&mut config, &self.describe())?;
        crate::eval::check_scheduled(&config)?;
        Ok(config)
    }

    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::Bundled => "the bundled example config".to_owned(),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: ArcSwap<Runtime>,
    health: HealthRegistry,
    recorder: Recorder,
    metrics: Metrics,
    /// Fixed at start: `[telemetry]` changes take effect at the next restart.
    traces: Traces,
    store: Store,
    source: ConfigSource,
    tracker: TaskTracker,
    reload_lock: tokio::sync::Mutex<()>,
    keys: KeyTable,
    limits: Limits,
    /// Stops the background tasks (key refresh, eval schedules, the quality worker) at shutdown.
    stop: CancellationToken,
    /// Sampled answers waiting for the quality judge.
    quality: crate::quality::Queue,
}

impl AppState {
    pub fn new(config: Config, source: ConfigSource, store: Store, tracker: TaskTracker) -> AppState {
        let recorder = Recorder::spawn(store.clone(), &config.store, &tracker);
        let traces = Traces::from_config(config.telemetry.as_ref()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "trace export is off");
            Traces::default()
        });
        let health = HealthRegistry::default();
        let runtime = Runtime::build(config, &health);
        let keys = KeyTable::default();
        let stop = CancellationToken::new();
        keys.spawn_refresh(store.clone(), &tracker, stop.clone());
        let metrics = Metrics::new();
        let limits = Limits::new(&runtime.config, &metrics, &tracker, stop.clone());
        AppState {
            inner: Arc::new(Inner {
                runtime: ArcSwap::from_pointee(runtime),
                health,
                recorder,
                metrics,
                traces,
                store,
                source,
                tracker,
                reload_lock: tokio::sync::Mutex::new(()),
                keys,
                limits,
                stop,
                quality: crate::quality::Queue::default(),
            }),
        }
    }

    /// The live runtime; hold it for the whole request.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.inner.runtime.load_full()
    }

    pub fn recorder(&self) -> &Recorder {
        &self.inner.recorder
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn traces(&self) -> &Traces {
        &self.inner.traces
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// The virtual and admin keys, refreshed from the store in the background.
    pub fn keys(&self) -> &KeyTable {
        &self.inner.keys
    }

    /// Rate limits and budgets (their counters are kept across config reloads; a changed
    /// `store.redis_url` needs a restart).
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The queue of answers sampled for online quality.
    pub fn quality(&self) -> &crate::quality::Queue {
        &self.inner.quality
    }

    /// Cancelled at shutdown: background tasks stop on it.
    pub fn stop_token(&self) -> CancellationToken {
        self.inner.stop.clone()
    }

    /// Stops the background tasks and drains the recorder (every recorded inference written or
    /// spilled). Idempotent.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        self.inner.recorder.shutdown().await;
    }

    /// Re-reads the config source, builds a new runtime and swaps it in. An invalid config is
    /// rejected and the live one stays; in-flight requests finish on the runtime they started with.
    /// Reloads the config for `actor` and writes the outcome to the audit log: the routes,
    /// models and providers before and after (names only, never a secret).
    pub async fn reload_by(&self, actor: &str) -> Result<Arc<Runtime>, ConfigError> {
        let before = config_summary(&self.runtime().config);
        let result = self.reload().await;
        let (action, after) = match &result {
            Ok(rt) => ("config.reload", config_summary(&rt.config)),
            Err(e) => ("config.reload_rejected", serde_json::json!({"error": e.to_string()})),
        };
        let entry = gardefou_store::AuditEntry {
            seq: 0,
            at_ms: crate::auth::now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: Some(self.inner.source.describe()),
            team: None,
            before: Some(before),
            after: Some(after),
        };
        if let Err(e) = self.store().append_audit(&entry).await {
            tracing::error!(kind = e.kind(), error = %e, "could not write the audit entry of a config reload");
        }
        result
    }

    pub async fn reload(&self) -> Result<Arc<Runtime>, ConfigError> {
        let _guard = self.inner.reload_lock.lock().await;
        let source = self.inner.source.clone();
        let loaded = tokio::task::spawn_blocking(move || source.load()).await.unwrap_or_else(|e| {
            Err(ConfigError {
                file: self.inner.source.describe(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("config loading failed: {e}"),
                hint: None,
            })
        });
        match loaded {
            Ok(config) => {
                let old = self.runtime();
                if config.server.listen != old.config.server.listen
                    || config.store.database_url != old.config.store.database_url
                {
                    tracing::warn!("server.listen and store.* changes take effect at the next restart");
                }
                let rt = Arc::new(Runtime::build(config, &self.inner.health));
                if let Some((provider, reason)) = rt.load_errors.iter().next() {
                    self.inner.metrics.reload(false);
                    let e = ConfigError {
                        file: self.inner.source.describe(),
                        line: 0,
                        column: 0,
                        path: format!("providers.{provider}"),
                        message: format!("a local model failed to load: {reason}"),
                        hint: None,
                    };
                    tracing::error!(error = %e, "config rejected; the previous config stays live");
                    return Err(e);
                }
                self.inner.runtime.store(rt.clone());
                self.inner.metrics.reload(true);
                tracing::info!(source = %self.inner.source.describe(), routes = rt.routes.len(), "config applied");
                Ok(rt)
            }
            Err(e) => {
                self.inner.metrics.reload(false);
                tracing::error!(error = %e, "config rejected; the previous config stays live");
                Err(e)
            }
        }
    }
}

/// The names a config defines, for the audit log.
fn config_summary(c: &Config) -> serde_json::Value {
    serde_json::json!({
        "providers": c.providers.keys().collect::<Vec<_>>(),
        "models": c.models.keys().collect::<Vec<_>>(),
        "routes": c.routes.keys().collect::<Vec<_>>(),
    })
}
