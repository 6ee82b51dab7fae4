//! Stored eval runs and scheduled replay, as operators use them: a suite attached to a route runs
//! inside the server on its cron schedule, is stored and compared with its previous run; after a
//! reload makes the model answer badly, the next run raises the regression (metric, audit entry,
//! webhook). CLI runs are stored too, listed, shown and compared by id; a run against a remote
//! gateway is stored there with an admin credential.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gardefou_store::{EvalRun, EvalRunFilter, EvalTrigger};
use serde_json::{json, Value};

use crate::harness::{admin_gateway, json_reply, send_as, temp_dir, Gateway, Upstream, MOCK};

const SUITE: &str = r#"
name = "refunds"
[defaults]
route = "support"
[[cases]]
id = "delay"
messages = [{ role = "user", content = "How long does a refund take?" }]
assert = [{ type = "contains", value = "5 days" }]
[[cases]]
id = "word"
messages = [{ role = "user", content = "Can I get my money back?" }]
assert = [{ type = "contains", value = "refund", case_sensitive = false }]
[thresholds]
pass_rate = 1.0
"#;

fn models(answer: &str) -> String {
    format!(
        "{MOCK}[models.answerer]\nprovider = \"demo\"\nmock = {{ mode = \"fixed\", text = \"{answer}\" }}\n\
         [routes.support]\ntargets = [{{ model = \"answerer\" }}]\n"
    )
}

const GOOD: &str = "A refund takes 5 days.";
const BAD: &str = "Sorry, I cannot help with that.";

