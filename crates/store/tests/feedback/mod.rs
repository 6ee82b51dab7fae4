//! Feedback on both backends: scores stored and listed per inference, and summaries grouped by
//! route and by name with boolean means, float means and category counts over a time range.

use gardefou_store::{
    Feedback, FeedbackDimension, FeedbackKind, FeedbackQuery, FeedbackSource, FeedbackSummaryRow, StoreError,
};

use crate::support::TestDb;

on_both_backends! {
    #[tokio::test] fn feedback_is_stored_and_listed_per_inference_oldest_first;
    #[tokio::test] fn summary_by_route_counts_scores_and_averages_booleans;
    #[tokio::test] fn summary_by_name_averages_floats_and_counts_categories;
    #[tokio::test] fn summary_filters_by_name_team_and_range;
    #[tokio::test] fn summary_refuses_an_empty_range_and_a_repeated_dimension;
}

fn score(i: u32, inference: &str, route: &str, at: i64, kind: FeedbackKind) -> Feedback {
    Feedback {
        id: format!("0190c000-0000-7000-8000-{i:012}"),
        created_at_ms: at,
        inference_id: inference.into(),
        name: "helpful".into(),
        kind,
        value_float: None,
        value_text: None,
        comment: None,
        source: FeedbackSource::User,
        key_id: Some("kabc".into()),
        route: Some(route.into()),
        model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        team: Some("search".into()),
        product: Some("assistant".into()),
    }
}

pub(super) fn boolean(i: u32, inference: &str, route: &str, at: i64, value: bool) -> Feedback {
    Feedback {
        value_float: Some(if value { 1.0 } else { 0.0 }),
        ..score(i, inference, route, at, FeedbackKind::Boolean)
    }
}

fn query(group_by: &[FeedbackDimension]) -> FeedbackQuery {
    FeedbackQuery { from_ms: 0, to_ms: 1_000_000, group_by: group_by.to_vec(), ..FeedbackQuery::default() }
}

fn row<'a>(rows: &'a [FeedbackSummaryRow], dim: &str, value: &str) -> &'a FeedbackSummaryRow {
    rows.iter()
        .find(|r| r.group.get(dim).and_then(Option::as_deref) == Some(value))
        .unwrap_or_else(|| panic!("no row with {dim} = {value} in {rows:?}"))
}

async fn feedback_is_stored_and_listed_per_inference_oldest_first(db: TestDb) {
    let store = db.store().await;
    let first = Feedback {
        comment: Some("short and right — \"merci\" 🦀".into()),
        source: FeedbackSource::Reviewer,
        key_id: None,
        ..boolean(1, "inf-1", "chat", 2_000, true)
    };
    let second = Feedback {
        name: "tone".into(),
        value_text: Some("friendly".into()),
        team: None,
        ..score(2, "inf-1", "chat", 3_000, FeedbackKind::Category)
    };
    let comment = Feedback {
        comment: Some("no value".into()),
        ..score(3, "inf-1", "chat", 1_000, FeedbackKind::Comment)
    };
    let other = Feedback { value_float: Some(0.25), ..score(4, "inf-2", "chat", 1_500, FeedbackKind::Float) };
    for f in [&first, &second, &comment, &other] {
        store.insert_feedback(f).await.unwrap();
    }

    assert_eq!(store.list_feedback("inf-1").await.unwrap(), [comment.clone(), first.clone(), second.clone()]);
    assert_eq!(store.list_feedback("inf-2").await.unwrap(), std::slice::from_ref(&other));
    assert!(store.list_feedback("no-such-inference").await.unwrap().is_empty());
    assert_eq!(
        (first.value(), second.value(), comment.value(), other.value()),
        (
            serde_json::json!(true),
            serde_json::json!("friendly"),
            serde_json::Value::Null,
            serde_json::json!(0.25)
        )
    );
    // The id is the primary key.
    assert!(store.insert_feedback(&first).await.is_err());
}

async fn summary_by_route_counts_scores_and_averages_booleans(db: TestDb) {
    let store = db.store().await;
    let mut all = vec![
        boolean(1, "a", "chat", 10, true),
        boolean(2, "b", "chat", 20, true),
        boolean(3, "c", "chat", 30, false),
        boolean(4, "d", "search", 40, false),
        Feedback { comment: Some("meh".into()), ..score(5, "d", "search", 50, FeedbackKind::Comment) },
    ];
    all.push(Feedback { route: None, ..boolean(6, "e", "-", 60, true) });
    for f in &all {
        store.insert_feedback(f).await.unwrap();
    }

    let summary = store.feedback_summary(&query(&[FeedbackDimension::Route])).await.unwrap();
    assert_eq!(summary.group_by, ["route"]);
    assert_eq!(summary.rows.len(), 3, "{:?}", summary.rows);
    let chat = row(&summary.rows, "route", "chat");
    assert_eq!((chat.count, chat.scored), (3, 3));
    assert!((chat.mean.unwrap() - 2.0 / 3.0).abs() < 1e-9, "{chat:?}");
    assert!(chat.categories.is_empty());
    let search = row(&summary.rows, "route", "search");
    assert_eq!((search.count, search.scored, search.mean), (2, 1, Some(0.0)), "the comment counts, unscored");
    let none = summary.rows.iter().find(|r| r.group["route"].is_none()).unwrap();
    assert_eq!((none.count, none.mean), (1, Some(1.0)));

    // No dimension: one row for everything.
    let total = store.feedback_summary(&query(&[])).await.unwrap();
    assert_eq!(total.rows.len(), 1);
    assert_eq!((total.rows[0].count, total.rows[0].scored), (6, 5));
    assert!(total.rows[0].group.is_empty());
    assert!((total.rows[0].mean.unwrap() - 0.6).abs() < 1e-9);
}

