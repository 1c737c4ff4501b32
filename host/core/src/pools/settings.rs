//! Pool settings: the `[pools]` table.
//!
//! ```toml
//! [pools]
//! health_check_interval_ms = 10000
//!
//! [pools.postgres.main]
//! url = "postgres://app@db/app"
//! min = 2
//! max = 10
//! max_lifetime_ms = 1800000
//! recycle_check = "verified"
//! retry = { attempts = 3, base_ms = 50, max_ms = 2000 }
//!
//! [pools.redis.cache]
//! url = "redis://127.0.0.1:6379"
//! max = 8
//! ```
//! The original system's `connection_pools.database` / `.redis` (and `DATABASE_URL`, `DB_POOL_*`,
//! `REDIS_URL`, `REDIS_POOL_*`) define the pools named `main`: see
//! [`PoolsSettings::apply_main_postgres`] and [`PoolsSettings::apply_main_redis`].

use super::error::SettingsError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The `[pools]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolsSettings {
    /// How often each pool pings an idle connection, keeps `min` warm and closes idle
    /// connections past `idle_timeout_ms`. Not a key of its own: the host sets it from
    /// `monitoring.health_check_interval_ms` (the original system's `HEALTH_CHECK_INTERVAL`).
    #[serde(skip)]
    pub health_check_interval_ms: u64,
    /// `[pools.postgres.NAME]`.
    pub postgres: BTreeMap<String, PostgresSettings>,
    /// `[pools.redis.NAME]`.
    pub redis: BTreeMap<String, RedisSettings>,
}

impl Default for PoolsSettings {
    fn default() -> Self {
        PoolsSettings {
            health_check_interval_ms: 10_000,
            postgres: BTreeMap::new(),
            redis: BTreeMap::new(),
        }
    }
}

/// How a pooled Postgres connection is checked before it is handed out again
/// (deadpool-postgres' recycling methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RecycleCheck {
    /// Only look whether the client noticed its socket closing. Cheapest; a connection
    /// killed server-side a moment ago can slip through once.
    Fast,
    /// Run a trivial query first: a dead connection is always caught, at a round trip.
    #[default]
    Verified,
    /// Like `verified`, and reset session state (`DISCARD ALL`-like).
    Clean,
}

/// Exponential backoff with jitter for connecting and for Redis commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Tries in all, at least 1 (1 = no retry).
    pub attempts: u32,
    /// First backoff, ms; doubled per attempt.
    pub base_ms: u64,
    /// Backoff cap, ms.
    pub max_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            attempts: 3,
            base_ms: 50,
            max_ms: 2_000,
        }
    }
}

/// The pool's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive failures (connects that failed every retry, failed pings, failed
    /// Redis commands) that open the breaker.
    pub failure_threshold: u32,
    /// Consecutive acquire timeouts that open it (sustained exhaustion); 0 disables.
    pub timeout_threshold: u32,
    /// How long it stays open before one probe is let through, ms.
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            timeout_threshold: 20,
            open_ms: 5_000,
        }
    }
}

/// `[pools.postgres.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/db` (key-value strings work too). Required.
    pub url: String,
    /// Connections kept open even when idle.
    pub min: u32,
    /// Connections at most.
    pub max: u32,
    /// How long a caller waits for a connection, ms (queueing plus connecting).
    pub acquire_timeout_ms: u64,
    /// How long a connection above `min` may stay idle, ms; 0 = forever.
    pub idle_timeout_ms: u64,
    /// A connection older than this is retired when returned, ms; 0 = forever.
    pub max_lifetime_ms: u64,
    /// Each connection's lifetime is shortened by a random 0..=this percent, so
    /// connections made together do not all retire together.
    pub lifetime_jitter_percent: u8,
    /// One connection attempt's bound, ms.
    pub connect_timeout_ms: u64,
    /// The check a connection passes before it is handed out again.
    pub recycle_check: RecycleCheck,
    /// `application_name` of the pool's sessions (so `pg_stat_activity` shows who is
    /// who); default `rmhost/NAME`. A value in the URL wins.
    pub application_name: Option<String>,
    /// Connection retries.
    pub retry: RetrySettings,
    /// Circuit breaker.
    pub breaker: BreakerSettings,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        // HikariCP-like defaults, with the original system's pool size and idle timeout.
        PostgresSettings {
            url: String::new(),
            min: 2,
            max: 10,
            acquire_timeout_ms: 30_000,
            idle_timeout_ms: 10_000,
            max_lifetime_ms: 1_800_000,
            lifetime_jitter_percent: 5,
            connect_timeout_ms: 5_000,
            recycle_check: RecycleCheck::Verified,
            application_name: None,
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

/// `[pools.redis.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`, `rediss://...` or `redis+unix:///path`. Required.
    pub url: String,
    /// Connections kept open even when idle.
    pub min: u32,
    /// Connections at most.
    pub max: u32,
    /// How long a caller waits for a connection, ms (queueing plus connecting).
    pub acquire_timeout_ms: u64,
    /// How long a connection above `min` may stay idle, ms; 0 = forever.
    pub idle_timeout_ms: u64,
    /// A connection older than this is retired when returned, ms; 0 = forever.
    pub max_lifetime_ms: u64,
    /// Lifetime jitter, percent (see the Postgres setting).
    pub lifetime_jitter_percent: u8,
    /// One connection attempt's bound, ms.
    pub connect_timeout_ms: u64,
    /// One command's bound in `RedisPool::query`, ms.
    pub command_timeout_ms: u64,
    /// Connection and command retries.
    pub retry: RetrySettings,
    /// Circuit breaker.
    pub breaker: BreakerSettings,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: String::new(),
            min: 1,
            max: 10,
            acquire_timeout_ms: 30_000,
            idle_timeout_ms: 10_000,
            max_lifetime_ms: 0,
            lifetime_jitter_percent: 5,
            connect_timeout_ms: 5_000,
            command_timeout_ms: 5_000,
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

/// What the generic pool needs, whatever the backend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommonSettings {
    pub min: u32,
    pub max: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub jitter_percent: u8,
    pub connect_timeout: Duration,
    /// Redis only: one command's bound in `query`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // only Redis has command timeouts
    pub command_timeout: Duration,
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
}

fn nonzero(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl PostgresSettings {
    /// The original system's `connection_pools.database`, as the pool `main`.
    pub fn from_url(
        url: &str,
        min: u32,
        max: u32,
        acquire_timeout_ms: u64,
        idle_timeout_ms: u64,
    ) -> Self {
        PostgresSettings {
            url: url.to_string(),
            min,
            max,
            acquire_timeout_ms,
            idle_timeout_ms,
            ..Default::default()
        }
    }

    pub(crate) fn common(&self) -> CommonSettings {
        CommonSettings {
            min: self.min,
            max: self.max,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            idle_timeout: nonzero(self.idle_timeout_ms),
            max_lifetime: nonzero(self.max_lifetime_ms),
            jitter_percent: self.lifetime_jitter_percent,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            command_timeout: Duration::from_millis(self.connect_timeout_ms),
            retry: self.retry,
            breaker: self.breaker,
        }
    }
}

impl RedisSettings {
    /// The original system's `connection_pools.redis`, as the pool `main`.
    pub fn from_url(url: &str, min: u32, max: u32, acquire_timeout_ms: u64) -> Self {
        RedisSettings {
            url: url.to_string(),
            min,
            max,
            acquire_timeout_ms,
            ..Default::default()
        }
    }

    pub(crate) fn common(&self) -> CommonSettings {
        CommonSettings {
            min: self.min,
            max: self.max,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
            idle_timeout: nonzero(self.idle_timeout_ms),
            max_lifetime: nonzero(self.max_lifetime_ms),
            jitter_percent: self.lifetime_jitter_percent,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            command_timeout: Duration::from_millis(self.command_timeout_ms),
            retry: self.retry,
            breaker: self.breaker,
        }
    }
}

impl PoolsSettings {
    /// Defines the Postgres pool `main` (or overrides the fields the original system has) from the
    /// original system's `connection_pools.database`. That layer (env `DATABASE_URL`,
    /// `DB_POOL_*`) wins over `[pools.postgres.main]` for the five fields it has; the
    /// other fields keep their `[pools.postgres.main]` values.
    pub fn apply_main_postgres(
        &mut self,
        url: &str,
        min: u32,
        max: u32,
        acquire_timeout_ms: u64,
        idle_timeout_ms: u64,
    ) {
        let p = self.postgres.entry("main".to_string()).or_default();
        p.url = url.to_string();
        p.min = min;
        p.max = max;
        p.acquire_timeout_ms = acquire_timeout_ms;
        p.idle_timeout_ms = idle_timeout_ms;
    }

    /// Defines (or overrides the original system's fields of) the Redis pool `main` from the original system's
    /// `connection_pools.redis` (`REDIS_URL`, `REDIS_POOL_*`); see
    /// [`PoolsSettings::apply_main_postgres`].
    pub fn apply_main_redis(&mut self, url: &str, min: u32, max: u32, acquire_timeout_ms: u64) {
        let r = self.redis.entry("main".to_string()).or_default();
        r.url = url.to_string();
        r.min = min;
        r.max = max;
        r.acquire_timeout_ms = acquire_timeout_ms;
    }

    /// Checks every pool; the first problem is reported with its full key and value.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.health_check_interval_ms == 0 {
            return Err(SettingsError::new(
                "pools.health_check_interval_ms",
                0,
                "must be at least 1",
            ));
        }
        for (name, p) in &self.postgres {
            let key = format!("pools.postgres.{name}");
            check_name(&key, name)?;
            if p.url.is_empty() {
                return Err(SettingsError::new(
                    format!("{key}.url"),
                    "\"\"",
                    "is required (postgres://user@host:port/db)",
                ));
            }
            check_postgres_url(&key, &p.url)?;
            check_common(&key, &p.common())?;
        }
        for (name, r) in &self.redis {
            let key = format!("pools.redis.{name}");
            check_name(&key, name)?;
            if r.url.is_empty() {
                return Err(SettingsError::new(
                    format!("{key}.url"),
                    "\"\"",
                    "is required (redis://host:port/db)",
                ));
            }
            check_redis_url(&key, &r.url)?;
            check_common(&key, &r.common())?;
            if r.command_timeout_ms == 0 {
                return Err(SettingsError::new(
                    format!("{key}.command_timeout_ms"),
                    0,
                    "must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

fn check_name(key: &str, name: &str) -> Result<(), SettingsError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(SettingsError::new(
            key,
            format!("{name:?}"),
            "pool names use letters, digits, `_` and `-`",
        ))
    }
}

fn check_common(key: &str, c: &CommonSettings) -> Result<(), SettingsError> {
    let err = |field: &str, value: &dyn std::fmt::Display, reason: &str| {
        Err(SettingsError::new(format!("{key}.{field}"), value, reason))
    };
    if c.max == 0 {
        return err("max", &0, "must be at least 1");
    }
    if c.min > c.max {
        return err("min", &c.min, &format!("is above {key}.max = {}", c.max));
    }
    if c.acquire_timeout.is_zero() {
        return err("acquire_timeout_ms", &0, "must be at least 1");
    }
    if c.connect_timeout.is_zero() {
        return err("connect_timeout_ms", &0, "must be at least 1");
    }
    if c.jitter_percent > 100 {
        return err(
            "lifetime_jitter_percent",
            &c.jitter_percent,
            "must be 0-100",
        );
    }
    if c.retry.attempts == 0 {
        return err("retry.attempts", &0, "must be at least 1 (1 = no retry)");
    }
    if c.retry.base_ms > c.retry.max_ms {
        return err(
            "retry.base_ms",
            &c.retry.base_ms,
            &format!("is above {key}.retry.max_ms = {}", c.retry.max_ms),
        );
    }
    if c.breaker.failure_threshold == 0 {
        return err("breaker.failure_threshold", &0, "must be at least 1");
    }
    if c.breaker.open_ms == 0 {
        return err("breaker.open_ms", &0, "must be at least 1");
    }
    Ok(())
}

/// The URL without its password, for messages and `config print`.
pub fn redact(url: &str) -> String {
    // scheme://user:password@host -> scheme://user:***@host
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// The URL parses (TLS keys and CA file included), or the backend is compiled out.
fn check_postgres_url(key: &str, url: &str) -> Result<(), SettingsError> {
    #[cfg(feature = "postgres")]
    let outcome = crate::tls::parse(url)
        .map(drop)
        .map_err(|e| format!("is not a usable Postgres URL: {e}"));
    #[cfg(not(feature = "postgres"))]
    let outcome: Result<(), String> = Err(
        "needs PostgreSQL support: this build of rmhost-core has the `postgres` feature off".into(),
    );
    outcome.map_err(|reason| {
        SettingsError::new(format!("{key}.url"), format!("{:?}", redact(url)), &reason)
    })
}

/// The URL parses as a redis-rs client URL, or the backend is compiled out.
fn check_redis_url(key: &str, url: &str) -> Result<(), SettingsError> {
    #[cfg(feature = "redis")]
    let outcome = redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("is not a Redis URL: {e}"));
    #[cfg(not(feature = "redis"))]
    let outcome: Result<(), String> =
        Err("needs Redis support: this build of rmhost-core has the `redis` feature off".into());
    outcome.map_err(|reason| {
        SettingsError::new(format!("{key}.url"), format!("{:?}", redact(url)), &reason)
    })
}
