//! The usage benchmark (bench/usage/): fills a database with N synthetic inferences by SQL
//! (10 million by default), builds the rollups by `INSERT … SELECT … GROUP BY` with the same
//! arithmetic as the writer, then times typical `Store::usage` queries, 10 runs each.
//!
//! `GARDEFOU_USAGE_BENCH_URL` (required; the test does nothing without it), `…_ROWS` (10000000),
//! `…_REUSE=1` (keep the data already there). Run through `bench/usage/run.sh`.

use std::time::{Duration, Instant};

use gardefou_store::usage::{bucket_lower_ms, HIST_BUCKETS};
use gardefou_store::{Bucket, Dimension, Store, UsageFilter, UsageQuery};
use sqlx::{Connection, Executor, Row};

const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z: data covers 30 days from here.
const START: i64 = 1_735_689_600_000;
/// Queries end 17 minutes into the last day, so ranges start and end off the hour.
const NOW: i64 = START + 30 * DAY - DAY + 17 * 60_000 + 30_000;

const SCALARS: [&str; 12] = [
    "requests",
    "successes",
    "errors",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unknown_cost",
    "latency_sum_ms",
    "ttft_sum_ms",
    "ttft_count",
];
const DIMS: &str = "team, product, key_id, route, model, provider, endpoint";

