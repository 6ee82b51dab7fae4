//! The result of a run: per case and per attempt, the suite's thresholds checked against it,
//! and its three forms — the terminal table, the JSON report (the stored artefact) and JUnit XML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::assert::{Observed, Outcome, Verdict};
use super::suite::Thresholds;

/// One request of a case and what its assertions said.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    #[serde(flatten)]
    pub output: Observed,
    pub assertions: Vec<Outcome>,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: String,
    pub route: String,
    /// Every repeat passed.
    pub passed: bool,
    /// Repeats that passed, out of `attempts.len()`.
    pub passes: u32,
    pub attempts: Vec<Attempt>,
}

impl CaseResult {
    /// Whether an assertion could not be decided in some repeat.
    pub fn has_error(&self) -> bool {
        self.attempts.iter().flat_map(|a| &a.assertions).any(|o| o.verdict == Verdict::Error)
    }

    /// Why the first failing repeat failed: its request's error (a non-2xx answer, a transport
    /// failure), then its failed (or undecided) assertions.
    pub fn failures(&self) -> Vec<(String, String)> {
        let Some(a) = self.attempts.iter().find(|a| !a.passed) else { return Vec::new() };
        let mut out: Vec<(String, String)> =
            a.request_error().map(|e| ("request".to_owned(), e)).into_iter().collect();
        out.extend(a.assertions.iter().filter(|o| !o.passed()).map(|o| (o.kind.clone(), o.reason.clone())));
        out
    }
}

impl Attempt {
    /// The request's failure, when it did not get a 2xx answer.
    pub fn request_error(&self) -> Option<String> {
        let o = &self.output;
        if (200..300).contains(&o.status) {
            return None;
        }
        Some(o.error.clone().unwrap_or_else(|| format!("HTTP {}", o.status)))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub cases: usize,
    pub passed: usize,
    pub failed: usize,
    /// Cases with an undecided assertion (counted among the failed too).
    pub errors: usize,
    pub pass_rate: f64,
    pub p95_latency_ms: f64,
    pub total_cost_usd: f64,
    /// Mean score per assertion type that scores (`similar`, `judge`).
    pub mean_scores: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub name: String,
    pub limit: f64,
    pub actual: f64,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub suite: String,
    pub file: String,
    /// SHA-256 of the suite file.
    #[serde(default)]
    pub suite_hash: String,
    /// The route every case was sent to, when one was forced (`--route`, a schedule's route).
    #[serde(default)]
    pub route: Option<String>,
    /// What was deployed: the in-process gateway's config revision, or the server's own for a
    /// scheduled run.
    #[serde(default)]
    pub release: Option<String>,
    /// `in-process` or the `--url` the cases were sent to.
    pub target: String,
    pub judge_prompt_version: String,
    pub started_at_ms: i64,
    pub duration_ms: f64,
    pub repeat: u32,
    /// Ctrl-C stopped the run: only the finished cases are here.
    pub interrupted: bool,
    /// Cases in the suite; fewer are in `cases` when interrupted.
    pub total_cases: usize,
    pub summary: Summary,
    pub thresholds: Vec<ThresholdResult>,
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// Whether every threshold holds.
    pub fn passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }
}

/// The nearest-rank percentile `p` (0..=100) of `values`; 0 when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

pub fn summarize(cases: &[CaseResult]) -> Summary {
    let attempts: Vec<&Attempt> = cases.iter().flat_map(|c| &c.attempts).collect();
    let latencies: Vec<f64> = attempts.iter().map(|a| a.output.latency_ms).collect();
    let mut scores: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for o in attempts.iter().flat_map(|a| &a.assertions) {
        if let Some(s) = o.score {
            let e = scores.entry(o.kind.clone()).or_default();
            e.0 += s;
            e.1 += 1;
        }
    }
    let passed = cases.iter().filter(|c| c.passed).count();
    Summary {
        cases: cases.len(),
        passed,
        failed: cases.len() - passed,
        errors: cases.iter().filter(|c| c.has_error()).count(),
        pass_rate: if cases.is_empty() { 0.0 } else { passed as f64 / cases.len() as f64 },
        p95_latency_ms: percentile(&latencies, 95.0),
        // `fold` from +0.0: an empty f64 `sum` is −0.0.
        total_cost_usd: attempts.iter().filter_map(|a| a.output.cost_usd).fold(0.0, |a, b| a + b),
        mean_scores: scores.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect(),
    }
}

