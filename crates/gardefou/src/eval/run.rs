//! Runs a suite against a gateway: every case (times `repeat`) sent as a real
//! `/v1/chat/completions` request with bounded concurrency, transport and upstream (502/503/504)
//! failures retried twice, assertions checked (the judge through the same gateway), and Ctrl-C
//! honoured by sending nothing new while what is in flight finishes.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gardefou_core::config::Price;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::assert::{self, Observed, Outcome, ToolCall};
use super::report::{self, Attempt, CaseResult, Report};
use super::suite::{Assertion, Case, Suite};

/// Retries of a request after a transport error or a 502/503/504.
pub const RETRIES: u32 = 2;
/// The judge's route when an assertion names none.
pub const DEFAULT_JUDGE_ROUTE: &str = "judge";

/// Scores two texts in `[−1, 1]`.
pub type Similarity = Arc<dyn Fn(&str, &str) -> Result<f64, String> + Send + Sync>;

/// Where and how to run.
pub struct Options {
    /// The gateway's base URL (`http://host:port`); unused with `router`.
    pub base: String,
    /// The gateway's own router, called in-process (no socket, no key: the requests carry the
    /// [`crate::server::Internal`] marker). Scheduled replays run this way.
    pub router: Option<axum::Router>,
    pub key: Option<String>,
    /// Overrides every case's route.
    pub route: Option<String>,
    pub concurrency: usize,
    pub repeat: u32,
    /// Model name → price, to cost answers (`x-gardefou-model` × usage); empty: costs unknown.
    pub prices: BTreeMap<String, Price>,
    pub similarity: Option<Similarity>,
    /// Named in the report: `in-process` or the URL.
    pub target: String,
    /// The config revision of the gateway the cases go to, when known.
    pub release: Option<String>,
}

struct Ctx {
    client: reqwest::Client,
    suite: Suite,
    opts: Options,
}

/// Runs `suite`; stops starting cases once `stop` is cancelled. `file` names the suite.
pub async fn run(suite: Suite, file: &str, opts: Options, stop: CancellationToken) -> Report {
    let started = Instant::now();
    let started_at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let repeat = opts.repeat.max(1);
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build().unwrap_or_default();
    let ctx = Arc::new(Ctx { client, suite, opts });
    let total = ctx.suite.cases.len() * repeat as usize;
    let progress = std::io::stderr().is_terminal();
    let mut tasks = tokio::task::JoinSet::new();
    let mut interrupted = false;
    'send: for index in 0..ctx.suite.cases.len() {
        for _ in 0..repeat {
            let permit = tokio::select! {
                biased;
                () = stop.cancelled() => { interrupted = true; break 'send; }
                p = permits.clone().acquire_owned() => p,
            };
            let Ok(permit) = permit else { break 'send };
            let ctx = ctx.clone();
            tasks.spawn(async move {
                let attempt = attempt(&ctx, &ctx.suite.cases[index]).await;
                drop(permit);
                (index, attempt)
            });
        }
    }
    let mut attempts: Vec<Vec<Attempt>> = vec![Vec::new(); ctx.suite.cases.len()];
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, a)) = joined {
            attempts[index].push(a);
        }
        done += 1;
        if progress {
            eprint!("\r{}: {done}/{total} requests done", ctx.suite.name);
        }
    }
    if progress {
        eprintln!();
    }
    interrupted |= stop.is_cancelled();
    let cases: Vec<CaseResult> = ctx
        .suite
        .cases
        .iter()
        .zip(attempts)
        .filter(|(_, a)| a.len() == repeat as usize)
        .map(|(case, attempts)| {
            let passes = attempts.iter().filter(|a| a.passed).count() as u32;
            CaseResult {
                id: case.id.get_ref().clone(),
                route: ctx.suite.route_of(case, ctx.opts.route.as_deref()).to_owned(),
                passed: passes == repeat,
                passes,
                attempts,
            }
        })
        .collect();
    let summary = report::summarize(&cases);
    Report {
        suite: ctx.suite.name.clone(),
        file: file.to_owned(),
        suite_hash: ctx.suite.hash.clone(),
        route: ctx.opts.route.clone(),
        release: ctx.opts.release.clone(),
        target: ctx.opts.target.clone(),
        judge_prompt_version: assert::JUDGE_PROMPT_VERSION.to_owned(),
        started_at_ms,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        repeat,
        interrupted,
        total_cases: ctx.suite.cases.len(),
        thresholds: report::check_thresholds(&ctx.suite.thresholds, &summary),
        summary,
        cases,
    }
}