enum Conn {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Conn {
    async fn exec(&mut self, sql: &str) {
        let started = Instant::now();
        match self {
            Conn::Sqlite(c) => c.execute(sql).await.map(|_| ()),
            Conn::Pg(c) => c.execute(sql).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{e}\n{sql}"));
        let first = sql.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        println!("  {:>7.1} s  {first} …", started.elapsed().as_secs_f64());
    }

    async fn count(&mut self, table: &str) -> i64 {
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}");
        match self {
            Conn::Sqlite(c) => sqlx::query(&sql).fetch_one(c).await.unwrap().get(0),
            Conn::Pg(c) => sqlx::query(&sql).fetch_one(c).await.unwrap().get(0),
        }
    }
}

/// `CASE WHEN x < 1 THEN 0 WHEN x < 1.52 THEN 1 … ELSE 31 END`: `usage::bucket_of` in SQL.
fn bucket_case(x: &str) -> String {
    let mut s = format!("CASE WHEN {x} IS NULL THEN -1");
    for k in 1..HIST_BUCKETS {
        s.push_str(&format!(" WHEN {x} < {:?} THEN {}", bucket_lower_ms(k), k - 1));
    }
    s.push_str(&format!(" ELSE {} END", HIST_BUCKETS - 1));
    s
}

fn counter_names() -> Vec<String> {
    let mut v: Vec<String> = SCALARS.iter().map(|s| (*s).to_owned()).collect();
    v.extend((0..HIST_BUCKETS).map(|k| format!("lat_{k:02}")));
    v.extend((0..HIST_BUCKETS).map(|k| format!("ttft_{k:02}")));
    v
}

/// The counters aggregated from raw rows (`lb`, `tb`: the bucket indexes), as the writer does.
fn raw_counters() -> String {
    let mut v = vec![
        "COUNT(*)".to_owned(),
        "SUM(CASE WHEN status >= 200 AND status < 300 AND error_kind IS NULL THEN 1 ELSE 0 END)".into(),
        "SUM(CASE WHEN status >= 400 OR error_kind IS NOT NULL THEN 1 ELSE 0 END)".into(),
    ];
    for c in ["input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens"] {
        v.push(format!("SUM(COALESCE({c}, 0))"));
    }
    v.push("SUM(COALESCE(cost_usd, 0.0))".into());
    v.push("SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END)".into());
    v.push("SUM(latency_ms)".into());
    v.push("SUM(COALESCE(ttft_ms, 0.0))".into());
    v.push("SUM(CASE WHEN ttft_ms IS NULL THEN 0 ELSE 1 END)".into());
    for (col, k) in (0..HIST_BUCKETS).map(|k| ("lb", k)).chain((0..HIST_BUCKETS).map(|k| ("tb", k))) {
        v.push(format!("SUM(CASE WHEN {col} = {k} THEN 1 ELSE 0 END)"));
    }
    v.join(", ")
}

/// The raw rows: keys belong to one team and product and call two routes; a route serves two
/// models; 2% 5xx, 2% 429, 1% failed streams; 1/8 unpriced; lognormal-ish latencies.
fn raw_insert(pg: bool, n: i64) -> String {
    let (gen, id) = if pg {
        (format!("generate_series(0::bigint, {}) AS g(i)", n - 1), "lpad(i::text, 20, '0')")
    } else {
        (String::new(), "printf('%020d', i)")
    };
    let source = if pg {
        gen
    } else {
        format!("(WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {}) SELECT i FROM c) AS g", n - 1)
    };
    let span = 30 * DAY;
    let jsonb = if pg { "::jsonb" } else { "" };
    format!(
        "INSERT INTO inferences (id, created_at_ms, request_id, endpoint, route, model, provider, key_id, team, \
         product, end_user, status, error_kind, error_message, stream, input_tokens, cached_input_tokens, \
         output_tokens, reasoning_tokens, tokens_estimated, cost_usd, latency_ms, ttft_ms, finish_reason, attempts, tags) \
         SELECT {id}, {START} + i * {span} / {n}, 'req', CASE WHEN rt = 9 THEN 'embeddings' ELSE 'chat' END, \
           'route-' || rt, 'model-' || md, 'provider-' || (md % 5), 'key-' || k, 'team-' || (k % 20), \
           'product-' || (k % 50), NULL, \
           CASE WHEN s < 2 THEN 500 WHEN s < 4 THEN 429 ELSE 200 END, \
           CASE WHEN s < 4 THEN 'provider_error' WHEN s = 4 THEN 'stream_interrupted' END, NULL, st = 1, \
           100 + h2 % 4000, CASE WHEN h2 % 3 = 0 THEN h2 % 1000 END, 10 + h2 % 900, CASE WHEN md = 3 THEN h2 % 200 END, \
           FALSE, CASE WHEN h2 % 8 = 0 THEN NULL ELSE (h2 % 1000) / 100000.0 END, \
           lat, CASE WHEN st = 1 THEN lat / 4.0 END, 'stop', '[]'{jsonb}, \
           ('{{\"env\":\"' || CASE WHEN h3 % 10 < 7 THEN 'prod' WHEN h3 % 10 < 9 THEN 'staging' ELSE 'dev' END || '\"' || \
           CASE WHEN h3 % 5 < 2 THEN ',\"feature\":\"f' || (h3 % 8) || '\"' ELSE '' END || '}}'){jsonb} \
         FROM (SELECT i, k, (k + 3 * (h % 2)) % 10 AS rt, ((k + 3 * (h % 2)) % 10 + 10 * ((h / 2) % 2)) % 15 AS md, \
                 (h / 4) % 100 AS s, (h / 400) % 2 AS st, h2, h3, \
                 (20.0 + (h2 % 997) * (h2 % 997) / 90.0 + (h3 % 101) * (h3 % 101) * (h3 % 101) / 20.0) AS lat \
               FROM (SELECT i, (i * 2654435761) % 4294967291 AS h, (i * 40503 + 7) % 1000003 AS h2, \
                       (i * 69069 + 1) % 999983 AS h3, ((i * 2246822519) % 4294967291) % 200 AS k FROM {source}) AS a) AS b"
    )
}

fn rollup_inserts(pg: bool) -> Vec<String> {
    let counters = counter_names().join(", ");
    let raw = raw_counters();
    let (lb, tb) = (bucket_case("latency_ms"), bucket_case("ttft_ms"));
    let coalesced = "COALESCE(team, '') AS team, COALESCE(product, '') AS product, COALESCE(key_id, '') AS key_id, \
         COALESCE(route, '') AS route, COALESCE(model, '') AS model, COALESCE(provider, '') AS provider, endpoint";
    let sums: String = counter_names().iter().map(|c| format!("SUM({c})")).collect::<Vec<_>>().join(", ");
    // Stops the planner from inlining `lb` / `tb` (a 31-branch CASE) into each of the 64 sums.
    let fence = if pg { "OFFSET 0" } else { "LIMIT -1" };
    let tags_from = if pg {
        "inferences, jsonb_each_text(inferences.tags) AS t(key, value)"
    } else {
        "inferences, json_each(inferences.tags) AS t"
    };
    let mut out = vec![format!(
        "INSERT INTO usage_minute (ts, {DIMS}, {counters}) SELECT ts, {DIMS}, {raw} FROM \
         (SELECT created_at_ms - created_at_ms % 60000 AS ts, {coalesced}, status, error_kind, input_tokens, \
          cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, latency_ms, ttft_ms, {lb} AS lb, {tb} AS tb \
          FROM inferences {fence}) AS r GROUP BY ts, {DIMS}"
    )];
    out.push(format!(
        "INSERT INTO usage_minute_tags (ts, tag_key, tag_value, {counters}) SELECT ts, tag_key, tag_value, {raw} FROM \
         (SELECT created_at_ms - created_at_ms % 60000 AS ts, t.key AS tag_key, t.value AS tag_value, status, \
          error_kind, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, latency_ms, \
          ttft_ms, {lb} AS lb, {tb} AS tb FROM {tags_from} {fence}) AS r GROUP BY ts, tag_key, tag_value"
    ));
    for (to, from, p) in [("hour", "minute", 3_600_000), ("day", "hour", DAY)] {
        out.push(format!(
            "INSERT INTO usage_{to} (ts, {DIMS}, {counters}) SELECT ts - ts % {p}, {DIMS}, {sums} \
             FROM usage_{from} GROUP BY ts - ts % {p}, {DIMS}"
        ));
        out.push(format!(
            "INSERT INTO usage_{to}_tags (ts, tag_key, tag_value, {counters}) SELECT ts - ts % {p}, tag_key, \
             tag_value, {sums} FROM usage_{from}_tags GROUP BY ts - ts % {p}, tag_key, tag_value"
        ));
    }
    out
}

async fn generate(conn: &mut Conn, pg: bool, n: i64) {
    let tables = ["inferences", "usage_minute", "usage_hour", "usage_day"];
    for t in
        tables.iter().flat_map(|t| [t.to_string(), format!("{t}_tags")]).filter(|t| t != "inferences_tags")
    {
        conn.exec(&format!("DELETE FROM {t}")).await;
    }
    if pg {
        conn.exec("SET work_mem = '512MB'").await;
        conn.exec("SET maintenance_work_mem = '1GB'").await;
        conn.exec("SET synchronous_commit = off").await;
    } else {
        conn.exec("PRAGMA synchronous = OFF").await;
        conn.exec("PRAGMA cache_size = -1000000").await;
        conn.exec("PRAGMA temp_store = MEMORY").await;
    }
    for idx in ["inferences_created_at", "inferences_route_created_at", "inferences_team_created_at"] {
        conn.exec(&format!("DROP INDEX IF EXISTS {idx}")).await;
    }
    conn.exec(&raw_insert(pg, n)).await;
    conn.exec("CREATE INDEX inferences_created_at ON inferences (created_at_ms)").await;
    conn.exec("CREATE INDEX inferences_route_created_at ON inferences (route, created_at_ms)").await;
    conn.exec("CREATE INDEX inferences_team_created_at ON inferences (team, created_at_ms)").await;
    for sql in rollup_inserts(pg) {
        conn.exec(&sql).await;
    }
    conn.exec(if pg { "VACUUM ANALYZE" } else { "ANALYZE" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long; run by bench/usage/run.sh"]
async fn usage_queries_on_ten_million_inferences() {
    let Ok(url) = std::env::var("GARDEFOU_USAGE_BENCH_URL") else {
        println!("skipped: set GARDEFOU_USAGE_BENCH_URL");
        return;
    };
    let rows: i64 =
        std::env::var("GARDEFOU_USAGE_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let store = Store::connect(&url).await.unwrap();
    let pg = store.backend_name() == "postgres";
    let mut conn = if pg {
        Conn::Pg(sqlx::PgConnection::connect(&url).await.unwrap())
    } else {
        Conn::Sqlite(sqlx::SqliteConnection::connect(&url).await.unwrap())
    };
    let reuse = std::env::var("GARDEFOU_USAGE_BENCH_REUSE").is_ok_and(|v| v == "1");
    if !reuse || conn.count("inferences").await != rows {
        println!("generating {rows} inferences and their rollups ({})", store.backend_name());
        let started = Instant::now();
        generate(&mut conn, pg, rows).await;
        println!("  {:>7.1} s  total", started.elapsed().as_secs_f64());
    }
    for t in [
        "inferences",
        "usage_minute",
        "usage_hour",
        "usage_day",
        "usage_minute_tags",
        "usage_hour_tags",
        "usage_day_tags",
    ] {
        println!("  {t}: {} rows", conn.count(t).await);
    }
    let q = |hours: i64, group_by: Vec<Dimension>, bucket: Option<Bucket>, route: Option<&str>| UsageQuery {
        from_ms: NOW - hours * 3_600_000,
        to_ms: NOW,
        group_by,
        bucket,
        filter: UsageFilter { route: route.map(str::to_owned), ..UsageFilter::default() },
    };
    let queries = [
        ("24 h by team, hourly", q(24, vec![Dimension::Team], Some(Bucket::Hour), None)),
        ("30 d by model, daily", q(30 * 24, vec![Dimension::Model], Some(Bucket::Day), None)),
        ("7 d by tag:env, daily", q(7 * 24, vec![Dimension::Tag("env".into())], Some(Bucket::Day), None)),
        (
            "7 d route=route-3 by model, hourly",
            q(7 * 24, vec![Dimension::Model], Some(Bucket::Hour), Some("route-3")),
        ),
        (
            "30 d by team, product (no bucket)",
            q(30 * 24, vec![Dimension::Team, Dimension::Product], None, None),
        ),
        (
            "24 h by key, route, model (no bucket)",
            q(24, vec![Dimension::Key, Dimension::Route, Dimension::Model], None, None),
        ),
    ];
    println!("| query | rows | p50 ms | max ms |\n|---|---|---|---|");
    for (name, query) in &queries {
        let mut times: Vec<Duration> = Vec::new();
        let mut result_rows = 0;
        for _ in 0..10 {
            let started = Instant::now();
            let report = store.usage(query).await.unwrap();
            times.push(started.elapsed());
            result_rows = report.rows.len();
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("| {name} | {result_rows} | {:.1} | {:.1} |", ms(times[4]), ms(times[9]));
    }
    store.close().await;
}
