//! The review queue on both backends: an escalation's life (open, claimed, answered, closed),
//! changes refused from the wrong state, list filters, the backlog, and one audit entry per
//! reviewer action that never carries the conversation.

use gardefou_store::{Escalation, EscalationBacklog, EscalationFilter, EscalationStatus};
use serde_json::json;

use crate::support::TestDb;

on_both_backends! {
    #[tokio::test] fn an_escalation_is_claimed_answered_and_closed_with_an_audit_entry_each;
    #[tokio::test] fn changes_from_the_wrong_state_are_refused_and_leave_no_audit_entry;
    #[tokio::test] fn list_filters_by_status_and_team_oldest_first_with_a_limit;
    #[tokio::test] fn the_backlog_counts_open_and_claimed_and_dates_the_oldest;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn concurrent_claims_let_exactly_one_reviewer_win;
    #[tokio::test] fn retention_deletes_old_closed_escalations_and_keeps_open_ones;
}

fn escalation(i: u32, team: &str, at: i64) -> Escalation {
    Escalation {
        id: format!("0190b000-0000-7000-8000-{i:012}"),
        created_at_ms: at,
        updated_at_ms: at,
        status: EscalationStatus::Open,
        reason: "guard:pii".into(),
        route: "support".into(),
        team: Some(team.into()),
        product: Some("helpdesk".into()),
        key_id: Some("kabc".into()),
        end_user: Some("user-7".into()),
        inference_id: Some(format!("inf-{i}")),
        conversation: json!([{"role": "user", "content": "my card is [REDACTED:card] — \"help\""}]),
        claimed_by: None,
        claimed_at_ms: None,
        answer: None,
        answered_by: None,
        answered_at_ms: None,
        closed_at_ms: None,
        callback_url: Some("http://127.0.0.1:9/hook".into()),
    }
}

async fn an_escalation_is_claimed_answered_and_closed_with_an_audit_entry_each(db: TestDb) {
    let store = db.store().await;
    let e = escalation(1, "search", 1_000);
    store.create_escalation(&e).await.unwrap();
    assert_eq!(store.get_escalation(&e.id).await.unwrap(), Some(e.clone()));
    assert_eq!(store.get_escalation("no-such-id").await.unwrap(), None);

    assert!(store.claim_escalation(&e.id, "key:kana", 2_000).await.unwrap());
    let claimed = store.get_escalation(&e.id).await.unwrap().unwrap();
    assert_eq!(
        (claimed.status, claimed.claimed_by.as_deref(), claimed.claimed_at_ms, claimed.updated_at_ms),
        (EscalationStatus::Claimed, Some("key:kana"), Some(2_000), 2_000)
    );

    assert!(store.answer_escalation(&e.id, "key:kana", "Call us at 555-0100.", 3_000).await.unwrap());
    let answered = store.get_escalation(&e.id).await.unwrap().unwrap();
    assert_eq!(answered.status, EscalationStatus::Answered);
    assert_eq!(answered.answer.as_deref(), Some("Call us at 555-0100."));
    assert_eq!((answered.answered_by.as_deref(), answered.answered_at_ms), (Some("key:kana"), Some(3_000)));

    assert!(store.close_escalation(&e.id, "cli:bob", 4_000).await.unwrap());
    let closed = store.get_escalation(&e.id).await.unwrap().unwrap();
    assert_eq!((closed.status, closed.closed_at_ms), (EscalationStatus::Closed, Some(4_000)));
    assert_eq!(closed.conversation, e.conversation, "the conversation is kept as given");

    let audit = store.list_audit(Some("search"), 10).await.unwrap();
    let seen: Vec<_> = audit
        .iter()
        .map(|a| {
            (
                a.action.as_str(),
                a.actor.as_str(),
                a.target.as_deref(),
                a.before.as_ref().map(|b| b["status"].clone()),
                a.after.as_ref().map(|b| b["status"].clone()),
                a.at_ms,
            )
        })
        .collect();
    let id = Some(e.id.as_str());
    assert_eq!(
        seen,
        [
            ("escalation.close", "cli:bob", id, Some(json!("answered")), Some(json!("closed")), 4_000),
            ("escalation.answer", "key:kana", id, Some(json!("claimed")), Some(json!("answered")), 3_000),
            ("escalation.claim", "key:kana", id, Some(json!("open")), Some(json!("claimed")), 2_000),
        ]
    );
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains("REDACTED") && !text.contains("555-0100"), "no conversation or answer: {text}");
}

async fn changes_from_the_wrong_state_are_refused_and_leave_no_audit_entry(db: TestDb) {
    let store = db.store().await;
    let a = escalation(1, "search", 1_000);
    let b = escalation(2, "search", 1_001);
    store.create_escalation(&a).await.unwrap();
    store.create_escalation(&b).await.unwrap();

    // An open one may be answered without a claim; then it can no longer be claimed or answered.
    assert!(store.answer_escalation(&a.id, "r1", "done", 2_000).await.unwrap());
    assert!(!store.claim_escalation(&a.id, "r2", 2_001).await.unwrap());
    assert!(!store.answer_escalation(&a.id, "r2", "again", 2_002).await.unwrap());
    let kept = store.get_escalation(&a.id).await.unwrap().unwrap();
    assert_eq!((kept.answer.as_deref(), kept.answered_by.as_deref()), (Some("done"), Some("r1")));

    // A claimed one cannot be claimed again; a closed one accepts nothing.
    assert!(store.claim_escalation(&b.id, "r1", 2_000).await.unwrap());
    assert!(!store.claim_escalation(&b.id, "r2", 2_001).await.unwrap());
    assert!(store.close_escalation(&b.id, "r1", 2_002).await.unwrap());
    assert!(!store.answer_escalation(&b.id, "r1", "late", 2_003).await.unwrap());
    assert!(!store.close_escalation(&b.id, "r1", 2_004).await.unwrap());
    assert!(!store.claim_escalation(&b.id, "r1", 2_005).await.unwrap());
    assert_eq!(store.get_escalation(&b.id).await.unwrap().unwrap().answer, None);

    // Unknown ids are refused the same way.
    assert!(!store.claim_escalation("nope", "r1", 1).await.unwrap());
    assert!(!store.answer_escalation("nope", "r1", "x", 1).await.unwrap());
    assert!(!store.close_escalation("nope", "r1", 1).await.unwrap());

    let actions: Vec<_> =
        store.list_audit(None, 100).await.unwrap().into_iter().map(|a| (a.action, a.target)).collect();
    assert_eq!(
        actions,
        [
            ("escalation.close".to_owned(), Some(b.id.clone())),
            ("escalation.claim".to_owned(), Some(b.id.clone())),
            ("escalation.answer".to_owned(), Some(a.id.clone())),
        ],
        "refused changes are not audited"
    );
}

