//! Keys and the audit log, the storage side: `KeyRecord` (a virtual or admin key as stored —
//! hashed, never the secret), its lifecycle statements (create, rotate, revoke), the change feed
//! replicas poll (`keys_changed_since`), and the append-only `AuditEntry` log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::store::{Backend, Store};
use crate::StoreError;

/// A key as stored. `hash` is the hex SHA-256 of its secret; `prefix` is what listings show.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    /// Never serialised: listings and the audit log carry no hash.
    #[serde(skip_serializing, default)]
    pub hash: String,
    pub prefix: String,
    pub kind: KeyKind,
    /// Admin keys: `admin`, `operator` or `viewer`.
    pub role: Option<String>,
    /// The owning team (virtual keys), or the team an operator/viewer is scoped to.
    pub team: Option<String>,
    pub product: Option<String>,
    pub name: Option<String>,
    /// Route patterns this key may call (`*` wildcards); empty = every route.
    pub routes: Vec<String>,
    pub limits: KeyLimits,
    pub metadata: BTreeMap<String, String>,
    pub created_by: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// Who a key lets in: the API (`api`) or the admin plane (`admin`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Api,
    Admin,
}

impl KeyKind {
    fn as_str(self) -> &'static str {
        match self {
            KeyKind::Api => "api",
            KeyKind::Admin => "admin",
        }
    }
}

/// Per-key rate limits and budget.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpm: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// `day` or `month`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_window: Option<String>,
}

/// One line of the audit log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// Assigned by the store; 0 in an entry not yet appended.
    pub seq: i64,
    pub at_ms: i64,
    /// `key:<id>`, `admin-token`, `cli:<user>`…
    pub actor: String,
    /// e.g. `key.create`, `key.rotate`, `key.revoke`, `config.reload`.
    pub action: String,
    pub target: Option<String>,
    pub team: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

const KEY_COLUMNS: &str = "id, hash, prefix, kind, role, team, product, name, routes, limits, metadata, \
    created_by, created_at_ms, updated_at_ms, expires_at_ms, revoked_at_ms";

/// `?` placeholders as `$1, $2…` for Postgres.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn json<T: Serialize>(v: &T, column: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Json { column, source })
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(s: &str, column: &'static str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|source| StoreError::Json { column, source })
}

