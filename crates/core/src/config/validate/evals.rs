//! `[routes.x.quality]` (online quality sampling) and `[[routes.x.evals]]` (scheduled suites):
//! the judge route exists and is another route, the checks are known, `compliance` has a policy,
//! the schedule is a cron expression and the webhook an http(s) URL.

use std::str::FromStr;

use super::*;
use crate::config::raw::{RawQuality, RawScheduledSuite};

const CHECKS: &str = "relevance, groundedness, compliance";

impl Cx<'_> {
    pub(super) fn quality(
        &self,
        route: &str,
        raw: Option<&RawQuality>,
        routes: &BTreeMap<Spanned<String>, raw::RawRoute>,
    ) -> R<Option<QualitySampling>> {
        let Some(q) = raw else { return Ok(None) };
        let path = format!("routes.{route}.quality");
        let sample = *q.sample.get_ref();
        if !(sample > 0.0 && sample <= 1.0) {
            return self.err(
                q.sample.span(),
                &format!("{path}.sample"),
                format!("{sample} is not in (0, 1]"),
            );
        }
        let judge = match &q.judge {
            Some(j) => {
                let name = j.get_ref();
                if name == route {
                    return self.err(j.span(), &format!("{path}.judge"), "a route cannot judge itself");
                }
                if !routes.keys().any(|k| k.get_ref() == name) {
                    return Err(self.error(
                        j.span(),
                        &format!("{path}.judge"),
                        format!("unknown route `{name}`"),
                        Some(hint_known("routes", routes.keys().map(Spanned::get_ref))),
                    ));
                }
                name.clone()
            }
            None => {
                if route == "judge" || !routes.keys().any(|k| k.get_ref() == "judge") {
                    return Err(self.error(
                        q.sample.span(),
                        &format!("{path}.judge"),
                        "no judge route: name one with `judge = \"…\"` (default `judge`)".to_owned(),
                        Some(hint_known("routes", routes.keys().map(Spanned::get_ref))),
                    ));
                }
                "judge".to_owned()
            }
        };
        let policy = q.policy.as_ref().map(|p| p.get_ref().trim().to_owned()).filter(|p| !p.is_empty());
        let checks = match &q.checks {
            Some(list) => {
                let mut checks = Vec::with_capacity(list.len());
                for c in list {
                    let Some(check) = QualityCheck::parse(c.get_ref()) else {
                        return Err(self.error(
                            c.span(),
                            &format!("{path}.checks"),
                            format!("unknown check `{}`", c.get_ref()),
                            Some(format!("checks are {CHECKS}")),
                        ));
                    };
                    if check == QualityCheck::Compliance && policy.is_none() {
                        return self.err(
                            c.span(),
                            &format!("{path}.checks"),
                            "`compliance` needs the route's `policy` (the rules the answer must follow)",
                        );
                    }
                    if !checks.contains(&check) {
                        checks.push(check);
                    }
                }
                if checks.is_empty() {
                    return self.err(q.sample.span(), &format!("{path}.checks"), "no check to run");
                }
                checks
            }
            None => {
                let mut checks = vec![QualityCheck::Relevance, QualityCheck::Groundedness];
                if policy.is_some() {
                    checks.push(QualityCheck::Compliance);
                }
                checks
            }
        };
        let threshold = match &q.threshold {
            Some(t) if !(0.0..=1.0).contains(t.get_ref()) => {
                return self.err(
                    t.span(),
                    &format!("{path}.threshold"),
                    format!("{} is not in [0, 1]", t.get_ref()),
                )
            }
            Some(t) => *t.get_ref(),
            None => 0.5,
        };
        Ok(Some(QualitySampling { sample, judge, checks, threshold, policy }))
    }

    pub(super) fn scheduled_suites(&self, route: &str, raw: &[RawScheduledSuite]) -> R<Vec<ScheduledSuite>> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, e) in raw.iter().enumerate() {
            let path = format!("routes.{route}.evals[{i}]");
            let schedule = e.schedule.get_ref().trim().to_owned();
            let cron = parse_cron(&schedule).map_err(|m| {
                self.error(
                    e.schedule.span(),
                    &format!("{path}.schedule"),
                    format!("`{schedule}` is not a cron schedule: {m}"),
                    Some(
                        "5 fields, UTC: minute hour day-of-month month day-of-week, e.g. \"0 */6 * * *\""
                            .to_owned(),
                    ),
                )
            })?;
            let file = e.suite.get_ref();
            if file.trim().is_empty() {
                return self.err(e.suite.span(), &format!("{path}.suite"), "the suite path is empty");
            }
            let suite = std::path::Path::new(self.file)
                .parent()
                .filter(|_| !std::path::Path::new(file).is_absolute())
                .map_or_else(|| std::path::PathBuf::from(file), |dir| dir.join(file));
            let webhook = match &e.webhook {
                Some(u) if !(u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://")) => {
                    return self.err(
                        u.span(),
                        &format!("{path}.webhook"),
                        format!("`{}` is not an http(s) URL", u.get_ref()),
                    )
                }
                Some(u) => Some(u.get_ref().clone()),
                None => None,
            };
            let concurrency = self.count(&e.concurrency, &format!("{path}.concurrency"), 1, 64, 4)? as u32;
            out.push(ScheduledSuite { suite, schedule, cron, webhook, concurrency });
        }
        Ok(out)
    }
}

/// A cron schedule: the usual 5 fields (minute first), or 6–7 with seconds first (and a year).
pub fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {text}"),
        6 | 7 => text.to_owned(),
        n => return Err(format!("{n} fields; expected 5 (or 6–7 with seconds first)")),
    };
    cron::Schedule::from_str(&full).map_err(|e| e.to_string())
}
