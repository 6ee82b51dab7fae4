//! `gardefou eval run` as CI runs it: the real binary, a suite file, mock routes (polite, echo, a
//! fake judge and a judge that answers garbage), the exit code as the gate, JSON and JUnit reports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{json_reply, temp_dir, Gateway, Upstream, MOCK};

const MODELS: &str = r#"
[models.polite]
provider = "demo"
price = { input = 1.0, output = 2.0 }
[models.parrot]
provider = "demo"
mock = { mode = "echo" }
price = { input = 0.0, output = 0.0 }
[models.fair-judge]
provider = "demo"
mock = { mode = "fixed", text = "{\"score\": 0.9, \"reasoning\": \"ok\"}" }
[models.rambling-judge]
provider = "demo"
mock = { mode = "fixed", text = "What a lovely answer!" }
[routes.demo]
targets = [{ model = "polite" }]
[routes.echo]
targets = [{ model = "parrot" }]
[routes.judge]
targets = [{ model = "fair-judge" }]
[routes.bad-judge]
targets = [{ model = "rambling-judge" }]
"#;

const PASSING: &str = r#"
name = "passing"
[defaults]
route = "echo"
[[cases]]
id = "hello"
route = "demo"
messages = [{ role = "user", content = "Say hello" }]
assert = [
  { type = "contains", value = "HELLO", case_sensitive = false },
  { type = "cost_usd", max = 0.01 },
  { type = "judge", rubric = "Greets the user." },
]
[[cases]]
id = "exact"
prompt = "order {{ n }}"
vars = { n = "42" }
assert = [{ type = "equals", value = "order 42" }, { type = "regex", pattern = "\\d+" }]
[thresholds]
pass_rate = 1.0
min_mean_score = { judge = 0.8 }
"#;

/// A temp dir holding `gardefou.toml` (mock routes, SQLite inside) and `suite.toml`.
fn setup(suite: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = temp_dir();
    let config = dir.join("gardefou.toml");
    let db = dir.join("gardefou.db");
    std::fs::write(&config, format!("{MOCK}{MODELS}[store]\ndatabase_url = \"sqlite://{}\"\n", db.display()))
        .unwrap();
    let suite_path = dir.join("suite.toml");
    std::fs::write(&suite_path, suite).unwrap();
    (dir, config, suite_path)
}

