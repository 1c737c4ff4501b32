//! Rate limits shared by every host on one Redis: GCRA in one Lua script per check, on
//! Redis' clock (`TIME`), so replicas whose clocks disagree still enforce one limit.
//!
//! Keys are `PREFIX:{TENANT}:gcra` and `PREFIX:{TENANT}:hosts` (the hosts that checked the
//! tenant lately) — hash-tagged by tenant, so a Redis Cluster keeps each script's keys in one
//! slot and never answers CROSSSLOT. `redis+cluster://HOST:PORT,HOST:PORT` names a cluster
//! by its seed nodes (the cluster client follows MOVED/ASK redirections). The script is sent as `EVALSHA`
//! with a `NOSCRIPT` fallback (`redis::Script`). A tenant known to be over its limit is
//! answered locally until its retry time ("denied until"), without a round trip.
//! When Redis does not answer within the backend timeout the check fails open to the
//! local limiter at the limit divided by the hosts last seen live, or closed with an
//! error, as `[state] ratelimit_failure` says; `BackendDown`/`BackendUp` events mark the
//! transitions.

use super::ratelimit::RateDecision;
use crate::events::{Event, EventBus};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// GCRA: KEYS[1] the tenant's TAT key, KEYS[2] the live-hosts set; ARGV: emission interval
/// (µs per request), burst tolerance (µs), cost, host id. Answers {allowed, remaining,
/// retry_after_us, live_hosts}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 30000000)
redis.call('PEXPIRE', KEYS[2], 60000)
local hosts = redis.call('ZCARD', KEYS[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval * cost
local over = new_tat - now - tolerance
if over > 0 then
  return {0, 0, over, hosts}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
local remaining = math.floor((tolerance - (new_tat - now)) / interval)
return {1, remaining, 0, hosts}
"#;

/// Why a shared check could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum SharedRateError {
    /// Redis did not answer in time or refused; `[state] ratelimit_failure = "closed"`.
    #[error("rate-limit backend redis unavailable: {0}")]
    Unavailable(String),
}

/// One Redis server, or a Cluster by its seed nodes.
enum Client {
    Single(redis::Client),
    // Boxed: the cluster client is much larger, and there is one per host.
    Cluster(Box<redis::cluster::ClusterClient>),
}

#[derive(Clone)]
enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

/// A rate limiter whose state lives on Redis.
pub struct SharedRateLimiter {
    client: Client,
    conn: tokio::sync::Mutex<Option<Conn>>,
    script: redis::Script,
    prefix: String,
    host_id: String,
    timeout: Duration,
    fail_open: bool,
    down: AtomicBool,
    live_hosts: AtomicU32,
    denied_until: Mutex<HashMap<String, (Instant, u32)>>,
    events: EventBus,
}

impl std::fmt::Debug for SharedRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRateLimiter")
            .field("prefix", &self.prefix)
            .field("host_id", &self.host_id)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

/// How the shared limiter is set up.
#[derive(Debug, Clone)]
pub struct SharedRateOptions {
    /// `redis://...`.
    pub url: String,
    /// Key prefix.
    pub prefix: String,
    /// This host's id (counted in the live-hosts set).
    pub host_id: String,
    /// Longest wait for Redis.
    pub timeout: Duration,
    /// Fall back to the local limiter (true) or refuse (false) when Redis is down.
    pub fail_open: bool,
}

/// What a shared check answered, and where from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedAnswer {
    /// Redis decided.
    Shared(RateDecision),
    /// Redis is down and the limiter fails open: decide locally at this share of the
    /// limit (requests per minute).
    Local(u32),
}

impl SharedRateLimiter {
    /// A limiter on `opts.url` (no connection is made until the first check).
    pub fn new(opts: SharedRateOptions, events: EventBus) -> Result<Self, SharedRateError> {
        let bad = |e: redis::RedisError| SharedRateError::Unavailable(format!("bad URL: {e}"));
        let client = match opts.url.strip_prefix("redis+cluster://") {
            Some(nodes) => {
                let seeds: Vec<String> = nodes
                    .split(',')
                    .filter(|n| !n.trim().is_empty())
                    .map(|n| format!("redis://{}", n.trim()))
                    .collect();
                Client::Cluster(Box::new(
                    redis::cluster::ClusterClientBuilder::new(seeds)
                        .connection_timeout(opts.timeout)
                        .response_timeout(opts.timeout)
                        .build()
                        .map_err(bad)?,
                ))
            }
            None => Client::Single(redis::Client::open(opts.url.as_str()).map_err(bad)?),
        };
        Ok(SharedRateLimiter {
            client,
            conn: tokio::sync::Mutex::new(None),
            script: redis::Script::new(GCRA),
            prefix: opts.prefix,
            host_id: opts.host_id,
            timeout: opts.timeout,
            fail_open: opts.fail_open,
            down: AtomicBool::new(false),
            live_hosts: AtomicU32::new(1),
            denied_until: Mutex::new(HashMap::new()),
            events,
        })
    }

