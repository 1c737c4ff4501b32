//! The PostgreSQL ledger (`[state] ledger = "postgres://…"`): allocations, quotas,
//! rate-limit overrides, policy bindings and cache definitions in tables every host on the
//! database shares.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`PgLedger`]: connection, migrations, bounded calls, health and heartbeat |
//! | `schema.sql` | tables and the functions that make each change one atomic round trip |
//! | `ops.rs` | the [`SharedLedger`](super::SharedLedger) operations |
//! | `catalog.rs` | bindings and cache definitions ([`SharedCatalog`](super::SharedCatalog)) |
//! | `listen.rs` | `LISTEN rm_ledger`: other hosts' changes, for this host's events and caches |
//!
//! Each change is one call of a PL/pgSQL function (`rm_grant`, `rm_release`, `rm_reap`),
//! so a grant is one round trip and one transaction whatever the interleaving of hosts:
//! the counter rows are locked in one order, checked, and moved together with the rows.
//! The ledger runs its own small tokio runtime, so its synchronous calls can be made from
//! any thread (the manager's callers run on the blocking pool) and always wait a bounded
//! time.

mod catalog;
mod listen;
mod ops;

use super::{RemoteChange, ResourceError};
use crate::events::{Event, EventBus};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use parking_lot::Mutex;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: i32 = 2;
const SCHEMA: &str = include_str!("schema.sql");
/// Advisory-lock key serialising migrations across hosts ("rmhost" in ASCII).
const MIGRATION_LOCK: i64 = 0x726d_686f_7374;

/// How to reach and use the PostgreSQL ledger.
#[derive(Debug, Clone)]
pub struct PgLedgerOptions {
    /// `postgres://…` URL (libpq keys such as `sslmode` are honoured by the connector).
    pub url: String,
    /// This host's id (pid-bound allocations belong to it).
    pub host_id: String,
    /// Longest wait for any call.
    pub timeout: Duration,
    /// A host whose heartbeat is older than this has its pid-bound allocations reclaimed.
    pub host_lapse: Duration,
    /// Pool size.
    pub max_connections: usize,
}

struct Shared {
    opts: PgLedgerOptions,
    pool: Pool,
    events: EventBus,
    down: Mutex<Option<String>>,
    was_down: AtomicBool,
    global: [AtomicU64; 5],
    live_hosts: AtomicU64,
    changes: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<RemoteChange>>>,
}

/// The PostgreSQL ledger. Cheap to share (`Arc`).
pub struct PgLedger {
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for PgLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLedger")
            .field("host_id", &self.shared.opts.host_id)
            .field("down", &*self.shared.down.lock())
            .finish_non_exhaustive()
    }
}

