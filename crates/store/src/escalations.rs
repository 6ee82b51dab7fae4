//! The human review queue, the storage side: `Escalation` (a conversation handed to a reviewer,
//! its state and answer), the queue listing, the state changes (claim, answer, close) — each a
//! compare-and-set UPDATE audited in the same transaction — and the backlog the gauges show.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::keys::{append_audit_in, json, numbered, on_backend, parse, AuditEntry};
use crate::store::{Backend, Store};
use crate::StoreError;

/// Where an escalation is in its life. `open → claimed → answered → closed`; an open one may be
/// answered without a claim, and anything not closed may be closed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EscalationStatus {
    /// Waiting for a reviewer.
    Open,
    /// A reviewer took it (`claimed_by`).
    Claimed,
    /// A reviewer answered (`answer`, `answered_by`); the client can read the answer.
    Answered,
    /// Done; nothing more happens to it.
    Closed,
}

impl EscalationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationStatus::Open => "open",
            EscalationStatus::Claimed => "claimed",
            EscalationStatus::Answered => "answered",
            EscalationStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<EscalationStatus> {
        match s {
            "open" => Some(EscalationStatus::Open),
            "claimed" => Some(EscalationStatus::Claimed),
            "answered" => Some(EscalationStatus::Answered),
            "closed" => Some(EscalationStatus::Closed),
            _ => None,
        }
    }

    /// Waiting for an answer: counted by the backlog gauges.
    pub fn is_waiting(self) -> bool {
        matches!(self, EscalationStatus::Open | EscalationStatus::Claimed)
    }
}

/// One escalation as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Escalation {
    /// A UUID v7 (text).
    pub id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub status: EscalationStatus,
    /// Why it was opened: `guard:<name>`, `refusal`, `requested`.
    pub reason: String,
    pub route: String,
    pub team: Option<String>,
    pub product: Option<String>,
    /// The virtual key of the call that opened it; only that key may read the answer.
    pub key_id: Option<String>,
    pub end_user: Option<String>,
    pub inference_id: Option<String>,
    /// The messages, already redacted by whoever opened it.
    pub conversation: serde_json::Value,
    pub claimed_by: Option<String>,
    pub claimed_at_ms: Option<i64>,
    pub answer: Option<String>,
    pub answered_by: Option<String>,
    pub answered_at_ms: Option<i64>,
    pub closed_at_ms: Option<i64>,
    /// Where the `escalation.opened` and `escalation.answered` notices are posted.
    pub callback_url: Option<String>,
}

/// Which escalations `Store::list_escalations` returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EscalationFilter {
    pub status: Option<EscalationStatus>,
    pub team: Option<String>,
    /// 0 means [`EscalationFilter::DEFAULT_LIMIT`]; capped at [`EscalationFilter::MAX_LIMIT`].
    pub limit: u32,
}

impl EscalationFilter {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 10_000;

    pub fn effective_limit(&self) -> i64 {
        i64::from(match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        })
    }
}

/// The escalations waiting for an answer (open or claimed) and the creation time of the oldest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EscalationBacklog {
    pub waiting: i64,
    pub oldest_created_at_ms: Option<i64>,
}

const COLUMNS: &str = "id, created_at_ms, updated_at_ms, status, reason, route, team, product, key_id, \
    end_user, inference_id, conversation, claimed_by, claimed_at_ms, answer, answered_by, answered_at_ms, \
    closed_at_ms, callback_url";

/// How many times a state change re-reads the row when another change won the race.
const CAS_ATTEMPTS: usize = 3;