async fn list_filters_by_status_and_team_oldest_first_with_a_limit(db: TestDb) {
    let store = db.store().await;
    for i in 0..6u32 {
        let team = if i % 2 == 0 { "search" } else { "ads" };
        store.create_escalation(&escalation(i, team, 10_000 - i64::from(i))).await.unwrap();
    }
    store.claim_escalation(&escalation(0, "", 0).id, "r", 20_000).await.unwrap();
    store.answer_escalation(&escalation(1, "", 0).id, "r", "a", 20_000).await.unwrap();
    // Named by their inference ids: `inf-<i>`.
    let ids = |list: Vec<Escalation>| {
        list.into_iter().map(|e| e.inference_id.unwrap().replace("inf-", "")).collect::<Vec<_>>()
    };
    let list = |f: EscalationFilter| {
        let store = store.clone();
        async move { ids(store.list_escalations(&f).await.unwrap()) }
    };

    assert_eq!(list(EscalationFilter::default()).await, ["5", "4", "3", "2", "1", "0"], "oldest first");
    let open = EscalationFilter { status: Some(EscalationStatus::Open), ..Default::default() };
    assert_eq!(list(open.clone()).await, ["5", "4", "3", "2"]);
    assert_eq!(list(EscalationFilter { team: Some("search".into()), ..open.clone() }).await, ["4", "2"]);
    assert_eq!(
        list(EscalationFilter { status: Some(EscalationStatus::Claimed), ..Default::default() }).await,
        ["0"]
    );
    assert_eq!(
        list(EscalationFilter { team: Some("ads".into()), ..Default::default() }).await,
        ["5", "3", "1"]
    );
    assert_eq!(list(EscalationFilter { limit: 2, ..open }).await, ["5", "4"]);
    assert_eq!(list(EscalationFilter { team: Some("none".into()), ..Default::default() }).await.len(), 0);
}

async fn the_backlog_counts_open_and_claimed_and_dates_the_oldest(db: TestDb) {
    let store = db.store().await;
    assert_eq!(store.escalation_backlog().await.unwrap(), EscalationBacklog::default());
    for i in 0..3u32 {
        store.create_escalation(&escalation(i, "search", 1_000 + i64::from(i))).await.unwrap();
    }
    let id = |i| escalation(i, "", 0).id;
    store.claim_escalation(&id(1), "r", 5_000).await.unwrap();
    assert_eq!(
        store.escalation_backlog().await.unwrap(),
        EscalationBacklog { waiting: 3, oldest_created_at_ms: Some(1_000) }
    );
    store.answer_escalation(&id(0), "r", "a", 5_000).await.unwrap();
    store.close_escalation(&id(1), "r", 5_000).await.unwrap();
    assert_eq!(
        store.escalation_backlog().await.unwrap(),
        EscalationBacklog { waiting: 1, oldest_created_at_ms: Some(1_002) }
    );
}

async fn concurrent_claims_let_exactly_one_reviewer_win(db: TestDb) {
    let store = db.store().await;
    let e = escalation(1, "search", 1_000);
    store.create_escalation(&e).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..8 {
        let (store, id) = (store.clone(), e.id.clone());
        tasks.spawn(async move { store.claim_escalation(&id, &format!("r{r}"), 2_000).await });
    }
    let mut wins = 0;
    while let Some(done) = tasks.join_next().await {
        // A losing SQLite writer may also see a busy snapshot: refused either way, never twice.
        if let Ok(true) = done.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    let claims = store.list_audit(None, 100).await.unwrap();
    assert_eq!(claims.len(), 1, "one claim, one audit entry");
    let claimed = store.get_escalation(&e.id).await.unwrap().unwrap();
    assert_eq!(Some(claims[0].actor.as_str()), claimed.claimed_by.as_deref());
}

async fn retention_deletes_old_closed_escalations_and_keeps_open_ones(db: TestDb) {
    let store = db.store().await;
    let old_open = escalation(1, "search", 1_000);
    let old_closed = escalation(2, "search", 1_000);
    store.create_escalation(&old_open).await.unwrap();
    store.create_escalation(&old_closed).await.unwrap();
    assert!(store.close_escalation(&old_closed.id, "r1", 2_000).await.unwrap());
    let policy = gardefou_store::RetentionPolicy {
        detailed: Some(std::time::Duration::from_secs(3600)),
        usage: None,
        batch: 10,
    };
    store.purge_expired(&policy, &tokio_util::sync::CancellationToken::new()).await.unwrap();
    assert!(store.get_escalation(&old_closed.id).await.unwrap().is_none(), "closed long ago: gone");
    assert!(store.get_escalation(&old_open.id).await.unwrap().is_some(), "still open: kept");
}