impl Drop for PgLedger {
    fn drop(&mut self) {
        // Dropping a runtime blocks on its tasks, which would panic inside an async
        // context; the background tasks hold nothing that needs a clean stop.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn unavailable(reason: impl std::fmt::Display) -> ResourceError {
    ResourceError::Unavailable {
        backend: "postgres".into(),
        reason: reason.to_string(),
    }
}

impl PgLedger {
    /// Connects, applies the embedded migrations (or checks the schema version), registers
    /// this host and starts the heartbeat and the listener. Fails when the database cannot
    /// be reached within the timeout: a host configured for a shared ledger does not start
    /// on a private one.
    pub fn connect(opts: PgLedgerOptions, events: EventBus) -> Result<Arc<Self>, ResourceError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rmhost-pg-ledger")
            .enable_all()
            .build()
            .map_err(|e| unavailable(format!("cannot start the ledger's runtime: {e}")))?;
        let crate::tls::PgTarget {
            config: mut pg,
            tls,
            ..
        } = crate::tls::parse(&opts.url).map_err(|e| ResourceError::InvalidRequest {
            field: "state.ledger".into(),
            reason: e.to_string(),
        })?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(opts.timeout);
        }
        // The server gives up on what the client gave up on, so a timed-out call cannot
        // hold counter rows locked behind the caller's back.
        let ms = opts.timeout.as_millis().max(1);
        let extra = format!("-c statement_timeout={ms} -c lock_timeout={ms}");
        let options = match pg.get_options() {
            Some(o) => format!("{o} {extra}"),
            None => extra,
        };
        pg.options(&options);
        let manager = Manager::from_config(
            pg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.max_connections.max(1))
            .wait_timeout(Some(opts.timeout))
            .create_timeout(Some(opts.timeout))
            .recycle_timeout(Some(opts.timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(unavailable)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            opts,
            pool,
            events,
            down: Mutex::new(None),
            was_down: AtomicBool::new(false),
            global: Default::default(),
            live_hosts: AtomicU64::new(1),
            changes: Mutex::new(Some(rx)),
        });
        let ledger = PgLedger {
            shared: shared.clone(),
            rt: Some(rt),
        };
        // Migrations may wait for another host's; give them longer than one call.
        let s = shared.clone();
        ledger.run_for(shared.opts.timeout * 20, async move { migrate(&s).await })?;
        let s = shared.clone();
        ledger.run(async move { heartbeat(&s).await })?;
        let rt = ledger.rt.as_ref().expect("runtime present until drop");
        rt.spawn(heartbeat_loop(shared.clone()));
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        rt.spawn(listen::listen_loop(shared.clone(), pg, tls, tx, ready_tx));
        // Changes other hosts make from now on must be heard: wait (bounded) for LISTEN.
        // If it is late, the listener's first connection resyncs instead.
        let (heard_tx, heard) = std::sync::mpsc::sync_channel(1);
        let limit = shared.opts.timeout;
        rt.spawn(async move {
            let _ = tokio::time::timeout(limit, ready).await;
            let _ = heard_tx.send(());
        });
        let _ = heard.recv_timeout(limit + Duration::from_millis(100));
        Ok(Arc::new(ledger))
    }

    /// Runs `fut` on the ledger's runtime, waiting at most the timeout.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, ResourceError>> + Send + 'static,
    ) -> Result<T, ResourceError> {
        self.run_for(self.shared.opts.timeout, fut)
    }

    fn run_for<T: Send + 'static>(
        &self,
        limit: Duration,
        fut: impl Future<Output = Result<T, ResourceError>> + Send + 'static,
    ) -> Result<T, ResourceError> {
        let rt = self.rt.as_ref().expect("runtime present until drop");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shared = self.shared.clone();
        rt.spawn(async move {
            let r = match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => Err(unavailable(format!(
                    "no answer within {} ms",
                    limit.as_millis()
                ))),
            };
            match &r {
                // A full pool is this host's congestion, not the server's absence.
                Err(ResourceError::Unavailable { reason, .. }) if reason.starts_with(BUSY) => {}
                Err(ResourceError::Unavailable { reason, .. }) => mark_down(&shared, reason),
                _ => mark_up(&shared),
            }
            let _ = tx.send(r);
        });
        // The task itself is bounded by `limit`; the margin covers scheduling only.
        rx.recv_timeout(limit + Duration::from_millis(100))
            .unwrap_or_else(|_| {
                Err(unavailable(format!(
                    "no answer within {} ms",
                    limit.as_millis()
                )))
            })
    }
}

const BUSY: &str = "every connection of the ledger's pool is busy";

/// A pool error: waiting for a free connection is congestion (say so, and how to widen
/// it); failing to make one is the server's absence.
fn pool_error(e: deadpool_postgres::PoolError) -> ResourceError {
    match e {
        deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            unavailable(format!("{BUSY} (raise state.ledger_pool_size)"))
        }
        other => unavailable(crate::pools::error_chain(&other)),
    }
}

fn mark_down(s: &Shared, reason: &str) {
    let mut down = s.down.lock();
    if down.is_none() {
        *down = Some(reason.to_string());
        s.was_down.store(true, Ordering::Relaxed);
        drop(down);
        tracing::warn!(reason, "ledger backend postgres is down");
        s.events.publish(Event::BackendDown {
            backend: "postgres".into(),
            error: reason.to_string(),
        });
    }
}

fn mark_up(s: &Shared) {
    if s.down.lock().take().is_some() {
        tracing::info!("ledger backend postgres is back");
        s.events.publish(Event::BackendUp {
            backend: "postgres".into(),
        });
    }
}