/// Runs `$body` with `$pool` bound to the backend's pool and `$sql` turning `?` SQL into the
/// backend's placeholders: the same statements serve SQLite and Postgres.
macro_rules! on_backend {
    ($store:expr, |$pool:ident, $sql:ident| $body:block) => {
        match &$store.backend {
            Backend::Sqlite(p) => {
                let $pool = p;
                let $sql = |s: &str| s.to_owned();
                $body
            }
            Backend::Postgres(pg) => {
                let $pool = pg.ready().await?;
                let $sql = |s: &str| numbered(s);
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// Inserts `audit` inside the open transaction `tx`.
macro_rules! append_audit_in {
    ($tx:ident, $sql:ident, $audit:expr) => {{
        let a = $audit;
        let before = a.before.as_ref().map(|v| json(v, "before")).transpose()?;
        let after = a.after.as_ref().map(|v| json(v, "after")).transpose()?;
        sqlx::query(&$sql(
            "INSERT INTO audit_log (at_ms, actor, action, target, team, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(a.at_ms)
        .bind(&a.actor)
        .bind(&a.action)
        .bind(&a.target)
        .bind(&a.team)
        .bind(before)
        .bind(after)
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use append_audit_in;

macro_rules! decode_key {
    ($row:expr) => {{
        let row = $row;
        let kind: String = row.try_get("kind")?;
        let routes: String = row.try_get("routes")?;
        let limits: String = row.try_get("limits")?;
        let metadata: String = row.try_get("metadata")?;
        KeyRecord {
            id: row.try_get("id")?,
            hash: row.try_get("hash")?,
            prefix: row.try_get("prefix")?,
            kind: if kind == "admin" { KeyKind::Admin } else { KeyKind::Api },
            role: row.try_get("role")?,
            team: row.try_get("team")?,
            product: row.try_get("product")?,
            name: row.try_get("name")?,
            routes: parse(&routes, "routes")?,
            limits: parse(&limits, "limits")?,
            metadata: parse(&metadata, "metadata")?,
            created_by: row.try_get("created_by")?,
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            revoked_at_ms: row.try_get("revoked_at_ms")?,
        }
    }};
}

impl Store {
    /// Stores a new key and its audit entry in one transaction.
    pub async fn create_key(&self, key: &KeyRecord, audit: &AuditEntry) -> Result<(), StoreError> {
        let routes = json(&key.routes, "routes")?;
        let limits = json(&key.limits, "limits")?;
        let metadata = json(&key.metadata, "metadata")?;
        on_backend!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            sqlx::query(&sql(&format!(
                "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )))
            .bind(&key.id)
            .bind(&key.hash)
            .bind(&key.prefix)
            .bind(key.kind.as_str())
            .bind(&key.role)
            .bind(&key.team)
            .bind(&key.product)
            .bind(&key.name)
            .bind(&routes)
            .bind(&limits)
            .bind(&metadata)
            .bind(&key.created_by)
            .bind(key.created_at_ms)
            .bind(key.updated_at_ms)
            .bind(key.expires_at_ms)
            .bind(key.revoked_at_ms)
            .execute(&mut *tx)
            .await?;
            append_audit_in!(tx, sql, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// One key by id, revoked or not.
    pub async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        on_backend!(self, |pool, sql| {
            let row = sqlx::query(&sql(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?")))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(r) => Some(decode_key!(&r)),
                None => None,
            })
        })
    }

    /// Keys, oldest first; only `team`'s when given.
    pub async fn list_keys(&self, team: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        on_backend!(self, |pool, sql| {
            let rows = match team {
                Some(t) => {
                    sqlx::query(&sql(&format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE team = ? ORDER BY created_at_ms, id"
                    )))
                    .bind(t)
                    .fetch_all(pool)
                    .await?
                }
                None => {
                    sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at_ms, id"))
                        .fetch_all(pool)
                        .await?
                }
            };
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(decode_key!(r));
            }
            Ok(out)
        })
    }

    /// Keys changed (created, rotated, revoked) at or after `since_ms`: the feed each replica
    /// polls to keep its in-memory key table current.
    pub async fn keys_changed_since(&self, since_ms: i64) -> Result<Vec<KeyRecord>, StoreError> {
        on_backend!(self, |pool, sql| {
            let rows = sqlx::query(&sql(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE updated_at_ms >= ? ORDER BY updated_at_ms"
            )))
            .bind(since_ms)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(decode_key!(r));
            }
            Ok(out)
        })
    }

    /// Replaces a live key's secret hash and prefix (rotation); false when the key is unknown or
    /// revoked. The audit entry is written in the same transaction.
    pub async fn rotate_key(
        &self,
        id: &str,
        hash: &str,
        prefix: &str,
        now_ms: i64,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        on_backend!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(&sql(
                "UPDATE api_keys SET hash = ?, prefix = ?, updated_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL",
            ))
            .bind(hash)
            .bind(prefix)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            append_audit_in!(tx, sql, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Revokes a key; false when it is unknown or already revoked.
    pub async fn revoke_key(&self, id: &str, now_ms: i64, audit: &AuditEntry) -> Result<bool, StoreError> {
        on_backend!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(&sql(
                "UPDATE api_keys SET revoked_at_ms = ?, updated_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL",
            ))
            .bind(now_ms)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            append_audit_in!(tx, sql, audit);
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Appends one audit entry on its own.
    pub async fn append_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        on_backend!(self, |pool, sql| {
            let mut tx = pool.begin().await?;
            append_audit_in!(tx, sql, audit);
            tx.commit().await?;
            Ok(())
        })
    }

    /// Audit entries, newest first, at most `limit`; only `team`'s when given.
    pub async fn list_audit(&self, team: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        on_backend!(self, |pool, sql| {
            let base = "SELECT seq, at_ms, actor, action, target, team, before, after FROM audit_log";
            let rows = match team {
                Some(t) => {
                    sqlx::query(&sql(&format!("{base} WHERE team = ? ORDER BY seq DESC LIMIT ?")))
                        .bind(t)
                        .bind(limit)
                        .fetch_all(pool)
                        .await?
                }
                None => {
                    sqlx::query(&sql(&format!("{base} ORDER BY seq DESC LIMIT ?")))
                        .bind(limit)
                        .fetch_all(pool)
                        .await?
                }
            };
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let before: Option<String> = r.try_get("before")?;
                let after: Option<String> = r.try_get("after")?;
                out.push(AuditEntry {
                    seq: r.try_get("seq")?,
                    at_ms: r.try_get("at_ms")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    team: r.try_get("team")?,
                    before: before.map(|s| parse(&s, "before")).transpose()?,
                    after: after.map(|s| parse(&s, "after")).transpose()?,
                });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
    }
}
