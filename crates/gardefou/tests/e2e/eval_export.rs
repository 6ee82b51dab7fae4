//! Dataset building end to end: chat calls on a route that keeps bodies (and one that does not),
//! feedback on some of them, then `gardefou eval export` as a real process picking exactly the
//! scored ones, and `gardefou eval run` passing on the exported file against the same gateway;
//! and an answered escalation exported as a judged case that runs the same way.

use std::path::Path;
use std::process::{Command, Output};

use gardefou::control::escalations::{open, NewEscalation};
use gardefou::eval::Suite;
use serde_json::{json, Value};

use crate::harness::{Gateway, MOCK};

const CONFIG: &str = r#"
[models.parrot]
provider = "demo"
mock = { mode = "echo" }
[models.fair-judge]
provider = "demo"
mock = { mode = "fixed", text = "{\"score\": 0.9, \"reasoning\": \"ok\"}" }
[routes.kept]
targets = [{ model = "parrot" }]
store_bodies = "on"
[routes.plain]
targets = [{ model = "parrot" }]
[routes.judge]
targets = [{ model = "fair-judge" }]
"#;

/// One chat call; returns its inference id.
async fn ask(gw: &Gateway, route: &str, text: &str, tags: &str) -> String {
    let body = json!({"model": route, "temperature": 0, "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": text},
    ]});
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("x-gardefou-tags", tags)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-gardefou-inference-id"].to_str().unwrap().to_owned()
}

