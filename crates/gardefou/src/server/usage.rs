//! `GET /admin/usage`: usage analytics from the rollup tables (`Store::usage`), protected like
//! the other admin endpoints. Query parameters: `since=24h` or `from=…&to=…` (RFC 3339 or unix
//! ms; `to` defaults to now), `group_by=team,product`, `bucket=minute|hour|day|none`, and the
//! filters `team`, `product`, `route`, `model`, `key`, `provider`. Bad input is a 400 in
//! OpenAI's error shape naming the parameter.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use gardefou_core::Error;
use gardefou_store::usage::parse_instant;
use gardefou_store::{Bucket, Dimension, StoreError, UsageFilter, UsageQuery, UsageReport};

use super::admin::authorize;
use super::error::ApiError;
use crate::auth::Need;
use crate::state::AppState;

const PARAMS: [&str; 11] =
    ["since", "from", "to", "group_by", "bucket", "team", "product", "route", "model", "key", "provider"];

/// `GET /admin/usage`.
pub async fn usage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<UsageReport>, ApiError> {
    let who = authorize(&state, &headers, Need::Read)?;
    let mut query = parse(&params, now_ms())?;
    // A team-scoped caller sees its own team only.
    if let Some(team) = &who.team {
        match &query.filter.team {
            Some(asked) if asked != team => {
                return Err(Error::Forbidden(format!("this credential may only read team `{team}`")).into())
            }
            _ => query.filter.team = Some(team.clone()),
        }
        if query.group_by.iter().any(|d| matches!(d, Dimension::Tag(_))) {
            return Err(Error::Forbidden(
                "tag rollups span every team; a team-scoped credential cannot group by tag".to_owned(),
            )
            .into());
        }
    }
    match state.store().usage(&query).await {
        Ok(report) => Ok(Json(report)),
        Err(StoreError::InvalidUsageQuery { param, message }) => {
            Err(Error::invalid_param(message, param).into())
        }
        Err(e) => {
            tracing::error!(kind = e.kind(), error = %e, "usage query failed");
            Err(Error::Internal("the usage query failed".to_owned()).into())
        }
    }
}

/// Refuses a parameter outside `known`, naming the ones that are.
pub fn check_params(params: &HashMap<String, String>, known: &[&str]) -> Result<(), Error> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(Error::invalid_param(
            format!("unknown parameter `{unknown}`; expected one of {}", known.join(", ")),
            unknown.clone(),
        )),
        None => Ok(()),
    }
}

/// A `group_by` list (`route,model`) of dimensions that parse from their names; an unknown one is
/// a 400 naming `group_by`.
pub fn group_by<T: std::str::FromStr<Err = gardefou_store::StoreError>>(
    raw: Option<&str>,
) -> Result<Vec<T>, Error> {
    raw.map(|g| g.split(',').filter(|d| !d.trim().is_empty()).map(str::parse::<T>).collect())
        .transpose()
        .map_err(|e| match e {
            gardefou_store::StoreError::InvalidUsageQuery { param, message } => {
                Error::invalid_param(message, param)
            }
            other => Error::Internal(other.to_string()),
        })
        .map(Option::unwrap_or_default)
}

/// The time range of `params` as `(from_ms, to_ms)`: `since` (a duration before `to`) or `from`
/// (RFC 3339 or unix ms), and `to` (default `now`). Without `since` or `from`, the last
/// `default_since_ms` when given, else a 400.
pub fn time_range(
    params: &HashMap<String, String>,
    now: i64,
    default_since_ms: Option<i64>,
) -> Result<(i64, i64), Error> {
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.trim().is_empty());
    let instant = |k: &'static str| {
        get(k)
            .map(|v| {
                parse_instant(v).ok_or_else(|| {
                    Error::invalid_param(format!("`{k}` must be RFC 3339 or unix milliseconds, got `{v}`"), k)
                })
            })
            .transpose()
    };
    let to_ms = instant("to")?.unwrap_or(now);
    let from_ms = match (get("since"), instant("from")?, default_since_ms) {
        (Some(_), Some(_), _) => {
            return Err(Error::invalid_param("give `since` or `from`, not both", "since"))
        }
        (Some(since), None, _) => {
            let d = parse_duration_ms(since).ok_or_else(|| {
                Error::invalid_param(
                    format!("`since` must be a duration like 15m, 24h or 7d, got `{since}`"),
                    "since",
                )
            })?;
            to_ms.saturating_sub(d)
        }
        (None, Some(from), _) => from,
        (None, None, Some(d)) => to_ms.saturating_sub(d),
        (None, None, None) => return Err(Error::invalid_param("give `since` (e.g. 24h) or `from`", "since")),
    };
    Ok((from_ms, to_ms))
}

/// The query of `params`, relative to `now` (unix ms) for `since` and a missing `to`.
pub fn parse(params: &HashMap<String, String>, now: i64) -> Result<UsageQuery, Error> {
    check_params(params, &PARAMS)?;
    let (from_ms, to_ms) = time_range(params, now, None)?;
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.trim().is_empty());
    let group_by = get("group_by")
        .map(|g| g.split(',').filter(|d| !d.trim().is_empty()).map(str::parse::<Dimension>).collect())
        .transpose()
        .map_err(store_error)?
        .unwrap_or_default();
    let bucket = match get("bucket") {
        None | Some("none") => None,
        Some(b) => Some(b.parse::<Bucket>().map_err(store_error)?),
    };
    let owned = |k: &str| get(k).map(str::to_owned);
    let filter = UsageFilter {
        team: owned("team"),
        product: owned("product"),
        route: owned("route"),
        model: owned("model"),
        key: owned("key"),
        provider: owned("provider"),
    };
    Ok(UsageQuery { from_ms, to_ms, group_by, bucket, filter })
}

fn store_error(e: StoreError) -> Error {
    match e {
        StoreError::InvalidUsageQuery { param, message } => Error::invalid_param(message, param),
        other => Error::Internal(other.to_string()),
    }
}

/// Milliseconds in `30s`, `15m`, `24h`, `7d`.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ms = match unit {
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<UsageQuery, Error> {
        let params = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        parse(&params, 1_000_000_000)
    }

    #[test]
    fn parameters_become_a_query_or_a_400_naming_the_parameter() {
        let ok =
            q(&[("since", "1h"), ("group_by", "team,tag:env"), ("bucket", "hour"), ("route", "r")]).unwrap();
        assert_eq!((ok.from_ms, ok.to_ms), (1_000_000_000 - 3_600_000, 1_000_000_000));
        assert_eq!(ok.group_by, [Dimension::Team, Dimension::Tag("env".into())]);
        assert_eq!(ok.bucket, Some(Bucket::Hour));
        assert_eq!(ok.filter.route.as_deref(), Some("r"));
        let abs =
            q(&[("from", "2025-01-01T00:00:00Z"), ("to", "1735693200000"), ("bucket", "none")]).unwrap();
        assert_eq!((abs.from_ms, abs.to_ms, abs.bucket), (1_735_689_600_000, 1_735_693_200_000, None));
        for (bad, param) in [
            (&[("since", "1y")][..], "since"),
            (&[("from", "yesterday")][..], "from"),
            (&[("since", "1h"), ("group_by", "colour")][..], "group_by"),
            (&[("since", "1h"), ("bucket", "week")][..], "bucket"),
            (&[("since", "1h"), ("limit", "3")][..], "limit"),
            (&[][..], "since"),
        ] {
            let err = q(bad).unwrap_err();
            assert_eq!((err.status(), err.param()), (400, Some(param)), "{bad:?}");
        }
    }
}