/// The thresholds checked against a summary; `pass_rate` is 1.0 unless the suite sets it.
pub fn check_thresholds(t: &Thresholds, s: &Summary) -> Vec<ThresholdResult> {
    let min = |name: String, limit: f64, actual: f64| ThresholdResult {
        name,
        limit,
        actual,
        passed: actual >= limit,
    };
    let max = |name: &str, limit: f64, actual: f64| ThresholdResult {
        name: name.into(),
        limit,
        actual,
        passed: actual <= limit,
    };
    let mut out = vec![min("pass_rate".into(), t.pass_rate.unwrap_or(1.0), s.pass_rate)];
    if let Some(l) = t.max_p95_latency_ms {
        out.push(max("max_p95_latency_ms", l, s.p95_latency_ms));
    }
    if let Some(l) = t.max_cost_usd {
        out.push(max("max_cost_usd", l, s.total_cost_usd));
    }
    for (kind, l) in &t.min_mean_score {
        // A type with no score at all (every judge errored) fails its threshold.
        out.push(min(format!("min_mean_score.{kind}"), *l, s.mean_scores.get(kind).copied().unwrap_or(0.0)));
    }
    out
}

/// The terminal summary: one row per case, then the thresholds.
pub fn table(r: &Report) -> String {
    let mut rows =
        vec![["case", "result", "latency ms", "cost $", "failed assertions"].map(str::to_owned).to_vec()];
    for c in &r.cases {
        let n = c.attempts.len();
        let result = match (c.passed, c.has_error()) {
            (true, _) => "PASS",
            (false, true) => "ERROR",
            (false, false) => "FAIL",
        };
        let result = if r.repeat > 1 { format!("{result} {}/{n}", c.passes) } else { result.to_owned() };
        let lat = c.attempts.iter().map(|a| a.output.latency_ms).sum::<f64>() / n.max(1) as f64;
        let cost: Option<f64> = c.attempts.iter().map(|a| a.output.cost_usd).sum();
        let fails: Vec<String> = c.failures().into_iter().map(|(k, why)| format!("{k}: {why}")).collect();
        rows.push(vec![
            c.id.clone(),
            result,
            format!("{lat:.0}"),
            cost.map_or_else(|| "?".into(), |c| format!("{c:.6}")),
            fails.join("; "),
        ]);
    }
    let mut out = align(&rows);
    let s = &r.summary;
    out.push_str(&format!(
        "\n{}: {}/{} cases passed ({} with errors), p95 {:.0} ms, cost ${:.6}{}\n",
        r.suite,
        s.passed,
        s.cases,
        s.errors,
        s.p95_latency_ms,
        s.total_cost_usd,
        if r.interrupted { " — INTERRUPTED, partial results" } else { "" }
    ));
    for t in &r.thresholds {
        let op = if t.name.starts_with("max") { "<=" } else { ">=" };
        let mark = if t.passed { "ok  " } else { "FAIL" };
        out.push_str(&format!("  {mark} {} = {:.4} ({op} {})\n", t.name, t.actual, t.limit));
    }
    out
}

