//! The human review queue, shared by the request path, the admin API, the client endpoint and
//! the CLI: open an escalation (stored, counted, announced to its callback), claim, answer and
//! close it (each audited by the store in the same transaction as the change), keep the backlog
//! gauges current, and turn answered escalations into eval cases.
//!
//! Gauges: `gardefou_escalations_open` and `gardefou_escalation_oldest_open_age_seconds` are
//! recomputed from the store whenever this process opens, claims, answers, closes or lists
//! escalations. They are not recomputed when /metrics is scraped, so between changes the age
//! stands still, and a change made by another replica or the CLI shows here only at this
//! process's next queue change.
//!
//! Webhooks: an escalation may carry a `callback_url` (http or https). When it is opened and
//! when it is answered, a JSON notice is posted there from a task owned by the tracker, with a
//! 5 s timeout and no redirects; a notice that fails is counted in
//! `gardefou_webhook_failures_total` and logged, never retried.

use std::sync::OnceLock;
use std::time::Duration;

use gardefou_core::Error;
use gardefou_store::{Escalation, EscalationFilter, EscalationStatus, Store, StoreError};
use serde_json::{json, Value};
use tokio_util::task::TaskTracker;

use crate::auth::now_ms;
use crate::state::AppState;
use crate::telemetry::metrics::ReasonLabels;
use crate::telemetry::Metrics;

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REASON: usize = 128;
const MAX_ROUTE: usize = 256;
const MAX_URL: usize = 2048;
/// An answer is read by a person; 32 KiB is several pages.
const MAX_ANSWER: usize = 32 * 1024;

/// What the request path hands to a reviewer.
#[derive(Debug, Clone)]
pub struct NewEscalation {
    /// `guard:<name>` (a guard said `escalate`), `refusal` (the model refused) or `requested`
    /// (the caller asked).
    pub reason: String,
    pub route: String,
    pub team: Option<String>,
    pub product: Option<String>,
    /// The caller's virtual key: only that key may read the answer (`GET /v1/escalations/{id}`).
    /// Without one, anyone holding the id may.
    pub key_id: Option<String>,
    pub end_user: Option<String>,
    pub inference_id: Option<String>,
    /// The messages, already redacted: stored as given.
    pub conversation: Value,
    /// Where `escalation.opened` and `escalation.answered` notices are posted (http or https).
    pub callback_url: Option<String>,
}

/// Opens an escalation: stores it, counts it, refreshes the backlog gauges and announces it to
/// its callback without waiting for the callback. Returns the new id (a UUID v7).
pub async fn open(state: &AppState, e: NewEscalation) -> Result<String, Error> {
    Queue::of(state).open(e).await.map(|e| e.id)
}

/// The queue and what a change to it touches: the store, this process's metrics, and the
/// tracker owning the webhook tasks. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    store: Store,
    metrics: Metrics,
    tracker: TaskTracker,
}

impl Queue {
    /// The queue of a running gateway.
    pub fn of(state: &AppState) -> Queue {
        Queue::new(state.store().clone(), state.metrics().clone(), state.tracker().clone())
    }

    /// A queue on `store` (the CLI: its own metrics, and a tracker it waits on before exiting).
    pub fn new(store: Store, metrics: Metrics, tracker: TaskTracker) -> Queue {
        Queue { store, metrics, tracker }
    }

    /// See [`open`]; returns the stored escalation.
    pub async fn open(&self, e: NewEscalation) -> Result<Escalation, Error> {
        let reason = text(&e.reason, "reason", MAX_REASON)?;
        let route = text(&e.route, "route", MAX_ROUTE)?;
        let callback_url = e.callback_url.as_deref().map(callback).transpose()?;
        let now = now_ms();
        let stored = Escalation {
            id: uuid::Uuid::now_v7().to_string(),
            created_at_ms: now,
            updated_at_ms: now,
            status: EscalationStatus::Open,
            reason,
            route,
            team: e.team,
            product: e.product,
            key_id: e.key_id,
            end_user: e.end_user,
            inference_id: e.inference_id,
            conversation: e.conversation,
            claimed_by: None,
            claimed_at_ms: None,
            answer: None,
            answered_by: None,
            answered_at_ms: None,
            closed_at_ms: None,
            callback_url,
        };
        self.store.create_escalation(&stored).await.map_err(store_error)?;
        self.metrics
            .escalations_opened()
            .get_or_create(&ReasonLabels { reason: reason_label(&stored.reason) })
            .inc();
        tracing::info!(
            id = %stored.id,
            reason = %reason_label(&stored.reason),
            route = %stored.route,
            "escalation opened"
        );
        self.refresh_backlog().await;
        if let Some(url) = &stored.callback_url {
            self.notify(
                url,
                json!({
                    "event": "escalation.opened",
                    "id": stored.id,
                    "status": stored.status,
                    "reason": stored.reason,
                    "route": stored.route,
                    "created_at": stored.created_at_ms / 1000,
                }),
            );
        }
        Ok(stored)
    }

