//! Key lifecycle shared by the admin API and the CLI: validate a key spec, create (the secret is
//! returned once and only its hash stored), rotate, revoke — each change written to the audit log
//! in the same transaction, and put in the local key table at once (other replicas pick it up
//! from the store within a second).

use std::collections::BTreeMap;

use gardefou_core::Error;
use gardefou_store::{AuditEntry, KeyKind, KeyLimits, KeyRecord, Store};
use serde::Deserialize;

use crate::auth::{new_key_id, new_secret, now_ms, KeyTable, Role};

const MAX_ROUTES: usize = 64;
const MAX_METADATA: usize = 32;
/// Above this a budget is a typo, not a budget.
const MAX_BUDGET_USD: f64 = 10_000_000.0;
const MAX_PER_MINUTE: i64 = 1_000_000_000;

/// What a caller asks for when creating a key (`POST /admin/keys`, `gardefou keys create`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// `api` (default) or `admin`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Admin keys: `admin`, `operator` or `viewer`.
    pub role: Option<String>,
    pub team: Option<String>,
    pub product: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub routes: Vec<String>,
    /// A duration from now, e.g. `30d`.
    pub expires_in: Option<String>,
    #[serde(default)]
    pub limits: KeyLimits,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A created or rotated key: the secret (shown once) and the stored record.
pub struct Issued {
    pub secret: String,
    pub record: KeyRecord,
}

fn bad(message: impl Into<String>, param: &str) -> Error {
    Error::invalid_param(message, param)
}

fn text(v: &Option<String>, param: &str, max: usize) -> Result<Option<String>, Error> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) if s.len() > max || s.chars().any(char::is_control) => {
            Err(bad(format!("`{param}` must be at most {max} printable characters"), param))
        }
        Some(s) => Ok(Some(s.to_owned())),
    }
}

/// Checks a spec and turns it into a record (without id, hash or times).
pub fn validate(spec: &KeySpec) -> Result<KeyRecord, Error> {
    let kind = match spec.kind.as_deref().unwrap_or("api") {
        "api" => KeyKind::Api,
        "admin" => KeyKind::Admin,
        other => return Err(bad(format!("`kind` must be `api` or `admin`, not `{other}`"), "kind")),
    };
    let team = text(&spec.team, "team", 128)?;
    let role = match (kind, spec.role.as_deref()) {
        (KeyKind::Api, None) => None,
        (KeyKind::Api, Some(_)) => return Err(bad("only admin keys have a role", "role")),
        (KeyKind::Admin, None) => {
            return Err(bad("an admin key needs a `role`: admin, operator or viewer", "role"))
        }
        (KeyKind::Admin, Some(r)) => match Role::parse(r) {
            Some(_) => Some(r.to_owned()),
            None => return Err(bad(format!("`role` must be admin, operator or viewer, not `{r}`"), "role")),
        },
    };
    if kind == KeyKind::Api && team.is_none() {
        return Err(bad("a key is owned by a team: give `team`", "team"));
    }
    if spec.routes.len() > MAX_ROUTES
        || spec
            .routes
            .iter()
            .any(|r| r.trim().is_empty() || r.len() > 128 || r.chars().any(char::is_whitespace))
    {
        return Err(bad(
            format!("`routes` takes at most {MAX_ROUTES} route names or patterns like `chat-*`"),
            "routes",
        ));
    }
    let l = &spec.limits;
    for (v, name) in [(l.rpm, "limits.rpm"), (l.tpm, "limits.tpm")] {
        if v.is_some_and(|v| !(1..=MAX_PER_MINUTE).contains(&v)) {
            return Err(bad(format!("`{name}` must be between 1 and {MAX_PER_MINUTE}"), name));
        }
    }
    if let Some(b) = l.budget_usd {
        if !b.is_finite() || b <= 0.0 || b > MAX_BUDGET_USD {
            return Err(bad(
                format!("`limits.budget_usd` must be more than 0 and at most {MAX_BUDGET_USD}"),
                "limits.budget_usd",
            ));
        }
    }
    match (l.budget_usd, l.budget_window.as_deref()) {
        (_, None | Some("day" | "month")) => {}
        (_, Some(w)) => {
            return Err(bad(
                format!("`limits.budget_window` must be `day` or `month`, not `{w}`"),
                "limits.budget_window",
            ))
        }
    }
    if spec.metadata.len() > MAX_METADATA
        || spec.metadata.iter().any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 512)
    {
        return Err(bad(
            format!("`metadata` takes at most {MAX_METADATA} entries (keys ≤ 64, values ≤ 512 characters)"),
            "metadata",
        ));
    }
    let expires_in = match spec.expires_in.as_deref() {
        None => None,
        Some(d) => match humantime::parse_duration(d) {
            Ok(d) if !d.is_zero() && d.as_secs() <= 10 * 366 * 86_400 => Some(d),
            _ => {
                return Err(bad(
                    format!("`expires_in` must be a duration up to 10 years, like `30d`, not `{d}`"),
                    "expires_in",
                ))
            }
        },
    };
    let now = now_ms();
    Ok(KeyRecord {
        id: String::new(),
        hash: String::new(),
        prefix: String::new(),
        kind,
        role,
        team: if kind == KeyKind::Admin && spec.role.as_deref() == Some("admin") { None } else { team },
        product: text(&spec.product, "product", 128)?,
        name: text(&spec.name, "name", 128)?,
        routes: spec.routes.iter().map(|r| r.trim().to_owned()).collect(),
        limits: KeyLimits {
            budget_window: l
                .budget_usd
                .map(|_| l.budget_window.clone().unwrap_or_else(|| "month".to_owned())),
            ..l.clone()
        },
        metadata: spec.metadata.clone(),
        created_by: String::new(),
        created_at_ms: now,
        updated_at_ms: now,
        expires_at_ms: expires_in.map(|d| now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)),
        revoked_at_ms: None,
    })
}