async fn migrate(s: &Shared) -> Result<(), ResourceError> {
    let mut client = s.pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(unavailable)?;
    // A migration may wait for another host's; the per-call statement timeout is for
    // requests, not for this.
    tx.batch_execute("SET LOCAL statement_timeout = '60s'; SET LOCAL lock_timeout = '60s'")
        .await
        .map_err(unavailable)?;
    // Hosts starting together on an empty database: one creates, the others wait and
    // then find the schema in place.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(unavailable)?;
    let exists = tx
        .query_one("SELECT to_regclass('rm_schema') IS NOT NULL", &[])
        .await
        .map_err(unavailable)?
        .get::<_, bool>(0);
    if exists {
        let row = tx
            .query_opt("SELECT max(version) FROM rm_schema", &[])
            .await
            .map_err(unavailable)?;
        let found: Option<i32> = row.and_then(|r| r.get(0));
        if let Some(v) = found
            && v > SCHEMA_VERSION
        {
            return Err(ResourceError::InvalidRequest {
                field: "state.ledger".into(),
                reason: format!(
                    "the database holds ledger schema version {v}, newer than this rmhost's \
                     {SCHEMA_VERSION}: upgrade rmhost or point it at another database"
                ),
            });
        }
        if found != Some(SCHEMA_VERSION) {
            apply_schema(&tx).await?;
        }
    } else {
        apply_schema(&tx).await?;
    }
    // Counters are recomputed from the rows at every start (drift repair), so a database
    // edited by hand, or a counter bug of an older build, does not outlive a restart.
    let fixed: i32 = tx
        .query_one("SELECT rm_repair()", &[])
        .await
        .map_err(unavailable)?
        .get(0);
    if fixed > 0 {
        tracing::warn!(
            rows = fixed,
            "shared ledger counters drifted from their rows; repaired"
        );
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(())
}

async fn apply_schema(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), ResourceError> {
    tx.batch_execute(SCHEMA).await.map_err(unavailable)?;
    tx.execute("DELETE FROM rm_schema", &[])
        .await
        .map_err(unavailable)?;
    tx.execute(
        "INSERT INTO rm_schema (version) VALUES ($1)",
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(unavailable)?;
    Ok(())
}

async fn heartbeat(s: &Shared) -> Result<(), ResourceError> {
    let client = s.pool.get().await.map_err(pool_error)?;
    let lapse_ms = s.opts.host_lapse.as_millis() as i64;
    client
        .execute(
            "SELECT rm_heartbeat($1, $2)",
            &[&s.opts.host_id, &(lapse_ms / 2)],
        )
        .await
        .map_err(unavailable)?;
    let rows = client
        .query(
            "SELECT kind, sum(used)::bigint FROM rm_global GROUP BY kind \
             UNION ALL SELECT '#hosts', count(*) FROM rm_hosts \
              WHERE heartbeat > now() - make_interval(secs => $1::bigint / 1000.0)",
            &[&lapse_ms],
        )
        .await
        .map_err(unavailable)?;
    for r in rows {
        let (kind, used): (String, i64) = (r.get(0), r.get(1));
        if kind == "#hosts" {
            s.live_hosts.store(used.max(1) as u64, Ordering::Relaxed);
        } else if let Ok(k) = crate::policy::ResourceKind::from_str(&kind) {
            s.global[super::ledger::slot(k)].store(used.max(0) as u64, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Heartbeats a few times per lapse (at most every second) and doubles as the health
/// probe: the first success after a failure announces `BackendUp`, so service resumes as
/// soon as the server is back rather than at the next request.
async fn heartbeat_loop(s: Arc<Shared>) {
    let every =
        (s.opts.host_lapse / 4).clamp(Duration::from_millis(100), Duration::from_millis(500));
    loop {
        tokio::time::sleep(every).await;
        match tokio::time::timeout(s.opts.timeout, heartbeat(&s)).await {
            Ok(Ok(())) => mark_up(&s),
            Ok(Err(e)) => mark_down(&s, &e.to_string()),
            Err(_) => mark_down(
                &s,
                &format!("no answer within {} ms", s.opts.timeout.as_millis()),
            ),
        }
    }
}
