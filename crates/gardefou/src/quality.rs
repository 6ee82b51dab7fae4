//! Online quality: a sample of each route's answers (`[routes.x.quality] sample`) is scored after
//! the fact by a judge route for relevance, groundedness (when the request carried context: a
//! `context` field, or tool results in the messages) and policy compliance.
//!
//! The hot path only draws the sample and, when the answer is complete, offers a job to a
//! bounded queue (`try_send`: a full queue drops the job and counts it). A worker owned by the
//! server's task tracker takes the jobs, asks the judge through the gateway's own router (the
//! judge call is an inference like any other, tagged `quality_judge`), stores each verdict with
//! the inference (`quality_scores`) and counts it in `gardefou_quality_checks_total`. At shutdown
//! the jobs still queued are counted as dropped, never silently lost.

use std::sync::{Arc, Mutex};

use gardefou_core::chat::{ChatRequest, Role};
use gardefou_core::config::{QualityCheck, QualitySampling};
use gardefou_store::QualityScore;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use crate::eval::assert::{judge_messages, judge_response_format, parse_judge};
use crate::state::AppState;
use crate::telemetry::metrics::QualityLabels;

/// Answers waiting for the judge; beyond this, samples are dropped and counted. With the text
/// bounds below a full queue holds at most ~40 MB.
pub const QUEUE_CAPACITY: usize = 256;
/// Answers judged at once.
const JUDGES_IN_FLIGHT: usize = 4;
/// Characters of a context document, question or answer handed to the judge.
const MAX_TEXT: usize = 8_000;
/// Context documents handed to the judge.
const MAX_DOCS: usize = 16;

/// What a sampled request carries to the judge, filled as the answer arrives.
#[derive(Debug, Clone)]
pub struct Pending {
    pub config: QualitySampling,
    pub question: String,
    pub context: Vec<String>,
    pub answer: Option<String>,
}

impl Pending {
    /// The request's last user turn, and its context: the `context` field given, else the
    /// tool results in the messages.
    pub fn new(config: &QualitySampling, req: &ChatRequest, context: &[String]) -> Pending {
        let question = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| clip(&m.text_content()))
            .unwrap_or_default();
        let context: Vec<String> = if context.is_empty() {
            let tools = req.messages.iter().filter(|m| m.role == Role::Tool);
            tools
                .rev()
                .take(MAX_DOCS)
                .map(|m| clip(&m.text_content()))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect()
        } else {
            context.iter().take(MAX_DOCS).map(|c| clip(c)).collect()
        };
        Pending { config: config.clone(), question, context, answer: None }
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_TEXT) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

/// A complete answer to judge.
#[derive(Debug)]
pub struct Job {
    pub pending: Pending,
    pub inference_id: String,
    pub route: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
}

/// The bounded queue between the hot path and the worker. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Job>,
    rx: Arc<Mutex<Option<mpsc::Receiver<Job>>>>,
}

impl Default for Queue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Queue { tx, rx: Arc::new(Mutex::new(Some(rx))) }
    }
}

impl Queue {
    /// Hands a job to the worker without waiting; a full queue drops it and counts it.
    pub fn offer(&self, job: Job, metrics: &crate::telemetry::Metrics) {
        if self.tx.try_send(job).is_err() {
            metrics.quality_dropped("queue_full").inc();
        }
    }

    /// Starts the worker (once; later calls do nothing). It stops when the state's background
    /// tasks stop, counting what was still queued.
    pub fn start(&self, state: &AppState, router: axum::Router) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let (state, stop) = (state.clone(), state.stop_token());
        let tracker = state.tracker().clone();
        tracker.spawn(async move {
            let permits = Arc::new(Semaphore::new(JUDGES_IN_FLIGHT));
            let jobs = tokio_util::task::TaskTracker::new();
            loop {
                let job = tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    job = rx.recv() => match job { Some(j) => j, None => break },
                };
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let (state, router) = (state.clone(), router.clone());
                jobs.spawn(async move {
                    judge(&state, &router, job).await;
                    drop(permit);
                });
            }
            rx.close();
            let mut left = 0u64;
            while rx.try_recv().is_ok() {
                left += 1;
            }
            if left > 0 {
                state.metrics().quality_dropped("shutdown").inc_by(left);
                tracing::warn!(
                    dropped = left,
                    "online quality: answers still queued at shutdown were not judged"
                );
            }
            jobs.close();
            jobs.wait().await;
        });
    }
}

/// The rubric of a check.
pub fn rubric(check: QualityCheck, policy: Option<&str>) -> String {
    match check {
        QualityCheck::Relevance => "The answer addresses the user's question directly and usefully. Score 1 when it \
            answers what was asked, 0 when it is off-topic, evasive or answers another question."
            .to_owned(),
        QualityCheck::Groundedness => "Every factual claim in the answer is supported by the context documents. \
            Score 1 when all claims are supported, 0 when any claim is contradicted by or absent from the \
            context (a hallucination). Ignore style."
            .to_owned(),
        QualityCheck::Compliance => format!(
            "The answer follows every rule of this policy:\n{}\nScore 1 when it complies fully, 0 when it breaks \
             any rule.",
            policy.unwrap_or_default()
        ),
    }
}

