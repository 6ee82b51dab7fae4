//! Budget counters at start: each budget's spend so far in its current window is read from the
//! usage rollups and set as the counter's starting value — unless the counter exists already
//! (Redis shared with running replicas), which is then left alone. Per-end-user budgets start
//! from zero: the rollups do not keep end users.

use gardefou_core::config::{BudgetScope, Config};
use gardefou_store::limits::{Limiter, Window};
use gardefou_store::{Dimension, Store, UsageFilter, UsageQuery};

use super::{window_of, NANO};

/// A budget counter to seed: its key (or, for per-group budgets, the dimension and key prefix),
/// its window and the usage filter that gives its spend.
type Plan = (String, Window, UsageFilter, Option<(Dimension, String)>);

/// Spend per group of `filter` / `group` since `from_ms`.
async fn spend(
    store: &Store,
    from_ms: i64,
    now: i64,
    filter: UsageFilter,
    group: Option<Dimension>,
) -> Result<Vec<(Option<String>, f64)>, gardefou_store::StoreError> {
    let q = UsageQuery {
        from_ms,
        to_ms: now + 60_000,
        group_by: group.into_iter().collect(),
        bucket: None,
        filter,
    };
    let report = store.usage(&q).await?;
    Ok(report.rows.into_iter().map(|r| (r.group.into_values().next().flatten(), r.cost_usd)).collect())
}

/// Seeds every budget counter that can be seeded; failures are logged (the counter then starts
/// from zero, or from what the shared store holds).
pub async fn seed_budgets(
    config: &Config,
    store: &Store,
    limiter: &Limiter,
    keys: &[gardefou_store::KeyRecord],
) {
    let now = crate::auth::now_ms();
    let mut plan: Vec<Plan> = Vec::new();
    for b in &config.limits.budgets {
        let n = &b.name;
        let w = window_of(b.window);
        let one = |filter: UsageFilter| (format!("budget:{n}"), w, filter, None);
        match &b.scope {
            BudgetScope::Global => plan.push(one(UsageFilter::default())),
            BudgetScope::Team(t) => {
                plan.push(one(UsageFilter { team: Some(t.clone()), ..Default::default() }))
            }
            BudgetScope::Product(p) => {
                plan.push(one(UsageFilter { product: Some(p.clone()), ..Default::default() }))
            }
            BudgetScope::Key(k) => plan.push(one(UsageFilter { key: Some(k.clone()), ..Default::default() })),
            BudgetScope::Route(r) => {
                plan.push(one(UsageFilter { route: Some(r.clone()), ..Default::default() }))
            }
            BudgetScope::EachTeam => plan.push((
                String::new(),
                w,
                UsageFilter::default(),
                Some((Dimension::Team, format!("budget:{n}:team="))),
            )),
            BudgetScope::EachProduct => plan.push((
                String::new(),
                w,
                UsageFilter::default(),
                Some((Dimension::Product, format!("budget:{n}:product="))),
            )),
            BudgetScope::EachKey => plan.push((
                String::new(),
                w,
                UsageFilter::default(),
                Some((Dimension::Key, format!("budget:{n}:key="))),
            )),
            BudgetScope::EachUser => {}
        }
    }
    for k in keys.iter().filter(|k| k.limits.budget_usd.is_some() && k.revoked_at_ms.is_none()) {
        let w = if k.limits.budget_window.as_deref() == Some("day") { Window::Day } else { Window::Month };
        plan.push((
            format!("budget:key:{}", k.id),
            w,
            UsageFilter { key: Some(k.id.clone()), ..Default::default() },
            None,
        ));
    }
    for (counter, window, filter, group) in plan {
        let from = window.start_ms(now);
        let rows = match spend(store, from, now, filter, group.as_ref().map(|g| g.0.clone())).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(kind = e.kind(), error = %e, "could not read past spend for the budgets; they start from zero");
                return;
            }
        };
        for (value, usd) in rows {
            let key = match (&group, value) {
                (None, _) => counter.clone(),
                (Some((_, prefix)), Some(v)) => format!("{prefix}{v}"),
                (Some(_), None) => continue,
            };
            if let Err(e) = limiter.seed(&key, window, now, (usd * NANO).ceil() as i64).await {
                tracing::warn!(kind = e.kind(), "could not seed a budget counter");
            }
        }
    }
}
