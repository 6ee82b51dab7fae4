//! The test harness: a fresh database per test on either backend (a SQLite file in the temp dir,
//! or a Postgres schema of its own), its spill file, records to store, and a macro that runs one
//! test body against both backends.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gardefou_core::config::{OnFull, StoreConfig};
use gardefou_store::{Attempt, InferenceRecord, LogFilter, Store};
use sqlx::{Connection, Executor};

/// Runs each listed body (an `async fn(TestDb)` in the parent module) once per backend, as
/// `sqlite::<name>` and `postgres::<name>`, with the given tokio test attribute.
macro_rules! on_both_backends {
    ($($(#[$test:meta])+ fn $name:ident;)*) => {
        mod sqlite {
            $( $(#[$test])+ async fn $name() {
                crate::support::run(crate::support::Kind::Sqlite, stringify!($name), super::$name).await
            } )*
        }
        mod postgres {
            $( $(#[$test])+ async fn $name() {
                crate::support::run(crate::support::Kind::Postgres, stringify!($name), super::$name).await
            } )*
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Builds the database of `kind` and runs `body` on it; on Postgres without a server, skips
/// (fails when `CI` is set).
pub async fn run<F, Fut>(kind: Kind, name: &str, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if let Some(db) = TestDb::new(kind, name).await {
        body(db).await;
    }
}

/// The Postgres server the tests use: `GARDEFOU_TEST_POSTGRES`, or a local trust-auth one.
pub fn postgres_base_url() -> String {
    std::env::var("GARDEFOU_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// One test's database and spill file, removed (the schema dropped) on drop.
pub struct TestDb {
    pub kind: Kind,
    /// The URL handed to `Store::connect`.
    pub url: String,
    pub spill_path: PathBuf,
    sqlite_path: Option<PathBuf>,
    pg_schema: Option<String>,
}

fn unique(name: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let short: String = name.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    format!("{short}_{}_{}_{nanos}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)).to_lowercase()
}

impl TestDb {
    pub async fn new(kind: Kind, name: &str) -> Option<TestDb> {
        let id = unique(name);
        let spill_path = std::env::temp_dir().join(format!("gardefou-spill-{id}.jsonl"));
        match kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("gardefou-store-{id}.db"));
                Some(TestDb {
                    kind,
                    url: format!("sqlite://{}", path.display()),
                    spill_path,
                    sqlite_path: Some(path),
                    pg_schema: None,
                })
            }
            Kind::Postgres => {
                let base = postgres_base_url();
                let connect =
                    tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&base));
                let mut conn = match connect.await {
                    Ok(Ok(conn)) => conn,
                    failed => {
                        let why = match failed {
                            Ok(Err(e)) => e.to_string(),
                            _ => "timed out".to_owned(),
                        };
                        if std::env::var_os("CI").is_some() {
                            panic!("no Postgres at {base} ({why}) and CI is set");
                        }
                        println!("skipped: no Postgres at {base} ({why})");
                        return None;
                    }
                };
                let schema = format!("gardefou_test_{id}");
                conn.execute(&*format!("CREATE SCHEMA {schema}")).await.unwrap();
                let _ = conn.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                Some(TestDb {
                    kind,
                    url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    spill_path,
                    sqlite_path: None,
                    pg_schema: Some(schema),
                })
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.unwrap()
    }

    /// A writer config with this test's spill file (1 MiB) and no retention.
    pub fn config(&self, queue_capacity: usize, batch_size: usize, on_full: OnFull) -> StoreConfig {
        StoreConfig {
            database_url: self.url.clone(),
            queue_capacity,
            batch_size,
            flush_interval: Duration::from_millis(20),
            on_full,
            retention: None,
            retention_batch: 5000,
            usage_retention: None,
            spill_path: self.spill_path.clone(),
            spill_max_bytes: 1 << 20,
        }
    }

    /// Runs `sql` on a connection of its own (the test's schema on Postgres).
    pub async fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                conn.execute(sql).await.unwrap();
                conn.close().await.unwrap();
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                conn.execute(sql).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// Runs `sql` and returns the database's error message if it fails.
    pub async fn try_exec(&self, sql: &str) -> Result<(), String> {
        let result = match self.kind {
            Kind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                conn.execute(sql).await.map(drop)
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                conn.execute(sql).await.map(drop)
            }
        };
        result.map_err(|e| e.to_string())
    }

    /// The first column of the first row of `sql`, an integer (e.g. a `COUNT(*)`).
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self.kind {
            Kind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                let v = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                v
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let v = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                v
            }
        }
    }

    /// Makes every insert fail: SQLite drops the table, Postgres renames it away.
    pub async fn break_table(&self) {
        match self.kind {
            Kind::Sqlite => self.exec("DROP TABLE inferences").await,
            Kind::Postgres => self.exec("ALTER TABLE inferences RENAME TO inferences_away").await,
        }
    }

    /// Undoes `break_table`: SQLite re-runs the migrations, Postgres renames the table back.
    pub async fn repair_table(&self) {
        match self.kind {
            Kind::Sqlite => {
                self.exec("DELETE FROM _sqlx_migrations").await;
                self.store().await.close().await;
            }
            Kind::Postgres => self.exec("ALTER TABLE inferences_away RENAME TO inferences").await,
        }
    }

    pub fn spill_lines(&self) -> usize {
        std::fs::read_to_string(&self.spill_path).map_or(0, |s| s.lines().count())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.spill_path);
        if let Some(path) = &self.sqlite_path {
            for suffix in ["", "-wal", "-shm"] {
                let mut path = path.clone().into_os_string();
                path.push(suffix);
                let _ = std::fs::remove_file(path);
            }
        }
        if let Some(schema) = self.pg_schema.take() {
            // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
            let base = postgres_base_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let _ = conn.execute(&*format!("DROP SCHEMA {schema} CASCADE")).await;
                        let _ = conn.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Polls `done` every 10 ms for at most 30 s.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

pub async fn count(store: &Store) -> usize {
    store.list_inferences(&LogFilter { limit: u32::MAX, ..LogFilter::default() }).await.unwrap().len()
}

pub fn minimal(i: u64, created_at_ms: i64) -> InferenceRecord {
    InferenceRecord {
        id: format!("0190a000-0000-7000-8000-{i:012}"),
        created_at_ms,
        request_id: format!("req-{i}"),
        endpoint: "chat".into(),
        route: None,
        model: None,
        provider: None,
        key_id: None,
        team: None,
        product: None,
        end_user: None,
        status: 200,
        error_kind: None,
        error_message: None,
        stream: false,
        input_tokens: None,
        cached_input_tokens: None,
        output_tokens: None,
        reasoning_tokens: None,
        tokens_estimated: false,
        cost_usd: None,
        latency_ms: 12.5,
        ttft_ms: None,
        finish_reason: None,
        attempts: Vec::new(),
        tags: BTreeMap::new(),
        bodies: None,
    }
}

pub fn full(i: u64) -> InferenceRecord {
    InferenceRecord {
        endpoint: "embeddings".into(),
        route: Some("smart".into()),
        model: Some("gpt-4o-mini".into()),
        provider: Some("openai".into()),
        key_id: Some("key_01".into()),
        team: Some("search".into()),
        product: Some("assistant".into()),
        end_user: Some("user-42".into()),
        status: 502,
        error_kind: Some("provider_unavailable".into()),
        error_message: Some("upstream said \"no\" — twice".into()),
        stream: true,
        input_tokens: Some(1200),
        cached_input_tokens: Some(1024),
        output_tokens: Some(345),
        reasoning_tokens: Some(64),
        tokens_estimated: true,
        cost_usd: Some(0.000_123_45),
        latency_ms: 842.25,
        ttft_ms: Some(120.5),
        finish_reason: Some("length".into()),
        attempts: vec![
            Attempt {
                model: "gpt-4o".into(),
                provider: "azure".into(),
                status: Some(429),
                error_kind: Some("rate_limited".into()),
                error: Some("slow down".into()),
                latency_ms: 30.0,
            },
            Attempt {
                model: "gpt-4o-mini".into(),
                provider: "openai".into(),
                status: None,
                error_kind: Some("timeout".into()),
                error: None,
                latency_ms: 800.75,
            },
        ],
        tags: BTreeMap::from([("env".into(), "prod".into()), ("feature".into(), "summary".into())]),
        ..minimal(i, 1_720_000_000_000)
    }
}
