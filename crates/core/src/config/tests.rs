use super::*;

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9000"

[providers.openai]
kind = "openai"
api_key = "env:OPENAI_API_KEY"

[providers.vllm]
kind = "openai_compatible"
base_url = "http://127.0.0.1:8000/v1/"
vendor = "mistral"
quirks = { stream_usage = false }

[providers.demo]
kind = "mock"

[models.gpt-4o-mini]
provider = "openai"
price = { input = 0.15, cached_input = 0.075, output = 0.60 }
context_window = 128000

[models.llama]
provider = "vllm"
upstream = "meta-llama/Llama-3.1-8B-Instruct"

[models.mock-flaky]
provider = "demo"
mock = { mode = "fail", status = 503, fail_times = 2 }

[routes.support]
targets = [{ model = "gpt-4o-mini", weight = 90 }, { model = "llama", weight = 10 }]
fallbacks = ["mock-flaky"]
retry = { attempts = 3 }
timeouts = { connect = "2s", first_byte = "10s", total = "60s" }
balance = "least_latency"
"#;

#[test]
fn a_complete_file_resolves() {
    let c = Config::parse(GOOD, "g.toml").unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:9000");
    let r = &c.routes["support"];
    assert_eq!(r.targets[0], Target { model: "gpt-4o-mini".into(), weight: 90 });
    assert_eq!(r.fallbacks, ["mock-flaky"]);
    assert_eq!(r.retry.attempts, 3);
    assert_eq!(r.timeouts.first_byte, Duration::from_secs(10));
    assert_eq!(r.balance, Balance::LeastLatency);
    let v = &c.providers["vllm"];
    assert_eq!(v.base_url.as_deref(), Some("http://127.0.0.1:8000/v1"));
    assert!(v.quirks.legacy_max_tokens);
    assert!(!v.quirks.stream_usage, "explicit quirk wins over the vendor preset");
    assert_eq!(v.quirks.tool_choice_required.as_deref(), Some("any"));
    assert_eq!(c.models["llama"].upstream, "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(c.models["gpt-4o-mini"].upstream, "gpt-4o-mini");
    let p = c.models["gpt-4o-mini"].price.unwrap();
    assert_eq!((p.input, p.cached_input, p.output), (0.15, 0.075, 0.60));
    let m = &c.models["mock-flaky"].mock;
    assert_eq!((m.mode, m.status, m.fail_times), (MockMode::Fail, 503, Some(2)));
    assert_eq!(c.store.database_url, "sqlite://gardefou.db");
}

#[test]
fn a_mock_model_named_after_a_behaviour_behaves_so() {
    let c = Config::parse(
        "[providers.demo]\nkind = \"mock\"\n[models.echo]\nprovider = \"demo\"\n[models.x]\nprovider = \"demo\"\nupstream = \"hang\"\n[models.y]\nprovider = \"demo\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.models["echo"].mock.mode, MockMode::Echo);
    assert_eq!(c.models["x"].mock.mode, MockMode::Hang);
    assert_eq!(c.models["y"].mock.mode, MockMode::Polite);
}

fn error_of(text: &str) -> ConfigError {
    Config::parse(text, "bad.toml").unwrap_err()
}

#[test]
fn unknown_keys_are_located() {
    let e = error_of("[server]\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.contains("unknown field `listn`"), "{e}");
    assert!(e.to_string().starts_with("bad.toml:3:1: "), "{e}");
}

#[test]
fn dangling_references_name_the_path_and_what_exists() {
    let text = "[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n[routes.r]\ntargets = [{ model = \"nope\" }]\n";
    let e = error_of(text);
    assert_eq!(e.line, 6);
    assert_eq!(e.column, 22);
    assert_eq!(e.path, "routes.r.targets[0].model");
    assert!(e.message.contains("unknown model `nope`"));
    assert_eq!(e.hint.as_deref(), Some("defined models: m"));

    let e = error_of("[models.m]\nprovider = \"ghost\"\n");
    assert_eq!((e.line, e.path.as_str()), (2, "models.m.provider"));
}

#[test]
fn bad_values_are_errors() {
    let base = "[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n";
    let e = error_of(&format!(
        "{base}[routes.r]\ntargets = [{{ model = \"m\" }}]\ntimeouts = {{ total = \"soon\" }}\n"
    ));
    assert_eq!(e.path, "routes.r.timeouts.total");
    assert!(e.message.contains("not a duration"));
    let e = error_of(&format!("{base}[routes.r]\ntargets = [{{ model = \"m\", weight = -1 }}]\n"));
    assert_eq!(e.path, "routes.r.targets[0].weight");
    let e = error_of("[providers.o]\nkind = \"openai\"\napi_key = \"sk-live-abc\"\n");
    assert_eq!(e.path, "providers.o.api_key");
    assert!(!e.to_string().contains("sk-live-abc"), "a literal key is never echoed back");
    let e = error_of("[providers.v]\nkind = \"openai_compatible\"\n");
    assert!(e.message.contains("needs a base_url"));
    let e =
        error_of("[providers.v]\nkind = \"openai_compatible\"\nbase_url = \"http://x\"\nvendor = \"acme\"\n");
    assert!(e.hint.unwrap().contains("vllm"));
    let e = error_of("[providers.v]\nkind = \"bedrock\"\n");
    assert_eq!(e.path, "providers.v.kind");
    let e = error_of("[store]\ndatabase_url = \"mysql://x\"\n");
    assert_eq!(e.path, "store.database_url");
    let e = error_of("[server]\nlisten = \"localhost\"\n");
    assert_eq!(e.path, "server.listen");
}

#[test]
fn budgets_limits_and_bodies_with_bad_values_are_errors_at_their_position() {
    let base = "[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n[routes.r]\ntargets = [{ model = \"m\" }]\n";
    for (budget, path) in [
        ("scope = \"team:a\"\nlimit_usd = -5", "budgets.b.limit_usd"),
        ("scope = \"team:a\"\nlimit_usd = 1e12", "budgets.b.limit_usd"),
        ("scope = \"planet:mars\"\nlimit_usd = 5", "budgets.b.scope"),
        ("scope = \"team:\"\nlimit_usd = 5", "budgets.b.scope"),
        ("scope = \"team:a\"\nlimit_usd = 5\nwindow = \"week\"", "budgets.b.window"),
        ("scope = \"team:a\"\nlimit_usd = 5\naction = \"downgrade\"", "budgets.b.action"),
        (
            "scope = \"team:a\"\nlimit_usd = 5\naction = \"downgrade\"\ndowngrade_to = \"nope\"",
            "budgets.b.downgrade_to",
        ),
        ("scope = \"team:a\"\nlimit_usd = 5\nalert_at = [1.5]", "budgets.b.alert_at"),
        ("scope = \"team:a\"\nlimit_usd = 5\nwebhook = \"ftp://x\"", "budgets.b.webhook"),
    ] {
        let e = error_of(&format!("{base}[budgets.b]\n{budget}\n"));
        assert_eq!(e.path, path, "{budget}: {e}");
        assert!(e.line >= 6, "{budget}: {e}");
    }
    for (extra, path) in [
        ("[routes.x]\ntargets = [{ model = \"m\" }]\nlimits = { rpm = 0 }\n", "routes.x.limits.rpm"),
        ("[routes.x]\ntargets = [{ model = \"m\" }]\nstore_bodies = 1.5\n", "routes.x.store_bodies"),
        (
            "[routes.x]\ntargets = [{ model = \"m\" }]\nstore_bodies = \"sometimes\"\n",
            "routes.x.store_bodies",
        ),
        ("[teams.t]\ntpm = -1\n", "teams.t.tpm"),
        ("[teams.t]\nmax_cost_usd = 1.0\n", "teams.t.max_cost_usd"),
        ("[store]\nredis_url = \"http://x\"\n", "store.redis_url"),
        ("[store]\nusage_retention = \"0s\"\n", "store.usage_retention"),
        ("[limits]\non_redis_error = \"shrug\"\n", "limits.on_redis_error"),
    ] {
        assert_eq!(error_of(&format!("{base}{extra}")).path, path, "{extra}");
    }
    let ok = Config::parse(
        &format!("{base}[routes.x]\ntargets = [{{ model = \"m\" }}]\nstore_bodies = 0.25\nlimits = {{ rpm = 10, max_cost_usd = 0.5 }}\n[teams.t]\nrpm = 5\n[budgets.b]\nscope = \"user\"\nlimit_usd = 2\nwindow = \"day\"\nalert_at = [0.9, 0.5]\n[store]\nredis_url = \"redis://127.0.0.1:6379\"\n"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(ok.routes["x"].store_bodies, StoreBodies::Sampled(0.25));
    assert_eq!(ok.routes["x"].limits.max_cost_usd, Some(0.5));
    assert_eq!(ok.limits.teams["t"].rpm, Some(5));
    assert_eq!(ok.limits.budgets[0].scope, BudgetScope::EachUser);
    assert_eq!(ok.limits.budgets[0].alert_at, [0.5, 0.9]);
    assert_eq!(ok.limits.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
}

#[test]
fn every_example_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            seen += 1;
        }
    }
    assert!(seen > 0, "examples/ holds at least one config");
}

#[test]
fn a_json_schema_guard_takes_exactly_one_of_schema_and_from_request_reported_at_its_position() {
    let head = "[providers.demo]\nkind = \"mock\"\n[guards.structured]\npii = \"flag\"\n";
    for (guard, says) in [
        (
            "json_schema = { schema = { type = \"object\" }, from_request = true, action = \"block\" }",
            "not both",
        ),
        ("json_schema = { action = \"block\" }", "`from_request = true`"),
        ("json_schema = { from_request = false, action = \"block\" }", "`from_request = true`"),
        ("json_schema = { from_request = true, action = \"redact\" }", "`redact`"),
    ] {
        let e = error_of(&format!("{head}{guard}\n"));
        assert_eq!((e.line, e.column), (5, 15), "{guard}: {e}");
        assert_eq!(e.path, "guards.structured.json_schema");
        assert!(e.message.contains(says), "{guard}: {e}");
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("from_request = true")), "{e}");
        assert!(e.to_string().starts_with("bad.toml:5:15: "), "{e}");
    }
    // A schema that does not compile (or a build without the validator) is reported there too.
    let e = error_of(&format!("{head}json_schema = {{ schema = {{ type = 12 }}, action = \"block\" }}\n"));
    assert_eq!((e.line, e.column, e.path.as_str()), (5, 15, "guards.structured.json_schema"), "{e}");
    // A misspelt key is refused by name.
    let e = error_of(&format!("{head}json_schema = {{ from_requests = true, action = \"block\" }}\n"));
    assert!(e.message.contains("unknown field `from_requests`"), "{e}");
    // The table form is located as well.
    let e = error_of(&format!("{head}[guards.structured.json_schema]\naction = \"flag\"\n"));
    assert_eq!((e.line, e.path.as_str()), (5, "guards.structured.json_schema"), "{e}");

    // Well formed, it is accepted, or refused only by a build without the validator.
    let ok = format!(
        "{head}json_schema = {{ from_request = true, action = \"block\" }}\n[models.m]\nprovider = \"demo\"\n\
         [routes.r]\ntargets = [{{ model = \"m\" }}]\nguards = {{ output = \"structured\" }}\n"
    );
    match Config::parse(&ok, "ok.toml") {
        Ok(c) => assert!(c.routes["r"].guards.output.as_ref().unwrap().1.has_json_schema()),
        Err(e) => assert!(e.message.contains("json-schema") && e.line == 5, "{e}"),
    }
}

/// A file with GGUF's magic, enough for validation (loading the model is the provider's job).
fn fake_gguf(name: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("gardefou-config-local-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn a_local_model_names_its_gguf_file_and_the_provider_lists_it() {
    let file = fake_gguf("ok.gguf", b"GGUF\x03\x00\x00\x00");
    let text = format!(
        "[providers.local]\nkind = \"local\"\n[models.smol]\nprovider = \"local\"\npath = \"{file}\"\ncontext_length = 2048\n"
    );
    let c = Config::parse(&text, "t.toml").unwrap();
    assert_eq!(c.providers["local"].kind, ProviderKind::Local);
    let spec = c.models["smol"].local.clone().unwrap();
    assert_eq!((spec.path.display().to_string(), spec.context_window), (file, Some(2048)));
    assert_eq!(c.models["smol"].context_window, Some(2048));
    assert_eq!(c.providers["local"].local_models["smol"], spec);
}

#[test]
fn a_local_model_file_that_is_missing_or_not_gguf_is_an_error_at_its_path() {
    let base = "[providers.local]\nkind = \"local\"\n[models.smol]\nprovider = \"local\"\n";
    let e = error_of(&format!("{base}path = \"/nonexistent/model.gguf\"\n"));
    assert_eq!((e.line, e.column, e.path.as_str()), (5, 8, "models.smol.path"));
    assert!(e.message.contains("`/nonexistent/model.gguf` does not exist"), "{e}");
    let json = fake_gguf("not.gguf", b"{\"a\": 1}");
    let e = error_of(&format!("{base}path = \"{json}\"\n"));
    assert!(e.message.contains("is not a GGUF file") && e.message.contains(&json), "{e}");
    let e = error_of(base);
    assert_eq!(e.path, "models.smol.path");
    assert!(e.message.contains("needs the `path`"), "{e}");
    let e =
        error_of("[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\npath = \"x.gguf\"\n");
    assert_eq!((e.line, e.path.as_str()), (5, "models.m.path"));
}

#[test]
fn quality_sampling_and_scheduled_suites_resolve_with_defaults() {
    let text = "[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n\
        [routes.judge]\ntargets = [{ model = \"m\" }]\n\
        [routes.r]\ntargets = [{ model = \"m\" }]\nquality = { sample = 0.25, policy = \"No refunds.\" }\n\
        [[routes.r.evals]]\nsuite = \"evals/support.toml\"\nschedule = \"0 */6 * * *\"\n\
        [[routes.r.evals]]\nsuite = \"/abs/nightly.toml\"\nschedule = \"*/5 * * * * *\"\nwebhook = \"http://127.0.0.1:9/h\"\nconcurrency = 2\n";
    let c = Config::parse(text, "conf/gardefou.toml").unwrap();
    let r = &c.routes["r"];
    let q = r.quality.as_ref().unwrap();
    assert_eq!((q.sample, q.judge.as_str(), q.threshold), (0.25, "judge", 0.5));
    assert_eq!(q.checks, [QualityCheck::Relevance, QualityCheck::Groundedness, QualityCheck::Compliance]);
    assert_eq!(r.evals.len(), 2);
    assert_eq!(r.evals[0].suite, std::path::Path::new("conf/evals/support.toml"), "relative to the config");
    assert_eq!(r.evals[1].suite, std::path::Path::new("/abs/nightly.toml"));
    assert_eq!((r.evals[0].concurrency, r.evals[1].concurrency), (4, 2));
    // 2026-12-04 10:07:00 UTC → the next 6-hourly fire is 12:00; the seconds schedule fires at :05.
    let t = 1_796_378_820_000;
    assert_eq!(r.evals[0].next_after_ms(t), Some(1_796_385_600_000));
    assert_eq!(r.evals[1].next_after_ms(t), Some(t + 5_000));
    assert_eq!(c.revision.len(), 12);
    assert_ne!(c.revision, Config::parse(&format!("{text}\n# edited\n"), "x").unwrap().revision);
}

#[test]
fn bad_quality_and_schedule_settings_are_errors_at_their_position() {
    let base = "[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n[routes.judge]\ntargets = [{ model = \"m\" }]\n[routes.r]\ntargets = [{ model = \"m\" }]\n";
    let cases = [
        ("quality = { sample = 0 }\n", "routes.r.quality.sample", "not in (0, 1]"),
        (
            "quality = { sample = 0.1, judge = \"ghost\" }\n",
            "routes.r.quality.judge",
            "unknown route `ghost`",
        ),
        ("quality = { sample = 0.1, judge = \"r\" }\n", "routes.r.quality.judge", "cannot judge itself"),
        (
            "quality = { sample = 0.1, checks = [\"tone\"] }\n",
            "routes.r.quality.checks",
            "unknown check `tone`",
        ),
        (
            "quality = { sample = 0.1, checks = [\"compliance\"] }\n",
            "routes.r.quality.checks",
            "needs the route's `policy`",
        ),
        ("quality = { sample = 0.1, threshold = 2.0 }\n", "routes.r.quality.threshold", "not in [0, 1]"),
        (
            "[[routes.r.evals]]\nsuite = \"s.toml\"\nschedule = \"every hour\"\n",
            "routes.r.evals[0].schedule",
            "not a cron schedule",
        ),
        (
            "[[routes.r.evals]]\nsuite = \"s.toml\"\nschedule = \"61 * * * *\"\n",
            "routes.r.evals[0].schedule",
            "not a cron schedule",
        ),
        (
            "[[routes.r.evals]]\nsuite = \"s.toml\"\nschedule = \"0 * * * *\"\nwebhook = \"ftp://x\"\n",
            "routes.r.evals[0].webhook",
            "not an http(s) URL",
        ),
        (
            "[[routes.r.evals]]\nsuite = \"s.toml\"\nschedule = \"0 * * * *\"\nconcurrency = 0\n",
            "routes.r.evals[0].concurrency",
            "out of range",
        ),
    ];
    for (tail, path, message) in cases {
        let e = error_of(&format!("{base}{tail}"));
        assert_eq!(e.path, path, "{tail}: {e}");
        assert!(e.message.contains(message), "{tail}: {e}");
        assert!(e.line >= 9, "{tail}: located in the route's part of the file: {e}");
    }
    let no_judge = "[providers.demo]\nkind = \"mock\"\n[models.m]\nprovider = \"demo\"\n[routes.r]\ntargets = [{ model = \"m\" }]\nquality = { sample = 0.1 }\n";
    let e = error_of(no_judge);
    assert_eq!(e.path, "routes.r.quality.judge");
    assert_eq!(e.line, 7);
}

#[test]
fn an_optional_local_model_whose_file_is_absent_is_unavailable_and_a_required_one_is_an_error() {
    let base = "[providers.l]\nkind = \"local\"\n[providers.demo]\nkind = \"mock\"\n";
    let c = Config::parse(
        &format!(
            "{base}[models.m]\nprovider = \"l\"\npath = \"models:nowhere/model.gguf\"\noptional = true\n"
        ),
        "x.toml",
    )
    .unwrap();
    let m = &c.models["m"];
    assert!(m.local.is_none());
    let why = m.unavailable.as_deref().unwrap();
    assert!(why.contains("nowhere/model.gguf") && why.contains("does not exist"), "{why}");
    assert!(c.providers["l"].local_models.is_empty(), "the provider loads nothing");

    let e = error_of(&format!("{base}[models.m]\nprovider = \"l\"\npath = \"models:nowhere/model.gguf\"\n"));
    assert_eq!(e.path, "models.m.path");
    assert!(e.message.contains("nowhere/model.gguf` does not exist"), "{e}");
    let e = error_of(&format!("{base}[models.m]\nprovider = \"demo\"\noptional = true\n"));
    assert_eq!(e.path, "models.m.optional");
    let not_gguf = fake_gguf("optional-not-gguf.gguf", b"NOPE");
    let e =
        error_of(&format!("{base}[models.m]\nprovider = \"l\"\npath = \"{not_gguf}\"\noptional = true\n"));
    assert!(e.message.contains("is not a GGUF file"), "optional covers only an absent file: {e}");
}

#[test]
fn a_local_model_folder_is_an_embedding_model_and_needs_the_sentence_transformers_files() {
    let dir = std::env::temp_dir().join(format!("gardefou-config-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "[providers.l]\nkind = \"local\"\n[models.e]\nprovider = \"l\"\npath = \"{}\"\n",
        dir.display()
    );
    let e = error_of(&text);
    assert_eq!(e.path, "models.e.path");
    assert!(e.message.contains("is a folder without config.json, tokenizer.json, model.safetensors"), "{e}");
    for f in EMBEDDING_MODEL_FILES {
        std::fs::write(dir.join(f), b"{}").unwrap();
    }
    let c = Config::parse(&text, "x.toml").unwrap();
    let m = &c.models["e"];
    assert!(m.local.as_ref().unwrap().embeddings);
    assert!(m.capabilities.embeddings && !m.capabilities.chat);
    let _ = std::fs::remove_dir_all(&dir);
}
