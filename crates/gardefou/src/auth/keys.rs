//! Virtual and admin keys in memory: how a key looks (`gf_<id>_<secret>`), how it is hashed
//! (SHA-256 of the secret; only the hash and a display prefix are stored), and the key table
//! every request is checked against without touching the database. A task polls the store's
//! change feed so keys created, rotated or revoked anywhere (another replica, the CLI) take
//! effect here within [`REFRESH_PERIOD`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use gardefou_store::{KeyKind, KeyRecord, Store};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the key table re-reads changed keys from the store.
pub const REFRESH_PERIOD: Duration = Duration::from_millis(250);
/// Changes are re-read this far back, so clocks that differ a little between replicas (each
/// stamps `updated_at_ms` with its own) never hide a change.
const CLOCK_SLACK_MS: i64 = 10_000;
const KEY_PREFIX: &str = "gf_";

/// A new key's parts: the full secret shown once, and what is stored.
pub struct NewSecret {
    /// `gf_<id>_<secret>`: returned to the creator once, never stored.
    pub key: String,
    pub hash: String,
    /// What listings show: `gf_<id>_` and the first 4 characters of the secret.
    pub prefix: String,
}

/// A fresh random key id: `k` and 12 lowercase base-32 characters.
pub fn new_key_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut id = String::with_capacity(13);
    id.push('k');
    id.extend(bytes.iter().map(|b| alphabet[usize::from(b & 31)] as char));
    id
}

/// A fresh secret for key `id` (256 random bits, hex).
pub fn new_secret(id: &str) -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    NewSecret {
        key: format!("{KEY_PREFIX}{id}_{secret}"),
        hash: hash_secret(&secret),
        prefix: format!("{KEY_PREFIX}{id}_{}", &secret[..4]),
    }
}

pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `gf_<id>_<secret>` split into id and secret; `None` when it is not shaped like a key.
fn split(presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty() && id.len() <= 64).then_some((id, secret))
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a presented key was refused. The messages never say whether a key id exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Not a key, an unknown id, or a wrong secret: all the same to the caller.
    Invalid,
    /// The secret matched, but the key was revoked.
    Revoked,
    /// The secret matched, but the key expired.
    Expired,
}

impl KeyRefusal {
    pub fn message(&self) -> &'static str {
        match self {
            KeyRefusal::Invalid => "Incorrect API key provided.",
            KeyRefusal::Revoked => "This API key has been revoked.",
            KeyRefusal::Expired => "This API key has expired.",
        }
    }
}

/// The in-memory key table: id → key, swapped whole on every change.
#[derive(Clone, Default)]
pub struct KeyTable {
    keys: Arc<ArcSwap<HashMap<String, Arc<KeyRecord>>>>,
    /// The newest `updated_at_ms` seen, for the change feed.
    seen_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl KeyTable {
    /// The key `presented` (the full `gf_…` string) stands for, if its secret matches and it is
    /// live at `now_ms`. The hash comparison is constant-time, and an unknown id costs the same
    /// hash as a known one.
    pub fn check(&self, presented: &str, kind: KeyKind, now_ms: i64) -> Result<Arc<KeyRecord>, KeyRefusal> {
        let (id, secret) = split(presented.trim()).ok_or(KeyRefusal::Invalid)?;
        let hash = hash_secret(secret);
        let table = self.keys.load();
        let Some(key) = table.get(id) else {
            // Same work as a real comparison.
            let _ = constant_time_eq(hash.as_bytes(), hash.as_bytes());
            return Err(KeyRefusal::Invalid);
        };
        if !constant_time_eq(hash.as_bytes(), key.hash.as_bytes()) || key.kind != kind {
            return Err(KeyRefusal::Invalid);
        }
        if key.revoked_at_ms.is_some() {
            return Err(KeyRefusal::Revoked);
        }
        if key.expires_at_ms.is_some_and(|e| e <= now_ms) {
            return Err(KeyRefusal::Expired);
        }
        Ok(key.clone())
    }

    pub fn get(&self, id: &str) -> Option<Arc<KeyRecord>> {
        self.keys.load().get(id).cloned()
    }

    /// Every key in the table.
    pub fn all(&self) -> Vec<KeyRecord> {
        self.keys.load().values().map(|k| KeyRecord::clone(k)).collect()
    }

    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts changed keys in (a change made on this replica is live at once).
    pub fn upsert(&self, changed: Vec<KeyRecord>) {
        if changed.is_empty() {
            return;
        }
        let newest = changed.iter().map(|k| k.updated_at_ms).max().unwrap_or(0);
        self.keys.rcu(|old| {
            let mut next = HashMap::clone(old);
            for k in &changed {
                next.insert(k.id.clone(), Arc::new(k.clone()));
            }
            next
        });
        self.seen_ms.fetch_max(newest, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads the keys changed since the last refresh (all of them the first time).
    pub async fn refresh(&self, store: &Store) -> Result<usize, gardefou_store::StoreError> {
        let seen = self.seen_ms.load(std::sync::atomic::Ordering::Relaxed);
        let since = if seen == 0 { i64::MIN } else { seen - CLOCK_SLACK_MS };
        let changed = store.keys_changed_since(since).await?;
        let table = self.keys.load();
        let fresh: Vec<KeyRecord> =
            changed.into_iter().filter(|k| table.get(&k.id).is_none_or(|old| **old != *k)).collect();
        let n = fresh.len();
        self.upsert(fresh);
        Ok(n)
    }

    /// Spawns the task that refreshes the table every [`REFRESH_PERIOD`] until `stop`.
    pub fn spawn_refresh(&self, store: Store, tracker: &TaskTracker, stop: CancellationToken) {
        let table = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = stop.cancelled() => break,
                }
                match table.refresh(&store).await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("key table refresh recovered");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(kind = e.kind(), error = %e, "key table refresh failed; serving the keys already loaded");
                    }
                    Err(_) => {}
                }
            }
        });
    }
}

