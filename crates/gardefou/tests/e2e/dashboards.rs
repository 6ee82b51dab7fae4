//! The Grafana dashboard (`deploy/grafana/gardefou.json`) and the Prometheus alert rules
//! (`deploy/prometheus/alerts.yml`) checked against what a running gateway really exports: every
//! `gardefou_…` metric and every label their queries use must exist in a scrape of `/metrics`, so
//! renaming a metric or a label without updating them fails here.
//!
//! Format constraint on `alerts.yml`: no YAML parser is pulled in for one file, so it is read with a
//! line scan. Each rule starts with `- alert: Name`; its `expr:` is a single-line plain scalar (no
//! `|` / `>` block, no quotes around it, no `: ` or ` #` inside); `for:`, `severity:`, `summary:`
//! and `description:` each sit on their own line.
//!
//! The PromQL is read by a small reader (`promql`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::harness::*;

mod promql;

use self::promql::analyze;

/// Labels Prometheus adds at scrape time: usable on every series, absent from the exposition.
const SCRAPE_LABELS: &[&str] = &["job", "instance"];
/// The one metric not exported by gardefou that the files may use.
const FOREIGN_METRICS: &[&str] = &["up"];

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The dashboard

fn dashboard() -> Value {
    serde_json::from_str(&repo_file("deploy/grafana/gardefou.json")).expect("the dashboard is JSON")
}

/// Every panel, rows included, with the panels nested in collapsed rows.
fn all_panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested);
        }
    }
    out
}

/// `(where, expr)` of a panel target.
type Located = (String, String);
/// `(where, selector, label)` of a `label_values(selector, label)` template variable.
type LabelValues = (String, String, String);

/// Every panel target's expr, and every `label_values` variable query.
fn dashboard_exprs(dash: &Value) -> (Vec<Located>, Vec<LabelValues>) {
    let mut exprs = Vec::new();
    for p in all_panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                exprs.push((format!("panel {} target {}", p["title"], t["refId"]), e.to_owned()));
            }
        }
    }
    let mut label_values = Vec::new();
    for v in dash["templating"]["list"].as_array().expect("templating.list") {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().or_else(|| v["query"].as_str()).expect("variable query");
        let inner = q
            .trim()
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {}: expected label_values(…), got {q}", v["name"]));
        let (selector, label) = inner.rsplit_once(',').expect("label_values(selector, label)");
        label_values.push((
            format!("variable {}", v["name"]),
            selector.trim().to_owned(),
            label.trim().to_owned(),
        ));
    }
    (exprs, label_values)
}

