//! The generic pool: one implementation for every backend, on top of deadpool.
//!
//! A backend is a deadpool `Manager` (create + recycle) plus the small [`Backend`] trait
//! (a ping and a cheap "is it closed" look). [`ManagedPool`] puts around it what deadpool
//! leaves to its users: the ranked admission queue, retries with backoff, the circuit
//! breaker, max-lifetime retirement, metrics, and the maintenance round (health pings,
//! idle timeout, keeping `min` warm) in `maintain.rs`.

use super::breaker::{Breaker, backoff};
use super::error::{BackendError, PoolError, PoolTimeout};
use super::metrics::Counters;
use super::queue::Admission;
use super::settings::CommonSettings;
use crate::events::EventBus;
use crate::policy::{PriorityPolicy, Waiter};
use deadpool::managed::{self, Manager, Metrics, Object, QueueMode, RecycleError, RecycleResult};
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a pool needs from a backend beyond deadpool's create and recycle.
pub trait Backend: Manager<Error: std::error::Error + Send + Sync + 'static> + 'static {
    /// `postgres` or `redis`: the first half of the pool's full name.
    const KIND: &'static str;
    /// One cheap round trip (`SELECT 1`, `PING`), for health checks.
    fn ping(conn: &mut Self::Type) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// True when the connection is known dead without a round trip.
    fn is_closed(_conn: &Self::Type) -> bool {
        false
    }
}

/// What every pool shares with the manager: the clock waiters are stamped with, the
/// priority policy, and the event bus.
pub(crate) struct Ctx {
    pub started: Instant,
    pub policy: Arc<dyn PriorityPolicy>,
    pub bus: EventBus,
}

impl Ctx {
    /// The pool manager's monotonic clock, ms since it started.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("policy", &self.policy.name())
            .finish_non_exhaustive()
    }
}

/// State shared by the pool and its deadpool manager.
#[derive(Debug)]
pub(crate) struct Shared {
    pub name: String,
    pub admission: Admission,
    pub cfg: CommonSettings,
    pub counters: Counters,
    pub breaker: Breaker,
}

/// A pooled connection with the bookkeeping deadpool does not keep.
#[derive(Debug)]
pub struct Conn<T> {
    /// Boxed: deadpool moves its slot entries several times per acquire and return,
    /// and a driver connection is hundreds of bytes; a pointer moves for free.
    raw: Box<T>,
    /// Set once per connection, so a returning guard reaches its pool without touching
    /// a shared reference count on every acquire.
    shared: Arc<Shared>,
    /// `created + max_lifetime - jitter`; `None` without a max lifetime.
    expires: Option<Instant>,
    /// When it last went back to the pool (idle timeout counts from here).
    pub(crate) returned: Instant,
}

impl<T> Conn<T> {
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
    pub(crate) fn raw_mut(&mut self) -> &mut T {
        &mut self.raw
    }
    pub(crate) fn raw(&self) -> &T {
        &self.raw
    }
}

/// deadpool's manager for a backend, with retries, lifetimes and counting.
#[derive(Debug)]
pub(crate) struct Instrumented<B> {
    backend: B,
    shared: Arc<Shared>,
}

impl<B: Backend> Manager for Instrumented<B> {
    type Type = Conn<B::Type>;
    type Error = PoolError;

    fn create(&self) -> impl Future<Output = Result<Conn<B::Type>, PoolError>> + Send {
        // Boxed: connecting is rare, and an unboxed retry loop would make every acquire's
        // future (which holds this one as a variant) larger and slower to move.
        Box::pin(self.create_with_retry())
    }

    fn recycle(
        &self,
        conn: &mut Conn<B::Type>,
        m: &Metrics,
    ) -> impl Future<Output = RecycleResult<PoolError>> + Send {
        self.check(conn, m)
    }
}

