//! Dataset reads on both backends: the chat inferences `gardefou eval export` turns into cases,
//! filtered by route, model, team, product, tags, time, errors and a feedback score within
//! bounds, read with their bodies while those without a body are only counted; and the
//! escalations answered (or closed with an answer) by a human.

use std::collections::BTreeMap;

use gardefou_store::{
    AnsweredFilter, Bodies, DatasetFilter, Escalation, EscalationStatus, FeedbackBound, InferenceRecord,
};
use serde_json::json;

use crate::feedback::boolean;
use crate::support::{minimal, TestDb};

on_both_backends! {
    #[tokio::test] fn inferences_with_bodies_are_filtered_by_feedback_bounds_tags_and_labels;
    #[tokio::test] fn inferences_without_a_body_are_counted_and_the_limit_is_capped;
    #[tokio::test] fn answered_and_closed_escalations_with_an_answer_are_read_newest_first;
}

fn with_body(i: u64, at: i64, route: &str, answer: &str) -> InferenceRecord {
    InferenceRecord {
        route: Some(route.into()),
        model: Some("polite".into()),
        team: Some("search".into()),
        product: Some("assistant".into()),
        tags: BTreeMap::from([("feature".into(), if i.is_multiple_of(2) { "faq" } else { "chat" }.into())]),
        bodies: Some(Bodies {
            request: format!(
                r#"{{"model":"{route}","messages":[{{"role":"user","content":"question {i} 🦀"}}]}}"#
            ),
            response: Some(format!(r#"{{"content":"{answer}"}}"#)),
        }),
        ..minimal(i, at)
    }
}

fn ids(records: &[InferenceRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

async fn inferences_with_bodies_are_filtered_by_feedback_bounds_tags_and_labels(db: TestDb) {
    let store = db.store().await;
    let records: Vec<_> =
        (1..=6).map(|i| with_body(i, 1_000 + i as i64, "support", &format!("a{i}"))).collect();
    let mut failed = with_body(7, 1_007, "support", "oops");
    failed.status = 502;
    let other_route = with_body(8, 1_008, "sales", "a8");
    let embeddings = InferenceRecord { endpoint: "embeddings".into(), ..with_body(9, 1_009, "support", "") };
    let mut all = records.clone();
    all.extend([failed.clone(), other_route.clone(), embeddings]);
    store.insert_batch(&all).await.unwrap();
    // Thumbs down on 2 and 3, up on 4; a score of another name on 5.
    for (n, (rec, value)) in
        [(&records[1], false), (&records[2], false), (&records[3], true)].into_iter().enumerate()
    {
        store.insert_feedback(&boolean(n as u32 + 1, &rec.id, "support", 2_000, value)).await.unwrap();
    }
    let other_name = gardefou_store::Feedback {
        name: "accuracy".into(),
        ..boolean(9, &records[4].id, "support", 2_000, false)
    };
    store.insert_feedback(&other_name).await.unwrap();

    let read = |filter: DatasetFilter| {
        let store = store.clone();
        async move { store.dataset_inferences(&filter).await.unwrap() }
    };
    let helpful = |min: Option<f64>, max: Option<f64>| FeedbackBound { name: "helpful".into(), min, max };

    let all = read(DatasetFilter::default()).await;
    assert_eq!(all.records.len(), 8, "chat inferences only: {:?}", ids(&all.records));
    assert_eq!(all.records[0].id, other_route.id, "newest first");
    assert_eq!(all.without_body, 0);
    let first = all.records.iter().find(|r| r.id == records[0].id).unwrap();
    assert_eq!(first, &records[0], "every field and both bodies come back");

    let down = read(DatasetFilter { feedback: Some(helpful(None, Some(0.0))), ..Default::default() }).await;
    assert_eq!(ids(&down.records), [records[2].id.clone(), records[1].id.clone()]);
    let up = read(DatasetFilter { feedback: Some(helpful(Some(1.0), None)), ..Default::default() }).await;
    assert_eq!(ids(&up.records), [records[3].id.clone()]);
    let any = read(DatasetFilter { feedback: Some(helpful(None, None)), ..Default::default() }).await;
    assert_eq!(any.records.len(), 3);
    let accuracy = FeedbackBound { name: "accuracy".into(), min: None, max: Some(0.5) };
    let acc = read(DatasetFilter { feedback: Some(accuracy), ..Default::default() }).await;
    assert_eq!(ids(&acc.records), [records[4].id.clone()]);

    let faq = read(DatasetFilter {
        tags: vec![("feature".into(), "faq".into())],
        route: Some("support".into()),
        ..Default::default()
    })
    .await;
    // Even ids on `support`, the failed one (7) being odd.
    assert_eq!(ids(&faq.records), [records[5].id.clone(), records[3].id.clone(), records[1].id.clone()]);
    let none = read(DatasetFilter {
        tags: vec![("feature".into(), "faq".into()), ("env".into(), "prod".into())],
        ..Default::default()
    })
    .await;
    assert!(none.records.is_empty(), "every tag must match");

    let errors = read(DatasetFilter { errors_only: true, ..Default::default() }).await;
    assert_eq!(ids(&errors.records), [failed.id.clone()]);
    let sales = read(DatasetFilter {
        route: Some("sales".into()),
        model: Some("polite".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&sales.records), std::slice::from_ref(&other_route.id));
    let other_team = read(DatasetFilter { team: Some("ads".into()), ..Default::default() }).await;
    assert!(other_team.records.is_empty());
    let recent = read(DatasetFilter {
        since_ms: Some(1_006),
        product: Some("assistant".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(recent.records.len(), 3);
}

async fn inferences_without_a_body_are_counted_and_the_limit_is_capped(db: TestDb) {
    let store = db.store().await;
    let mut all: Vec<_> = (1..=5).map(|i| with_body(i, 1_000 + i as i64, "support", "a")).collect();
    all.extend(
        (10..13).map(|i| InferenceRecord { bodies: None, ..with_body(i, 1_000 + i as i64, "support", "a") }),
    );
    all.push(InferenceRecord { bodies: None, ..with_body(20, 1_020, "sales", "a") });
    store.insert_batch(&all).await.unwrap();

    let support = DatasetFilter { route: Some("support".into()), limit: 2, ..Default::default() };
    let got = store.dataset_inferences(&support).await.unwrap();
    assert_eq!(
        ids(&got.records),
        [all[4].id.clone(), all[3].id.clone()],
        "the limit counts cases, not skips"
    );
    assert_eq!(got.without_body, 3, "the sales one is not counted");
    assert!(got.records.iter().all(|r| r.bodies.is_some()));
    let capped = DatasetFilter { limit: u32::MAX, ..Default::default() };
    assert_eq!(store.dataset_inferences(&capped).await.unwrap().records.len(), 5);
    assert_eq!(DatasetFilter::MAX_LIMIT, 10_000);
}

fn escalation(i: u32, at: i64, route: &str) -> Escalation {
    Escalation {
        id: format!("0190d000-0000-7000-8000-{i:012}"),
        created_at_ms: at,
        updated_at_ms: at,
        status: EscalationStatus::Open,
        reason: "refusal".into(),
        route: route.into(),
        team: Some("search".into()),
        product: Some("helpdesk".into()),
        key_id: None,
        end_user: None,
        inference_id: None,
        conversation: json!([{"role": "user", "content": format!("question {i}")}]),
        claimed_by: None,
        claimed_at_ms: None,
        answer: None,
        answered_by: None,
        answered_at_ms: None,
        closed_at_ms: None,
        callback_url: None,
    }
}

async fn answered_and_closed_escalations_with_an_answer_are_read_newest_first(db: TestDb) {
    let store = db.store().await;
    for (i, route) in [(1, "support"), (2, "support"), (3, "support"), (4, "support"), (5, "sales")] {
        store.create_escalation(&escalation(i, 1_000 + i64::from(i), route)).await.unwrap();
    }
    let id = |i: u32| escalation(i, 0, "").id;
    // 1 answered, 2 answered then closed, 3 closed unanswered, 4 left open, 5 answered elsewhere.
    assert!(store.answer_escalation(&id(1), "ana", "Here is how.", 2_000).await.unwrap());
    assert!(store.answer_escalation(&id(2), "ana", "Like this.", 2_000).await.unwrap());
    assert!(store.close_escalation(&id(2), "ana", 2_100).await.unwrap());
    assert!(store.close_escalation(&id(3), "ana", 2_100).await.unwrap());
    assert!(store.answer_escalation(&id(5), "ana", "Sales answer.", 2_000).await.unwrap());

    let got = store.answered_escalations(&AnsweredFilter::default()).await.unwrap();
    let got_ids: Vec<_> = got.iter().map(|e| e.id.clone()).collect();
    assert_eq!(got_ids, [id(5), id(2), id(1)]);
    assert_eq!(got[1].answer.as_deref(), Some("Like this."));
    assert_eq!(got[1].status, EscalationStatus::Closed);
    assert_eq!(got[2].conversation[0]["content"], "question 1");

    let support = AnsweredFilter { route: Some("support".into()), limit: 1, ..Default::default() };
    let got = store.answered_escalations(&support).await.unwrap();
    assert_eq!(got.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), [id(2)]);
    let later = AnsweredFilter { since_ms: Some(1_002), team: Some("search".into()), ..Default::default() };
    assert_eq!(store.answered_escalations(&later).await.unwrap().len(), 2);
    let elsewhere = AnsweredFilter { product: Some("other".into()), ..Default::default() };
    assert!(store.answered_escalations(&elsewhere).await.unwrap().is_empty());
}
