//! Shared test helpers: where the servers are, failing loudly when they are not there,
//! and a private redis-server for tests that stop and restart one.

use crate::events::EventBus;
use crate::pools::{PoolManager, PoolsSettings, PostgresSettings, RecycleCheck, RedisSettings};
use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn pg_url() -> String {
    std::env::var("RMHOST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub fn redis_url() -> String {
    std::env::var("RMHOST_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A direct (unpooled) connection, to look at the server from the side. Panics with
/// instructions when Postgres is not reachable: a missing server fails the test.
pub async fn pg_admin() -> tokio_postgres::Client {
    let url = pg_url();
    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client
        }
        Err(e) => panic!(
            "PostgreSQL not reachable at {url}: {e}; start it with `scripts/services` \
             or set RMHOST_TEST_PG"
        ),
    }
}

/// A direct Redis connection; panics with instructions when Redis is not reachable.
pub async fn redis_admin(url: &str) -> redis::aio::MultiplexedConnection {
    let res = async {
        redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await
    }
    .await;
    match res {
        Ok(c) => c,
        Err(e) => panic!(
            "Redis not reachable at {url}: {e}; start it with `scripts/services` \
             or set RMHOST_TEST_REDIS"
        ),
    }
}

/// An application_name (or client name) unique to this test run.
pub fn unique(test: &str) -> String {
    format!("rmhost-test-{test}-{}", std::process::id())
}

pub fn pg_settings(app: &str, max: u32) -> PostgresSettings {
    PostgresSettings {
        url: pg_url(),
        min: 0,
        max,
        acquire_timeout_ms: 10_000,
        recycle_check: RecycleCheck::Verified,
        application_name: Some(app.to_string()),
        ..Default::default()
    }
}

pub fn redis_settings(url: &str, max: u32) -> RedisSettings {
    RedisSettings {
        url: url.to_string(),
        min: 0,
        max,
        acquire_timeout_ms: 10_000,
        ..Default::default()
    }
}

/// A manager with one Postgres pool `t`.
pub fn pg_manager(s: PostgresSettings) -> (PoolManager, EventBus) {
    pg_manager_with(s, Arc::new(crate::policy::NativePriority::default()))
}

/// A manager with one Postgres pool `t` whose waiters `policy` ranks.
pub fn pg_manager_with(
    s: PostgresSettings,
    policy: Arc<dyn crate::policy::PriorityPolicy>,
) -> (PoolManager, EventBus) {
    let mut settings = PoolsSettings::default();
    settings.postgres.insert("t".into(), s);
    let bus = EventBus::new();
    (
        PoolManager::with_priority(&settings, bus.clone(), policy).unwrap(),
        bus,
    )
}

/// A manager with one Redis pool `t`.
pub fn redis_manager(s: RedisSettings) -> (PoolManager, EventBus) {
    let mut settings = PoolsSettings::default();
    settings.redis.insert("t".into(), s);
    let bus = EventBus::new();
    (PoolManager::new(&settings, bus.clone()).unwrap(), bus)
}

/// Polls `cond` until it holds; panics naming `what` after `bound` (a generous bound on
/// reaching a state, not a speed assertion).
pub async fn wait_until<F, Fut>(what: &str, bound: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < bound,
            "gave up after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A redis-server of our own on a free port, so stopping it disturbs nobody. Killed on
/// drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut me = OwnRedis { port, child: None };
        me.restart();
        me
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): install Redis (`scripts/services` does)")
            });
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server on port {} did not come up",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