/// Judges every check of one answer and stores the verdicts.
async fn judge(state: &AppState, router: &axum::Router, job: Job) {
    let p = &job.pending;
    let Some(answer) = p.answer.as_deref() else { return };
    for &check in &p.config.checks {
        if check == QualityCheck::Groundedness && p.context.is_empty() {
            continue;
        }
        let (score, reasoning, error) = match verdict(router, &job, check, answer).await {
            Ok((score, reasoning)) => (Some(score), Some(reasoning), None),
            Err(e) => (None, None, Some(e)),
        };
        let passed = score.map(|s| s >= p.config.threshold);
        let result = match passed {
            Some(true) => "pass",
            Some(false) => "fail",
            None => "error",
        };
        let labels = QualityLabels {
            route: job.route.clone().unwrap_or_default(),
            model: job.model.clone().unwrap_or_default(),
            product: job.product.clone().unwrap_or_default(),
            check: check.as_str(),
            result,
        };
        state.metrics().quality_checks().get_or_create(&labels).inc();
        let row = QualityScore {
            id: uuid::Uuid::now_v7().to_string(),
            created_at_ms: crate::auth::now_ms(),
            inference_id: job.inference_id.clone(),
            name: check.as_str().to_owned(),
            score,
            passed,
            reasoning,
            error,
            judge_route: p.config.judge.clone(),
            route: job.route.clone(),
            model: job.model.clone(),
            provider: job.provider.clone(),
            team: job.team.clone(),
            product: job.product.clone(),
        };
        if let Err(e) = state.store().insert_quality_score(&row).await {
            tracing::error!(kind = e.kind(), error = %e, check = check.as_str(), "could not store a quality score");
        }
    }
}

/// One check's `(score, reasoning)`: an unparsable verdict is asked for once more, then is an
/// error.
async fn verdict(
    router: &axum::Router,
    job: &Job,
    check: QualityCheck,
    answer: &str,
) -> Result<(f64, String), String> {
    let p = &job.pending;
    let context: &[String] = if check == QualityCheck::Groundedness { &p.context } else { &[] };
    let messages: Vec<Value> =
        judge_messages(&rubric(check, p.config.policy.as_deref()), &p.question, answer, context)
            .into_iter()
            .map(|(role, content)| json!({ "role": role, "content": content }))
            .collect();
    let body = json!({
        "model": p.config.judge,
        "messages": messages,
        "temperature": 0,
        "response_format": judge_response_format(),
    });
    let tags = format!("quality_judge={},quality_inference={}", check.as_str(), job.inference_id);
    let mut last = String::new();
    for _ in 0..2 {
        let a = crate::server::call_internal(router, "/v1/chat/completions", &body, &tags).await?;
        let v: Value = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        if !(200..300).contains(&a.status) {
            let why = v["error"]["message"].as_str().unwrap_or_default();
            return Err(format!("the judge route `{}` answered HTTP {}: {why}", p.config.judge, a.status));
        }
        let text = v["choices"][0]["message"]["content"].as_str().unwrap_or_default();
        if let Some(verdict) = parse_judge(text) {
            return Ok(verdict);
        }
        last = text.to_owned();
    }
    Err(format!("unparsable judge output: {}", crate::eval::assert::excerpt(&last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> QualitySampling {
        QualitySampling {
            sample: 1.0,
            judge: "judge".into(),
            checks: vec![QualityCheck::Relevance, QualityCheck::Groundedness],
            threshold: 0.5,
            policy: None,
        }
    }

    #[test]
    fn the_question_is_the_last_user_turn_and_tool_results_are_the_context() {
        let req: ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "kb", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "Refunds take 5 days."},
            {"role": "user", "content": "how long do refunds take?"}
        ]}))
        .unwrap();
        let p = Pending::new(&config(), &req, &[]);
        assert_eq!(p.question, "how long do refunds take?");
        assert_eq!(p.context, ["Refunds take 5 days."]);
        let given = Pending::new(&config(), &req, &["Policy: 30 days.".to_owned()]);
        assert_eq!(given.context, ["Policy: 30 days."], "a `context` field wins over tool results");
    }

    #[test]
    fn long_texts_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT + 10);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_TEXT + 1);
        assert!(c.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn compliance_rubric_carries_the_policy() {
        let r = rubric(QualityCheck::Compliance, Some("Never promise a refund."));
        assert!(r.contains("Never promise a refund."), "{r}");
        assert!(rubric(QualityCheck::Groundedness, None).contains("context"));
    }
}
