//! `[limits]`, `[teams.*]`, `[budgets.*]` and route `limits` raw → validated: positive, sane
//! numbers (a budget of -5 or 10^12 USD is a typo), known scopes and windows, a downgrade route
//! that exists.

use std::collections::BTreeMap;

use toml::Spanned;

use super::super::limits::*;
use super::super::raw::{RawBudget, RawLimits, RawRateLimits, RawRoute};
use super::{Cx, R};

const MAX_PER_MINUTE: i64 = 1_000_000_000;
const MAX_USD: f64 = 10_000_000.0;

impl Cx<'_> {
    pub(super) fn rate_limits(&self, r: &RawRateLimits, path: &str, routes: bool) -> R<RateLimits> {
        let rpm = r.rpm.as_ref().map(|v| self.per_minute(v, &format!("{path}.rpm"))).transpose()?;
        let tpm = r.tpm.as_ref().map(|v| self.per_minute(v, &format!("{path}.tpm"))).transpose()?;
        let max_cost_usd = match &r.max_cost_usd {
            None => None,
            Some(v) if !routes => {
                return self.err(
                    v.span(),
                    &format!("{path}.max_cost_usd"),
                    "a per-request cost cap is set on routes",
                )
            }
            Some(v) => Some(self.usd(v, &format!("{path}.max_cost_usd"))?),
        };
        Ok(RateLimits { rpm, tpm, max_cost_usd })
    }

    fn per_minute(&self, v: &Spanned<i64>, path: &str) -> R<i64> {
        let n = *v.get_ref();
        if !(1..=MAX_PER_MINUTE).contains(&n) {
            return self.err(v.span(), path, format!("{n} is out of range (1..={MAX_PER_MINUTE})"));
        }
        Ok(n)
    }

    fn usd(&self, v: &Spanned<f64>, path: &str) -> R<f64> {
        let x = *v.get_ref();
        if !x.is_finite() || x <= 0.0 || x > MAX_USD {
            return self.err(
                v.span(),
                path,
                format!("{x} USD is not a budget: it must be more than 0 and at most {MAX_USD}"),
            );
        }
        Ok(x)
    }

    pub(super) fn limits(
        &self,
        l: &RawLimits,
        redis_url: &Option<Spanned<String>>,
        teams: &BTreeMap<Spanned<String>, RawRateLimits>,
        budgets: &BTreeMap<Spanned<String>, RawBudget>,
        routes: &BTreeMap<Spanned<String>, RawRoute>,
    ) -> R<LimitsConfig> {
        let redis_url = match redis_url {
            None => None,
            Some(u) => {
                let s = u.get_ref().trim();
                if !(s.starts_with("redis://")
                    || s.starts_with("rediss://")
                    || s.starts_with("redis+unix://"))
                {
                    return Err(self.error(
                        u.span(),
                        "store.redis_url",
                        format!("`{s}` is not a Redis URL"),
                        Some("e.g. redis_url = \"redis://127.0.0.1:6379\"".to_owned()),
                    ));
                }
                Some(s.to_owned())
            }
        };
        let on_redis_error = match l.on_redis_error.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
            None | Some(("fail_open", _)) => OnCounterError::FailOpen,
            Some(("fail_closed", _)) => OnCounterError::FailClosed,
            Some((other, span)) => {
                return self.err(
                    span,
                    "limits.on_redis_error",
                    format!("`{other}` is not `fail_open` or `fail_closed`"),
                )
            }
        };
        let default_max_output_tokens = self.count(
            &l.default_max_output_tokens,
            "limits.default_max_output_tokens",
            1,
            10_000_000,
            4096,
        )?;
        let mut out_teams = BTreeMap::new();
        for (name, r) in teams {
            let limits = self.rate_limits(r, &format!("teams.{}", name.get_ref()), false)?;
            out_teams.insert(name.get_ref().clone(), limits);
        }
        let mut out_budgets = Vec::new();
        for (name, b) in budgets {
            out_budgets.push(self.budget(name, b, routes)?);
        }
        Ok(LimitsConfig {
            redis_url,
            redis_prefix: l.redis_prefix.clone().unwrap_or_else(|| "gardefou".to_owned()),
            on_redis_error,
            default_max_output_tokens: default_max_output_tokens as u32,
            teams: out_teams,
            budgets: out_budgets,
        })
    }

    fn budget(
        &self,
        name: &Spanned<String>,
        b: &RawBudget,
        routes: &BTreeMap<Spanned<String>, RawRoute>,
    ) -> R<BudgetConfig> {
        let path = format!("budgets.{}", name.get_ref());
        let scope_text = b.scope.get_ref().as_str();
        let scope = match scope_text.split_once(':') {
            None => match scope_text {
                "global" => BudgetScope::Global,
                "team" => BudgetScope::EachTeam,
                "product" => BudgetScope::EachProduct,
                "key" => BudgetScope::EachKey,
                "user" => BudgetScope::EachUser,
                _ => BudgetScope::Global,
            },
            Some(("team", v)) if !v.is_empty() => BudgetScope::Team(v.to_owned()),
            Some(("product", v)) if !v.is_empty() => BudgetScope::Product(v.to_owned()),
            Some(("key", v)) if !v.is_empty() => BudgetScope::Key(v.to_owned()),
            Some(("route", v)) if !v.is_empty() => BudgetScope::Route(v.to_owned()),
            _ => BudgetScope::Global,
        };
        let known = matches!(scope_text, "global" | "team" | "product" | "key" | "user")
            || scope_text
                .split_once(':')
                .is_some_and(|(k, v)| !v.is_empty() && matches!(k, "team" | "product" | "key" | "route"));
        if !known {
            return Err(self.error(
                b.scope.span(),
                &format!("{path}.scope"),
                format!("`{scope_text}` is not a budget scope"),
                Some("use global, team:NAME, product:NAME, key:ID, route:NAME, or team / product / key / user for one budget each".to_owned()),
            ));
        }
        let limit_usd = self.usd(&b.limit_usd, &format!("{path}.limit_usd"))?;
        let window = match b.window.as_ref().map(|w| (w.get_ref().as_str(), w.span())) {
            None | Some(("month", _)) => BudgetWindow::Month,
            Some(("day", _)) => BudgetWindow::Day,
            Some((other, span)) => {
                return self.err(
                    span,
                    &format!("{path}.window"),
                    format!("`{other}` is not `day` or `month`"),
                )
            }
        };
        let action = match (b.action.as_ref().map(|a| (a.get_ref().as_str(), a.span())), &b.downgrade_to) {
            (None | Some(("reject", _)), None) => BudgetAction::Reject,
            (Some(("downgrade", _)), Some(to)) => {
                if !routes.keys().any(|r| r.get_ref() == to.get_ref()) {
                    return self.err(
                        to.span(),
                        &format!("{path}.downgrade_to"),
                        format!("no route `{}`", to.get_ref()),
                    );
                }
                BudgetAction::Downgrade(to.get_ref().clone())
            }
            (Some(("downgrade", span)), None) => {
                return self.err(
                    span,
                    &format!("{path}.action"),
                    "`downgrade` needs `downgrade_to = \"<cheaper route>\"`",
                )
            }
            (_, Some(to)) => {
                return self.err(
                    to.span(),
                    &format!("{path}.downgrade_to"),
                    "`downgrade_to` goes with `action = \"downgrade\"`",
                )
            }
            (Some((other, span)), None) => {
                return self.err(
                    span,
                    &format!("{path}.action"),
                    format!("`{other}` is not `reject` or `downgrade`"),
                )
            }
        };
        let mut alert_at = Vec::new();
        for a in &b.alert_at {
            let x = *a.get_ref();
            if !(x > 0.0 && x <= 1.0) {
                return self.err(
                    a.span(),
                    &format!("{path}.alert_at"),
                    format!("{x} is not a fraction in (0, 1]"),
                );
            }
            alert_at.push(x);
        }
        alert_at.sort_by(f64::total_cmp);
        let webhook = match &b.webhook {
            None => None,
            Some(w) if w.get_ref().starts_with("http://") || w.get_ref().starts_with("https://") => {
                Some(w.get_ref().clone())
            }
            Some(w) => {
                return self.err(
                    w.span(),
                    &format!("{path}.webhook"),
                    format!("`{}` is not an http(s) URL", w.get_ref()),
                )
            }
        };
        Ok(BudgetConfig { name: name.get_ref().clone(), scope, limit_usd, window, action, alert_at, webhook })
    }
}
