//! The limits step: reserve on the rate limits and budgets that apply (`limits::Limits::admit`),
//! keep the reservation and the client's `x-ratelimit-*` headers on the in-flight record, follow
//! a budget downgrade to its cheaper route, and lower `max_tokens` to the route's per-request
//! cost cap.

use std::borrow::Cow;
use std::sync::Arc;

use gardefou_core::chat::ChatRequest;
use gardefou_core::Error;

use super::record::Inflight;
use crate::runtime::{Route, Runtime};

/// The route to call, the request to send (with `max_tokens` lowered to the cost cap), and the
/// output budget of a capped stream (USD, USD per output token).
pub struct Admitted<'r> {
    pub route: Arc<Route>,
    pub req: Cow<'r, ChatRequest>,
    pub cost_cap: Option<(f64, f64)>,
}

pub async fn admit<'r>(
    rt: &Runtime,
    route: &Arc<Route>,
    req: &'r ChatRequest,
    inflight: &mut Inflight,
) -> Result<Admitted<'r>, Error> {
    let limits = inflight.limits().clone();
    let metrics = inflight.metrics().clone();
    let ask = inflight.ask(crate::limits::Input::Chat(req));
    let (route, admission) = limits.admit(rt, route.clone(), &ask, &metrics).await?;
    inflight.admitted(admission.reservation, admission.headers);
    if let Some((budget, to)) = &admission.downgraded {
        inflight.add_header("x-gardefou-downgraded", format!("{budget}: {to}"));
    }
    inflight.set_route(&route.config.name);
    let req = match admission.max_tokens {
        None => Cow::Borrowed(req),
        Some(m) => {
            let mut r = req.clone();
            if r.max_completion_tokens.is_some() {
                r.max_completion_tokens = Some(m);
            } else {
                r.max_tokens = Some(m);
            }
            Cow::Owned(r)
        }
    };
    Ok(Admitted { route, req, cost_cap: admission.cost_cap })
}

/// The limits step for embeddings: rate limits, and budgets reserving the input's cost.
pub async fn admit_embeddings(
    rt: &Runtime,
    route: &Arc<Route>,
    req: &gardefou_core::chat::EmbeddingsRequest,
    inflight: &mut Inflight,
) -> Result<Arc<Route>, Error> {
    let limits = inflight.limits().clone();
    let metrics = inflight.metrics().clone();
    let ask = inflight.ask(crate::limits::Input::Embeddings(req));
    let (route, admission) = limits.admit(rt, route.clone(), &ask, &metrics).await?;
    inflight.admitted(admission.reservation, admission.headers);
    if let Some((budget, to)) = &admission.downgraded {
        inflight.add_header("x-gardefou-downgraded", format!("{budget}: {to}"));
    }
    inflight.set_route(&route.config.name);
    Ok(route)
}
