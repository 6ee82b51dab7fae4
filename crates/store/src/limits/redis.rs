//! The shared limit counters in Redis: a reservation is one Lua script (EVALSHA, reloaded after
//! NOSCRIPT), every counter an integer key `{prefix}:{key}:{window}:{window_start_ms}` that
//! expires with its window plus a margin. Each call is bounded by `COMMAND_TIMEOUT`; after a
//! failure Redis rests for `REST_AFTER_FAILURE` (calls go straight to the policy), then is tried
//! again, the connection manager having reconnected meanwhile.
//!
//! Counters expire relative to Redis's own clock (`PEXPIRE`), so replicas' clock skew against the
//! server does not matter. Lua numbers are doubles: amounts and limits stay exact below 2^53
//! (about 9 million USD in nano-USD). A call that timed out may still have been applied by Redis,
//! which can only over-count. Counts made locally during an outage stay local.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::local::LocalCounters;
use super::{time_to_live_ms, Charge, Exceeded, Level, LimitError, OnBackendError, Window};

/// The longest a call waits for Redis, connecting included, before the policy applies.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, calls skip Redis this long instead of each waiting for it.
const REST_AFTER_FAILURE: Duration = Duration::from_secs(1);

pub(crate) struct RedisCounters {
    client: redis::Client,
    /// Made on first use: the connection manager needs the runtime.
    connection: OnceCell<ConnectionManager>,
    /// `"{prefix}:"`, or empty.
    prefix: String,
    on_error: OnBackendError,
    /// Used while Redis does not answer, with `FailOpen`.
    fallback: LocalCounters,
    errors: AtomicU64,
    healthy: AtomicBool,
    resting_until: Mutex<Option<Instant>>,
    reserve: Script,
}

impl RedisCounters {
    pub(crate) fn new(url: &str, prefix: &str, on_error: OnBackendError) -> Result<Self, LimitError> {
        let client = redis::Client::open(url).map_err(|e| LimitError::InvalidUrl(e.to_string()))?;
        Ok(RedisCounters {
            client,
            connection: OnceCell::new(),
            prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}:") },
            on_error,
            fallback: LocalCounters::default(),
            errors: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            resting_until: Mutex::new(None),
            reserve: Script::new(include_str!("reserve.lua")),
        })
    }

    fn key(&self, key: &str, window: Window, window_start_ms: i64) -> String {
        format!("{}{key}:{}:{window_start_ms}", self.prefix, window.as_str())
    }

    pub(crate) async fn reserve(&self, charges: &[Charge], now_ms: i64) -> Result<Vec<Level>, LimitError> {
        let mut invocation = self.reserve.prepare_invoke();
        for charge in charges {
            let start = charge.window.start_ms(now_ms);
            invocation
                .key(self.key(&charge.key, charge.window, start))
                .arg(charge.limit)
                .arg(charge.amount)
                .arg(time_to_live_ms(charge.window, start, now_ms).max(1));
        }
        let reply =
            self.call(|mut conn| async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await }).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(why) => return self.fallback(why)?.reserve(charges, now_ms),
        };
        match reply.as_slice() {
            [1, used @ ..] if used.len() == charges.len() => Ok(charges
                .iter()
                .zip(used)
                .map(|(charge, &used)| Level {
                    key: charge.key.clone(),
                    used,
                    limit: charge.limit,
                    window_start_ms: charge.window.start_ms(now_ms),
                    reset_ms: charge.window.end_ms(now_ms),
                })
                .collect()),
            &[0, position, used] if (1..=charges.len() as i64).contains(&position) => {
                let index = (position - 1) as usize;
                let charge = &charges[index];
                Err(LimitError::Exceeded(Exceeded {
                    index,
                    used,
                    limit: charge.limit,
                    reset_ms: charge.window.end_ms(now_ms),
                }))
            }
            _ => {
                let why = format!("unexpected reply to the reservation script: {reply:?}");
                self.failed(&why);
                self.fallback(why)?.reserve(charges, now_ms)
            }
        }
    }

    pub(crate) async fn adjust(
        &self,
        key: &str,
        window: Window,
        window_start_ms: i64,
        delta: i64,
        now_ms: i64,
    ) -> Result<(), LimitError> {
        let counter = self.key(key, window, window_start_ms);
        let ttl = time_to_live_ms(window, window_start_ms, now_ms);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCRBY")
            .arg(&counter)
            .arg(delta)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&counter)
            .arg(ttl)
            .ignore();
        match self.call(|mut conn| async move { pipe.query_async::<()>(&mut conn).await }).await {
            Ok(()) => Ok(()),
            Err(why) => {
                self.fallback(why)?.adjust(key, window, window_start_ms, delta, now_ms);
                Ok(())
            }
        }
    }

    pub(crate) async fn seed(
        &self,
        key: &str,
        window: Window,
        now_ms: i64,
        value: i64,
    ) -> Result<(), LimitError> {
        let start = window.start_ms(now_ms);
        let mut set = redis::cmd("SET");
        set.arg(self.key(key, window, start))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(time_to_live_ms(window, start, now_ms).max(1));
        match self.call(|mut conn| async move { set.query_async::<redis::Value>(&mut conn).await }).await {
            Ok(_) => Ok(()),
            Err(why) => {
                self.fallback(why)?.seed(key, window, now_ms, value);
                Ok(())
            }
        }
    }

    pub(crate) async fn used(&self, key: &str, window: Window, now_ms: i64) -> Result<i64, LimitError> {
        let mut get = redis::cmd("GET");
        get.arg(self.key(key, window, window.start_ms(now_ms)));
        match self.call(|mut conn| async move { get.query_async::<Option<i64>>(&mut conn).await }).await {
            Ok(used) => Ok(used.unwrap_or(0)),
            Err(why) => Ok(self.fallback(why)?.used(key, window, now_ms)),
        }
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub(crate) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Runs `op` on the connection within `COMMAND_TIMEOUT`, unless Redis is resting after a
    /// failure; any failure is counted and described.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let resting = *self.resting_until.lock().unwrap_or_else(PoisonError::into_inner);
        if resting.is_some_and(|until| Instant::now() < until) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return Err("redis failed a moment ago".to_owned());
        }
        let connection = self
            .connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(REST_AFTER_FAILURE);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await;
        let result = match connection {
            Ok(conn) => match tokio::time::timeout(COMMAND_TIMEOUT, op(conn.clone())).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {} ms", COMMAND_TIMEOUT.as_millis())),
            },
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(value) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        backend = "redis",
                        failed_calls = self.errors(),
                        "limit counters answer again"
                    );
                }
                Ok(value)
            }
            Err(why) => {
                self.failed(&why);
                Err(why)
            }
        }
    }

    /// Counts a failure, rests Redis, and warns once per run of failures.
    fn failed(&self, why: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.resting_until.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + REST_AFTER_FAILURE);
        if self.healthy.swap(false, Ordering::Relaxed) {
            match self.on_error {
                OnBackendError::FailOpen => tracing::warn!(
                    backend = "redis",
                    error = why,
                    "limit counters do not answer; counting in this replica only until they do"
                ),
                OnBackendError::FailClosed => tracing::warn!(
                    backend = "redis",
                    error = why,
                    "limit counters do not answer; refusing limited requests until they do"
                ),
            }
        }
    }

    /// The policy for a call Redis did not answer: the local counters, or `Unavailable`.
    fn fallback(&self, why: String) -> Result<&LocalCounters, LimitError> {
        match self.on_error {
            OnBackendError::FailOpen => Ok(&self.fallback),
            OnBackendError::FailClosed => Err(LimitError::Unavailable(why)),
        }
    }
}