async fn wait_for_runs(gw: &Gateway, n: usize, what: &str) -> Vec<EvalRun> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let filter = EvalRunFilter { trigger: Some(EvalTrigger::Schedule), ..EvalRunFilter::default() };
        let runs = gw.state.store().list_eval_runs(&filter).await.unwrap();
        if runs.len() >= n {
            return runs;
        }
        assert!(Instant::now() < deadline, "{what}: only {} scheduled runs after 20 s", runs.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_suite_is_stored_and_a_regression_after_a_reload_raises_metric_audit_and_webhook() {
    let hook = Upstream::start(json_reply(200, json!({}))).await;
    let dir = temp_dir();
    let suite = dir.join("refunds.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let schedule = format!(
        "[[routes.support.evals]]\nsuite = \"{}\"\nschedule = \"* * * * * *\"\nwebhook = \"{}/hook\"\n",
        suite.display(),
        hook.base
    );
    let gw = Gateway::start(&format!("{}{schedule}", models(GOOD))).await;

    // Every second: the first run has nothing to compare with.
    let first = wait_for_runs(&gw, 1, "first run").await.pop().unwrap();
    assert_eq!((first.suite.as_str(), first.route.as_deref()), ("refunds", Some("support")));
    assert_eq!((first.passed, first.cases, first.thresholds_passed), (2, 2, true));
    assert_eq!(first.regressions, None);
    assert_eq!(first.release.as_deref(), Some(gw.state.runtime().config.revision.as_str()));
    assert_eq!(first.suite_hash.len(), 64);

    // The model starts answering badly.
    let text = std::fs::read_to_string(&gw.config_path).unwrap().replace(GOOD, BAD);
    std::fs::write(&gw.config_path, text).unwrap();
    assert_eq!(gw.post("/admin/reload", json!({})).await.status(), 200);
    let new_release = gw.state.runtime().config.revision.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    let regressed = loop {
        let runs = wait_for_runs(&gw, 2, "after the reload").await;
        if let Some(r) = runs.into_iter().find(|r| r.release.as_deref() == Some(new_release.as_str())) {
            break r;
        }
        assert!(Instant::now() < deadline, "no run on the new release");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((regressed.passed, regressed.regressions, regressed.thresholds_passed), (0, Some(2), false));

    // The webhook got the regression with both cases.
    let deadline = Instant::now() + Duration::from_secs(5);
    let notice = loop {
        if let Some(s) = hook.seen().into_iter().find(|s| s.body["event"] == "eval.regression") {
            break s;
        }
        assert!(Instant::now() < deadline, "no regression webhook: {:?}", hook.seen());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(notice.path, "/v1/hook");
    let b = &notice.body;
    assert_eq!((b["suite"].as_str(), b["route"].as_str()), (Some("refunds"), Some("support")));
    assert_eq!(b["regressed_cases"], json!(["delay", "word"]));
    assert_eq!(b["failed_thresholds"], json!(["pass_rate"]));
    assert_eq!(b["run_id"].as_str(), Some(regressed.id.as_str()));
    assert_eq!(b["release"].as_str(), Some(new_release.as_str()));
    assert!(
        hook.seen().iter().all(|s| s.body["event"] != "eval.regression" || s.body["run_id"] == b["run_id"]),
        "later failing runs regress nothing new: {:?}",
        hook.seen()
    );

    // The audit log and the metrics say so too.
    let audit = gw.state.store().list_audit(None, 100).await.unwrap();
    let entry = audit.iter().find(|e| e.action == "eval.regression").expect("an eval.regression audit entry");
    assert_eq!((entry.actor.as_str(), entry.target.as_deref()), ("scheduler", Some(regressed.id.as_str())));
    let metrics = reqwest::get(gw.url("/metrics")).await.unwrap().text().await.unwrap();
    let line = |prefix: &str| metrics.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    assert_eq!(
        line("gardefou_eval_regressions_total{suite=\"refunds\",route=\"support\"}").as_deref(),
        Some("gardefou_eval_regressions_total{suite=\"refunds\",route=\"support\"} 2"),
        "{metrics}"
    );
    assert!(
        line("gardefou_eval_runs_total{suite=\"refunds\",route=\"support\",result=\"regressed\"} 1")
            .is_some(),
        "{metrics}"
    );
    assert!(
        line("gardefou_eval_runs_total{suite=\"refunds\",route=\"support\",result=\"passed\"}").is_some(),
        "{metrics}"
    );

    // The API lists the runs and gives one with its report; eval traffic is tagged.
    let v: Value = reqwest::get(gw.url("/admin/evals/runs?trigger=schedule&suite=refunds"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["data"].as_array().unwrap().len() >= 2, "{v}");
    assert!(v["data"][0].get("report").is_none(), "listings leave the report out: {v}");
    let resp = reqwest::get(gw.url(&format!("/admin/evals/runs/{}", regressed.id))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["report"]["cases"][0]["attempts"][0]["text"], BAD);
    let inference = run["report"]["cases"][0]["attempts"][0]["inference_id"].as_str().unwrap().to_owned();
    let rec = gw.records(2).await.into_iter().find(|r| r.id == inference);
    if let Some(rec) = rec {
        assert_eq!(rec.tags.get("eval_suite").map(String::as_str), Some("refunds"));
    }
    assert_eq!(reqwest::get(gw.url("/admin/evals/runs/nope")).await.unwrap().status(), 404);
    assert_eq!(reqwest::get(gw.url("/admin/evals/runs?trigger=cron")).await.unwrap().status(), 400);
    gw.stop().await;
}

fn gardefou(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(args)
        .current_dir(dir)
        .env_remove("GARDEFOU_CONFIG")
        .env_remove("GARDEFOU_API_KEY")
        .env_remove("GARDEFOU_ADMIN_KEY")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cli_runs_are_stored_listed_shown_and_compared_by_id() {
    let dir = temp_dir();
    let db = dir.join("g.db");
    let write_config = |answer: &str| {
        std::fs::write(
            dir.join("gardefou.toml"),
            format!("{}[store]\ndatabase_url = \"sqlite://{}\"\n", models(answer), db.display()),
        )
        .unwrap();
    };
    std::fs::write(dir.join("suite.toml"), SUITE).unwrap();

    write_config(GOOD);
    let ok = gardefou(&dir, &["eval", "run", "suite.toml", "--config", "gardefou.toml"]);
    assert_eq!(ok.status.code(), Some(0), "{}\n{}", text(&ok.stdout), text(&ok.stderr));
    assert!(text(&ok.stderr).contains("no previous run to compare with"), "{}", text(&ok.stderr));
    write_config(BAD);
    let bad = gardefou(&dir, &["eval", "run", "suite.toml", "--config", "gardefou.toml"]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("2 case(s) regressed against"), "{}", text(&bad.stderr));
    let skipped = gardefou(&dir, &["eval", "run", "suite.toml", "--config", "gardefou.toml", "--no-store"]);
    assert_eq!(skipped.status.code(), Some(1));

    let list = gardefou(&dir, &["eval", "runs", "--config", "gardefou.toml", "--json"]);
    assert_eq!(list.status.code(), Some(0), "{}", text(&list.stderr));
    let runs: Vec<Value> = text(&list.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(runs.len(), 2, "--no-store stored nothing: {runs:?}");
    let (newest, oldest) = (&runs[0], &runs[1]);
    assert_eq!((newest["trigger"].as_str(), newest["regressions"].as_i64()), (Some("cli"), Some(2)));
    assert_eq!((oldest["passed"].as_i64(), oldest["thresholds_passed"].as_bool()), (Some(2), Some(true)));
    assert_ne!(newest["release"], oldest["release"], "the config revision changed");
    let table = gardefou(&dir, &["eval", "runs", "--config", "gardefou.toml"]);
    assert!(text(&table.stdout).contains("FAIL"), "{}", text(&table.stdout));

    let (a, b) = (oldest["id"].as_str().unwrap(), newest["id"].as_str().unwrap());
    let cmp = gardefou(&dir, &["eval", "compare", a, b, "--config", "gardefou.toml", "--json"]);
    assert_eq!(cmp.status.code(), Some(1), "a regression exits 1: {}", text(&cmp.stderr));
    let c: Value = serde_json::from_slice(&cmp.stdout).unwrap();
    assert_eq!(c["regressions"], json!(["delay", "word"]));
    let show = gardefou(&dir, &["eval", "show", b, "--config", "gardefou.toml", "--json"]);
    let report: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(report["cases"][1]["attempts"][0]["text"], BAD);
    let missing = gardefou(&dir, &["eval", "show", "no-such-run", "--config", "gardefou.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no eval run `no-such-run`"), "{}", text(&missing.stderr));
    let neither = gardefou(&dir, &["eval", "compare", "nope.json", b, "--config", "gardefou.toml"]);
    assert_eq!(neither.status.code(), Some(2), "{}", text(&neither.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_run_is_stored_on_the_gateway_with_an_admin_key() {
    let gw = admin_gateway().await;
    let dir = temp_dir();
    let suite = "name = \"remote\"\n[defaults]\nroute = \"support\"\n[[cases]]\nid = \"hi\"\nprompt = \"hi\"\nassert = [{ type = \"latency_ms\", max = 60000 }]\n";
    std::fs::write(dir.join("suite.toml"), suite).unwrap();
    let run = |admin_key: Option<&'static str>| {
        let (dir, base) = (dir.clone(), gw.base.clone());
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["eval", "run", "suite.toml", "--url", base.as_str()];
            if let Some(k) = admin_key {
                args.extend(["--admin-key", k]);
            }
            let out = gardefou(&dir, &args);
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            text(&out.stderr)
        })
    };
    let stderr = run(None).await.unwrap();
    assert!(stderr.contains("the run is not stored: pass --admin-key"), "{stderr}");
    let stderr = run(Some("wrong-token")).await.unwrap();
    assert!(stderr.contains("could not be stored") && stderr.contains("401"), "{stderr}");
    let stderr = run(Some("root-token")).await.unwrap();
    assert!(stderr.contains("stored as eval run"), "{stderr}");
    let runs = gw.state.store().list_eval_runs(&EvalRunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 1, "only the run with the right credential is stored");
    assert_eq!((runs[0].trigger, runs[0].target.as_str()), (EvalTrigger::Api, gw.base.as_str()));
    let (status, _) =
        send_as(&gw, Some("root-token"), "POST", "/admin/evals/runs", Some(json!({"suite": "x"}))).await;
    assert_eq!(status, 400, "not a report");
    gw.stop().await;
}

#[tokio::test]
async fn a_reload_with_a_malformed_scheduled_suite_is_rejected_with_its_position() {
    let dir = temp_dir();
    let suite = dir.join("refunds.toml");
    std::fs::write(&suite, SUITE).unwrap();
    let schedule =
        format!("[[routes.support.evals]]\nsuite = \"{}\"\nschedule = \"0 3 * * *\"\n", suite.display());
    let gw = Gateway::start(&format!("{}{schedule}", models(GOOD))).await;
    std::fs::write(&suite, SUITE.replace("type = \"contains\", value", "type = \"contains\", valeu"))
        .unwrap();
    let resp = gw.post("/admin/reload", json!({})).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("refunds.toml:8:11:") && message.contains("unknown field `valeu`"), "{message}");
    gw.stop().await;
}
