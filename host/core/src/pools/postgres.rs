//! The Postgres backend: deadpool-postgres' manager over tokio-postgres, with TLS as the
//! URL's `sslmode` says (crate::tls).

use super::error::{BackendError, PoolError};
use super::managed::{Backend, Ctx, ManagedPool, Pooled};
use super::settings::{PostgresSettings, RecycleCheck, redact};
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, RecyclingMethod};
use std::sync::Arc;
use std::time::Duration;

/// A Postgres pool: `get()` gives a [`PgConn`].
pub type PostgresPool = ManagedPool<Manager>;

/// A pooled Postgres connection; derefs to `deadpool_postgres::ClientWrapper` (and on to
/// `tokio_postgres::Client`).
pub type PgConn = Pooled<Manager>;

impl Backend for Manager {
    const KIND: &'static str = "postgres";

    async fn ping(conn: &mut ClientWrapper) -> Result<(), BackendError> {
        conn.simple_query("SELECT 1").await?;
        Ok(())
    }

    fn is_closed(conn: &ClientWrapper) -> bool {
        conn.is_closed()
    }
}

pub(crate) fn build(
    name: &str,
    s: &PostgresSettings,
    ctx: Arc<Ctx>,
) -> Result<PostgresPool, PoolError> {
    let target = crate::tls::parse(&s.url).map_err(|e| PoolError::Backend {
        pool: format!("postgres/{name}"),
        source: format!("bad url {}: {e}", redact(&s.url)).into(),
    })?;
    let mut pg = target.config;
    // Naming the sessions lets operators (and our tests) find them in pg_stat_activity.
    if pg.get_application_name().is_none() {
        let app = s
            .application_name
            .clone()
            .unwrap_or_else(|| format!("rmhost/{name}"));
        pg.application_name(app);
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_millis(s.connect_timeout_ms));
    }
    let recycling_method = match s.recycle_check {
        RecycleCheck::Fast => RecyclingMethod::Fast,
        RecycleCheck::Verified => RecyclingMethod::Verified,
        RecycleCheck::Clean => RecyclingMethod::Clean,
    };
    let manager = Manager::from_config(pg, target.tls, ManagerConfig { recycling_method });
    ManagedPool::new(name, manager, s.common(), ctx)
}