impl<B: Backend> Instrumented<B> {
    async fn create_with_retry(&self) -> Result<Conn<B::Type>, PoolError> {
        let sh = &self.shared;
        let retry = sh.cfg.retry;
        let mut last: BackendError = "no attempt made".into();
        for attempt in 1..=retry.attempts {
            match tokio::time::timeout(sh.cfg.connect_timeout, self.backend.create()).await {
                Ok(Ok(raw)) => {
                    Counters::inc(&sh.counters.created);
                    sh.breaker.on_success();
                    let now = Instant::now();
                    let expires = sh.cfg.max_lifetime.map(|l| {
                        let jitter = l.as_millis() as u64 * u64::from(sh.cfg.jitter_percent) / 100;
                        now + l - Duration::from_millis(super::breaker::random_below(jitter + 1))
                    });
                    return Ok(Conn {
                        raw: Box::new(raw),
                        shared: sh.clone(),
                        expires,
                        returned: now,
                    });
                }
                // The whole chain: a TLS failure says why only in its causes.
                Ok(Err(e)) => last = super::error::error_chain(&e).into(),
                Err(_) => {
                    last = format!(
                        "connect timed out after {} ms",
                        sh.cfg.connect_timeout.as_millis()
                    )
                    .into()
                }
            }
            Counters::inc(&sh.counters.create_failures);
            tracing::debug!(pool = %sh.name, attempt, error = %last, "connect failed");
            if attempt < retry.attempts {
                tokio::time::sleep(backoff(&retry, attempt)).await;
            }
        }
        sh.breaker.on_failure(&last.to_string());
        Err(PoolError::Connect {
            pool: sh.name.clone(),
            attempts: retry.attempts,
            source: last,
        })
    }

    /// The backend's recycle check. It has no timer of its own: every caller of
    /// deadpool's `get` (acquires, maintenance) bounds the whole get, and a timer per
    /// check would cost every acquire. (Lifetime is checked by the caller, for the same
    /// reason: it reuses deadpool's handout timestamp instead of reading the clock.)
    async fn check(&self, conn: &mut Conn<B::Type>, m: &Metrics) -> RecycleResult<PoolError> {
        let c = &self.shared.counters;
        match self.backend.recycle(&mut *conn.raw, m).await {
            Ok(()) => {
                c.hot.recycled();
                Ok(())
            }
            Err(_) => {
                // deadpool drops it and tries the next idle one or opens a new one.
                Counters::inc(&c.recycle_failures);
                Err(RecycleError::message("recycle check failed"))
            }
        }
    }
}

pub(crate) type DeadPool<B> = managed::Pool<Instrumented<B>>;

pub(crate) struct PoolInner<B: Backend> {
    pub shared: Arc<Shared>,
    pub pool: DeadPool<B>,
    /// deadpool's own timeouts stay off: ours bound the whole acquire.
    pub no_timeouts: managed::Timeouts,
    pub ctx: Arc<Ctx>,
}

/// A named pool of one backend's connections. Cheap to clone.
pub struct ManagedPool<B: Backend> {
    pub(crate) inner: Arc<PoolInner<B>>,
}

impl<B: Backend> Clone for ManagedPool<B> {
    fn clone(&self) -> Self {
        ManagedPool {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Backend> fmt::Debug for ManagedPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedPool")
            .field("name", &self.inner.shared.name)
            .field("status", &self.inner.pool.status())
            .finish()
    }
}

/// Gives an admission permit back unless it was handed on to a connection guard; so an
/// acquire cancelled while connecting loses no permit.
struct PermitGuard<'a> {
    adm: &'a Admission,
    armed: bool,
}

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.adm.release();
        }
    }
}

