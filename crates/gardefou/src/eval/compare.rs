//! Two JSON reports of a suite side by side (`gardefou eval compare A.json B.json`): cases that
//! regressed (pass → fail) or were fixed, the pass-rate difference with a 95% Newcombe–Wilson
//! interval, and the mean score per assertion type.

use std::collections::BTreeMap;

use serde::Serialize;

use super::report::Report;

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_964;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub regressions: Vec<String>,
    pub fixes: Vec<String>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub pass_rate_a: f64,
    pub pass_rate_b: f64,
    /// `b − a`, with its 95% interval.
    pub pass_rate_diff: f64,
    pub diff_ci95: (f64, f64),
    /// Per assertion type: mean score in A, in B (`None` when that run has none).
    pub scores: BTreeMap<String, (Option<f64>, Option<f64>)>,
}

/// The Wilson score interval of `k` successes out of `n`.
pub fn wilson(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Newcombe's hybrid-score interval (method 10) for `p_b − p_a`.
pub fn diff_interval(ka: usize, na: usize, kb: usize, nb: usize) -> (f64, f64) {
    let pa = if na == 0 { 0.0 } else { ka as f64 / na as f64 };
    let pb = if nb == 0 { 0.0 } else { kb as f64 / nb as f64 };
    let (la, ua) = wilson(ka, na, Z95);
    let (lb, ub) = wilson(kb, nb, Z95);
    let d = pb - pa;
    (d - ((pb - lb).powi(2) + (ua - pa).powi(2)).sqrt(), d + ((ub - pb).powi(2) + (pa - la).powi(2)).sqrt())
}

pub fn compare(a: &Report, b: &Report) -> Comparison {
    let index = |r: &Report| r.cases.iter().map(|c| (c.id.clone(), c.passed)).collect::<BTreeMap<_, _>>();
    let (ia, ib) = (index(a), index(b));
    let mut out = Comparison {
        regressions: Vec::new(),
        fixes: Vec::new(),
        only_in_a: ia.keys().filter(|k| !ib.contains_key(*k)).cloned().collect(),
        only_in_b: ib.keys().filter(|k| !ia.contains_key(*k)).cloned().collect(),
        pass_rate_a: a.summary.pass_rate,
        pass_rate_b: b.summary.pass_rate,
        pass_rate_diff: b.summary.pass_rate - a.summary.pass_rate,
        diff_ci95: diff_interval(a.summary.passed, a.summary.cases, b.summary.passed, b.summary.cases),
        scores: BTreeMap::new(),
    };
    for (id, pa) in &ia {
        match (pa, ib.get(id)) {
            (true, Some(false)) => out.regressions.push(id.clone()),
            (false, Some(true)) => out.fixes.push(id.clone()),
            _ => {}
        }
    }
    for (k, v) in &a.summary.mean_scores {
        out.scores.entry(k.clone()).or_default().0 = Some(*v);
    }
    for (k, v) in &b.summary.mean_scores {
        out.scores.entry(k.clone()).or_default().1 = Some(*v);
    }
    out
}

/// The comparison for a terminal.
pub fn render(c: &Comparison) -> String {
    let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
    let mut s = format!(
        "pass rate: {:.3} → {:.3} (Δ {:+.3}, 95% CI [{:+.3}, {:+.3}])\nregressions (pass → fail): {}\nfixes (fail → pass): {}\n",
        c.pass_rate_a,
        c.pass_rate_b,
        c.pass_rate_diff,
        c.diff_ci95.0,
        c.diff_ci95.1,
        list(&c.regressions),
        list(&c.fixes)
    );
    if !c.only_in_a.is_empty() || !c.only_in_b.is_empty() {
        s.push_str(&format!("only in A: {}\nonly in B: {}\n", list(&c.only_in_a), list(&c.only_in_b)));
    }
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    for (k, (a, b)) in &c.scores {
        let delta = a.zip(*b).map_or_else(|| "-".to_owned(), |(a, b)| format!("{:+.3}", b - a));
        s.push_str(&format!("mean score {k}: {} → {} (Δ {delta})\n", f(*a), f(*b)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_and_newcombe_match_published_values() {
        // Newcombe (1998), example (a): 56/70 vs 48/80 → difference 0.2, CI 0.0524 to 0.3339.
        let (lo, hi) = diff_interval(48, 80, 56, 70);
        assert!((lo - 0.0524).abs() < 1e-3 && (hi - 0.3339).abs() < 1e-3, "{lo} {hi}");
        let (l, u) = wilson(0, 10, Z95);
        assert!(l == 0.0 && (u - 0.2775).abs() < 1e-3, "{u}");
    }
}