macro_rules! decode_escalation {
    ($row:expr) => {{
        let row = $row;
        let id: String = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let conversation: String = row.try_get("conversation")?;
        Escalation {
            status: EscalationStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                id: id.clone(),
                column: "status",
                reason: format!("unknown status `{status}`"),
            })?,
            created_at_ms: row.try_get("created_at_ms")?,
            updated_at_ms: row.try_get("updated_at_ms")?,
            reason: row.try_get("reason")?,
            route: row.try_get("route")?,
            team: row.try_get("team")?,
            product: row.try_get("product")?,
            key_id: row.try_get("key_id")?,
            end_user: row.try_get("end_user")?,
            inference_id: row.try_get("inference_id")?,
            conversation: parse(&conversation, "conversation")?,
            claimed_by: row.try_get("claimed_by")?,
            claimed_at_ms: row.try_get("claimed_at_ms")?,
            answer: row.try_get("answer")?,
            answered_by: row.try_get("answered_by")?,
            answered_at_ms: row.try_get("answered_at_ms")?,
            closed_at_ms: row.try_get("closed_at_ms")?,
            callback_url: row.try_get("callback_url")?,
            id,
        }
    }};
}

/// A reviewer's change: where it may start from, where it ends, and what it records.
enum Change<'a> {
    Claim,
    Answer(&'a str),
    Close,
}

impl Change<'_> {
    fn from(&self) -> &'static [EscalationStatus] {
        use EscalationStatus::*;
        match self {
            Change::Claim => &[Open],
            Change::Answer(_) => &[Open, Claimed],
            Change::Close => &[Open, Claimed, Answered],
        }
    }

    fn to(&self) -> EscalationStatus {
        match self {
            Change::Claim => EscalationStatus::Claimed,
            Change::Answer(_) => EscalationStatus::Answered,
            Change::Close => EscalationStatus::Closed,
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Change::Claim => "escalation.claim",
            Change::Answer(_) => "escalation.answer",
            Change::Close => "escalation.close",
        }
    }
}

