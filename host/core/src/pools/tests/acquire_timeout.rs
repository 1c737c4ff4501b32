//! Real server: an exhausted pool answers `PoolTimeout` with the pool's name, the time
//! waited and the caller's place in the queue.

use super::support::*;
use crate::pools::{PoolError, PoolTimeout};
use std::time::Duration;

#[tokio::test]
async fn an_exhausted_pool_times_out_with_name_wait_and_position() {
    pg_admin().await;
    let mut s = pg_settings(&unique("timeout"), 1);
    s.acquire_timeout_ms = 300;
    let (pools, _bus) = pg_manager(s);
    let pool = pools.postgres("t").unwrap();
    let held = pool.get().await.unwrap();

    // An earlier, low-priority waiter that outlasts us and a later, high-priority one
    // ranked ahead of it: when the first low one gives up it is second in the queue.
    let low = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_with("t", 0).await.map(drop) }
    });
    wait_until(
        "the low waiter to queue",
        Duration::from_secs(10),
        || async { pool.metrics().waiting == 1 },
    )
    .await;
    let high = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_with("t", 9).await.map(drop) }
    });

    let err = low.await.unwrap().unwrap_err();
    let PoolError::Timeout(PoolTimeout {
        pool: name,
        waited,
        position,
        queue_len,
    }) = &err
    else {
        panic!("expected a timeout, got {err}");
    };
    assert_eq!(name, "postgres/t");
    assert!(*waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!((*position, *queue_len), (2, 2));
    let msg = err.to_string();
    assert!(
        msg.starts_with("pool postgres/t: no connection within ")
            && msg.contains("(position 2 of 2 in the wait queue)"),
        "{msg}"
    );

    let err = high.await.unwrap().unwrap_err();
    assert!(
        matches!(err, PoolError::Timeout(PoolTimeout { position: 1, .. })),
        "{err}"
    );
    drop(held);
    let m = pool.metrics();
    assert_eq!((m.timeouts, m.waiting, m.in_use), (2, 0, 0));
    pool.get().await.expect("the pool works again");
}