fn eval(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .arg("eval")
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env_remove("GARDEFOU_CONFIG")
        .env_remove("GARDEFOU_API_KEY")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_passing_suite_exits_0_and_writes_json_and_junit() {
    let (dir, config, suite) = setup(PASSING);
    let (json, junit) = (dir.join("r.json"), dir.join("r.xml"));
    let out = eval(
        &dir,
        &[
            suite.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--json",
            "r.json",
            "--junit",
            "r.xml",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("2/2 cases passed"), "{stdout}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(report["judge_prompt_version"], "judge-v1");
    assert_eq!(report["target"], "in-process");
    let hello = &report["cases"][0];
    assert_eq!((hello["id"].as_str(), hello["passed"].as_bool()), (Some("hello"), Some(true)));
    let attempt = &hello["attempts"][0];
    assert!(attempt["inference_id"].as_str().is_some_and(|id| !id.is_empty()), "{attempt}");
    assert!(attempt["text"].as_str().unwrap().contains("Say hello"));
    assert!(attempt["cost_usd"].as_f64().unwrap() > 0.0, "priced from the config: {attempt}");
    let kinds: Vec<&str> =
        attempt["assertions"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["contains", "cost_usd", "judge"]);
    assert_eq!(attempt["assertions"][2]["score"], 0.9);
    assert_eq!(attempt["assertions"][2]["verdict"], "pass");
    assert_eq!(report["cases"][1]["attempts"][0]["text"], "order 42");

    let xml = std::fs::read_to_string(junit).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert_eq!(xml.matches("<testcase").count(), 2);
    assert_eq!(xml.matches("<failure").count(), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failing_threshold_exits_1_naming_it_and_a_rambling_judge_is_an_error() {
    let suite = r#"
name = "failing"
[defaults]
route = "echo"
[[cases]]
id = "wrong <answer>"
messages = [{ role = "user", content = "bonjour" }]
assert = [{ type = "contains", value = "hello" }]
[[cases]]
id = "judged-by-garbage"
messages = [{ role = "user", content = "hi" }]
assert = [{ type = "judge", rubric = "r", route = "bad-judge" }]
[[cases]]
id = "fine"
messages = [{ role = "user", content = "hi" }]
assert = [{ type = "equals", value = "hi" }]
[thresholds]
pass_rate = 0.9
"#;
    let (dir, config, suite) = setup(suite);
    let args = [
        suite.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--json",
        "r.json",
        "--junit",
        "r.xml",
    ];
    let out = eval(&dir, &args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("failed its thresholds: pass_rate = 0.3333"), "{stderr}");
    assert!(stdout.contains("contains: no `hello` in «bonjour»"), "{stdout}");
    assert!(stdout.contains("judged-by-garbage  ERROR"), "{stdout}");

    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(report["summary"]["errors"], 1);
    let judge = &report["cases"][1]["attempts"][0]["assertions"][0];
    assert_eq!(judge["verdict"], "error");
    assert!(judge["reason"].as_str().unwrap().starts_with("unparsable judge output"), "{judge}");

    let xml = std::fs::read_to_string(dir.join("r.xml")).unwrap();
    assert_eq!(xml.matches("<testcase").count(), 3);
    assert_eq!(xml.matches("<failure").count(), 1);
    assert_eq!(xml.matches("<error").count(), 1);
    assert!(xml.contains("name=\"wrong &lt;answer&gt;\""), "{xml}");

    // The judge answered garbage, was asked once more, then the assertion became an error.
    let logs = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["logs", "--config", config.to_str().unwrap(), "--route", "bad-judge", "--json"])
        .output()
        .unwrap();
    assert_eq!(text(&logs.stdout).lines().count(), 2, "{}", text(&logs.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_malformed_suite_exits_2_with_the_position_and_case_id_and_sends_nothing() {
    let suite = r#"name = "bad"
[defaults]
route = "echo"
[[cases]]
id = "ok"
messages = [{ role = "user", content = "hi" }]
[[cases]]
id = "broken"
messages = [{ role = "user", content = "hi" }]
assert = [{ type = "contains", vaule = "x" }]
"#;
    let (dir, _config, suite) = setup(suite);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let out = eval(&dir, &[suite.to_str().unwrap(), "--url", &url]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with(&format!("{}:10:11: unknown field `vaule`", suite.display())), "{stderr}");
    assert!(stderr.contains("(at `cases.broken.assert[0]`)"), "{stderr}");
    assert!(
        listener.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "a request was sent"
    );

    let (dir2, config, suite) = setup(&PASSING.replace("route = \"demo\"", "route = \"nope\""));
    let out = eval(&dir2, &[suite.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown route(s) nope"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(dir2);
}

#[tokio::test]
async fn url_runs_the_suite_against_a_running_gateway_with_repeats() {
    let gw = Gateway::start(&format!("{MOCK}{MODELS}")).await;
    let (dir, config, suite) = setup(PASSING);
    let (d, s, c, url) = (dir.clone(), suite.clone(), config.clone(), gw.base.clone());
    let out = tokio::task::spawn_blocking(move || {
        eval(
            &d,
            &[
                s.to_str().unwrap(),
                "--url",
                &url,
                "--config",
                c.to_str().unwrap(),
                "--repeat",
                "2",
                "--concurrency",
                "2",
                "--json",
                "r.json",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("PASS 2/2"), "{}", text(&out.stdout));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(report["target"], gw.base.as_str());
    assert_eq!(report["cases"][0]["passes"], 2);
    let cost = report["cases"][0]["attempts"][0]["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "with --url, --config only prices the answers");

    // 2 cases × 2 repeats, and a judge call for each `hello` run.
    let records = gw.records(6).await;
    assert_eq!(records.len(), 6);
    let id = report["cases"][1]["attempts"][0]["inference_id"].as_str().unwrap();
    assert!(records.iter().any(|r| r.id == id), "the report's inference id is the gateway's record");
    // Eval traffic is tagged: the suite and case on every call, and the judge's calls as such.
    let record = records.iter().find(|r| r.id == id).unwrap();
    assert_eq!(
        record.tags.get("eval_case").map(String::as_str),
        Some(report["cases"][1]["id"].as_str().unwrap())
    );
    assert!(records.iter().all(|r| r.tags.contains_key("eval_suite")), "{records:?}");
    assert_eq!(records.iter().filter(|r| r.tags.contains_key("eval_judge")).count(), 2);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn ctrl_c_finishes_what_is_in_flight_writes_the_reports_and_exits_130() {
    let slow = format!("{MOCK}{MODELS}[models.slow]\nprovider = \"demo\"\nmock = {{ mode = \"echo\", latency = \"3s\" }}\n[routes.slow]\ntargets = [{{ model = \"slow\" }}]\n");
    let gw = Gateway::start(&slow).await;
    let cases: String = (0..4)
        .map(|i| format!("[[cases]]\nid = \"c{i}\"\nmessages = [{{ role = \"user\", content = \"hi\" }}]\nassert = [{{ type = \"equals\", value = \"hi\" }}]\n"))
        .collect();
    let (dir, _config, suite) = setup(&format!("name = \"slow\"\n[defaults]\nroute = \"slow\"\n{cases}"));
    let child = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["eval", "run", suite.to_str().unwrap(), "--url", &gw.base, "--concurrency", "1"])
        .args(["--json", "r.json", "--junit", "r.xml"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted: 1 of 4 cases finished"), "{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    assert_eq!(report["cases"].as_array().unwrap().len(), 1);
    assert_eq!(report["cases"][0]["passed"], true, "the request in flight finished");
    assert_eq!(std::fs::read_to_string(dir.join("r.xml")).unwrap().matches("<testcase").count(), 1);
    gw.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn upstream_failures_are_retried_twice_and_client_errors_never() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let ok = json_reply(
        200,
        serde_json::json!({"choices": [{"message": {"role": "assistant", "content": "hi"}}]}),
    );
    let flaky = Upstream::start(std::sync::Arc::new(move |body: &Value| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            (503, vec![], r#"{"error": {"message": "overloaded"}}"#.to_owned())
        } else {
            ok(body)
        }
    }))
    .await;
    let suite = "name = \"r\"\n[defaults]\nroute = \"x\"\n[[cases]]\nid = \"a\"\nmessages = [{ role = \"user\", content = \"hi\" }]\nassert = [{ type = \"equals\", value = \"hi\" }]\n";
    let (dir, _config, suite) = setup(suite);
    let url = flaky.base.trim_end_matches("/v1").to_owned();
    let (d, s) = (dir.clone(), suite.clone());
    let out =
        tokio::task::spawn_blocking(move || eval(&d, &[s.to_str().unwrap(), "--url", &url])).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(flaky.seen().len(), 3, "two retries, then the answer");

    let rejecting = Upstream::start(json_reply(400, serde_json::json!({"error": {"message": "bad"}}))).await;
    let url = rejecting.base.trim_end_matches("/v1").to_owned();
    let (d, s) = (dir.clone(), suite.clone());
    let out =
        tokio::task::spawn_blocking(move || eval(&d, &[s.to_str().unwrap(), "--url", &url])).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("HTTP 400: bad"), "{}", text(&out.stdout));
    assert_eq!(rejecting.seen().len(), 1, "a 400 is not retried");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_similar_assertion_without_the_model_stops_before_sending() {
    let suite = r#"
name = "sim"
[defaults]
route = "echo"
[[cases]]
id = "a"
messages = [{ role = "user", content = "hi" }]
assert = [{ type = "similar", reference = "hello", min = 0.5 }]
"#;
    let (dir, config, suite) = setup(suite);
    let out = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["eval", "run", suite.to_str().unwrap(), "--config", config.to_str().unwrap()])
        .env("GARDEFOU_MODELS_DIR", dir.join("no-models"))
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the `similar` assertion needs the embedding model"), "{stderr}");
    assert!(stderr.contains("GARDEFOU_MODELS_DIR"), "{stderr}");
    assert!(!dir.join("gardefou.db").exists(), "no gateway was started");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn compare_lists_a_regression_between_two_json_reports() {
    let (dir, config, suite) = setup(PASSING);
    let cfg = config.to_str().unwrap();
    let a = eval(&dir, &[suite.to_str().unwrap(), "--config", cfg, "--json", "a.json"]);
    assert_eq!(a.status.code(), Some(0), "{}", text(&a.stderr));
    std::fs::write(&suite, PASSING.replace("value = \"order 42\"", "value = \"order 43\"")).unwrap();
    let b = eval(&dir, &[suite.to_str().unwrap(), "--config", cfg, "--json", "b.json"]);
    assert_eq!(b.status.code(), Some(1));
    let out = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["eval", "compare", "a.json", "b.json"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("pass rate: 1.000 → 0.500 (Δ -0.500, 95% CI ["), "{stdout}");
    assert!(stdout.contains("regressions (pass → fail): exact"), "{stdout}");
    assert!(stdout.contains("mean score judge: 0.900 → 0.900 (Δ +0.000)"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_example_suite_passes_against_the_example_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let models = root.join("models");
    let weights = models.join("all-MiniLM-L6-v2/model.safetensors");
    if std::fs::metadata(&weights).map_or(true, |m| m.len() < 1_000_000) {
        eprintln!("skipped: no all-MiniLM-L6-v2 weights (scripts/fetch-models.sh)");
        return;
    }
    let dir = temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["eval", "run"])
        .arg(root.join("examples/evals/support.toml"))
        .arg("--config")
        .arg(root.join("examples/gardefou.toml"))
        .args(["--junit", "r.xml"])
        .env("GARDEFOU_MODELS_DIR", &models)
        .env_remove("OPENAI_API_KEY")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("7/7 cases passed"), "{stdout}");
    assert_eq!(std::fs::read_to_string(dir.join("r.xml")).unwrap().matches("<testcase").count(), 7);
    let _ = std::fs::remove_dir_all(dir);
}