fn snapshot(k: &KeyRecord) -> serde_json::Value {
    serde_json::to_value(k).unwrap_or_default()
}

/// Runs a key change again (at most 3 times in all, 100 ms apart) when the store says it may
/// succeed later: a SQLite file shared with a running gateway can be busy past its lock timeout.
/// Each change is one transaction, so a failed attempt left nothing behind.
async fn retrying<T, F, Fut>(mut op: F) -> Result<T, gardefou_store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, gardefou_store::StoreError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_retryable() && attempt < 3 => {
                tracing::warn!(kind = e.kind(), attempt, "key store busy; trying again");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn store_error(e: gardefou_store::StoreError) -> Error {
    tracing::error!(kind = e.kind(), error = %e, "key store operation failed");
    Error::Internal("the key store is unavailable".to_owned())
}

/// Creates a key from a validated record.
pub async fn create(
    store: &Store,
    table: &KeyTable,
    actor: &str,
    mut record: KeyRecord,
) -> Result<Issued, Error> {
    record.id = new_key_id();
    let secret = new_secret(&record.id);
    record.hash = secret.hash;
    record.prefix = secret.prefix;
    record.created_by = actor.to_owned();
    let audit = AuditEntry {
        seq: 0,
        at_ms: record.created_at_ms,
        actor: actor.to_owned(),
        action: "key.create".to_owned(),
        target: Some(record.id.clone()),
        team: record.team.clone(),
        before: None,
        after: Some(snapshot(&record)),
    };
    retrying(|| store.create_key(&record, &audit)).await.map_err(store_error)?;
    table.upsert(vec![record.clone()]);
    Ok(Issued { secret: secret.key, record })
}

/// Gives a live key a new secret; the old one stops working at once.
pub async fn rotate(store: &Store, table: &KeyTable, actor: &str, id: &str) -> Result<Issued, Error> {
    let before = load(store, id).await?;
    let secret = new_secret(id);
    let now = now_ms();
    let audit = AuditEntry {
        seq: 0,
        at_ms: now,
        actor: actor.to_owned(),
        action: "key.rotate".to_owned(),
        target: Some(id.to_owned()),
        team: before.team.clone(),
        before: Some(serde_json::json!({"prefix": before.prefix})),
        after: Some(serde_json::json!({"prefix": secret.prefix})),
    };
    if !retrying(|| store.rotate_key(id, &secret.hash, &secret.prefix, now, &audit))
        .await
        .map_err(store_error)?
    {
        return Err(Error::invalid_param(format!("key `{id}` is revoked; create a new one"), "id"));
    }
    let record = KeyRecord { hash: secret.hash, prefix: secret.prefix, updated_at_ms: now, ..before };
    table.upsert(vec![record.clone()]);
    Ok(Issued { secret: secret.key, record })
}

/// Revokes a key on every replica (here at once, elsewhere within a second).
pub async fn revoke(store: &Store, table: &KeyTable, actor: &str, id: &str) -> Result<KeyRecord, Error> {
    let before = load(store, id).await?;
    if before.revoked_at_ms.is_some() {
        // Known from the read: no write (the store's own check covers a concurrent revoke).
        return Err(already_revoked(id));
    }
    let now = now_ms();
    let audit = AuditEntry {
        seq: 0,
        at_ms: now,
        actor: actor.to_owned(),
        action: "key.revoke".to_owned(),
        target: Some(id.to_owned()),
        team: before.team.clone(),
        before: Some(snapshot(&before)),
        after: Some(serde_json::json!({"revoked_at_ms": now})),
    };
    if !retrying(|| store.revoke_key(id, now, &audit)).await.map_err(store_error)? {
        return Err(already_revoked(id));
    }
    let record = KeyRecord { revoked_at_ms: Some(now), updated_at_ms: now, ..before };
    table.upsert(vec![record.clone()]);
    Ok(record)
}

fn already_revoked(id: &str) -> Error {
    Error::invalid_param(format!("key `{id}` is already revoked"), "id")
}

/// A key by id, or 404.
pub async fn load(store: &Store, id: &str) -> Result<KeyRecord, Error> {
    store
        .get_key(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| Error::NotFound { message: format!("no key `{id}`"), param: Some("id".to_owned()) })
}
