//! The Redis backend: deadpool-redis' manager over redis-rs multiplexed connections, and
//! `query`, which retries a command with backoff on connection-level failures.

use super::error::{BackendError, PoolError};
use super::managed::{Backend, Ctx, ManagedPool, Pooled};
use super::settings::{RedisSettings, redact};
use deadpool_redis::Manager;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, RedisError};
use std::sync::Arc;
use std::time::Duration;

/// A Redis pool: `get()` gives a [`RedisConn`]; `query()` runs one command with retries.
pub type RedisPool = ManagedPool<Manager>;

/// A pooled Redis connection; derefs to `redis::aio::MultiplexedConnection`.
pub type RedisConn = Pooled<Manager>;

impl Backend for Manager {
    const KIND: &'static str = "redis";

    async fn ping(conn: &mut MultiplexedConnection) -> Result<(), BackendError> {
        let _: String = redis::cmd("PING").query_async(conn).await?;
        Ok(())
    }
}

/// One attempt's failure in `query`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CmdError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("command timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
}

impl CmdError {
    /// Connection-level failures are worth another connection; a server's answer
    /// (WRONGTYPE, a script error) would only repeat.
    fn retryable(&self) -> bool {
        match self {
            CmdError::Timeout(_) => true,
            CmdError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
            }
        }
    }
}

pub(crate) fn build(name: &str, s: &RedisSettings, ctx: Arc<Ctx>) -> Result<RedisPool, PoolError> {
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(s.connect_timeout_ms)))
        .set_response_timeout(Some(Duration::from_millis(s.command_timeout_ms)));
    let manager =
        Manager::new_with_config(s.url.as_str(), cfg).map_err(|e| PoolError::Backend {
            pool: format!("redis/{name}"),
            source: format!("bad url {}: {e}", redact(&s.url)).into(),
        })?;
    ManagedPool::new(name, manager, s.common(), ctx)
}

impl ManagedPool<Manager> {
    /// Runs `cmd` on a pooled connection, retrying with backoff and jitter (the pool's
    /// `retry`) when the connection fails; a failed connection is closed, not returned.
    /// For idempotent commands: a retried write may have been applied once already. Use
    /// `get()` to run a command exactly once.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, PoolError> {
        let timeout = self.inner.shared.cfg.command_timeout;
        self.with_retry(
            |mut conn| async move {
                let res = match tokio::time::timeout(timeout, cmd.query_async(&mut *conn)).await {
                    Ok(Ok(v)) => return Ok(v),
                    Ok(Err(e)) => CmdError::Redis(e),
                    Err(_) => CmdError::Timeout(timeout),
                };
                if res.retryable() {
                    conn.discard();
                }
                Err(res)
            },
            CmdError::retryable,
        )
        .await
    }
}
