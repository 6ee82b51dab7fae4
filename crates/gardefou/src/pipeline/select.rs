//! Target selection: the order in which a request tries a route's targets. Healthy targets come
//! first — by weight (weighted) or by two random choices with the lower latency EWMA winning
//! (least latency) — then the route's fallbacks in their configured order.

use gardefou_core::config::Balance;
use rand::Rng;

use crate::runtime::{Route, TargetRt};

/// The targets of `route` in the order to try them.
pub fn plan<'r>(route: &'r Route, rng: &mut impl Rng) -> Vec<&'r TargetRt> {
    let mut out = Vec::with_capacity(route.targets.len() + route.fallbacks.len());
    let mut pool: Vec<&TargetRt> =
        route.targets.iter().filter(|t| t.weight > 0 && t.health.is_available()).collect();
    match route.config.balance {
        Balance::Weighted => {
            while !pool.is_empty() {
                let i = weighted_index(&pool, rng);
                out.push(pool.swap_remove(i));
            }
        }
        Balance::LeastLatency => {
            if pool.len() >= 2 {
                let a = weighted_index(&pool, rng);
                let first = pool.swap_remove(a);
                let b = weighted_index(&pool, rng);
                let second = pool[b];
                if second.health.ewma_ms() < first.health.ewma_ms() {
                    pool.swap_remove(b);
                    pool.push(first);
                    out.push(second);
                } else {
                    out.push(first);
                }
            }
            pool.sort_by(|a, b| a.health.ewma_ms().total_cmp(&b.health.ewma_ms()));
            out.extend(pool);
        }
    }
    // Unhealthy or zero-weight targets still come before the fallbacks: their circuit may have
    // cooled down by the time they are reached, and `admit` decides then.
    for t in &route.targets {
        if !out.iter().any(|o| std::ptr::eq(*o, t)) {
            out.push(t);
        }
    }
    out.extend(route.fallbacks.iter());
    out
}

fn weighted_index(pool: &[&TargetRt], rng: &mut impl Rng) -> usize {
    let total: u64 = pool.iter().map(|t| u64::from(t.weight)).sum();
    if total == 0 {
        return 0;
    }
    let mut pick = rng.random_range(0..total);
    for (i, t) in pool.iter().enumerate() {
        let w = u64::from(t.weight);
        if pick < w {
            return i;
        }
        pick -= w;
    }
    pool.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{HealthRegistry, Runtime};
    use gardefou_core::config::Config;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::time::Duration;

    fn runtime(balance: &str) -> Runtime {
        let text = format!(
            r#"
[providers.demo]
kind = "mock"
[models.a]
provider = "demo"
[models.b]
provider = "demo"
[models.c]
provider = "demo"
[routes.r]
targets = [{{ model = "a", weight = 90 }}, {{ model = "b", weight = 10 }}]
fallbacks = ["c"]
balance = "{balance}"
breaker = {{ failures = 1 }}
"#
        );
        Runtime::build(Config::parse(&text, "t.toml").unwrap(), &HealthRegistry::default())
    }

    fn names(p: &[&TargetRt]) -> Vec<String> {
        p.iter().map(|t| t.model.name.clone()).collect()
    }

    #[test]
    fn weights_decide_the_first_target_and_fallbacks_come_last() {
        let rt = runtime("weighted");
        let route = &rt.routes["r"];
        let mut rng = StdRng::seed_from_u64(7);
        let mut first_a = 0;
        for _ in 0..10_000 {
            let p = plan(route, &mut rng);
            assert_eq!(p.len(), 3);
            assert_eq!(p[2].model.name, "c");
            if p[0].model.name == "a" {
                first_a += 1;
            }
        }
        assert!((8_700..=9_300).contains(&first_a), "{first_a} of 10000 should be near 9000");
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_circuit_moves_its_target_behind_the_healthy_ones() {
        let rt = runtime("weighted");
        let route = &rt.routes["r"];
        route.targets[0].health.on_failure();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(names(&plan(route, &mut rng)), ["b", "a", "c"]);
        }
    }

    #[test]
    fn least_latency_prefers_the_faster_target() {
        let rt = runtime("least_latency");
        let route = &rt.routes["r"];
        route.targets[0].health.on_success(Duration::from_millis(500));
        route.targets[1].health.on_success(Duration::from_millis(20));
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..100 {
            assert_eq!(names(&plan(route, &mut rng)), ["b", "a", "c"]);
        }
    }
}