fn align(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0usize; rows.first().map_or(0, Vec::len)];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Escapes text for XML content and attribute values; drops the characters XML 1.0 forbids.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one testcase per case, a `<failure>` per failed assertion, an `<error>` per
/// undecided one.
pub fn junit(r: &Report) -> String {
    let e = xml_escape;
    let s = &r.summary;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites>\n<testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{:.3}\">\n",
        e(&r.suite),
        s.cases,
        s.failed - s.errors.min(s.failed),
        s.errors,
        r.duration_ms / 1000.0
    ));
    for c in &r.cases {
        let time: f64 = c.attempts.iter().map(|a| a.output.latency_ms).sum::<f64>() / 1000.0;
        out.push_str(&format!(
            "  <testcase name=\"{}\" classname=\"{}.{}\" time=\"{time:.3}\">\n",
            e(&c.id),
            e(&r.suite),
            e(&c.route)
        ));
        if let Some(a) = c.attempts.iter().find(|a| !a.passed) {
            for o in a.assertions.iter().filter(|o| !o.passed()) {
                let tag = if o.verdict == Verdict::Error { "error" } else { "failure" };
                out.push_str(&format!("    <{tag} type=\"{}\" message=\"{}\"/>\n", e(&o.kind), e(&o.reason)));
            }
            if let Some(why) = a.request_error() {
                out.push_str(&format!("    <failure type=\"request\" message=\"{}\"/>\n", e(&why)));
            }
        }
        out.push_str("  </testcase>\n");
    }
    out.push_str("</testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str, verdicts: &[Verdict], latency: f64) -> CaseResult {
        let assertions: Vec<Outcome> = verdicts
            .iter()
            .map(|v| Outcome {
                kind: "contains".into(),
                verdict: v.clone(),
                score: Some(0.5),
                reason: "no <x> & \"y\"".into(),
            })
            .collect();
        let passed = verdicts.iter().all(|v| *v == Verdict::Pass);
        let output =
            Observed { latency_ms: latency, cost_usd: Some(0.01), status: 200, ..Observed::default() };
        CaseResult {
            id: id.into(),
            route: "r".into(),
            passed,
            passes: u32::from(passed),
            attempts: vec![Attempt { output, assertions, passed }],
        }
    }

    #[test]
    fn thresholds_hold_or_fail_by_name() {
        let cases = vec![case("a", &[Verdict::Pass], 100.0), case("b", &[Verdict::Fail], 300.0)];
        let s = summarize(&cases);
        assert_eq!((s.passed, s.failed, s.pass_rate, s.p95_latency_ms), (1, 1, 0.5, 300.0));
        assert!((s.total_cost_usd - 0.02).abs() < 1e-12);
        let t = Thresholds {
            pass_rate: Some(0.5),
            max_p95_latency_ms: Some(200.0),
            max_cost_usd: Some(1.0),
            min_mean_score: [("contains".to_owned(), 0.4)].into(),
        };
        let r = check_thresholds(&t, &s);
        let failed: Vec<&str> = r.iter().filter(|t| !t.passed).map(|t| t.name.as_str()).collect();
        assert_eq!(failed, ["max_p95_latency_ms"]);
        assert!(!check_thresholds(&Thresholds::default(), &s)[0].passed, "pass_rate defaults to 1.0");
    }

    #[test]
    fn junit_escapes_and_counts() {
        let cases =
            vec![case("a<&>", &[Verdict::Pass], 1.0), case("b", &[Verdict::Fail, Verdict::Error], 1.0)];
        let report = Report {
            suite_hash: String::new(),
            route: None,
            release: None,
            suite: "s\"1".into(),
            file: "f".into(),
            target: "in-process".into(),
            judge_prompt_version: "v".into(),
            started_at_ms: 0,
            duration_ms: 5.0,
            repeat: 1,
            interrupted: false,
            total_cases: 2,
            summary: summarize(&cases),
            thresholds: Vec::new(),
            cases,
        };
        let x = junit(&report);
        assert_eq!(x.matches("<testcase").count(), 2);
        assert_eq!(x.matches("<failure").count(), 1);
        assert_eq!(x.matches("<error").count(), 1);
        assert!(x.contains("name=\"a&lt;&amp;&gt;\"") && x.contains("s&quot;1"), "{x}");
        assert!(x.contains("no &lt;x&gt; &amp; &quot;y&quot;"));
        assert_eq!(xml_escape("a\u{1}b\nc"), "ab&#10;c");
        assert!(table(&report).contains("ERROR"));
    }
}
