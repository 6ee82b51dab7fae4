//! The live runtime built from one config: providers ready to call, routes resolved to their
//! targets and health. A new config builds a whole new `Runtime`; only if that succeeds is it
//! swapped in. Requests hold the `Arc<Runtime>` they started with until they end.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gardefou_core::config::{Config, ModelConfig, ProviderKind, RouteConfig};
use gardefou_providers::Provider;

use crate::pipeline::health::Health;

pub struct Runtime {
    pub config: Arc<Config>,
    pub routes: HashMap<String, Arc<Route>>,
    /// Providers that could not be enabled, with the reason (e.g. an unset API key).
    pub disabled: BTreeMap<String, String>,
    /// Local providers whose model files failed to load (truncated, unsupported architecture…):
    /// unlike a missing API key, a start-up error and a rejected reload.
    pub load_errors: BTreeMap<String, String>,
}

pub struct Route {
    pub config: RouteConfig,
    /// The weighted targets, then the fallbacks, each once.
    pub targets: Vec<TargetRt>,
    pub fallbacks: Vec<TargetRt>,
    pub total_weight: u32,
    pub embeddings: bool,
}

#[derive(Clone)]
pub struct TargetRt {
    pub model: Arc<ModelConfig>,
    /// `None` when the provider is disabled.
    pub provider: Option<Arc<Provider>>,
    pub weight: u32,
    pub health: Arc<Health>,
}

/// Target health survives config reloads when the route and model keep their names and policy.
/// What survives config reloads: target health, and local providers with their loaded models
/// (reused while the provider's config is unchanged, so a reload does not load them again).
#[derive(Default)]
pub struct HealthRegistry {
    map: Mutex<HashMap<(String, String), Arc<Health>>>,
    /// Provider name → (its config, as `Debug` text; the provider built from it).
    locals: Mutex<HashMap<String, (String, Arc<Provider>)>>,
}

impl HealthRegistry {
    fn get(&self, route: &RouteConfig, model: &str) -> Arc<Health> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let key = (route.name.clone(), model.to_owned());
        match map.get(&key) {
            Some(h) if h.policy() == route.breaker => h.clone(),
            _ => {
                let h = Arc::new(Health::new(route.breaker));
                map.insert(key, h.clone());
                h
            }
        }
    }
}

impl Runtime {
    pub fn build(config: Config, health: &HealthRegistry) -> Runtime {
        let mut providers: HashMap<String, Arc<Provider>> = HashMap::new();
        let mut disabled = BTreeMap::new();
        let mut load_errors = BTreeMap::new();
        for (name, p) in &config.providers {
            let connect = config
                .routes
                .values()
                .filter(|r| {
                    r.targets
                        .iter()
                        .map(|t| &t.model)
                        .chain(&r.fallbacks)
                        .any(|m| config.models.get(m).is_some_and(|m| &m.provider == name))
                })
                .map(|r| r.timeouts.connect)
                .min()
                .unwrap_or(Duration::from_secs(5));
            if p.kind == ProviderKind::Local && p.local_models.is_empty() {
                // Every model of it is an `optional` one whose file is absent.
                disabled.insert(name.clone(), "none of its model files is present".to_owned());
                continue;
            }
            let local = (p.kind == ProviderKind::Local).then(|| format!("{p:?}"));
            if let Some(fingerprint) = &local {
                let locals = health.locals.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((_, built)) = locals.get(name).filter(|(f, _)| f == fingerprint) {
                    providers.insert(name.clone(), built.clone());
                    continue;
                }
            }
            match Provider::build(p, connect) {
                Ok(built) => {
                    let built = Arc::new(built);
                    if let Some(fingerprint) = local {
                        let mut locals = health.locals.lock().unwrap_or_else(|e| e.into_inner());
                        locals.insert(name.clone(), (fingerprint, built.clone()));
                    }
                    providers.insert(name.clone(), built);
                }
                Err(reason) => {
                    tracing::warn!(provider = %name, kind = p.kind.as_str(), %reason, "provider disabled");
                    // Without the `local-models` feature a local provider is merely disabled.
                    if local.is_some() && cfg!(feature = "local-models") {
                        load_errors.insert(name.clone(), reason.clone());
                    }
                    disabled.insert(name.clone(), reason);
                }
            }
        }
        let models: HashMap<&str, Arc<ModelConfig>> =
            config.models.iter().map(|(n, m)| (n.as_str(), Arc::new(m.clone()))).collect();
        let target = |route: &RouteConfig, model: &str, weight: u32| -> Option<TargetRt> {
            let m = models.get(model)?.clone();
            Some(TargetRt {
                // An unavailable model (an optional local file that is absent) is skipped like
                // one of a disabled provider.
                provider: if m.unavailable.is_some() { None } else { providers.get(&m.provider).cloned() },
                health: health.get(route, model),
                model: m,
                weight,
            })
        };
        let mut routes = HashMap::new();
        for (name, r) in &config.routes {
            let targets: Vec<TargetRt> =
                r.targets.iter().filter_map(|t| target(r, &t.model, t.weight)).collect();
            let fallbacks: Vec<TargetRt> = r
                .fallbacks
                .iter()
                .filter(|f| !r.targets.iter().any(|t| &t.model == *f))
                .filter_map(|f| target(r, f, 0))
                .collect();
            let embeddings = targets.iter().chain(&fallbacks).any(|t| t.model.capabilities.embeddings);
            routes.insert(
                name.clone(),
                Arc::new(Route {
                    total_weight: targets.iter().map(|t| t.weight).sum(),
                    config: r.clone(),
                    targets,
                    fallbacks,
                    embeddings,
                }),
            );
        }
        Runtime { config: Arc::new(config), routes, disabled, load_errors }
    }

    /// Providers that answer without any key or network.
    pub fn has_mock(&self) -> bool {
        self.config.providers.values().any(|p| p.kind == ProviderKind::Mock)
    }
}