    /// An escalation by id, or 404.
    pub async fn load(&self, id: &str) -> Result<Escalation, Error> {
        self.store.get_escalation(id).await.map_err(store_error)?.ok_or_else(|| not_found(id))
    }

    /// Escalations matching `filter`, oldest first; refreshes the backlog gauges on the way.
    pub async fn list(&self, filter: &EscalationFilter) -> Result<Vec<Escalation>, Error> {
        let all = self.store.list_escalations(filter).await.map_err(store_error)?;
        self.refresh_backlog().await;
        Ok(all)
    }

    /// `actor` takes an open escalation. 400 when it is not open, 404 when unknown.
    pub async fn claim(&self, actor: &str, id: &str) -> Result<Escalation, Error> {
        let done = self.store.claim_escalation(id, actor, now_ms()).await.map_err(store_error)?;
        self.after_change(done, id, "claimed", "open").await
    }

    /// `actor` answers an open or claimed escalation; the answer is posted to its callback.
    /// 400 when the answer is empty or too long, or the escalation is answered or closed.
    pub async fn answer(&self, actor: &str, id: &str, answer: &str) -> Result<Escalation, Error> {
        let answer = answer.trim();
        if answer.is_empty() || answer.len() > MAX_ANSWER || answer.contains('\0') {
            return Err(Error::invalid_param(
                format!("`answer` must be 1 to {MAX_ANSWER} bytes of text"),
                "answer",
            ));
        }
        let done = self.store.answer_escalation(id, actor, answer, now_ms()).await.map_err(store_error)?;
        let e = self.after_change(done, id, "answered", "open or claimed").await?;
        if let Some(at) = e.answered_at_ms {
            let secs = (at - e.created_at_ms).max(0) as f64 / 1000.0;
            self.metrics.escalation_time_to_answer().observe(secs);
        }
        if let Some(url) = &e.callback_url {
            self.notify(
                url,
                json!({
                    "event": "escalation.answered",
                    "id": e.id,
                    "status": e.status,
                    "answer": e.answer,
                    "answered_at": e.answered_at_ms.map(|ms| ms / 1000),
                }),
            );
        }
        Ok(e)
    }

    /// `actor` closes an escalation that is not closed yet.
    pub async fn close(&self, actor: &str, id: &str) -> Result<Escalation, Error> {
        let done = self.store.close_escalation(id, actor, now_ms()).await.map_err(store_error)?;
        self.after_change(done, id, "closed", "not yet closed").await
    }

    /// The escalation after a change: refreshed gauges when it moved; 404 when unknown, 400
    /// naming its status when the change was refused.
    async fn after_change(
        &self,
        done: bool,
        id: &str,
        verb: &str,
        allowed: &str,
    ) -> Result<Escalation, Error> {
        let e = self.load(id).await?;
        if !done {
            return Err(Error::invalid_param(
                format!(
                    "escalation `{id}` is {}; only an escalation that is {allowed} can be {verb}",
                    e.status.as_str()
                ),
                "id",
            ));
        }
        tracing::info!(id = %id, status = e.status.as_str(), "escalation changed");
        self.refresh_backlog().await;
        Ok(e)
    }

    /// Recomputes `gardefou_escalations_open` and `gardefou_escalation_oldest_open_age_seconds`.
    pub async fn refresh_backlog(&self) {
        match self.store.escalation_backlog().await {
            Ok(b) => {
                self.metrics.escalations_open().set(b.waiting);
                let age = b.oldest_created_at_ms.map_or(0, |t| (now_ms() - t).max(0) / 1000);
                self.metrics.escalation_oldest_open_age().set(age);
            }
            Err(e) => tracing::warn!(kind = e.kind(), error = %e, "could not read the escalation backlog"),
        }
    }

    /// Posts `body` to `url` from a tracked task; failures are counted, never retried.
    fn notify(&self, url: &str, body: Value) {
        let (url, metrics) = (url.to_owned(), self.metrics.clone());
        self.tracker.spawn(async move {
            let sent = webhook_client().post(&url).json(&body).send().await;
            if !sent.as_ref().is_ok_and(|r| r.status().is_success()) {
                metrics.webhook_failures().inc();
                let event = body["event"].as_str().unwrap_or_default();
                let status = sent.as_ref().ok().map(|r| r.status().as_u16());
                tracing::warn!(event, ?status, "escalation webhook failed");
            }
        });
    }
}

/// The HTTP client of outgoing webhooks: short timeout, no redirects.
pub(crate) fn webhook_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default()
    })
}

/// What the caller who opened an escalation may see of it (`GET /v1/escalations/{id}`): never
/// the conversation or the reviewer. Times are unix seconds, as in OpenAI's objects.
pub fn client_view(e: &Escalation) -> Value {
    let mut v = json!({
        "id": e.id,
        "object": "escalation",
        "status": e.status,
        "created_at": e.created_at_ms / 1000,
        "answered_at": e.answered_at_ms.map(|ms| ms / 1000),
    });
    if let (Some(obj), Some(answer)) = (v.as_object_mut(), &e.answer) {
        obj.insert("answer".to_owned(), json!(answer));
    }
    v
}