impl Store {
    /// Stores a new escalation.
    pub async fn create_escalation(&self, e: &Escalation) -> Result<(), StoreError> {
        let conversation = json(&e.conversation, "conversation")?;
        on_backend!(self, |pool, sql| {
            sqlx::query(&sql(&format!(
                "INSERT INTO escalations ({COLUMNS}) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )))
            .bind(&e.id)
            .bind(e.created_at_ms)
            .bind(e.updated_at_ms)
            .bind(e.status.as_str())
            .bind(&e.reason)
            .bind(&e.route)
            .bind(&e.team)
            .bind(&e.product)
            .bind(&e.key_id)
            .bind(&e.end_user)
            .bind(&e.inference_id)
            .bind(&conversation)
            .bind(&e.claimed_by)
            .bind(e.claimed_at_ms)
            .bind(&e.answer)
            .bind(&e.answered_by)
            .bind(e.answered_at_ms)
            .bind(e.closed_at_ms)
            .bind(&e.callback_url)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// One escalation by id.
    pub async fn get_escalation(&self, id: &str) -> Result<Option<Escalation>, StoreError> {
        on_backend!(self, |pool, sql| {
            let row = sqlx::query(&sql(&format!("SELECT {COLUMNS} FROM escalations WHERE id = ?")))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(r) => Some(decode_escalation!(&r)),
                None => None,
            })
        })
    }

    /// Escalations matching `filter`, oldest first (the order a queue is worked in).
    pub async fn list_escalations(&self, filter: &EscalationFilter) -> Result<Vec<Escalation>, StoreError> {
        let mut text = format!("SELECT {COLUMNS} FROM escalations WHERE 1 = 1");
        if filter.status.is_some() {
            text.push_str(" AND status = ?");
        }
        if filter.team.is_some() {
            text.push_str(" AND team = ?");
        }
        text.push_str(" ORDER BY created_at_ms, id LIMIT ?");
        on_backend!(self, |pool, sql| {
            let text = sql(&text);
            let mut q = sqlx::query(&text);
            if let Some(s) = filter.status {
                q = q.bind(s.as_str());
            }
            if let Some(t) = &filter.team {
                q = q.bind(t);
            }
            let rows = q.bind(filter.effective_limit()).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(decode_escalation!(r));
            }
            Ok(out)
        })
    }

    /// How many escalations wait for an answer (open or claimed), and since when the oldest.
    pub async fn escalation_backlog(&self) -> Result<EscalationBacklog, StoreError> {
        on_backend!(self, |pool, _sql| {
            let row = sqlx::query(
                "SELECT COUNT(*) AS waiting, MIN(created_at_ms) AS oldest FROM escalations \
                 WHERE status IN ('open', 'claimed')",
            )
            .fetch_one(pool)
            .await?;
            Ok(EscalationBacklog {
                waiting: row.try_get("waiting")?,
                oldest_created_at_ms: row.try_get("oldest")?,
            })
        })
    }

    /// `reviewer` takes an open escalation; false when it is unknown or not open.
    pub async fn claim_escalation(&self, id: &str, reviewer: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.change_escalation(id, reviewer, now_ms, Change::Claim).await
    }

    /// `reviewer` answers an open or claimed escalation; false when it is unknown, answered or
    /// closed.
    pub async fn answer_escalation(
        &self,
        id: &str,
        reviewer: &str,
        answer: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.change_escalation(id, reviewer, now_ms, Change::Answer(answer)).await
    }

    /// `reviewer` closes an escalation; false when it is unknown or already closed.
    pub async fn close_escalation(&self, id: &str, reviewer: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.change_escalation(id, reviewer, now_ms, Change::Close).await
    }

    /// Reads the current status, then moves it with `UPDATE … WHERE status = <what was read>` and
    /// appends the audit entry in the same transaction. When another change moved the row in
    /// between, the UPDATE touches nothing and the row is read again.
    async fn change_escalation(
        &self,
        id: &str,
        reviewer: &str,
        now_ms: i64,
        change: Change<'_>,
    ) -> Result<bool, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(current) = self.get_escalation(id).await? else { return Ok(false) };
            if !change.from().contains(&current.status) {
                return Ok(false);
            }
            let to = change.to();
            let mut after = serde_json::json!({"status": to.as_str()});
            if matches!(change, Change::Claim) {
                after["claimed_by"] = serde_json::json!(reviewer);
            }
            let audit = AuditEntry {
                seq: 0,
                at_ms: now_ms,
                actor: reviewer.to_owned(),
                action: change.action().to_owned(),
                target: Some(id.to_owned()),
                team: current.team.clone(),
                before: Some(serde_json::json!({"status": current.status.as_str()})),
                after: Some(after),
            };
            let moved = on_backend!(self, |pool, sql| {
                let mut tx = pool.begin().await?;
                let done = match change {
                    Change::Claim => {
                        sqlx::query(&sql(
                            "UPDATE escalations SET status = ?, claimed_by = ?, claimed_at_ms = ?, \
                             updated_at_ms = ? WHERE id = ? AND status = ?",
                        ))
                        .bind(to.as_str())
                        .bind(reviewer)
                        .bind(now_ms)
                        .bind(now_ms)
                        .bind(id)
                        .bind(current.status.as_str())
                        .execute(&mut *tx)
                        .await?
                    }
                    Change::Answer(answer) => {
                        sqlx::query(&sql("UPDATE escalations SET status = ?, answer = ?, answered_by = ?, \
                             answered_at_ms = ?, updated_at_ms = ? WHERE id = ? AND status = ?"))
                        .bind(to.as_str())
                        .bind(answer)
                        .bind(reviewer)
                        .bind(now_ms)
                        .bind(now_ms)
                        .bind(id)
                        .bind(current.status.as_str())
                        .execute(&mut *tx)
                        .await?
                    }
                    Change::Close => {
                        sqlx::query(&sql(
                            "UPDATE escalations SET status = ?, closed_at_ms = ?, updated_at_ms = ? \
                             WHERE id = ? AND status = ?",
                        ))
                        .bind(to.as_str())
                        .bind(now_ms)
                        .bind(now_ms)
                        .bind(id)
                        .bind(current.status.as_str())
                        .execute(&mut *tx)
                        .await?
                    }
                };
                if done.rows_affected() == 0 {
                    false
                } else {
                    append_audit_in!(tx, sql, &audit);
                    tx.commit().await?;
                    true
                }
            });
            if moved {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
