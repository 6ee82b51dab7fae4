//! Extractors: what a handler needs, declared in its signature. The body is read against the
//! live body limit (413), within a read deadline (408), and parsed as JSON with a precise 400.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use gardefou_core::Error;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use std::sync::Arc;

use gardefou_store::{KeyKind, KeyRecord};

use crate::auth::KeyRefusal;
use crate::pipeline::record::Caller;
use crate::state::AppState;

/// A JSON body parsed into `T`, with OpenAI-shaped errors.
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let (limit, read_timeout) = {
            let rt = state.runtime();
            (rt.config.server.max_body_bytes, rt.config.server.body_read_timeout)
        };
        let body: Body = req.into_body();
        let bytes = match tokio::time::timeout(read_timeout, axum::body::to_bytes(body, limit)).await {
            Err(_) => return Err(Error::RequestTimeout.into()),
            Ok(Err(e)) => {
                let too_large =
                    std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                return Err(if too_large {
                    Error::PayloadTooLarge { limit }
                } else {
                    Error::invalid(format!("could not read the request body: {e}"))
                }
                .into());
            }
            Ok(Ok(b)) => b,
        };
        if let Err(e) = std::str::from_utf8(&bytes) {
            return Err(Error::invalid(format!("the request body is not valid UTF-8 ({e})")).into());
        }
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) => Ok(AppJson(v)),
            Err(e) => {
                let param = missing_field(&e.to_string());
                let message = if bytes.is_empty() {
                    "the request body is empty; send a JSON object".to_owned()
                } else {
                    format!("invalid request body: {e}")
                };
                Err(Error::InvalidRequest { message, param }.into())
            }
        }
    }
}

fn missing_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// The request id: the client's `x-request-id` (set by the request-id middleware when absent).
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let id = parts.headers.get(super::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Ok(RequestId(id.to_owned()))
    }
}

const MAX_TAGS: usize = 16;
const MAX_TAG_LEN: usize = 128;

/// The caller: its virtual key (`Authorization: Bearer gf_…` or `x-api-key: gf_…`) and its
/// attribution. A key's team and product win over the `x-gardefou-team` / `x-gardefou-product`
/// headers, which only attribute anonymous calls and keys without them; `x-gardefou-user` and
/// `x-gardefou-tags: k=v,k2=v2` add the end user and tags. 401 when `server.require_keys` is on
/// and no valid key came, or when a `gf_` key is wrong, revoked or expired.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = caller_key(parts, state)?;
        let h = |name: &str| -> Result<Option<String>, ApiError> {
            match parts.headers.get(name) {
                None => Ok(None),
                Some(v) => {
                    let s = v.to_str().map_err(|_| Error::invalid(format!("header {name} is not ASCII")))?;
                    let s = s.trim();
                    if s.len() > MAX_TAG_LEN {
                        return Err(
                            Error::invalid(format!("header {name} is longer than {MAX_TAG_LEN}")).into()
                        );
                    }
                    Ok((!s.is_empty()).then(|| s.to_owned()))
                }
            }
        };
        let mut tags = BTreeMap::new();
        if let Some(raw) = h("x-gardefou-tags")? {
            for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| Error::invalid(format!("tag `{pair}` is not key=value")))?;
                insert_tag(&mut tags, k.trim(), v.trim())?;
            }
        }
        let (team, product) = match &key {
            Some(k) => {
                (k.team.clone().or(h("x-gardefou-team")?), k.product.clone().or(h("x-gardefou-product")?))
            }
            None => (h("x-gardefou-team")?, h("x-gardefou-product")?),
        };
        Ok(Caller {
            internal: parts.extensions.get::<super::Internal>().is_some(),
            key_id: key.as_ref().map(|k| k.id.clone()),
            key,
            team,
            product,
            end_user: h("x-gardefou-user")?,
            escalate: h("x-gardefou-escalate")?.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            tags,
            traceparent: parts.headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned),
            tracestate: parts.headers.get("tracestate").and_then(|v| v.to_str().ok()).map(str::to_owned),
        })
    }
}

/// The virtual key the request presents, checked against the in-memory key table.
fn caller_key(parts: &Parts, state: &AppState) -> Result<Option<Arc<KeyRecord>>, ApiError> {
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let presented = bearer.or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    // gardefou's own calls (scheduled evals, quality judges) carry no key.
    let required =
        state.runtime().config.server.require_keys && parts.extensions.get::<super::Internal>().is_none();
    match presented.map(str::trim) {
        Some(p) if p.starts_with("gf_") => match state.keys().check(p, KeyKind::Api, crate::auth::now_ms()) {
            Ok(k) => Ok(Some(k)),
            Err(refusal) => Err(Error::Unauthenticated(refusal.message().to_owned()).into()),
        },
        Some(_) if required => Err(Error::Unauthenticated(KeyRefusal::Invalid.message().to_owned()).into()),
        None if required => Err(Error::Unauthenticated(
            "You didn't provide an API key. Send it as `Authorization: Bearer gf_…`.".to_owned(),
        )
        .into()),
        _ => Ok(None),
    }
}

/// Adds one validated tag: bounded count and length, keys of `[A-Za-z0-9_.-]`.
pub fn insert_tag(tags: &mut BTreeMap<String, String>, k: &str, v: &str) -> Result<(), ApiError> {
    if k.is_empty() || k.len() > 64 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err(Error::invalid_param(
            format!("tag key `{k}` must be 1-64 characters of [A-Za-z0-9_.-]"),
            "metadata",
        )
        .into());
    }
    if v.len() > 512 {
        return Err(
            Error::invalid_param(format!("tag `{k}` is longer than 512 characters"), "metadata").into()
        );
    }
    if tags.len() >= MAX_TAGS && !tags.contains_key(k) {
        return Err(Error::invalid_param(format!("at most {MAX_TAGS} tags per request"), "metadata").into());
    }
    tags.insert(k.to_owned(), v.to_owned());
    Ok(())
}