/// One request of a case, checked.
async fn attempt(ctx: &Ctx, case: &Case) -> Attempt {
    let route = ctx.suite.route_of(case, ctx.opts.route.as_deref());
    let messages = ctx.suite.messages(case);
    let mut body = json!({ "model": route, "messages": messages });
    if let (Some(params), Some(obj)) = (&case.params, body.as_object_mut()) {
        for (k, v) in params {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let tags = eval_tags(&ctx.suite.name, case.id.get_ref(), false);
    let output = send(ctx, &body, &tags).await;
    let similarity = |a: &str, b: &str| match &ctx.opts.similarity {
        Some(f) => f(a, b),
        None => Err("no embedding model loaded".to_owned()),
    };
    let mut assertions = Vec::with_capacity(case.assert.len());
    for a in &case.assert {
        let outcome = match a.judged() {
            Some(j) => {
                let question =
                    messages.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str());
                let route = j.route.unwrap_or(DEFAULT_JUDGE_ROUTE);
                judge(ctx, j.kind, route, &j.rubric, j.min, question, &output.text, case).await
            }
            None => assert::check(a, &output, &similarity),
        };
        assertions.push(outcome);
    }
    let ok_status = (200..300).contains(&output.status)
        || case.assert.iter().any(|a| matches!(a, Assertion::Refusal { expected: true }));
    let passed = ok_status && assertions.iter().all(Outcome::passed);
    Attempt { output, assertions, passed }
}

/// Asks the judge route to score `answer`; an unparsable verdict is asked for once more, then is
/// an error.
#[allow(clippy::too_many_arguments)]
async fn judge(
    ctx: &Ctx,
    kind: &'static str,
    route: &str,
    rubric: &str,
    min: f64,
    question: &str,
    answer: &str,
    case: &Case,
) -> Outcome {
    let (context, tags) = (&case.context, eval_tags(&ctx.suite.name, case.id.get_ref(), true));
    let messages: Vec<Value> = assert::judge_messages(rubric, question, answer, context)
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    let body = json!({ "model": route, "messages": messages, "temperature": 0, "response_format": assert::judge_response_format() });
    let mut last = String::new();
    for _ in 0..2 {
        let out = send(ctx, &body, &tags).await;
        if !(200..300).contains(&out.status) {
            let why = out.error.unwrap_or_else(|| format!("HTTP {}", out.status));
            return Outcome::error(kind, format!("the judge route `{route}` failed: {why}"));
        }
        if let Some((score, reasoning)) = assert::parse_judge(&out.text) {
            let reason = format!("score {score:.2} (min {min}): {reasoning}");
            return Outcome::new(kind, score >= min, Some(score), reason);
        }
        last = out.text;
    }
    Outcome::error(kind, format!("unparsable judge output: {}", assert::excerpt(&last)))
}

/// The `x-gardefou-tags` of an eval request: `eval_suite`, `eval_case` and, on judge calls,
/// `eval_judge=true`, so eval traffic can be told apart from production in logs and usage
/// (`gardefou usage --by tag:eval_suite`). Values lose the tag syntax's `,` and `=`.
fn eval_tags(suite: &str, case: &str, judge: bool) -> String {
    let clean =
        |v: &str| v.chars().map(|c| if c == ',' || c == '=' { '_' } else { c }).take(200).collect::<String>();
    let mut tags = format!("eval_suite={},eval_case={}", clean(suite), clean(case));
    if judge {
        tags.push_str(",eval_judge=true");
    }
    tags
}

/// Sends a chat request, retrying transport errors and 502/503/504; the latency is the last try's.
async fn send(ctx: &Ctx, body: &Value, tags: &str) -> Observed {
    let mut tries = 0;
    loop {
        let start = Instant::now();
        let result = match &ctx.opts.router {
            Some(router) => crate::server::call_internal(router, "/v1/chat/completions", body, tags).await,
            None => send_http(ctx, body, tags).await,
        };
        let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        let retryable = match &result {
            Err(_) => true,
            Ok(a) => matches!(a.status, 502..=504),
        };
        if retryable && tries < RETRIES {
            tries += 1;
            tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
            continue;
        }
        return match result {
            Err(e) => {
                Observed { latency_ms, error: Some(format!("request failed: {e}")), ..Observed::default() }
            }
            Ok(a) => {
                let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
                observe(&v, a.status, latency_ms, a.inference_id, a.model, &ctx.opts.prices)
            }
        };
    }
}

/// One HTTP request: (status, inference id, answering model, body) or why it failed.
async fn send_http(ctx: &Ctx, body: &Value, tags: &str) -> Result<crate::server::Answer, String> {
    let url = format!("{}/v1/chat/completions", ctx.opts.base.trim_end_matches('/'));
    let mut req = ctx.client.post(&url).header("x-gardefou-tags", tags).json(body);
    if let Some(key) = &ctx.opts.key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (inference_id, model) = (header(crate::server::INFERENCE_ID), header("x-gardefou-model"));
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok(crate::server::Answer { status, inference_id, model, body })
}

/// Reads an OpenAI chat response (or error) into what the assertions look at.
fn observe(
    v: &Value,
    status: u16,
    latency_ms: f64,
    inference_id: Option<String>,
    model: Option<String>,
    prices: &BTreeMap<String, Price>,
) -> Observed {
    let message = &v["choices"][0]["message"];
    let tool_calls = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    name: c["function"]["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: c["function"]["arguments"]
                        .as_str()
                        .and_then(|a| serde_json::from_str(a).ok())
                        .unwrap_or(Value::Null),
                })
                .collect()
        })
        .unwrap_or_default();
    let usage = &v["usage"];
    let cost_usd = model.as_deref().and_then(|m| prices.get(m)).and_then(|p| {
        let input = usage["prompt_tokens"].as_f64()?;
        let output = usage["completion_tokens"].as_f64()?;
        let cached = usage["prompt_tokens_details"]["cached_tokens"].as_f64().unwrap_or(0.0);
        Some(((input - cached) * p.input + cached * p.cached_input + output * p.output) / 1e6)
    });
    let error = (!(200..300).contains(&status)).then(|| {
        v["error"]["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {status}"), |m| format!("HTTP {status}: {m}"))
    });
    Observed {
        text: message["content"].as_str().unwrap_or_default().to_owned(),
        tool_calls,
        latency_ms,
        cost_usd,
        inference_id,
        model,
        status,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_tool_calls_and_cost() {
        let v = json!({"choices": [{"message": {"content": "hi", "tool_calls": [
            {"function": {"name": "f", "arguments": "{\"a\": 1}"}}]}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 500}});
        let price = Price {
            input: 1.0,
            cached_input: 0.5,
            cache_write: 1.0,
            output: 2.0,
            batch_input: None,
            batch_output: None,
        };
        let prices = [("m".to_owned(), price)].into();
        let o = observe(&v, 200, 5.0, Some("id".into()), Some("m".into()), &prices);
        assert_eq!(o.text, "hi");
        assert_eq!(o.tool_calls, [ToolCall { name: "f".into(), arguments: json!({"a": 1}) }]);
        assert!((o.cost_usd.unwrap() - 0.002).abs() < 1e-12);
        let e = observe(&json!({"error": {"message": "blocked"}}), 403, 1.0, None, None, &prices);
        assert_eq!((e.error.as_deref(), e.cost_usd), (Some("HTTP 403: blocked"), None));
    }
}