async fn helpful(gw: &Gateway, id: &str, value: bool) {
    let resp = gw
        .post(
            "/v1/feedback",
            json!({"inference_id": id, "name": "helpful", "value": value, "source": "reviewer"}),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}

/// `gardefou <args>` as a process, off the runtime's threads.
async fn gardefou(dir: &Path, args: Vec<String>) -> Output {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_gardefou"))
            .args(args)
            .current_dir(dir)
            .env_remove("GARDEFOU_CONFIG")
            .env_remove("GARDEFOU_API_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn database(gw: &Gateway) -> String {
    format!("sqlite://{}", gw.dir.join("gardefou.db").display())
}

/// Runs `suite` against the gateway: the exit code and stdout.
async fn run_suite(gw: &Gateway, suite: &Path) -> (Option<i32>, String) {
    let out = gardefou(
        &gw.dir,
        args(&["eval", "run", suite.to_str().unwrap(), "--url", &gw.base, "--json", "report.json"]),
    )
    .await;
    (out.status.code(), format!("{}\n{}", text(&out.stdout), text(&out.stderr)))
}

#[tokio::test]
async fn thumbs_down_inferences_export_as_a_suite_that_passes_against_the_same_gateway() {
    let gw = Gateway::start(&format!("{MOCK}{CONFIG}")).await;
    let liked = ask(&gw, "kept", "Where is my parcel?", "feature=faq").await;
    let disliked = ask(&gw, "kept", "Can I pay by \"cheque\"?\nThanks 🦀", "feature=faq").await;
    let disliked_chat = ask(&gw, "kept", "Hello there", "feature=chat").await;
    let unscored = ask(&gw, "kept", "Unscored question", "feature=faq").await;
    let bodiless = ask(&gw, "plain", "No body kept", "feature=faq").await;
    helpful(&gw, &liked, true).await;
    for id in [&disliked, &disliked_chat, &bodiless] {
        helpful(&gw, id, false).await;
    }
    gw.records(5).await;

    let db = database(&gw);
    let out = gardefou(
        &gw.dir,
        args(&[
            "eval",
            "export",
            "--feedback",
            "helpful",
            "--max",
            "0",
            "--assert",
            "exact",
            "--name",
            "thumbs-down",
            "--database",
            &db,
            "--out",
            "down.toml",
        ]),
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("skipped 1 matching inference(s) without a stored request body"), "{stderr}");
    assert!(stderr.contains("wrote 2 case(s) to down.toml"), "{stderr}");
    let path = gw.dir.join("down.toml");
    let suite = Suite::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = suite.cases.iter().map(|c| c.id.get_ref().as_str()).collect();
    assert_eq!(
        ids,
        [format!("inf-{disliked_chat}"), format!("inf-{disliked}")],
        "newest first, only thumbs-down"
    );
    assert_eq!(suite.defaults.route.as_deref(), Some("kept"));
    let case = &suite.cases[1];
    let messages = case.messages.as_ref().unwrap();
    assert_eq!(messages[1].content, "Can I pay by \"cheque\"?\nThanks 🦀");
    assert_eq!(case.params.as_ref().unwrap()["temperature"], json!(0.0));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains(&format!("# inference {disliked} · ")), "{written}");
    assert!(written.contains("· route kept · model parrot · status 200 · tags feature=faq"), "{written}");

    let (code, output) = run_suite(&gw, &path).await;
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("2/2 cases passed"), "{output}");

    // A tag narrows it; without --assert, --judge-route makes every case judged.
    let out = gardefou(
        &gw.dir,
        args(&[
            "eval",
            "export",
            "--tag",
            "feature=faq",
            "--route",
            "kept",
            "--judge-route",
            "judge",
            "--database",
            &db,
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let faq = text(&out.stdout);
    let suite = Suite::parse(&faq, "faq.toml").unwrap_or_else(|e| panic!("{e}\n{faq}"));
    let mut ids: Vec<String> = suite.cases.iter().map(|c| c.id.get_ref().clone()).collect();
    ids.sort();
    let mut want = vec![format!("inf-{liked}"), format!("inf-{disliked}"), format!("inf-{unscored}")];
    want.sort();
    assert_eq!(ids, want, "eval traffic is not tagged feature=faq: {faq}");
    assert!(faq.contains("type = \"judge\""), "{faq}");
    std::fs::write(gw.dir.join("faq.toml"), &faq).unwrap();
    let (code, output) = run_suite(&gw, &gw.dir.join("faq.toml")).await;
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("3/3 cases passed"), "{output}");

    // Nothing matches: an error, not an empty suite.
    let out = gardefou(
        &gw.dir,
        args(&["eval", "export", "--feedback", "helpful", "--min", "2", "--database", &db]),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no case matched"), "{}", text(&out.stderr));
    gw.stop().await;
}

#[tokio::test]
async fn an_answered_escalation_exports_as_a_judged_case_that_runs() {
    let gw = Gateway::start(&format!("{MOCK}{CONFIG}")).await;
    let new = |text: &str| NewEscalation {
        reason: "refusal".into(),
        route: "kept".into(),
        team: Some("support".into()),
        product: None,
        key_id: None,
        end_user: None,
        inference_id: None,
        conversation: json!([{"role": "user", "content": text}]),
        callback_url: None,
    };
    let answered = open(&gw.state, new("Can I get a refund?")).await.unwrap();
    let waiting = open(&gw.state, new("Still waiting")).await.unwrap();
    let resp = gw
        .post(&format!("/admin/escalations/{answered}/answer"), json!({"answer": "Yes, within 30 days."}))
        .await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let db = database(&gw);
    let out = gardefou(
        &gw.dir,
        args(&[
            "eval",
            "export",
            "--from",
            "escalations",
            "--judge-route",
            "judge",
            "--database",
            &db,
            "--out",
            "esc.toml",
        ]),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let path = gw.dir.join("esc.toml");
    let suite = Suite::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = suite.cases.iter().map(|c| c.id.get_ref().as_str()).collect();
    assert_eq!(ids, [format!("esc-{answered}")], "{waiting} has no answer yet");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("reference answer: Yes, within 30 days."), "{written}");
    let (code, output) = run_suite(&gw, &path).await;
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("1/1 cases passed"), "{output}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(gw.dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["cases"][0]["attempts"][0]["assertions"][0]["score"], 0.9);

    // Inference-only filters are refused for escalations.
    let out =
        gardefou(&gw.dir, args(&["eval", "export", "--from", "escalations", "--errors", "--database", &db]))
            .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--errors only appl"), "{}", text(&out.stderr));
    gw.stop().await;
}
