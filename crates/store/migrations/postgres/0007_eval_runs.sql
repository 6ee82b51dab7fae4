-- Eval runs: one row per run of a suite (`gardefou eval run`, a scheduled replay, or a report
-- posted to the admin API). The headline figures are columns so listings and regression checks
-- need no JSON; `report` is the whole JSON report (per-case outputs, scores, latencies, costs).
-- `suite_hash` is the SHA-256 of the suite file, so runs of different versions of a suite are
-- told apart; `release` names what was deployed (the gateway's config revision). Times are unix
-- milliseconds.
CREATE TABLE IF NOT EXISTS eval_runs (
    id                TEXT PRIMARY KEY NOT NULL,
    started_at_ms     BIGINT NOT NULL,
    duration_ms       DOUBLE PRECISION NOT NULL,
    suite             TEXT NOT NULL,
    suite_hash        TEXT NOT NULL,
    route             TEXT,
    release           TEXT,
    target            TEXT NOT NULL,
    trigger           TEXT NOT NULL CHECK (trigger IN ('cli', 'schedule', 'api')),
    cases             BIGINT NOT NULL,
    passed            BIGINT NOT NULL,
    failed            BIGINT NOT NULL,
    errors            BIGINT NOT NULL,
    pass_rate         DOUBLE PRECISION NOT NULL,
    p95_latency_ms    DOUBLE PRECISION NOT NULL,
    total_cost_usd    DOUBLE PRECISION NOT NULL,
    thresholds_passed BOOLEAN NOT NULL,
    interrupted       BOOLEAN NOT NULL,
    -- Cases that passed in the previous run of the same suite and route and fail in this one
    -- (null when there was no previous run).
    regressions       BIGINT,
    report            TEXT NOT NULL
);

-- A suite's history, newest first (listings, and the previous run a regression is judged by).
CREATE INDEX IF NOT EXISTS eval_runs_suite ON eval_runs (suite, started_at_ms);
CREATE INDEX IF NOT EXISTS eval_runs_started_at ON eval_runs (started_at_ms);