#[test]
fn dashboard_json_is_an_importable_grafana_dashboard() {
    let dash = dashboard();
    let schema = dash["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    assert!(dash["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dash["uid"].as_str().is_some_and(|t| !t.is_empty()));

    let vars = dash["templating"]["list"].as_array().expect("templating.list");
    let var = |name: &str| {
        vars.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("template variable {name}"))
    };
    let ds = var("datasource");
    assert_eq!((&ds["type"], &ds["query"]), (&json!("datasource"), &json!("prometheus")));
    for name in ["route", "model", "provider"] {
        let v = var(name);
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], "${datasource}", "{name}");
        let q = v["query"]["query"].as_str().or_else(|| v["query"].as_str()).unwrap();
        assert!(q.starts_with("label_values(") && q.ends_with(&format!(", {name})")), "{name}: {q}");
    }

    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    let mut graphs = 0;
    for p in all_panels(&dash) {
        let title = p["title"].as_str().unwrap_or_default();
        let id = p["id"].as_u64().unwrap_or_else(|| panic!("panel {title:?} has no id"));
        if !ids.insert(id) {
            problems.push(format!("panel id {id} ({title:?}) is not unique"));
        }
        if title.trim().is_empty() {
            problems.push(format!("panel {id} has no title"));
        }
        if p["gridPos"]["w"].as_u64().is_none() || p["gridPos"]["h"].as_u64().is_none() {
            problems.push(format!("panel {title:?} has no gridPos"));
        }
        if p["type"] == "row" {
            continue;
        }
        graphs += 1;
        if p["datasource"]["uid"] != "${datasource}" || p["datasource"]["type"] != "prometheus" {
            problems.push(format!("panel {title:?}: datasource is not the ${{datasource}} variable"));
        }
        let targets = p["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel {title:?} has no target"));
        }
        let mut refs = BTreeSet::new();
        for t in targets {
            if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                problems.push(format!("panel {title:?}: a target has no expr"));
            }
            if !refs.insert(t["refId"].to_string()) {
                problems.push(format!("panel {title:?}: refId {} twice", t["refId"]));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(graphs >= 20, "{graphs} panels");
    let text = dash.to_string();
    assert!(
        text.contains("usage API"),
        "a panel says where per-team/product usage comes from (the metrics have no such labels)"
    );
    let (exprs, _) = dashboard_exprs(&dash);
    for (at, e) in &exprs {
        let labels = analyze(e).map(|a| a.groupings.into_iter().flat_map(|g| g.labels).collect::<Vec<_>>());
        assert!(
            !labels.unwrap_or_default().iter().any(|l| l == "team" || l == "product"),
            "{at}: the metrics have no team/product labels"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The alert rules

#[derive(Debug, Default)]
struct Rule {
    alert: String,
    line: usize,
    expr: Option<String>,
    for_: Option<String>,
    severity: Option<String>,
    summary: Option<String>,
    description: Option<String>,
}

/// The rules of `alerts.yml`, read with a line scan (see the module doc for the format).
fn alert_rules() -> Vec<Rule> {
    let text = repo_file("deploy/prometheus/alerts.yml");
    assert!(text.lines().any(|l| l.trim_end() == "groups:"), "a `groups:` list");
    let mut rules: Vec<Rule> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix("- alert:") {
            rules.push(Rule { alert: name.trim().to_owned(), line: n + 1, ..Rule::default() });
            continue;
        }
        let Some(rule) = rules.last_mut() else { continue };
        let value = |key: &str| line.strip_prefix(key).map(|v| v.trim().to_owned());
        if let Some(v) = value("expr:") {
            rule.expr = Some(v);
        } else if let Some(v) = value("for:") {
            rule.for_ = Some(v);
        } else if let Some(v) = value("severity:") {
            rule.severity = Some(v);
        } else if let Some(v) = value("summary:") {
            rule.summary = Some(v);
        } else if let Some(v) = value("description:") {
            rule.description = Some(v);
        }
    }
    rules
}

#[test]
fn alert_rules_are_complete_and_follow_the_line_format() {
    let rules = alert_rules();
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for r in &rules {
        let at = format!("alert {} (line {})", r.alert, r.line);
        if r.alert.is_empty() || !names.insert(r.alert.clone()) {
            problems.push(format!("{at}: empty or duplicate name"));
        }
        match &r.expr {
            None => problems.push(format!("{at}: no expr")),
            Some(e) => {
                let bad_start = e.is_empty() || e.starts_with(['|', '>', '"', '\'', '{', '[', '&', '*', '!']);
                if bad_start || e.contains(": ") || e.contains(" #") {
                    problems.push(format!("{at}: expr must be a one-line plain scalar: {e}"));
                }
                if let Err(err) = analyze(e) {
                    problems.push(format!("{at}: {err}"));
                }
            }
        }
        let duration = r.for_.as_deref().unwrap_or_default();
        let (num, unit) = duration.split_at(duration.len().saturating_sub(1));
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || !["s", "m", "h", "d"].contains(&unit)
        {
            problems.push(format!("{at}: `for` is {duration:?}"));
        }
        if !matches!(r.severity.as_deref(), Some("critical" | "warning" | "info")) {
            problems.push(format!("{at}: severity {:?}", r.severity));
        }
        for (what, v) in [("summary", &r.summary), ("description", &r.description)] {
            if v.as_deref().is_none_or(|s| s.len() <= 2) {
                problems.push(format!("{at}: no annotations.{what}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(rules.len() >= 10, "{} rules", rules.len());
    let text = repo_file("deploy/prometheus/alerts.yml");
    assert_eq!(
        text.lines().filter(|l| l.trim_start().starts_with("expr:")).count(),
        rules.len(),
        "one expr per rule, each on its own line"
    );
}

// ---------------------------------------------------------------------------------------------
// A scrape of /metrics

struct Scrape {
    /// `# TYPE` family name → type.
    families: BTreeMap<String, String>,
    /// Sample name (with its `_total` / `_bucket` / … suffix) → label → values seen.
    samples: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((k, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => {
                    end = k + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    out
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut families = BTreeMap::new();
        let mut samples: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let (name, kind) = t.split_once(' ').expect("# TYPE name type");
                families.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let name_end = line.find(['{', ' ']).expect("a sample line");
                let name = &line[..name_end];
                let entry = samples.entry(name.to_owned()).or_default();
                if line[name_end..].starts_with('{') {
                    let close = line.rfind('}').expect("closing brace");
                    for (k, v) in parse_labels(&line[name_end + 1..close]) {
                        entry.entry(k).or_default().insert(v);
                    }
                }
            }
        }
        Scrape { families, samples }
    }

    /// The sample names a family is exposed under, by its type (OpenMetrics suffixes).
    fn sample_names(&self, family: &str) -> Vec<String> {
        let suffixes: &[&str] = match self.families.get(family).map(String::as_str) {
            Some("counter") => &["_total"],
            Some("histogram") => &["_bucket", "_count", "_sum"],
            Some(_) => &[""],
            None => &[],
        };
        suffixes.iter().map(|s| format!("{family}{s}")).collect()
    }

    fn family_of(&self, sample: &str) -> Option<String> {
        self.families.keys().find(|f| self.sample_names(f).iter().any(|s| s == sample)).cloned()
    }

    fn has_label(&self, sample: &str, label: &str) -> bool {
        SCRAPE_LABELS.contains(&label) || self.samples.get(sample).is_some_and(|l| l.contains_key(label))
    }

    fn has_value(&self, sample: &str, label: &str, value: &str) -> bool {
        self.samples.get(sample).and_then(|l| l.get(label)).is_some_and(|v| v.contains(value))
    }
}

/// Everything wrong with `expr` against `scrape`; the gardefou families it reads go to `used`.
fn check_expr(scrape: &Scrape, at: &str, expr: &str, used: &mut BTreeSet<String>) -> Vec<String> {
    let a = match analyze(expr) {
        Ok(a) => a,
        Err(e) => return vec![format!("{at}: {e}")],
    };
    let mut problems = Vec::new();
    for s in &a.selectors {
        if !s.name.starts_with("gardefou_") {
            if !FOREIGN_METRICS.contains(&s.name.as_str()) {
                problems.push(format!("{at}: `{}` is not a gardefou metric", s.name));
            }
            continue;
        }
        if !scrape.samples.contains_key(&s.name) {
            let hint = if scrape.families.contains_key(&s.name) {
                format!(" (exposed as {:?})", scrape.sample_names(&s.name))
            } else {
                String::new()
            };
            problems.push(format!("{at}: `{}` is not in the scrape{hint}", s.name));
            continue;
        }
        used.extend(scrape.family_of(&s.name));
        for m in &s.matchers {
            if !scrape.has_label(&s.name, &m.label) {
                problems.push(format!("{at}: `{}` has no label `{}`", s.name, m.label));
                continue;
            }
            if m.value.contains('$') || SCRAPE_LABELS.contains(&m.label.as_str()) {
                continue; // a Grafana variable, or a value only Prometheus knows
            }
            // Literal values must be values the gateway really produces (regex alternatives too).
            let values: Vec<&str> = if m.op.ends_with('~') {
                m.value
                    .split('|')
                    .filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                    .collect()
            } else {
                vec![m.value.as_str()]
            };
            for v in values {
                if !scrape.has_value(&s.name, &m.label, v) {
                    problems.push(format!("{at}: `{}` never has {}={v:?}", s.name, m.label));
                }
            }
        }
    }
    for g in &a.groupings {
        for s in a.scoped(g) {
            if !s.name.starts_with("gardefou_") || !scrape.samples.contains_key(&s.name) {
                continue;
            }
            for l in &g.labels {
                if !scrape.has_label(&s.name, l) {
                    problems.push(format!("{at}: {} ({l}) but `{}` has no label `{l}`", g.keyword, s.name));
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Traffic that makes every metric family appear, then the checks

const CONFIG: &str = r#"
[providers.demo]
kind = "mock"
[models.polite]
provider = "demo"
price = { input = 1.0, output = 2.0 }
[models.unpriced]
provider = "demo"
[models.down]
provider = "demo"
mock = { mode = "fail", status = 503 }
[models.broken]
provider = "demo"
mock = { mode = "fail", status = 500 }
[models.busy]
provider = "demo"
mock = { mode = "fail", status = 429, retry_after = "1s" }
[models.picky]
provider = "demo"
mock = { mode = "fail", status = 422 }
[routes.chat]
targets = [{ model = "polite" }]
[routes.free]
targets = [{ model = "unpriced" }]
[routes.resilient]
targets = [{ model = "down" }]
fallbacks = ["polite"]
retry = { attempts = 2, backoff = "1ms" }
breaker = { failures = 1, cooldown = "1h" }
[routes.broken]
targets = [{ model = "broken" }]
retry = { attempts = 1 }
[routes.limited]
targets = [{ model = "busy" }]
retry = { attempts = 1 }
[routes.strict]
targets = [{ model = "picky" }]
[routes.metered]
targets = [{ model = "polite" }]
limits = { rpm = 1 }
[models.dear]
provider = "demo"
price = { input = 0.0, output = 10000.0 }
mock = { mode = "fixed", text = "word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word" }
[routes.dear]
targets = [{ model = "dear" }]
[routes.dear2]
targets = [{ model = "dear" }]
[budgets.dear-cap]
scope = "route:dear"
limit_usd = 1.0
window = "day"
action = "downgrade"
downgrade_to = "chat"
[guards.dash]
pii = "redact"
secrets = "block"
[guards.esc]
pii = "escalate"
[routes.guarded]
targets = [{ model = "polite" }]
guards = { input = "dash", output = "dash" }
[routes.escalating]
targets = [{ model = "polite" }]
guards = { input = "esc" }
[models.verdict]
provider = "demo"
mock = { mode = "fixed", text = "{\"score\": 0.9, \"reasoning\": \"fine\"}" }
[routes.judge]
targets = [{ model = "verdict" }]
[models.harsh-verdict]
provider = "demo"
mock = { mode = "fixed", text = "{\"score\": 0.1, \"reasoning\": \"off-topic\"}" }
[models.rambling-verdict]
provider = "demo"
mock = { mode = "fixed", text = "What a lovely answer!" }
[routes.harsh-judge]
targets = [{ model = "harsh-verdict" }]
[routes.rambling-judge]
targets = [{ model = "rambling-verdict" }]
[routes.judged]
targets = [{ model = "polite" }]
quality = { sample = 1.0, checks = ["relevance", "groundedness"] }
[routes.judged-harshly]
targets = [{ model = "polite" }]
quality = { sample = 1.0, judge = "harsh-judge", checks = ["groundedness"] }
[routes.judged-badly]
targets = [{ model = "polite" }]
quality = { sample = 1.0, judge = "rambling-judge", checks = ["relevance"] }
[budgets.dear2-daily]
scope = "route:dear2"
limit_usd = 0.5
window = "day"
alert_at = [0.5]
webhook = "http://127.0.0.1:1/unreachable"
"#;

fn rewrite_config(gw: &Gateway, text: &str) {
    let db = gw.dir.join("gardefou.db");
    let text =
        format!("{text}\n[store]\ndatabase_url = \"sqlite://{}\"\nflush_interval = \"20ms\"\n", db.display());
    std::fs::write(&gw.config_path, text).unwrap();
}

/// A suite the traffic config replays every second on `chat` (scheduled eval metrics).
fn scheduled_suite() -> PathBuf {
    let path = std::env::temp_dir().join(format!("gardefou-dashboards-suite-{}.toml", std::process::id()));
    let suite = "name = \"smoke\"\n[defaults]\nroute = \"chat\"\n[[cases]]\nid = \"hi\"\nprompt = \"hi\"\nassert = [{ type = \"latency_ms\", max = 60000 }]\n";
    std::fs::write(&path, suite).unwrap();
    path
}

/// The traffic config, with a provider in front of `cache`.
fn config_with(cache: &Upstream) -> String {
    format!(
        "{CONFIG}\n[[routes.chat.evals]]\nsuite = \"{}\"\nschedule = \"* * * * * *\"\n[providers.cache]\nkind = \"openai_compatible\"\nbase_url = \"{}\"\n[models.cached]\nprovider = \"cache\"\nprice = {{ input = 1.0, cached_input = 0.1, output = 2.0 }}\n[routes.cached]\ntargets = [{{ model = \"cached\" }}]\n",
        scheduled_suite().display(),
        cache.base
    )
}

async fn drive_traffic(gw: &Gateway, cache: &Upstream) -> u64 {
    let hello =
        |route: &str| json!({"model": route, "messages": [{"role": "user", "content": "hello there"}]});
    let mut sent = 0;
    let mut expect = |status: u16, got: reqwest::StatusCode, what: &str| {
        assert_eq!(got.as_u16(), status, "{what}");
        sent += 1;
    };
    for _ in 0..2 {
        expect(200, gw.chat(hello("chat")).await.status(), "a polite answer");
    }
    // A score on the last answer (an anonymous caller scores an anonymous inference).
    let resp = gw.chat(hello("chat")).await;
    expect(200, resp.status(), "an answer to score");
    let id = resp.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned();
    let scored = gw.post("/v1/feedback", json!({"inference_id": id, "name": "helpful", "value": true})).await;
    assert_eq!(scored.status(), 201, "feedback");
    let mut stream = hello("chat");
    stream["stream"] = json!(true);
    stream["stream_options"] = json!({"include_usage": true});
    let resp = gw.chat(stream).await;
    expect(200, resp.status(), "a streamed answer");
    assert!(resp.text().await.unwrap().contains("[DONE]"));
    expect(200, gw.chat(hello("free")).await.status(), "an answer without a price");
    expect(200, gw.chat(hello("resilient")).await.status(), "a failure, an open circuit, a fallback");
    expect(200, gw.chat(hello("resilient")).await.status(), "the open circuit skipped");
    expect(502, gw.chat(hello("broken")).await.status(), "every target failed");
    expect(429, gw.chat(hello("limited")).await.status(), "a rate limit");
    expect(422, gw.chat(hello("strict")).await.status(), "the provider rejects the request");
    expect(404, gw.chat(hello("no-such-route")).await.status(), "no such route");
    expect(200, gw.chat(hello("metered")).await.status(), "within a rate limit");
    expect(429, gw.chat(hello("metered")).await.status(), "over a rate limit");
    // Each call to `dear` costs exactly its worst case: max_tokens × $0.01.
    let mut dear = hello("dear");
    dear["max_tokens"] = json!(60);
    expect(200, gw.chat(dear.clone()).await.status(), "within `dear-cap`");
    expect(200, gw.chat(dear).await.status(), "`dear-cap` spent: downgraded to `chat`");
    let mut dear2 = hello("dear2");
    dear2["max_tokens"] = json!(30);
    expect(200, gw.chat(dear2.clone()).await.status(), "half of `dear2-daily`: an alert, a failed webhook");
    expect(429, gw.chat(dear2).await.status(), "`dear2-daily` spent: rejected");
    let say =
        |route: &str, text: &str| json!({"model": route, "messages": [{"role": "user", "content": text}]});
    expect(200, gw.chat(say("guarded", "write to ana@example.com")).await.status(), "a redaction");
    let key = "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3iJk6l";
    expect(400, gw.chat(say("guarded", key)).await.status(), "a guard block");
    expect(200, gw.chat(say("escalating", "call me at ana@example.com")).await.status(), "an escalation");
    expect(200, gw.chat(hello("cached")).await.status(), "a prompt-cache hit");
    // Online quality: a pass (with context: groundedness too), a fail, a judge error.
    for route in ["judged", "judged-harshly", "judged-badly"] {
        let mut body = hello(route);
        body["context"] = json!(["Greetings are answered politely."]);
        expect(200, gw.chat(body).await.status(), "an answer sampled for online quality");
    }

    let config = config_with(cache);
    rewrite_config(gw, &config);
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200, "an applied reload");
    rewrite_config(gw, &format!("{config}\n[routes.bad]\ntargets = [{{ model = \"missing\" }}]\n"));
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 400, "a rejected reload");
    sent
}

#[tokio::test]
async fn dashboard_and_alerts_only_use_metrics_and_labels_the_gateway_exports() {
    // An upstream whose answers report prompt-cache hits (cached input tokens).
    let cache = Upstream::start(json_reply(
        200,
        json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "cached"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 2, "total_tokens": 1002,
                "prompt_tokens_details": {"cached_tokens": 800}}}),
    ))
    .await;
    let gw = Gateway::start(&config_with(&cache)).await;
    let sent = drive_traffic(&gw, &cache).await;
    gw.records(sent).await;
    // The quality judge and the scheduled suite work in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let text = loop {
        let text = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
        let judged = ["result=\"pass\"", "result=\"fail\"", "result=\"error\""]
            .iter()
            .all(|r| text.lines().any(|l| l.starts_with("gardefou_quality_checks_total{") && l.contains(r)));
        if judged && text.contains("gardefou_eval_runs_total{") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no quality check or scheduled run after 15 s:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    gw.stop().await;
    let scrape = Scrape::parse(&text);

    // The traffic made every family appear (so that the label checks below mean something).
    assert!(scrape.families.len() >= 14, "{text}");
    let silent: Vec<&String> = scrape
        .families
        .keys()
        .filter(|f| !scrape.sample_names(f).iter().any(|s| scrape.samples.contains_key(s)))
        .collect();
    assert!(silent.is_empty(), "families without samples: {silent:?}\n{text}");
    assert!(scrape.has_value("gardefou_circuit_open", "model", "down"), "{text}");
    assert!(text.contains("gardefou_config_last_reload_success 0"), "{text}");

    let mut problems = Vec::new();
    let mut dashboard_uses = BTreeSet::new();
    let mut alerts_use = BTreeSet::new();

    let dash = dashboard();
    let (exprs, label_values) = dashboard_exprs(&dash);
    for (at, expr) in &exprs {
        problems.extend(check_expr(&scrape, at, expr, &mut dashboard_uses));
    }
    for (at, selector, label) in &label_values {
        problems.extend(check_expr(&scrape, at, selector, &mut dashboard_uses));
        for s in analyze(selector).map(|a| a.selectors).unwrap_or_default() {
            if scrape.samples.contains_key(&s.name) && !scrape.has_label(&s.name, label) {
                problems
                    .push(format!("{at}: label_values reads `{label}`, which `{}` does not have", s.name));
            }
        }
    }
    for r in alert_rules() {
        let at = format!("alert {}", r.alert);
        problems.extend(check_expr(&scrape, &at, r.expr.as_deref().unwrap_or_default(), &mut alerts_use));
    }
    assert!(problems.is_empty(), "{}\n\nscrape:\n{text}", problems.join("\n"));

    // The dashboard shows every family the gateway exports; the alerts watch the important ones.
    let unused: Vec<&String> = scrape.families.keys().filter(|f| !dashboard_uses.contains(*f)).collect();
    assert!(unused.is_empty(), "families on no dashboard panel: {unused:?}");
    for f in [
        "gardefou_requests",
        "gardefou_provider_attempts",
        "gardefou_circuit_open",
        "gardefou_request_duration_seconds",
        "gardefou_time_to_first_token_seconds",
        "gardefou_config_last_reload_success",
        "gardefou_inference_records_dropped",
        "gardefou_inference_record_queue_length",
        "gardefou_cost_usd",
    ] {
        assert!(alerts_use.contains(f), "no alert on {f}: {alerts_use:?}");
    }
}
