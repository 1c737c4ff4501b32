//! Real server: connections past `max_lifetime` are retired (when returned, and when
//! found idle) and replaced by new backends.

use super::support::*;
use std::time::Duration;

async fn backend_pid(conn: &crate::pools::PgConn) -> i32 {
    conn.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn old_connections_are_retired_and_replaced() {
    pg_admin().await;
    let mut s = pg_settings(&unique("lifetime"), 2);
    s.max_lifetime_ms = 300;
    s.lifetime_jitter_percent = 0;
    let (pools, _bus) = pg_manager(s);
    let pool = pools.postgres("t").unwrap();

    // Held past its lifetime: retired when returned.
    let conn = pool.get().await.unwrap();
    let first = backend_pid(&conn).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(conn);
    let m = pool.metrics();
    assert_eq!((m.retired_lifetime, m.size), (1, 0), "{m:?}");

    // Idle past its lifetime: retired at the next handout, never handed out.
    let conn = pool.get().await.unwrap();
    let second = backend_pid(&conn).await;
    assert_ne!(first, second);
    drop(conn);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let conn = pool.get().await.unwrap();
    let third = backend_pid(&conn).await;
    assert_ne!(second, third);
    assert_eq!(pool.metrics().retired_lifetime, 2);

    // A young connection is reused.
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_eq!(backend_pid(&conn).await, third);
}
