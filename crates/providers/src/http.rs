//! HTTP plumbing shared by adapters: the pooled upstream client, `Retry-After` parsing, and the
//! mapping of upstream statuses and transport failures onto `gardefou_core::Error`.

use std::time::{Duration, SystemTime};

use gardefou_core::Error;
use reqwest::header::HeaderMap;

/// The longest excerpt of an upstream error body kept in an error message, in characters.
const EXCERPT_CHARS: usize = 300;

/// A pooled HTTP client for one provider. It has no total timeout: the caller applies the
/// first-byte and total deadlines of the route. `Err` only if the TLS backend cannot start.
pub fn client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// How long the upstream asks us to wait: `retry-after-ms` (milliseconds), else `retry-after` as
/// seconds or as an HTTP date (a date in the past means "now").
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers.get("retry-after-ms").and_then(|v| v.to_str().ok()) {
        if let Ok(ms) = ms.trim().parse::<f64>() {
            if ms.is_finite() && ms >= 0.0 {
                return Some(Duration::from_secs_f64(ms / 1000.0));
            }
        }
    }
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Maps a non-success upstream status onto the gateway's error. The message comes from an
/// OpenAI-shaped body (`{"error":{"message":…}}`) when there is one, else from a short excerpt.
pub fn error_from_status(provider: &str, status: u16, headers: &HeaderMap, body: &[u8]) -> Error {
    let provider = provider.to_owned();
    match status {
        429 => {
            Error::RateLimited { provider, message: error_message(body), retry_after: retry_after(headers) }
        }
        401 | 403 => Error::ProviderAuth { provider, status },
        504 => Error::Timeout { provider, phase: "upstream gateway" },
        408 | 409 | 500..=599 => Error::ProviderServer {
            provider,
            status,
            message: error_message(body),
            retry_after: retry_after(headers),
        },
        400..=499 => Error::ProviderRejected { provider, status, message: error_message(body) },
        _ => Error::BadResponse { provider, message: format!("unexpected status {status}") },
    }
}

/// Maps a failure to send a request or to read its answer.
pub fn send_error(provider: &str, e: reqwest::Error) -> Error {
    let provider = provider.to_owned();
    if e.is_timeout() {
        let phase = if e.is_connect() { "connect" } else { "response" };
        return Error::Timeout { provider, phase };
    }
    let message = describe(&e);
    if e.is_body() || e.is_decode() {
        Error::BadResponse { provider, message }
    } else {
        Error::Connect { provider, message }
    }
}

/// The error and its causes on one line, without the request URL.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    if let Some(url) = e.url() {
        out = out.replace(&format!(" for url ({url})"), "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The upstream's error message: `error.message`, a string `error`, a top-level `message`, or a
/// lossy excerpt of the body.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let found = match v.get("error") {
            Some(serde_json::Value::String(s)) => Some(s.as_str()),
            Some(e) => e.get("message").and_then(|m| m.as_str()),
            None => v.get("message").and_then(|m| m.as_str()),
        };
        if let Some(m) = found {
            return excerpt(m.as_bytes());
        }
    }
    excerpt(body)
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A header value marked sensitive, so that it is never printed.
pub(crate) fn sensitive(
    value: &str,
    what: &str,
) -> std::result::Result<reqwest::header::HeaderValue, String> {
    let mut v = reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| format!("{what} is not a valid header value"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// At most `limit` bytes of a body; a read error ends it where it stands.
pub(crate) async fn read_limited(resp: reqwest::Response, limit: usize) -> bytes::Bytes {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(Ok(piece)) = body.next().await {
        let room = limit - out.len();
        out.extend_from_slice(&piece[..piece.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    bytes::Bytes::from(out)
}

/// Standard padded base64 of the floats' little-endian bytes: OpenAI's `encoding_format: "base64"`.
pub(crate) fn f32_base64(v: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The most of an error body read for its message.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Maps a non-success upstream status, its headers and (the start of) its body to an error.
pub(crate) type StatusMapper = fn(&str, u16, &HeaderMap, &[u8]) -> Error;

/// POSTs a JSON `body` on `rb` (URL, auth and the provider's own headers already set by the
/// adapter) with the per-call headers, waits at most `opts.first_byte_timeout` for the response
/// headers, and returns a success response; any other status is read for its message and mapped
/// by `map_status`.
pub(crate) async fn send_json(
    provider: &str,
    mut rb: reqwest::RequestBuilder,
    body: Vec<u8>,
    opts: &crate::CallOptions,
    sse: bool,
    map_status: StatusMapper,
) -> Result<reqwest::Response, Error> {
    use reqwest::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
    let accept = if sse { "text/event-stream" } else { "application/json" };
    rb = rb
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(ACCEPT, HeaderValue::from_static(accept));
    for (name, value) in &opts.headers {
        match (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            (Ok(n), Ok(v)) => rb = rb.header(n, v),
            _ => tracing::debug!(provider, "skipped an invalid per-call header"),
        }
    }
    let sent = rb.body(body).send();
    let resp = match opts.first_byte_timeout {
        Some(limit) => match tokio::time::timeout(limit, sent).await {
            Ok(r) => r,
            Err(_) => return Err(Error::Timeout { provider: provider.to_owned(), phase: "first byte" }),
        },
        None => sent.await,
    }
    .map_err(|e| send_error(provider, e))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = read_limited(resp, ERROR_BODY_LIMIT).await;
    Err(map_status(provider, status, &headers, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        assert_eq!(retry_after(&headers(&[("retry-after-ms", "1500")])), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&headers(&[("retry-after", "7")])), Some(Duration::from_secs(7)));
        let ms_wins = headers(&[("retry-after-ms", "20"), ("retry-after", "7")]);
        assert_eq!(retry_after(&ms_wins), Some(Duration::from_millis(20)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let d = retry_after(&headers(&[("retry-after", &later)])).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn statuses_map_onto_errors() {
        let h = headers(&[("retry-after", "3")]);
        let body = br#"{"error":{"message":"bad things","type":"x"}}"#;
        assert_eq!(
            error_from_status("p", 429, &h, body),
            Error::RateLimited {
                provider: "p".into(),
                message: "bad things".into(),
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            error_from_status("p", 403, &h, body),
            Error::ProviderAuth { provider: "p".into(), status: 403 }
        );
        for status in [408, 409, 500, 502, 503] {
            let e = error_from_status("p", status, &h, body);
            assert!(matches!(e, Error::ProviderServer { .. }), "{status}: {e:?}");
            assert!(e.is_retryable());
            assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        }
        assert_eq!(
            error_from_status("p", 504, &h, body),
            Error::Timeout { provider: "p".into(), phase: "upstream gateway" }
        );
        assert_eq!(
            error_from_status("p", 422, &h, b"plain text"),
            Error::ProviderRejected { provider: "p".into(), status: 422, message: "plain text".into() }
        );
    }

    #[test]
    fn error_messages_are_found_or_cut_short() {
        assert_eq!(error_message(br#"{"error":"nope"}"#), "nope");
        assert_eq!(error_message(br#"{"message":"top"}"#), "top");
        let long = "é".repeat(400);
        let m = error_message(long.as_bytes());
        assert_eq!(m.chars().count(), EXCERPT_CHARS + 1);
        assert!(m.ends_with('…'));
        assert_eq!(error_message(b"\xff\xfeoops"), "\u{fffd}\u{fffd}oops");
    }
}