    /// Whether the last round trip failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Hosts seen checking within the last 30 s (this one included).
    pub fn live_hosts(&self) -> u32 {
        self.live_hosts.load(Ordering::Relaxed).max(1)
    }

    /// Checks `cost` requests of `tenant` against `per_minute` (burst: one minute's worth,
    /// as the local limiter).
    pub async fn check(
        &self,
        tenant: &str,
        cost: u32,
        per_minute: u32,
    ) -> Result<SharedAnswer, SharedRateError> {
        let per_minute = per_minute.max(1);
        if let Some(d) = self.known_denied(tenant, per_minute) {
            return Ok(SharedAnswer::Shared(d));
        }
        let interval_us = 60_000_000u64 / u64::from(per_minute);
        let tolerance_us = interval_us * u64::from(per_minute);
        let keys = [
            format!("{}:{{{tenant}}}:gcra", self.prefix),
            format!("{}:{{{tenant}}}:hosts", self.prefix),
        ];
        let answer = tokio::time::timeout(self.timeout, async {
            // One multiplexed connection shared by every check; made on first use.
            let mut conn = {
                let mut guard = self.conn.lock().await;
                match guard.as_ref() {
                    Some(c) => c.clone(),
                    None => {
                        let c = match &self.client {
                            Client::Single(client) => {
                                let cfg = redis::AsyncConnectionConfig::new()
                                    .set_connection_timeout(Some(self.timeout))
                                    .set_response_timeout(Some(self.timeout));
                                Conn::Single(
                                    client
                                        .get_multiplexed_async_connection_with_config(&cfg)
                                        .await?,
                                )
                            }
                            Client::Cluster(client) => {
                                Conn::Cluster(client.get_async_connection().await?)
                            }
                        };
                        guard.insert(c).clone()
                    }
                }
            };
            let mut invocation = self.script.key(&keys[0]);
            invocation
                .key(&keys[1])
                .arg(interval_us)
                .arg(tolerance_us)
                .arg(cost)
                .arg(&self.host_id);
            let r: redis::RedisResult<Vec<i64>> = match &mut conn {
                Conn::Single(c) => invocation.invoke_async(c).await,
                Conn::Cluster(c) => invocation.invoke_async(c).await,
            };
            if r.is_err() {
                // A broken connection is rebuilt on the next check.
                *self.conn.lock().await = None;
            }
            r
        })
        .await;
        let reply = match answer {
            Ok(Ok(v)) if v.len() == 4 => v,
            Ok(Ok(v)) => return self.failed(format!("unexpected reply {v:?}"), per_minute),
            Ok(Err(e)) => return self.failed(e.to_string(), per_minute),
            Err(_) => {
                *self.conn.lock().await = None;
                return self.failed(
                    format!("no answer within {} ms", self.timeout.as_millis()),
                    per_minute,
                );
            }
        };
        if self.down.swap(false, Ordering::Relaxed) {
            self.events.publish(Event::BackendUp {
                backend: "redis".into(),
            });
        }
        self.live_hosts.store(
            u32::try_from(reply[3]).unwrap_or(1).max(1),
            Ordering::Relaxed,
        );
        let d = RateDecision {
            allowed: reply[0] == 1,
            remaining: u32::try_from(reply[1]).unwrap_or(0),
            retry_after_ms: (u64::try_from(reply[2]).unwrap_or(0)).div_ceil(1000),
            limit_per_minute: per_minute,
        };
        if !d.allowed {
            let until = Instant::now() + Duration::from_millis(d.retry_after_ms);
            self.denied_until
                .lock()
                .insert(tenant.to_string(), (until, per_minute));
        }
        Ok(SharedAnswer::Shared(d))
    }

    /// A denial still in force for `tenant` (same limit), answered without Redis.
    fn known_denied(&self, tenant: &str, per_minute: u32) -> Option<RateDecision> {
        let mut known = self.denied_until.lock();
        let (until, limit) = *known.get(tenant)?;
        let now = Instant::now();
        if until <= now || limit != per_minute {
            known.remove(tenant);
            return None;
        }
        Some(RateDecision {
            allowed: false,
            remaining: 0,
            retry_after_ms: (until - now).as_millis().max(1) as u64,
            limit_per_minute: per_minute,
        })
    }

    fn failed(&self, why: String, per_minute: u32) -> Result<SharedAnswer, SharedRateError> {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %why, "rate-limit backend redis down");
            self.events.publish(Event::BackendDown {
                backend: "redis".into(),
                error: why.clone(),
            });
        }
        if self.fail_open {
            Ok(SharedAnswer::Local((per_minute / self.live_hosts()).max(1)))
        } else {
            Err(SharedRateError::Unavailable(why))
        }
    }
}