/// An answered escalation as an eval case, one JSON object per case:
///
/// ```json
/// {"name": "<escalation id>",
///  "messages": [<the stored conversation>],
///  "expected": {"contains": "<the reviewer's answer>"},
///  "metadata": {"source": "escalation", "reason": "guard:pii", "route": "support",
///               "team": "search", "product": "helpdesk", "answered_by": "key:k…",
///               "answered_at_ms": 1735689600000}}
/// ```
///
/// `messages` is the conversation as stored (its `messages` member when it is an object
/// holding one). Without an answer, `expected` is null: such a case asserts nothing. The suite
/// format that will run these cases may refine `expected`; `name` stays the escalation id so a
/// case can be traced back.
pub fn export_case(e: &Escalation) -> Value {
    let messages = match &e.conversation {
        Value::Object(o) => o.get("messages").cloned().unwrap_or_else(|| e.conversation.clone()),
        other => other.clone(),
    };
    json!({
        "name": e.id,
        "messages": messages,
        "expected": e.answer.as_ref().map(|a| json!({"contains": a})),
        "metadata": {
            "source": "escalation",
            "reason": e.reason,
            "route": e.route,
            "team": e.team,
            "product": e.product,
            "answered_by": e.answered_by,
            "answered_at_ms": e.answered_at_ms,
        },
    })
}

/// The bounded metric label of a reason: `guard:<name>` (names come from the config),
/// `refusal`, `requested`, `cannot_answer`, or `other`.
pub fn reason_label(reason: &str) -> String {
    let (kind, rest) = reason.split_once(':').unwrap_or((reason, ""));
    match kind {
        "guard" => {
            let name: String = rest
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(64)
                .collect();
            if name.is_empty() {
                "guard".to_owned()
            } else {
                format!("guard:{name}")
            }
        }
        "refusal" | "requested" | "cannot_answer" => kind.to_owned(),
        _ => "other".to_owned(),
    }
}

/// Parses a `status` parameter.
pub fn parse_status(s: &str) -> Result<EscalationStatus, Error> {
    EscalationStatus::parse(s).ok_or_else(|| {
        Error::invalid_param(
            format!("`status` must be open, claimed, answered or closed, not `{s}`"),
            "status",
        )
    })
}

fn text(v: &str, param: &str, max: usize) -> Result<String, Error> {
    let v = v.trim();
    if v.is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(Error::invalid_param(
            format!("`{param}` must be 1 to {max} printable characters"),
            param,
        ));
    }
    Ok(v.to_owned())
}

fn callback(url: &str) -> Result<String, Error> {
    let bad = || Error::invalid_param("`callback_url` must be an http or https URL", "callback_url");
    if url.len() > MAX_URL {
        return Err(bad());
    }
    match reqwest::Url::parse(url.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u.to_string()),
        _ => Err(bad()),
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound { message: format!("no escalation `{id}`"), param: Some("id".to_owned()) }
}

fn store_error(e: StoreError) -> Error {
    tracing::error!(kind = e.kind(), error = %e, "escalation store operation failed");
    Error::Internal("the escalation store is unavailable".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_labels_are_bounded() {
        assert_eq!(reason_label("guard:pii"), "guard:pii");
        assert_eq!(reason_label("guard:"), "guard");
        assert_eq!(reason_label("refusal"), "refusal");
        assert_eq!(reason_label("requested:user-42 said so"), "requested");
        assert_eq!(reason_label("anything else"), "other");
        assert_eq!(reason_label(&format!("guard:{}", "x".repeat(500))).len(), "guard:".len() + 64);
    }

    #[test]
    fn callback_urls_must_be_http_or_https() {
        assert_eq!(callback("https://hooks.example/a?b=c").unwrap(), "https://hooks.example/a?b=c");
        for bad in ["file:///etc/passwd", "ftp://x/", "not a url", "http://"] {
            assert!(callback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_answered_escalation_becomes_an_eval_case() {
        let e = Escalation {
            id: "0190b000-0000-7000-8000-000000000001".into(),
            created_at_ms: 1_000,
            updated_at_ms: 3_000,
            status: EscalationStatus::Answered,
            reason: "refusal".into(),
            route: "support".into(),
            team: Some("search".into()),
            product: None,
            key_id: None,
            end_user: None,
            inference_id: None,
            conversation: json!({"messages": [{"role": "user", "content": "hi"}]}),
            claimed_by: None,
            claimed_at_ms: None,
            answer: Some("Hello!".into()),
            answered_by: Some("cli:ana".into()),
            answered_at_ms: Some(3_000),
            closed_at_ms: None,
            callback_url: None,
        };
        let case = export_case(&e);
        assert_eq!(case["name"], e.id);
        assert_eq!(case["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(case["expected"], json!({"contains": "Hello!"}));
        let view = client_view(&e);
        assert_eq!((view["status"].as_str(), view["answer"].as_str()), (Some("answered"), Some("Hello!")));
        assert!(view.get("conversation").is_none());
    }
}
