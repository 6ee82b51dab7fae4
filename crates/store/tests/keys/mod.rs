//! Keys and the audit log on both backends: create, list by team, rotate, revoke, the change
//! feed replicas poll, and an audit log that refuses updates and deletes.

use std::collections::BTreeMap;

use gardefou_store::{AuditEntry, KeyKind, KeyLimits, KeyRecord};

use crate::support::TestDb;

on_both_backends! {
    #[tokio::test] fn keys_are_created_listed_rotated_and_revoked_with_an_audit_entry_each;
    #[tokio::test] fn the_audit_log_refuses_updates_and_deletes;
}

fn key(id: &str, team: &str, at: i64) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        hash: format!("hash-of-{id}"),
        prefix: format!("gf_{id}"),
        kind: KeyKind::Api,
        role: None,
        team: Some(team.into()),
        product: Some("bot".into()),
        name: Some("ci key".into()),
        routes: vec!["chat-*".into()],
        limits: KeyLimits {
            rpm: Some(60),
            budget_usd: Some(12.5),
            budget_window: Some("month".into()),
            ..Default::default()
        },
        metadata: BTreeMap::from([("owner".into(), "ana".into())]),
        created_by: "cli:test".into(),
        created_at_ms: at,
        updated_at_ms: at,
        expires_at_ms: Some(at + 1000),
        revoked_at_ms: None,
    }
}

fn audit(action: &str, target: &str, team: &str, at: i64) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at_ms: at,
        actor: "admin-token".into(),
        action: action.into(),
        target: Some(target.into()),
        team: Some(team.into()),
        before: None,
        after: Some(serde_json::json!({"id": target})),
    }
}

async fn keys_are_created_listed_rotated_and_revoked_with_an_audit_entry_each(db: TestDb) {
    let store = db.store().await;
    let a = key("k1", "search", 100);
    let b = key("k2", "ads", 200);
    store.create_key(&a, &audit("key.create", "k1", "search", 100)).await.unwrap();
    store.create_key(&b, &audit("key.create", "k2", "ads", 200)).await.unwrap();
    assert_eq!(store.get_key("k1").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_key("nope").await.unwrap(), None);
    assert_eq!(store.list_keys(None).await.unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(store.list_keys(Some("ads")).await.unwrap(), vec![b.clone()]);

    assert!(store
        .rotate_key("k1", "new-hash", "gf_new", 300, &audit("key.rotate", "k1", "search", 300))
        .await
        .unwrap());
    let rotated = store.get_key("k1").await.unwrap().unwrap();
    assert_eq!(
        (rotated.hash.as_str(), rotated.prefix.as_str(), rotated.updated_at_ms),
        ("new-hash", "gf_new", 300)
    );

    assert!(store.revoke_key("k2", 400, &audit("key.revoke", "k2", "ads", 400)).await.unwrap());
    assert!(
        !store.revoke_key("k2", 500, &audit("key.revoke", "k2", "ads", 500)).await.unwrap(),
        "already revoked"
    );
    assert!(!store.rotate_key("k2", "h", "p", 500, &audit("key.rotate", "k2", "ads", 500)).await.unwrap());
    assert_eq!(store.get_key("k2").await.unwrap().unwrap().revoked_at_ms, Some(400));

    let changed: Vec<String> =
        store.keys_changed_since(300).await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(changed, ["k1", "k2"]);
    assert!(store.keys_changed_since(401).await.unwrap().is_empty());

    let log = store.list_audit(None, 100).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["key.revoke", "key.rotate", "key.create", "key.create"],
        "newest first, failed changes not logged"
    );
    assert!(log.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(store.list_audit(Some("ads"), 100).await.unwrap().len(), 2);
    assert_eq!(store.list_audit(None, 1).await.unwrap().len(), 1);
    // Nothing serialised from a key carries its hash.
    assert!(!serde_json::to_string(&rotated).unwrap().contains("new-hash"));
}

async fn the_audit_log_refuses_updates_and_deletes(db: TestDb) {
    let store = db.store().await;
    store.append_audit(&audit("config.reload", "gardefou.toml", "ops", 1)).await.unwrap();
    let update = db.try_exec("UPDATE audit_log SET actor = 'someone else'").await;
    assert!(update.unwrap_err().contains("append-only"));
    let delete = db.try_exec("DELETE FROM audit_log").await;
    assert!(delete.unwrap_err().contains("append-only"));
    assert_eq!(store.list_audit(None, 10).await.unwrap()[0].actor, "admin-token");
}
