//! Handing a conversation to a human: when a guard says `escalate`, when the model refuses or
//! matches one of the route's "I can't answer" patterns, or when the caller asks
//! (`x-gardefou-escalate: true`), the conversation (as redacted by the input guards) goes to the
//! review queue and the client gets the route's hand-off answer carrying the escalation id — in
//! the message text, in `x-gardefou-escalation`, and on the record's tags.

use gardefou_core::chat::{
    AssistantMessage, ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Delta, FinishReason, Role,
};
use gardefou_core::Error;

use super::record::{Inflight, Outcome};
use super::StartedStream;
use crate::control::escalations::{self, NewEscalation};
use crate::runtime::Route;

/// Opens an escalation for `req` and returns the hand-off answer.
pub async fn escalate(
    route: &Route,
    req: &ChatRequest,
    reason: &str,
    inflight: &mut Inflight,
) -> Result<(ChatResponse, Outcome), Error> {
    let (key_id, team, product, end_user) = inflight.attribution();
    let new = NewEscalation {
        reason: reason.to_owned(),
        route: route.config.name.clone(),
        team,
        product,
        key_id,
        end_user,
        inference_id: Some(inflight.id().to_owned()),
        conversation: serde_json::to_value(&req.messages).unwrap_or_default(),
        callback_url: route.config.escalation.callback_url.clone(),
    };
    let app = inflight.app().clone();
    let id = escalations::open(&app, new).await?;
    inflight.add_header("x-gardefou-escalation", id.clone());
    inflight.add_tag("gardefou_escalation", &id);
    let text = route.config.escalation.answer.replace("{id}", &id);
    let resp = ChatResponse {
        id: format!("chatcmpl-esc-{id}"),
        object: "chat.completion".to_owned(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: route.config.name.clone(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: Role::Assistant,
                content: Some(text),
                ..AssistantMessage::default()
            },
            finish_reason: Some(FinishReason::Stop),
            logprobs: None,
        }],
        usage: None,
        system_fingerprint: None,
        service_tier: None,
    };
    Ok((resp, Outcome { finish_reason: Some(FinishReason::Stop), ..Outcome::default() }))
}

/// Whether the answer calls for a human by the route's rules: the model refused, or its text
/// matches one of `escalation.patterns`.
pub fn answer_needs_human(route: &Route, resp: &ChatResponse) -> Option<String> {
    let rules = &route.config.escalation;
    for c in &resp.choices {
        if rules.on_refusal && c.message.refusal.is_some() {
            return Some("refusal".to_owned());
        }
        if let (Some(set), Some(text)) = (&rules.patterns, c.message.content.as_deref()) {
            if set.is_match(text) {
                return Some("cannot_answer".to_owned());
            }
        }
    }
    None
}

impl StartedStream {
    /// A stream that carries one whole answer (the hand-off), then ends.
    pub fn answered(resp: ChatResponse, route: &Route) -> Result<StartedStream, Error> {
        let target = route
            .targets
            .first()
            .or(route.fallbacks.first())
            .cloned()
            .ok_or_else(|| Error::Unavailable(format!("route `{}` has no target", route.config.name)))?;
        let text = resp.choices.first().and_then(|c| c.message.content.clone());
        let first = ChatChunk {
            id: resp.id,
            object: "chat.completion.chunk".to_owned(),
            created: resp.created,
            model: resp.model,
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta { role: Some(Role::Assistant), content: text, ..Delta::default() },
                finish_reason: Some(FinishReason::Stop),
                logprobs: None,
            }],
            usage: None,
            system_fingerprint: None,
            service_tier: None,
        };
        Ok(StartedStream {
            first,
            rest: Box::pin(futures_util::stream::empty()),
            target,
            dropped_params: Vec::new(),
            cost_cap: None,
            guard: None,
            canary: None,
        })
    }
}