impl<B: Backend> ManagedPool<B> {
    pub(crate) fn new(
        name: &str,
        backend: B,
        cfg: CommonSettings,
        ctx: Arc<Ctx>,
    ) -> Result<Self, PoolError> {
        let full = format!("{}/{name}", B::KIND);
        let shared = Arc::new(Shared {
            name: full.clone(),
            admission: Admission::new(cfg.max as usize),
            cfg,
            counters: Counters::default(),
            breaker: Breaker::new(full.clone(), cfg.breaker, ctx.bus.clone()),
        });
        let manager = Instrumented {
            backend,
            shared: shared.clone(),
        };
        // No deadpool timeouts: ours bound the whole acquire (queue + connect), and a
        // permit from our admission layer means deadpool's semaphore never makes us wait.
        // LIFO hands out the most recently used connection, so the ones beyond what the
        // load needs stay idle long enough for the idle timeout to close them.
        let pool = managed::Pool::builder(manager)
            .max_size(cfg.max as usize)
            .queue_mode(QueueMode::Lifo)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| PoolError::Backend {
                pool: full.clone(),
                source: Box::new(e),
            })?;
        Ok(ManagedPool {
            inner: Arc::new(PoolInner {
                shared,
                pool,
                no_timeouts: managed::Timeouts::new(),
                ctx,
            }),
        })
    }

    /// The pool's full name, `kind/name`.
    pub fn name(&self) -> &str {
        &self.inner.shared.name
    }

    /// A connection for tenant `default` at priority 0.
    pub fn get(&self) -> impl Future<Output = Result<Pooled<B>, PoolError>> + Send + '_ {
        // Not an `async fn` wrapping `get_with`: each async layer copies the whole
        // (kilobytes) future once more per acquire.
        self.get_with("default", 0)
    }

    /// A connection for `tenant` at `priority` (higher is more important). When the
    /// pool is exhausted the caller queues, ranked by the priority policy; the wait plus
    /// any connecting is bounded by `acquire_timeout`. Dropping the future at any point
    /// loses no permit and leaks no connection.
    pub async fn get_with(&self, tenant: &str, priority: u8) -> Result<Pooled<B>, PoolError> {
        let inner = &*self.inner;
        let sh = &*inner.shared;
        let c = &sh.counters;
        if let Err(r) = sh.breaker.admit() {
            Counters::inc(&c.circuit_rejections);
            return Err(PoolError::CircuitOpen {
                pool: sh.name.clone(),
                reason: r.reason,
                retry_in_ms: r.retry_in.as_millis() as u64,
            });
        }
        // The fast path (a free permit, an idle connection that passes a synchronous
        // check) reads no clock, arms no timer and allocates nothing: each of those cost
        // as much as deadpool's whole acquire. The slow paths are boxed so they do not
        // bloat this future, which every caller moves.
        let mut start = None;
        if !sh.admission.try_acquire() {
            let t0 = Instant::now();
            start = Some(t0);
            Box::pin(self.wait_in_queue(tenant, priority, t0)).await?;
        }
        let mut permit = PermitGuard {
            adm: &sh.admission,
            armed: true,
        };
        let obj = loop {
            // `timeout_get` rather than `get`: one async layer (one future copy) fewer.
            let mut get = std::pin::pin!(inner.pool.timeout_get(&inner.no_timeouts));
            let res = match futures::FutureExt::now_or_never(get.as_mut()) {
                Some(res) => res,
                None => {
                    let t0 = *start.get_or_insert_with(Instant::now);
                    let deadline = tokio::time::Instant::from_std(t0) + sh.cfg.acquire_timeout;
                    match Box::pin(tokio::time::timeout_at(deadline, get)).await {
                        Ok(res) => res,
                        Err(_) => {
                            Counters::inc(&c.timeouts);
                            return Err(PoolTimeout {
                                pool: sh.name.clone(),
                                waited: t0.elapsed(),
                                position: 0,
                                queue_len: sh.admission.waiting(),
                            }
                            .into());
                        }
                    }
                }
            };
            let obj = res.map_err(|e| self.map_err(e))?;
            // An idle connection can pass its lifetime while idle: retire it here rather
            // than hand it out. deadpool stamped the handout time a moment ago; reuse it
            // instead of reading the clock again.
            let m = Object::metrics(&obj);
            if !obj.expired(m.recycled.unwrap_or(m.created)) {
                break obj;
            }
            Counters::inc(&c.retired_lifetime);
            drop(Object::take(obj));
        };
        permit.armed = false;
        // Without a start time nothing waited: the acquire took well under the lowest
        // bucket's bound.
        c.hot
            .acquired(start.map_or(Duration::ZERO, |t| t.elapsed()));
        sh.breaker.on_success();
        Ok(Pooled {
            obj: Some(obj),
            broken: false,
        })
    }

    /// Queues for a permit, ranked by the priority policy, until `acquire_timeout` after
    /// `start`.
    async fn wait_in_queue(
        &self,
        tenant: &str,
        priority: u8,
        start: Instant,
    ) -> Result<(), PoolError> {
        let inner = &*self.inner;
        let sh = &*inner.shared;
        let c = &sh.counters;
        let deadline = tokio::time::Instant::from_std(start) + sh.cfg.acquire_timeout;
        let mut queued = false;
        let rank = || {
            queued = true;
            let waiter = Waiter {
                tenant: tenant.to_string(),
                priority,
                enqueued_ms: inner.ctx.now_ms(),
                queue: sh.name.clone(),
            };
            inner.ctx.policy.rank(&waiter)
        };
        if let Err(t) = sh.admission.acquire(rank, deadline).await {
            Counters::inc(&c.timeouts);
            sh.breaker.on_timeout();
            return Err(PoolTimeout {
                pool: sh.name.clone(),
                waited: start.elapsed(),
                position: t.position,
                queue_len: t.queue_len,
            }
            .into());
        }
        if queued {
            Counters::inc(&c.waits);
            Counters::add(&c.wait_us_sum, start.elapsed().as_micros() as u64);
        }
        Ok(())
    }

    fn map_err(&self, e: managed::PoolError<PoolError>) -> PoolError {
        let pool = self.inner.shared.name.clone();
        match e {
            managed::PoolError::Backend(e) => e,
            managed::PoolError::Closed => PoolError::Closed { pool },
            other => PoolError::Backend {
                pool,
                source: other.to_string().into(),
            },
        }
    }

    /// Closes the pool: queued and future acquires fail, idle connections close, and
    /// connections in use close when returned.
    pub fn close(&self) {
        self.inner.pool.close();
    }

    /// Runs `f` with backoff and jitter while it fails with an error `retryable` accepts,
    /// up to the pool's `retry.attempts`; each failure counts towards the breaker.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // only Redis retries commands
    pub(crate) async fn with_retry<T, E, F, Fut>(
        &self,
        mut f: F,
        retryable: impl Fn(&E) -> bool,
    ) -> Result<T, PoolError>
    where
        E: std::error::Error + Send + Sync + 'static,
        F: FnMut(Pooled<B>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let sh = &self.inner.shared;
        let retry = sh.cfg.retry;
        let mut attempt = 1;
        loop {
            let conn = self.get().await?;
            match f(conn).await {
                Ok(v) => {
                    sh.breaker.on_success();
                    return Ok(v);
                }
                Err(e) if retryable(&e) => {
                    sh.breaker.on_failure(&e.to_string());
                    if attempt >= retry.attempts {
                        return Err(PoolError::Backend {
                            pool: sh.name.clone(),
                            source: Box::new(e),
                        });
                    }
                    tokio::time::sleep(backoff(&retry, attempt)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(PoolError::Backend {
                        pool: sh.name.clone(),
                        source: Box::new(e),
                    });
                }
            }
        }
    }
}

