//! Raw config → validated `Config`: defaults, ranges, secret references, and every
//! route → model → provider reference, each problem reported at its position in the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::raw::{self, RawConfig};
use super::*;

mod evals;
mod guards;
mod limits;
mod providers;
mod telemetry;

pub(super) fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let cx = Cx { text, file };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.error(span, "", e.message().trim_end().to_owned(), unknown_field_hint(e.message()))
    })?;
    cx.validate(raw)
}

fn unknown_field_hint(message: &str) -> Option<String> {
    message
        .contains("unknown field")
        .then(|| "check the spelling; the README's configuration reference lists every key".to_owned())
}

struct Cx<'a> {
    text: &'a str,
    file: &'a str,
}

type R<T> = Result<T, ConfigError>;

/// The hint for an unknown provider kind.
const PROVIDER_KINDS: &str =
    "one of: openai, openai_compatible, azure, anthropic, gemini, vertex, mock, local";

impl Cx<'_> {
    fn error(&self, span: Range<usize>, path: &str, message: String, hint: Option<String>) -> ConfigError {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError { file: self.file.to_owned(), line, column, path: path.to_owned(), message, hint }
    }

    fn err<T>(&self, span: Range<usize>, path: &str, message: impl Into<String>) -> R<T> {
        Err(self.error(span, path, message.into(), None))
    }

    fn duration(&self, v: &Option<Spanned<String>>, path: &str, default: Duration) -> R<Duration> {
        let Some(v) = v else { return Ok(default) };
        humantime::parse_duration(v.get_ref()).map_err(|e| {
            self.error(
                v.span(),
                path,
                format!("`{}` is not a duration: {e}", v.get_ref()),
                Some("write durations like \"250ms\", \"2s\" or \"1m\"".to_owned()),
            )
        })
    }

    fn count(&self, v: &Option<Spanned<i64>>, path: &str, min: i64, max: i64, default: i64) -> R<i64> {
        let Some(v) = v else { return Ok(default) };
        let n = *v.get_ref();
        if n < min || n > max {
            return self.err(v.span(), path, format!("{n} is out of range ({min}..={max})"));
        }
        Ok(n)
    }

    fn secret(&self, v: &Spanned<String>, path: &str) -> R<SecretRef> {
        SecretRef::parse(v.get_ref()).map_err(|m| {
            self.error(v.span(), path, m, Some("e.g. api_key = \"env:OPENAI_API_KEY\"".to_owned()))
        })
    }

    fn validate(&self, raw: RawConfig) -> R<Config> {
        let server = self.server(&raw.server)?;
        let store = self.store(&raw.store)?;
        let mut providers = BTreeMap::new();
        for (name, p) in &raw.providers {
            let cfg = self.provider(name, p)?;
            providers.insert(name.get_ref().clone(), cfg);
        }
        let mut models = BTreeMap::new();
        for (name, m) in &raw.models {
            let cfg = self.model(name, m, &providers)?;
            models.insert(name.get_ref().clone(), cfg);
        }
        for m in models.values() {
            if let (Some(spec), Some(p)) = (&m.local, providers.get_mut(&m.provider)) {
                p.local_models.insert(m.name.clone(), spec.clone());
            }
        }
        let guards = self.guard_policies(&raw.guards)?;
        let mut routes = BTreeMap::new();
        for (name, r) in &raw.routes {
            let mut cfg = self.route(name, r, &models)?;
            cfg.guards =
                self.route_guards(&format!("routes.{}", name.get_ref()), r.guards.as_ref(), &guards)?;
            cfg.quality = self.quality(name.get_ref(), r.quality.as_ref(), &raw.routes)?;
            cfg.evals = self.scheduled_suites(name.get_ref(), &r.evals)?;
            routes.insert(name.get_ref().clone(), cfg);
        }
        let telemetry = raw.telemetry.as_ref().map(|t| self.telemetry(t)).transpose()?;
        let limits = self.limits(&raw.limits, &raw.store.redis_url, &raw.teams, &raw.budgets, &raw.routes)?;
        Ok(Config {
            server,
            store,
            providers,
            models,
            routes,
            telemetry,
            limits,
            guards,
            revision: revision(self.text),
        })
    }

    fn server(&self, s: &raw::RawServer) -> R<ServerConfig> {
        let listen = match &s.listen {
            Some(l) => {
                if l.get_ref().parse::<std::net::SocketAddr>().is_err() {
                    return Err(self.error(
                        l.span(),
                        "server.listen",
                        format!("`{}` is not an address", l.get_ref()),
                        Some("write it as host:port, e.g. \"127.0.0.1:8080\"".to_owned()),
                    ));
                }
                l.get_ref().clone()
            }
            None => "127.0.0.1:8080".to_owned(),
        };
        let max_body =
            self.count(&s.max_body_bytes, "server.max_body_bytes", 1024, 1 << 30, 4 * 1024 * 1024)?;
        let admin_token = match &s.admin_token {
            Some(t) => Some(self.secret(t, "server.admin_token")?),
            None => None,
        };
        let shutdown_grace =
            self.duration(&s.shutdown_grace, "server.shutdown_grace", Duration::from_secs(30))?;
        let body_read_timeout =
            self.duration(&s.body_read_timeout, "server.body_read_timeout", Duration::from_secs(30))?;
        Ok(ServerConfig {
            listen,
            max_body_bytes: max_body as usize,
            admin_token,
            shutdown_grace,
            body_read_timeout,
            require_keys: s.require_keys.unwrap_or(false),
        })
    }

    fn store(&self, s: &raw::RawStore) -> R<StoreConfig> {
        let database_url = match &s.database_url {
            Some(u) => {
                let url = u.get_ref();
                if !["sqlite:", "postgres://", "postgresql://"].iter().any(|s| url.starts_with(s)) {
                    return Err(self.error(
                        u.span(),
                        "store.database_url",
                        format!("unsupported database URL `{url}`"),
                        Some("use sqlite://FILE, sqlite::memory: or postgres://USER@HOST/DB".to_owned()),
                    ));
                }
                url.clone()
            }
            None => "sqlite://gardefou.db".to_owned(),
        };
        let queue_capacity = self.count(&s.queue_capacity, "store.queue_capacity", 1, 10_000_000, 65_536)?;
        let batch_size = self.count(&s.batch_size, "store.batch_size", 1, 100_000, 512)?;
        let flush_interval =
            self.duration(&s.flush_interval, "store.flush_interval", Duration::from_millis(200))?;
        let wait = self.duration(&s.full_wait, "store.full_wait", Duration::from_millis(50))?;
        let on_full = match s.on_full.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
            None | Some(("wait", _)) => OnFull::Wait(wait),
            Some(("drop", _)) => OnFull::Drop,
            Some((other, span)) => {
                return self.err(span, "store.on_full", format!("`{other}` is not `wait` or `drop`"))
            }
        };
        let retention = self.retention(&s.retention, "store.retention")?;
        let usage_retention = self.retention(&s.usage_retention, "store.usage_retention")?;
        let retention_batch = self.count(&s.retention_batch, "store.retention_batch", 1, 1_000_000, 5000)?;
        let spill_max_bytes =
            self.count(&s.spill_max_bytes, "store.spill_max_bytes", 0, 1 << 40, 256 << 20)?;
        Ok(StoreConfig {
            database_url,
            queue_capacity: queue_capacity as usize,
            batch_size: batch_size as usize,
            flush_interval,
            on_full,
            retention,
            retention_batch: retention_batch as usize,
            usage_retention,
            spill_path: s.spill_path.as_ref().map_or("gardefou-spill.jsonl".into(), |p| p.get_ref().into()),
            spill_max_bytes: spill_max_bytes as u64,
        })
    }

    /// A retention period: unset keeps forever, 0 is refused (it would delete everything).
    fn retention(&self, v: &Option<Spanned<String>>, path: &str) -> R<Option<Duration>> {
        let Some(r) = v else { return Ok(None) };
        match self.duration(v, path, Duration::ZERO)? {
            d if d.is_zero() => {
                self.err(r.span(), path, "0 would delete every record; leave it unset to keep them")
            }
            d => Ok(Some(d)),
        }
    }

    fn store_bodies(&self, v: &Option<Spanned<raw::RawBodies>>, path: &str) -> R<StoreBodies> {
        let Some(v) = v else { return Ok(StoreBodies::Off) };
        match v.get_ref() {
            raw::RawBodies::Word(w) if w == "off" => Ok(StoreBodies::Off),
            raw::RawBodies::Word(w) if w == "on" => Ok(StoreBodies::On),
            raw::RawBodies::Fraction(f) if *f > 0.0 && *f <= 1.0 => Ok(StoreBodies::Sampled(*f)),
            raw::RawBodies::Fraction(f) => self.err(
                v.span(),
                path,
                format!("{f} is not a fraction in (0, 1]; use \"off\" to store none"),
            ),
            raw::RawBodies::Word(w) => {
                self.err(v.span(), path, format!("`{w}` is not `off`, `on` or a fraction such as 0.1"))
            }
        }
    }

    fn route(
        &self,
        name: &Spanned<String>,
        r: &raw::RawRoute,
        models: &BTreeMap<String, ModelConfig>,
    ) -> R<RouteConfig> {
        let path = format!("routes.{}", name.get_ref());
        if r.targets.get_ref().is_empty() {
            return self.err(
                r.targets.span(),
                &format!("{path}.targets"),
                "a route needs at least one target",
            );
        }
        let model_ref = |m: &Spanned<String>, at: &str| -> R<String> {
            if models.contains_key(m.get_ref()) {
                Ok(m.get_ref().clone())
            } else {
                Err(self.error(
                    m.span(),
                    at,
                    format!("unknown model `{}`", m.get_ref()),
                    Some(hint_known("models", models.keys())),
                ))
            }
        };
        let mut targets = Vec::new();
        for (i, t) in r.targets.get_ref().iter().enumerate() {
            let at = format!("{path}.targets[{i}]");
            let model = model_ref(&t.model, &format!("{at}.model"))?;
            let weight = self.count(&t.weight, &format!("{at}.weight"), 0, 1_000_000, 1)? as u32;
            targets.push(Target { model, weight });
        }
        if targets.iter().all(|t| t.weight == 0) {
            return self.err(
                r.targets.span(),
                &format!("{path}.targets"),
                "at least one target needs a weight above 0",
            );
        }
        let mut fallbacks = Vec::new();
        for (i, f) in r.fallbacks.iter().enumerate() {
            fallbacks.push(model_ref(f, &format!("{path}.fallbacks[{i}]"))?);
        }
        let retry = RetryPolicy {
            attempts: self.count(&r.retry.attempts, &format!("{path}.retry.attempts"), 1, 10, 2)? as u32,
            backoff: self.duration(
                &r.retry.backoff,
                &format!("{path}.retry.backoff"),
                Duration::from_millis(100),
            )?,
            max_backoff: self.duration(
                &r.retry.max_backoff,
                &format!("{path}.retry.max_backoff"),
                Duration::from_secs(5),
            )?,
        };
        let timeouts = Timeouts {
            connect: self.duration(
                &r.timeouts.connect,
                &format!("{path}.timeouts.connect"),
                Duration::from_secs(5),
            )?,
            first_byte: self.duration(
                &r.timeouts.first_byte,
                &format!("{path}.timeouts.first_byte"),
                Duration::from_secs(60),
            )?,
            total: self.duration(
                &r.timeouts.total,
                &format!("{path}.timeouts.total"),
                Duration::from_secs(600),
            )?,
        };
        if timeouts.total.is_zero() {
            return self.err(
                name.span(),
                &format!("{path}.timeouts.total"),
                "the total timeout must be above 0",
            );
        }
        let balance = match r.balance.as_ref().map(|b| (b.get_ref().as_str(), b.span())) {
            None | Some(("weighted", _)) => Balance::Weighted,
            Some(("least_latency", _)) => Balance::LeastLatency,
            Some((other, span)) => {
                return Err(self.error(
                    span,
                    &format!("{path}.balance"),
                    format!("unknown balance `{other}`"),
                    Some("one of: weighted, least_latency".to_owned()),
                ))
            }
        };
        let b = &r.breaker;
        let breaker = BreakerPolicy {
            failures: self.count(&b.failures, &format!("{path}.breaker.failures"), 0, 1_000_000, 5)? as u32,
            error_rate: match &b.error_rate {
                Some(v) if !(0.0..=1.0).contains(v.get_ref()) => {
                    return self.err(
                        v.span(),
                        &format!("{path}.breaker.error_rate"),
                        "an error rate is between 0 and 1",
                    )
                }
                Some(v) => *v.get_ref(),
                None => 0.5,
            },
            min_requests: self.count(
                &b.min_requests,
                &format!("{path}.breaker.min_requests"),
                1,
                1_000_000,
                20,
            )? as u32,
            window: self.duration(&b.window, &format!("{path}.breaker.window"), Duration::from_secs(30))?,
            cooldown: self.duration(
                &b.cooldown,
                &format!("{path}.breaker.cooldown"),
                Duration::from_secs(15),
            )?,
        };
        let reject_unsupported = match r.unsupported_params.as_ref().map(|v| (v.get_ref().as_str(), v.span()))
        {
            None | Some(("drop", _)) => false,
            Some(("reject", _)) => true,
            Some((other, span)) => {
                return self.err(
                    span,
                    &format!("{path}.unsupported_params"),
                    format!("`{other}` is not `drop` or `reject`"),
                )
            }
        };
        let store_bodies = self.store_bodies(&r.store_bodies, &format!("{path}.store_bodies"))?;
        let limits = match &r.limits {
            Some(l) => self.rate_limits(l, &format!("{path}.limits"), true)?,
            None => RateLimits::default(),
        };
        Ok(RouteConfig {
            limits,
            guards: RouteGuards::default(),
            escalation: self.escalation(&format!("{path}.escalation"), r.escalation.as_ref())?,
            quality: None,
            evals: Vec::new(),
            reject_unsupported,
            store_bodies,
            name: name.get_ref().clone(),
            description: r.description.clone(),
            targets,
            fallbacks,
            retry,
            timeouts,
            balance,
            breaker,
        })
    }
}

/// The first 12 hex digits of the text's SHA-256.
fn revision(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn hint_known<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        format!("no {what} are defined")
    } else {
        format!("defined {what}: {}", names.join(", "))
    }
}

fn http_header_name_ok(h: &str) -> bool {
    !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
