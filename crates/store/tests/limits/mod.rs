//! Limit counters on both backends: `limits::local::…` in-process, `limits::redis::…` on the
//! server at `GARDEFOU_TEST_REDIS` under a key prefix of their own (skipped without a server,
//! failed when `CI` is set). All-or-nothing reservations, zero-amount checks, racing replicas,
//! settles, window boundaries, seeding and expiry; then Redis down, hung-up or coming back.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gardefou_store::limits::{Charge, Exceeded, Level, LimitError, Limiter, OnBackendError, Window};

/// Runs each listed body (an `async fn(Counters)`) once per backend, as `local::<name>` and
/// `redis::<name>`, with the given tokio test attribute.
macro_rules! on_both_limiters {
    ($($(#[$test:meta])+ fn $name:ident;)*) => {
        mod local {
            $( $(#[$test])+ async fn $name() {
                super::$name(super::Counters::local()).await
            } )*
        }
        mod redis {
            $( $(#[$test])+ async fn $name() {
                if let Some(counters) = super::Counters::redis(stringify!($name)) {
                    super::$name(counters).await
                }
            } )*
        }
    };
}

on_both_limiters! {
    #[tokio::test] fn reserve_adds_nothing_when_a_later_charge_is_exhausted;
    #[tokio::test] fn zero_amount_fits_below_the_limit_fails_at_it_and_counts_nothing;
    #[tokio::test] fn charges_on_the_same_counter_count_together;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] fn five_hundred_racing_reservations_admit_exactly_the_limit;
    #[tokio::test] fn negative_adjust_settles_in_the_window_the_reservation_was_made;
    #[tokio::test] fn adjust_of_a_window_gone_past_its_margin_is_dropped;
    #[tokio::test] fn minute_counters_restart_at_the_minute_boundary;
    #[tokio::test] fn day_counters_restart_at_utc_midnight;
    #[tokio::test] fn month_counters_restart_on_new_year_and_after_a_leap_february;
    #[tokio::test] fn seed_sets_a_missing_counter_and_never_overwrites_a_running_one;
}

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z.
const NEW_YEAR_2025: i64 = 1_735_689_600_000;
/// 2024-02-01T00:00:00Z and 2024-03-01T00:00:00Z.
const FEB_2024: i64 = 1_706_745_600_000;
const MAR_2024: i64 = 1_709_251_200_000;
/// 2024-12-01T00:00:00Z.
const DEC_2024: i64 = 1_733_011_200_000;
/// Mid-minute, mid-day, mid-month: 2025-01-15T12:00:30Z.
const T: i64 = NEW_YEAR_2025 + 14 * DAY + 12 * 3_600_000 + 30_000;

fn charge(key: &str, window: Window, limit: i64, amount: i64) -> Charge {
    Charge { key: key.to_owned(), window, limit, amount }
}

fn exceeded(result: Result<Vec<Level>, LimitError>) -> Exceeded {
    match result {
        Err(LimitError::Exceeded(e)) => e,
        other => panic!("expected a reached limit, got {other:?}"),
    }
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Skips (returns `None`) or, under CI, fails the test for a missing dependency.
fn missing<T>(what: &str) -> Option<T> {
    assert!(!ci(), "{what} and CI is set");
    println!("skipped: {what}");
    None
}

fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let short: String = name.chars().filter(char::is_ascii_alphanumeric).take(16).collect();
    format!("gardefou-test:{short}:{}:{}:{nanos}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

fn raw(url: &str) -> ::redis::RedisResult<::redis::Connection> {
    ::redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))
}

/// One test's counters: a local limiter, or Redis limiters under a fresh prefix whose keys are
/// deleted on drop.
pub struct Counters {
    limiter: Limiter,
    redis: Option<(String, String)>,
}

impl Counters {
    fn local() -> Counters {
        Counters { limiter: Limiter::local(), redis: None }
    }

    fn redis(name: &str) -> Option<Counters> {
        let url =
            std::env::var("GARDEFOU_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        if let Err(e) = raw(&url).and_then(|mut c| ::redis::cmd("PING").query::<String>(&mut c)) {
            return missing(&format!("no Redis at GARDEFOU_TEST_REDIS ({e})"));
        }
        let prefix = unique(name);
        // Fail closed: a Redis test must never pass on the local fallback.
        let limiter = Limiter::redis(&url, &prefix, OnBackendError::FailClosed).unwrap();
        Some(Counters { limiter, redis: Some((url, prefix)) })
    }

    fn limiter(&self) -> Limiter {
        self.limiter.clone()
    }

    /// Another replica's limiter: on Redis a separate connection sharing the prefix.
    fn replica(&self) -> Limiter {
        match &self.redis {
            Some((url, prefix)) => Limiter::redis(url, prefix, OnBackendError::FailClosed).unwrap(),
            None => self.limiter.clone(),
        }
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        let Some((url, prefix)) = &self.redis else { return };
        if let Ok(mut conn) = raw(url) {
            let keys: Vec<String> =
                ::redis::cmd("KEYS").arg(format!("{prefix}:*")).query(&mut conn).unwrap_or_default();
            if !keys.is_empty() {
                let _ = ::redis::cmd("DEL").arg(keys).query::<i64>(&mut conn);
            }
        }
    }
}

async fn reserve_adds_nothing_when_a_later_charge_is_exhausted(counters: Counters) {
    let limiter = counters.limiter();
    let team = || charge("budget:team:search", Window::Day, 1_000, 300);
    limiter.reserve(&[charge("budget:key:k1", Window::Day, 10_000, 800)], T).await.unwrap();
    limiter.reserve(&[team(), team(), team()], T).await.unwrap();

    let err =
        exceeded(limiter.reserve(&[charge("budget:key:k1", Window::Day, 10_000, 300), team()], T).await);
    assert_eq!(err, Exceeded { index: 1, used: 900, limit: 1_000, reset_ms: Window::Day.end_ms(T) });
    assert_eq!(limiter.used("budget:key:k1", Window::Day, T).await.unwrap(), 800);
    assert_eq!(limiter.used("budget:team:search", Window::Day, T).await.unwrap(), 900);

    // What fits still passes, and counts on every charge.
    let levels = limiter
        .reserve(
            &[
                charge("budget:key:k1", Window::Day, 10_000, 100),
                charge("budget:team:search", Window::Day, 1_000, 100),
            ],
            T,
        )
        .await
        .unwrap();
    assert_eq!(levels.iter().map(|l| l.used).collect::<Vec<_>>(), [900, 1_000]);
}

async fn zero_amount_fits_below_the_limit_fails_at_it_and_counts_nothing(counters: Counters) {
    let limiter = counters.limiter();
    let check = || charge("budget:product:p", Window::Month, 5, 0);
    let levels = limiter.reserve(&[check()], T).await.unwrap();
    assert_eq!(levels[0].used, 0);
    limiter.reserve(&[charge("budget:product:p", Window::Month, 5, 4)], T).await.unwrap();
    assert_eq!(limiter.reserve(&[check()], T).await.unwrap()[0].used, 4);

    limiter.adjust("budget:product:p", Window::Month, Window::Month.start_ms(T), 1, T).await.unwrap();
    let err = exceeded(limiter.reserve(&[check()], T).await);
    assert_eq!((err.index, err.used, err.limit), (0, 5, 5));
    assert_eq!(err.reset_ms, NEW_YEAR_2025 + 31 * DAY);
    assert_eq!(limiter.used("budget:product:p", Window::Month, T).await.unwrap(), 5);
}

async fn charges_on_the_same_counter_count_together(counters: Counters) {
    let limiter = counters.limiter();
    let one = || charge("rpm:key:k", Window::Minute, 3, 2);
    let err = exceeded(limiter.reserve(&[one(), one()], T).await);
    assert_eq!((err.index, err.used), (1, 2));
    assert_eq!(limiter.used("rpm:key:k", Window::Minute, T).await.unwrap(), 0);
    // The same key in another window is another counter.
    let levels = limiter.reserve(&[one(), charge("rpm:key:k", Window::Day, 3, 2)], T).await.unwrap();
    assert_eq!(levels.iter().map(|l| l.used).collect::<Vec<_>>(), [2, 2]);
}

async fn five_hundred_racing_reservations_admit_exactly_the_limit(counters: Counters) {
    let replicas = [counters.limiter(), counters.replica()];
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let limiter = replicas[i % 2].clone();
            tokio::spawn(async move {
                limiter.reserve(&[charge("rpm:route:race", Window::Minute, 50, 1)], T).await
            })
        })
        .collect();
    let (mut admitted, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => admitted += 1,
            Err(LimitError::Exceeded(e)) if e.used == 50 => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((admitted, refused), (50, 450));
    assert_eq!(replicas[1].used("rpm:route:race", Window::Minute, T).await.unwrap(), 50);
}

async fn negative_adjust_settles_in_the_window_the_reservation_was_made(counters: Counters) {
    let limiter = counters.limiter();
    let reserved_at = NEW_YEAR_2025 - 1; // the last millisecond of 2024
    let estimate = charge("budget:team:t", Window::Day, 1_000_000_000, 400_000_000);
    let level = limiter.reserve(&[estimate], reserved_at).await.unwrap().remove(0);
    assert_eq!(level.window_start_ms, NEW_YEAR_2025 - DAY);
    assert_eq!(level.reset_ms, NEW_YEAR_2025);

    // The response ends in the next day and costs 0.15 USD: the settle lands on the old day.
    let settled_at = NEW_YEAR_2025 + 5_000;
    limiter
        .adjust("budget:team:t", Window::Day, level.window_start_ms, 150_000_000 - 400_000_000, settled_at)
        .await
        .unwrap();
    assert_eq!(limiter.used("budget:team:t", Window::Day, reserved_at).await.unwrap(), 150_000_000);
    assert_eq!(limiter.used("budget:team:t", Window::Day, settled_at).await.unwrap(), 0);
    // A zero delta is a no-op.
    limiter.adjust("budget:team:t", Window::Day, level.window_start_ms, 0, settled_at).await.unwrap();
    assert_eq!(limiter.used("budget:team:t", Window::Day, reserved_at).await.unwrap(), 150_000_000);
}

async fn adjust_of_a_window_gone_past_its_margin_is_dropped(counters: Counters) {
    let limiter = counters.limiter();
    let start = Window::Minute.start_ms(T);
    limiter.adjust("tpm:key:k", Window::Minute, start, 500, T + 2 * DAY).await.unwrap();
    assert_eq!(limiter.used("tpm:key:k", Window::Minute, T).await.unwrap(), 0);
    // Within the margin it still lands.
    limiter.adjust("tpm:key:k", Window::Minute, start, 500, T + 10 * MINUTE).await.unwrap();
    assert_eq!(limiter.used("tpm:key:k", Window::Minute, T).await.unwrap(), 500);
}

async fn minute_counters_restart_at_the_minute_boundary(counters: Counters) {
    let limiter = counters.limiter();
    let rpm = || charge("rpm:key:k", Window::Minute, 2, 1);
    let last = NEW_YEAR_2025 + 7 * MINUTE - 1;
    limiter.reserve(&[rpm()], last - 59_999).await.unwrap();
    limiter.reserve(&[rpm()], last).await.unwrap();
    assert_eq!(exceeded(limiter.reserve(&[rpm()], last).await).reset_ms, last + 1);

    let level = limiter.reserve(&[rpm()], last + 1).await.unwrap().remove(0);
    assert_eq!((level.used, level.window_start_ms, level.reset_ms), (1, last + 1, last + 1 + MINUTE));
}

async fn day_counters_restart_at_utc_midnight(counters: Counters) {
    let limiter = counters.limiter();
    let day = || charge("budget:key:k", Window::Day, 10, 10);
    limiter.reserve(&[day()], NEW_YEAR_2025 + DAY - 1).await.unwrap();
    exceeded(limiter.reserve(&[charge("budget:key:k", Window::Day, 10, 0)], NEW_YEAR_2025).await);
    assert_eq!(
        limiter.reserve(&[day()], NEW_YEAR_2025 + DAY).await.unwrap()[0].reset_ms,
        NEW_YEAR_2025 + 2 * DAY
    );
}

async fn month_counters_restart_on_new_year_and_after_a_leap_february(counters: Counters) {
    let limiter = counters.limiter();
    let month = || charge("budget:team:t", Window::Month, 7, 7);

    let level = limiter.reserve(&[month()], NEW_YEAR_2025 - 1).await.unwrap().remove(0);
    assert_eq!((level.window_start_ms, level.reset_ms), (DEC_2024, NEW_YEAR_2025));
    exceeded(limiter.reserve(&[month()], DEC_2024).await);
    let level = limiter.reserve(&[month()], NEW_YEAR_2025).await.unwrap().remove(0);
    assert_eq!((level.used, level.reset_ms), (7, NEW_YEAR_2025 + 31 * DAY));

    // 2024-02-29 is still February; 2024-03-01 starts March.
    let leap_day = MAR_2024 - DAY + 12 * 3_600_000;
    let level = limiter.reserve(&[month()], leap_day).await.unwrap().remove(0);
    assert_eq!((level.window_start_ms, level.reset_ms), (FEB_2024, MAR_2024));
    exceeded(limiter.reserve(&[month()], MAR_2024 - 1).await);
    assert_eq!(limiter.reserve(&[month()], MAR_2024).await.unwrap()[0].window_start_ms, MAR_2024);
}

async fn seed_sets_a_missing_counter_and_never_overwrites_a_running_one(counters: Counters) {
    let (first, second) = (counters.limiter(), counters.replica());
    first.seed("budget:team:t", Window::Month, T, 1_250).await.unwrap();
    assert_eq!(second.used("budget:team:t", Window::Month, T).await.unwrap(), 1_250);

    first.reserve(&[charge("budget:team:t", Window::Month, 10_000, 50)], T).await.unwrap();
    // A replica starting later seeds from (older) usage tables: the running count stays.
    second.seed("budget:team:t", Window::Month, T + 1, 900).await.unwrap();
    assert_eq!(first.used("budget:team:t", Window::Month, T).await.unwrap(), 1_300);
    // Next month starts from its own seed.
    second.seed("budget:team:t", Window::Month, NEW_YEAR_2025 + 31 * DAY, 3).await.unwrap();
    assert_eq!(first.used("budget:team:t", Window::Month, NEW_YEAR_2025 + 40 * DAY).await.unwrap(), 3);
}

// Redis only.

#[tokio::test]
async fn redis_counters_expire_with_their_window_plus_a_margin() {
    let Some(counters) = Counters::redis("expiry") else { return };
    let (url, prefix) = counters.redis.clone().unwrap();
    let limiter = counters.limiter();
    let now = T;
    limiter
        .reserve(
            &[charge("rpm:key:k", Window::Minute, 10, 1), charge("budget:team:t", Window::Month, 10, 1)],
            now,
        )
        .await
        .unwrap();
    limiter.seed("budget:team:s", Window::Day, now, 5).await.unwrap();
    limiter.adjust("tpm:key:k", Window::Minute, Window::Minute.start_ms(now), 7, now).await.unwrap();

    let mut conn = raw(&url).unwrap();
    let mut pttl = |key: &str, window: Window| -> i64 {
        let name = format!("{prefix}:{key}:{}:{}", window.as_str(), window.start_ms(now));
        ::redis::cmd("PTTL").arg(name).query(&mut conn).unwrap()
    };
    // Until the window ends (30 s, 17 days, 12 h away) plus an hour or a day, give or take the test.
    let hour = 3_600_000;
    let minute_ttl = pttl("rpm:key:k", Window::Minute);
    assert!((hour..=hour + 30_000).contains(&minute_ttl), "{minute_ttl}");
    assert!((hour..=hour + 30_000).contains(&pttl("tpm:key:k", Window::Minute)));
    let month_ttl = pttl("budget:team:t", Window::Month);
    assert!((DAY..=NEW_YEAR_2025 + 32 * DAY - now).contains(&month_ttl), "{month_ttl}");
    let day_ttl = pttl("budget:team:s", Window::Day);
    assert!((DAY..=DAY + DAY / 2).contains(&day_ttl), "{day_ttl}");
}

#[tokio::test]
async fn unreachable_redis_with_fail_open_counts_locally_and_counts_the_errors() {
    let limiter = Limiter::redis("redis://127.0.0.1:1", "t", OnBackendError::FailOpen).unwrap();
    assert_eq!(limiter.backend_name(), "redis");
    assert!(limiter.backend_healthy());
    let rpm = || charge("rpm:key:k", Window::Minute, 2, 1);
    let started = Instant::now();
    assert_eq!(limiter.reserve(&[rpm()], T).await.unwrap()[0].used, 1);
    assert!(!limiter.backend_healthy());
    assert_eq!(limiter.reserve(&[rpm()], T).await.unwrap()[0].used, 2);
    assert_eq!(exceeded(limiter.reserve(&[rpm()], T).await).used, 2);
    limiter.adjust("rpm:key:k", Window::Minute, Window::Minute.start_ms(T), -1, T).await.unwrap();
    limiter.seed("budget:team:t", Window::Day, T, 4).await.unwrap();
    assert_eq!(limiter.used("rpm:key:k", Window::Minute, T).await.unwrap(), 1);
    assert_eq!(limiter.used("budget:team:t", Window::Day, T).await.unwrap(), 4);
    assert_eq!(limiter.backend_errors(), 7);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn unreachable_redis_with_fail_closed_is_unavailable() {
    let limiter = Limiter::redis("redis://127.0.0.1:1", "t", OnBackendError::FailClosed).unwrap();
    let rpm = || charge("rpm:key:k", Window::Minute, 2, 1);
    for _ in 0..2 {
        let err = limiter.reserve(&[rpm()], T).await.unwrap_err();
        assert!(matches!(err, LimitError::Unavailable(_)), "{err:?}");
        assert_eq!(err.kind(), "limit_backend_unavailable");
    }
    let err = limiter.used("rpm:key:k", Window::Minute, T).await.unwrap_err();
    assert!(matches!(err, LimitError::Unavailable(_)), "{err:?}");
    assert!(!limiter.backend_healthy());
    assert_eq!(limiter.backend_errors(), 3);
}

#[tokio::test]
async fn redis_url_that_does_not_parse_is_refused_without_echoing_its_password() {
    let err = Limiter::redis("redis://user:hunter2@[::1", "t", OnBackendError::FailOpen).unwrap_err();
    assert_eq!(err.kind(), "invalid_redis_url");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// A redis-server of this test's own on a free port, killed on drop.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = OwnRedis { port, child: None };
        if let Err(e) = server.spawn() {
            return missing(&format!("cannot start redis-server ({e})"));
        }
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let started = Instant::now();
        while raw(&self.url()).and_then(|mut c| ::redis::cmd("PING").query::<String>(&mut c)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`STOP`) or thaws (`CONT`) the server: connections stay open, nothing answers.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    }

    fn get(&self, key: &str) -> Option<i64> {
        ::redis::cmd("GET").arg(key).query(&mut raw(&self.url()).unwrap()).unwrap()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_stops_and_comes_back_is_used_again() {
    let Some(mut server) = OwnRedis::start() else { return };
    let open = Limiter::redis(&server.url(), "t", OnBackendError::FailOpen).unwrap();
    let closed = Limiter::redis(&server.url(), "t", OnBackendError::FailClosed).unwrap();
    let rpm = |amount| [charge("rpm:route:r", Window::Minute, 100, amount)];
    let counter = format!("t:rpm:route:r:minute:{}", Window::Minute.start_ms(T));

    open.reserve(&rpm(1), T).await.unwrap();
    closed.reserve(&rpm(1), T).await.unwrap();
    assert_eq!(server.get(&counter), Some(2));
    assert!(open.backend_healthy() && closed.backend_healthy());

    server.stop();
    // Fail open counts in this replica only; fail closed refuses.
    assert_eq!(open.reserve(&rpm(1), T).await.unwrap()[0].used, 1);
    assert!(matches!(closed.reserve(&rpm(1), T).await, Err(LimitError::Unavailable(_))));
    assert!(!open.backend_healthy() && !closed.backend_healthy());
    assert!(open.backend_errors() >= 1 && closed.backend_errors() >= 1);

    // A fresh server (the counters were in memory): both limiters come back to it.
    server.spawn().unwrap();
    let started = Instant::now();
    for limiter in [&open, &closed] {
        loop {
            let answer = limiter.reserve(&rpm(1), T).await;
            if limiter.backend_healthy() {
                answer.unwrap();
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "redis not used again: {answer:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(server.get(&counter), Some(2));
    assert_eq!(closed.used("rpm:route:r", Window::Minute, T).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_redis_delays_a_call_by_the_command_timeout_at_most() {
    let Some(server) = OwnRedis::start() else { return };
    let open = Limiter::redis(&server.url(), "t", OnBackendError::FailOpen).unwrap();
    let closed = Limiter::redis(&server.url(), "t", OnBackendError::FailClosed).unwrap();
    let rpm = || [charge("rpm:route:r", Window::Minute, 100, 1)];
    open.reserve(&rpm(), T).await.unwrap();
    closed.reserve(&rpm(), T).await.unwrap();

    server.signal("STOP");
    let started = Instant::now();
    let one = rpm();
    let (served, refused) = tokio::join!(open.reserve(&one, T), closed.reserve(&one, T));
    let waited = started.elapsed();
    server.signal("CONT");
    assert_eq!(served.unwrap()[0].used, 1, "counted locally");
    assert!(matches!(refused, Err(LimitError::Unavailable(_))), "{refused:?}");
    assert!(waited < Duration::from_millis(900), "{waited:?}");
    // Then calls skip Redis for a moment instead of each waiting.
    let started = Instant::now();
    assert!(closed.reserve(&rpm(), T).await.is_err());
    assert!(started.elapsed() < Duration::from_millis(100));

    let started = Instant::now();
    while !(closed.reserve(&rpm(), T).await.is_ok() && closed.backend_healthy()) {
        assert!(started.elapsed() < Duration::from_secs(15), "redis not used again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `Limiter` is shared by every request task.
#[allow(dead_code)]
fn limiter_is_send_sync_and_clone() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Limiter>();
}
