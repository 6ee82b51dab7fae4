//! Calling a route's targets with resilience: retries with exponential backoff and full jitter
//! on retryable errors (Retry-After honoured), a move to the next target or fallback when a target
//! keeps failing or its circuit is open, everything inside the route's total deadline.

use std::future::Future;
use std::time::Duration;

use gardefou_core::Error;
use gardefou_providers::Provider;
use gardefou_store::Attempt;
use rand::Rng;
use tokio::time::Instant;

use super::health::Admission;
use super::select;
use crate::runtime::{Route, TargetRt};
use crate::telemetry::metrics::{AttemptLabels, Metrics, TargetLabels};

/// What a request needs from a model, to skip targets that cannot serve it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub embeddings: bool,
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
}

impl Needs {
    fn met_by(&self, t: &TargetRt) -> bool {
        let c = &t.model.capabilities;
        if self.embeddings {
            return c.embeddings;
        }
        c.chat && (!self.tools || c.tools) && (!self.vision || c.vision) && (!self.json || c.json)
    }

    fn describe(&self) -> &'static str {
        if self.embeddings {
            "embeddings"
        } else if self.tools {
            "tool calls"
        } else if self.vision {
            "image input"
        } else if self.json {
            "JSON output"
        } else {
            "chat"
        }
    }
}

/// Tries the targets of `route` in plan order until one answers. `call` makes one attempt on one
/// target and gets the time left. Every attempt (and skipped target) is appended to `attempts`.
pub async fn call_route<'r, T, F, Fut>(
    route: &'r Route,
    needs: Needs,
    deadline: Instant,
    metrics: &Metrics,
    attempts: &mut Vec<Attempt>,
    mut call: F,
) -> Result<(T, &'r TargetRt), Error>
where
    F: FnMut(&'r TargetRt, &'r Provider, Duration) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let plan = select::plan(route, &mut rand::rng());
    let policy = route.config.retry;
    let mut last_err: Option<Error> = None;
    let mut any_capable = false;
    for target in plan {
        if !needs.met_by(target) {
            continue;
        }
        any_capable = true;
        let Some(provider) = target.provider.as_deref() else {
            attempts.push(skipped(target, "provider_disabled"));
            continue;
        };
        for n in 0..policy.attempts {
            let now = Instant::now();
            if now >= deadline {
                return Err(last_err.unwrap_or_else(|| total_timeout(target)));
            }
            let admission = target.health.admit();
            if admission == Admission::Refused {
                attempts.push(skipped(target, "circuit_open"));
                break;
            }
            let started = Instant::now();
            let result =
                match tokio::time::timeout(deadline - now, call(target, provider, deadline - now)).await {
                    Ok(r) => r,
                    Err(_) => Err(total_timeout(target)),
                };
            let elapsed = started.elapsed();
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            };
            metrics
                .attempts()
                .get_or_create(&AttemptLabels {
                    model: target.model.name.clone(),
                    provider: target.model.provider.clone(),
                    outcome,
                })
                .inc();
            match result {
                Ok(v) => {
                    target.health.on_success(elapsed);
                    set_circuit(metrics, route, target, false);
                    attempts.push(attempt(target, Some(200), None, elapsed));
                    return Ok((v, target));
                }
                Err(e) => {
                    attempts.push(attempt(target, Some(e.status()), Some(&e), elapsed));
                    if e.is_target_failure() {
                        if target.health.on_failure() {
                            tracing::warn!(route = %route.config.name, model = %target.model.name, kind = e.kind(), "circuit opened");
                            set_circuit(metrics, route, target, true);
                        }
                    } else {
                        // The upstream answered (a client error or a rate limit): it is alive.
                        target.health.on_alive();
                    }
                    tracing::debug!(route = %route.config.name, model = %target.model.name, kind = e.kind(), attempt = n + 1, "provider attempt failed");
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    let retry_here = n + 1 < policy.attempts && !matches!(e, Error::ProviderAuth { .. });
                    let wait = backoff(policy.backoff, policy.max_backoff, n, &mut rand::rng())
                        .max(e.retry_after().unwrap_or_default());
                    last_err = Some(e);
                    if !retry_here || Instant::now() + wait >= deadline {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
    if !any_capable {
        return Err(Error::invalid_param(
            format!("no model of route `{}` supports {}", route.config.name, needs.describe()),
            "model",
        ));
    }
    Err(last_err.unwrap_or_else(|| {
        Error::Unavailable(format!("no target of route `{}` is available right now", route.config.name))
    }))
}

fn total_timeout(target: &TargetRt) -> Error {
    Error::Timeout { provider: target.model.provider.clone(), phase: "the route's total deadline" }
}

fn set_circuit(metrics: &Metrics, route: &Route, target: &TargetRt, open: bool) {
    metrics
        .circuit_open()
        .get_or_create(&TargetLabels { route: route.config.name.clone(), model: target.model.name.clone() })
        .set(i64::from(open));
}

/// Exponential backoff with full jitter: a random wait in [base·2ⁿ / 2, base·2ⁿ], capped.
pub fn backoff(base: Duration, max: Duration, n: u32, rng: &mut impl Rng) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX)).min(max);
    let half = exp / 2;
    half + exp.saturating_sub(half).mul_f64(rng.random::<f64>())
}

fn attempt(target: &TargetRt, status: Option<u16>, err: Option<&Error>, elapsed: Duration) -> Attempt {
    Attempt {
        model: target.model.name.clone(),
        provider: target.model.provider.clone(),
        status,
        error_kind: err.map(|e| e.kind().to_owned()),
        error: err.map(|e| e.to_string()),
        latency_ms: elapsed.as_secs_f64() * 1000.0,
    }
}

fn skipped(target: &TargetRt, why: &'static str) -> Attempt {
    Attempt {
        model: target.model.name.clone(),
        provider: target.model.provider.clone(),
        status: None,
        error_kind: Some(why.to_owned()),
        error: None,
        latency_ms: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let mut rng = StdRng::seed_from_u64(5);
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for _ in 0..1000 {
            let b0 = backoff(base, max, 0, &mut rng);
            assert!(b0 >= Duration::from_millis(50) && b0 <= base, "{b0:?}");
            let b2 = backoff(base, max, 2, &mut rng);
            assert!(b2 >= Duration::from_millis(200) && b2 <= Duration::from_millis(400), "{b2:?}");
            let b9 = backoff(base, max, 9, &mut rng);
            assert!(b9 >= Duration::from_millis(500) && b9 <= max, "{b9:?}");
        }
    }
}