async fn summary_by_name_averages_floats_and_counts_categories(db: TestDb) {
    let store = db.store().await;
    let category = |i, value: &str| Feedback {
        name: "tone".into(),
        value_text: Some(value.into()),
        ..score(i, "x", "chat", 10 + i64::from(i), FeedbackKind::Category)
    };
    let float = |i, value: f64| Feedback {
        name: "accuracy".into(),
        value_float: Some(value),
        ..score(i, "x", if i % 2 == 0 { "chat" } else { "search" }, 10 + i64::from(i), FeedbackKind::Float)
    };
    let all = [
        category(1, "friendly"),
        category(2, "curt"),
        category(3, "friendly"),
        float(4, 0.5),
        float(5, 1.0),
        float(6, 0.0),
        boolean(7, "x", "chat", 17, true),
    ];
    for f in &all {
        store.insert_feedback(f).await.unwrap();
    }

    let summary = store.feedback_summary(&query(&[FeedbackDimension::Name])).await.unwrap();
    assert_eq!(summary.rows.len(), 3);
    let tone = row(&summary.rows, "name", "tone");
    assert_eq!((tone.count, tone.scored, tone.mean), (3, 0, None));
    assert_eq!(tone.categories, [("curt".to_owned(), 1), ("friendly".to_owned(), 2)].into());
    let accuracy = row(&summary.rows, "name", "accuracy");
    assert_eq!((accuracy.count, accuracy.scored), (3, 3));
    assert!((accuracy.mean.unwrap() - 0.5).abs() < 1e-9);
    assert!(accuracy.categories.is_empty());
    assert_eq!(row(&summary.rows, "name", "helpful").mean, Some(1.0));

    // Two dimensions: categories land in their own (route, name) group.
    let both =
        store.feedback_summary(&query(&[FeedbackDimension::Route, FeedbackDimension::Name])).await.unwrap();
    assert_eq!(both.group_by, ["route", "name"]);
    assert_eq!(both.rows.len(), 4, "{:?}", both.rows);
    let chat_accuracy = both
        .rows
        .iter()
        .find(|r| {
            r.group["route"].as_deref() == Some("chat") && r.group["name"].as_deref() == Some("accuracy")
        })
        .unwrap();
    assert_eq!((chat_accuracy.count, chat_accuracy.mean), (2, Some(0.25)));
    assert_eq!(row(&both.rows, "name", "tone").categories.values().sum::<i64>(), 3);
}

async fn summary_filters_by_name_team_and_range(db: TestDb) {
    let store = db.store().await;
    let all = [
        boolean(1, "a", "chat", 100, true),
        Feedback { team: Some("ads".into()), ..boolean(2, "b", "chat", 200, false) },
        Feedback { name: "other".into(), ..boolean(3, "c", "chat", 300, false) },
        boolean(4, "d", "chat", 400, false),
    ];
    for f in &all {
        store.insert_feedback(f).await.unwrap();
    }
    let count = |q: FeedbackQuery| {
        let store = store.clone();
        async move { store.feedback_summary(&q).await.unwrap().rows.iter().map(|r| r.count).sum::<i64>() }
    };
    assert_eq!(count(query(&[])).await, 4);
    assert_eq!(count(FeedbackQuery { name: Some("helpful".into()), ..query(&[]) }).await, 3);
    assert_eq!(count(FeedbackQuery { team: Some("search".into()), ..query(&[]) }).await, 3);
    assert_eq!(
        count(FeedbackQuery { team: Some("search".into()), name: Some("helpful".into()), ..query(&[]) })
            .await,
        2
    );
    // `[from, to)`: 200 is in, 400 is out.
    assert_eq!(count(FeedbackQuery { from_ms: 200, to_ms: 400, ..query(&[]) }).await, 2);
    let nothing = store.feedback_summary(&FeedbackQuery { from_ms: 5_000, to_ms: 6_000, ..query(&[]) }).await;
    assert!(nothing.unwrap().rows.is_empty(), "no feedback, no row");
}

async fn summary_refuses_an_empty_range_and_a_repeated_dimension(db: TestDb) {
    let store = db.store().await;
    let empty = store.feedback_summary(&FeedbackQuery { from_ms: 10, to_ms: 10, ..query(&[]) }).await;
    assert!(matches!(empty, Err(StoreError::InvalidUsageQuery { param: "from", .. })), "{empty:?}");
    let twice = store.feedback_summary(&query(&[FeedbackDimension::Route, FeedbackDimension::Route])).await;
    assert!(matches!(twice, Err(StoreError::InvalidUsageQuery { param: "group_by", .. })), "{twice:?}");
    let unknown = "colour".parse::<FeedbackDimension>().unwrap_err();
    assert!(matches!(unknown, StoreError::InvalidUsageQuery { param: "group_by", .. }));
}