/// Whether `route` matches one of `patterns` (`*` matches any run of characters); an empty list
/// allows every route.
pub fn route_allowed(patterns: &[String], route: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| glob(p.as_bytes(), route.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, hash: String) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            hash,
            prefix: String::new(),
            kind: KeyKind::Api,
            role: None,
            team: Some("t".into()),
            product: None,
            name: None,
            routes: vec![],
            limits: Default::default(),
            metadata: Default::default(),
            created_by: "test".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
            expires_at_ms: None,
            revoked_at_ms: None,
        }
    }

    #[test]
    fn a_key_matches_only_its_own_secret_and_only_while_live() {
        let id = new_key_id();
        let s = new_secret(&id);
        assert!(s.key.starts_with(&s.prefix) && !s.hash.contains(&s.key[s.prefix.len()..]));
        let table = KeyTable::default();
        table.upsert(vec![record(&id, s.hash.clone())]);
        assert!(table.check(&s.key, KeyKind::Api, 10).is_ok());
        assert_eq!(table.check(&s.key, KeyKind::Admin, 10).unwrap_err(), KeyRefusal::Invalid);
        let other = new_secret(&id);
        assert_eq!(table.check(&other.key, KeyKind::Api, 10).unwrap_err(), KeyRefusal::Invalid);
        assert_eq!(table.check("sk-not-ours", KeyKind::Api, 10).unwrap_err(), KeyRefusal::Invalid);
        assert_eq!(table.check("gf_unknown_abc", KeyKind::Api, 10).unwrap_err(), KeyRefusal::Invalid);
        table.upsert(vec![KeyRecord {
            expires_at_ms: Some(5),
            updated_at_ms: 2,
            ..record(&id, s.hash.clone())
        }]);
        assert_eq!(table.check(&s.key, KeyKind::Api, 10).unwrap_err(), KeyRefusal::Expired);
        table.upsert(vec![KeyRecord { revoked_at_ms: Some(3), updated_at_ms: 3, ..record(&id, s.hash) }]);
        assert_eq!(table.check(&s.key, KeyKind::Api, 10).unwrap_err(), KeyRefusal::Revoked);
    }

    #[test]
    fn route_patterns_use_star_wildcards() {
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(route_allowed(&[], "anything"));
        assert!(route_allowed(&p(&["chat-*"]), "chat-small"));
        assert!(route_allowed(&p(&["*-small", "x"]), "chat-small"));
        assert!(route_allowed(&p(&["a*b*c"]), "aXXbYYc"));
        assert!(!route_allowed(&p(&["chat-*"]), "embed"));
        assert!(!route_allowed(&p(&["chat"]), "chat-small"));
        assert!(route_allowed(&p(&["*"]), ""));
    }
}
