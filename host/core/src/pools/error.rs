//! The pools' errors. Every message names the pool (`postgres/main`, `redis/cache`) and
//! says what the caller can do, because these surface in logs and API answers as they are.

use std::fmt;
use std::time::Duration;

/// A backend's own error (tokio-postgres, redis), boxed so `PoolError` is one type for
/// every backend.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `acquire_timeout` ran out before a connection was handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTimeout {
    /// The pool, `kind/name`.
    pub pool: String,
    /// How long the caller waited in all.
    pub waited: Duration,
    /// 1-based position in the wait queue when the time ran out; 0 when the caller was
    /// not queued but the time went on connecting to the backend.
    pub position: usize,
    /// Waiters in the queue at that moment (including the caller).
    pub queue_len: usize,
}

impl fmt::Display for PoolTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.waited.as_millis();
        if self.position == 0 {
            write!(
                f,
                "pool {}: no connection within {ms} ms (the time went on connecting to the backend)",
                self.pool
            )
        } else {
            write!(
                f,
                "pool {}: no connection within {ms} ms (position {} of {} in the wait queue); \
                 raise max or acquire_timeout_ms, or hold connections for less time",
                self.pool, self.position, self.queue_len
            )
        }
    }
}

impl std::error::Error for PoolTimeout {}

/// Everything a pool operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection within `acquire_timeout`.
    #[error(transparent)]
    Timeout(#[from] PoolTimeout),
    /// The pool's circuit breaker is open: the backend is failing, so callers fail fast.
    #[error(
        "pool {pool}: circuit open after {reason}; failing fast, next probe in {retry_in_ms} ms"
    )]
    CircuitOpen {
        /// The pool.
        pool: String,
        /// Why the breaker opened.
        reason: String,
        /// Milliseconds until a probe is let through.
        retry_in_ms: u64,
    },
    /// Connecting failed on every attempt.
    #[error("pool {pool}: could not connect after {attempts} attempt(s): {source}")]
    Connect {
        /// The pool.
        pool: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        source: BackendError,
    },
    /// A command on a pooled connection failed (after its retries, when it had any).
    #[error("pool {pool}: {source}")]
    Backend {
        /// The pool.
        pool: String,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
    /// The pool was closed.
    #[error("pool {pool} is closed")]
    Closed {
        /// The pool.
        pool: String,
    },
    /// No pool of that kind and name is configured.
    #[error(
        "no {kind} pool named {name:?} (configured: {known}); add [pools.{kind}.{name}] to the config"
    )]
    UnknownPool {
        /// `postgres` or `redis`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The configured names, comma-separated (or `none`).
        known: String,
    },
    /// The settings are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// An invalid pool setting, naming the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: {reason}")]
pub struct SettingsError {
    /// The full key, e.g. `pools.postgres.main.max`.
    pub key: String,
    /// The offending value as written.
    pub value: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl SettingsError {
    pub(crate) fn new(key: impl Into<String>, value: impl fmt::Display, reason: &str) -> Self {
        SettingsError {
            key: key.into(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// `e` and its causes joined with `: `, skipping a cause whose text is already shown.
/// tokio-postgres' errors display only their kind ("error performing TLS handshake"); the
/// reason an operator needs ("invalid peer certificate: UnknownIssuer") is the cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}