/// A connection out of a pool. Derefs to the backend's connection (a
/// `deadpool_postgres::ClientWrapper`, a redis `MultiplexedConnection`); goes back to
/// the pool when dropped or [`released`](Pooled::release).
pub struct Pooled<B: Backend> {
    obj: Option<Object<Instrumented<B>>>,
    broken: bool,
}

impl<B: Backend> Pooled<B> {
    /// Gives the connection back (the original system's `release`; dropping does the same).
    pub fn release(self) {}

    /// Closes the connection instead of returning it: for a caller that saw it fail.
    pub fn discard(mut self) {
        self.broken = true;
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.obj
            .as_ref()
            .map_or(Duration::ZERO, |o| Object::metrics(o).age())
    }
}

impl<B: Backend> Deref for Pooled<B> {
    type Target = B::Type;
    fn deref(&self) -> &B::Type {
        // `obj` is only taken in Drop.
        self.obj.as_ref().expect("pooled connection present").raw()
    }
}

impl<B: Backend> DerefMut for Pooled<B> {
    fn deref_mut(&mut self) -> &mut B::Type {
        self.obj
            .as_mut()
            .expect("pooled connection present")
            .raw_mut()
    }
}

impl<B: Backend> fmt::Debug for Pooled<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("pool", &self.obj.as_ref().map(|o| &o.shared.name))
            .field("age", &self.age())
            .finish()
    }
}

impl<B: Backend> Drop for Pooled<B> {
    fn drop(&mut self) {
        let Some(mut obj) = self.obj.take() else {
            return;
        };
        let now = Instant::now();
        let retire = {
            let sh = &*obj.shared;
            let c = &sh.counters;
            let retire = if self.broken || B::is_closed(&obj.raw) {
                Counters::inc(&c.discarded);
                true
            } else if obj.expired(now) {
                Counters::inc(&c.retired_lifetime);
                true
            } else {
                false
            };
            // Our permit goes on a moment before deadpool's slot comes back (below): a
            // waiter handed it may wait inside deadpool for those few instructions. The
            // other order would need a reference-count bump per acquire to keep `sh`
            // alive past the object, which costs every acquire more.
            sh.admission.release();
            retire
        };
        if retire {
            drop(Object::take(obj));
        } else {
            obj.returned = now;
            drop(obj);
        }
    }
}
