//! The admission queue alone (no server): ranked order, ties in arrival order, positions
//! on timeout, and no permit lost to a waiter that gives up.

use crate::pools::queue::Admission;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

fn far() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn lowest_rank_first_then_arrival_order() {
    let adm = Arc::new(Admission::new(1));
    assert!(adm.try_acquire());
    let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (label, rank) in [("a", 5), ("b", 1), ("c", 5), ("d", 1)] {
        let (a, order) = (adm.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            a.acquire(|| rank, far()).await.unwrap();
            order.lock().push(label);
            a.release();
        }));
        // Let it enqueue before the next one arrives.
        while adm.waiting() < tasks.len() {
            tokio::task::yield_now().await;
        }
    }
    adm.release();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock(), ["b", "d", "a", "c"]);
    assert_eq!(adm.available(), 1);
}

#[tokio::test]
async fn a_timeout_reports_its_position() {
    let adm = Arc::new(Admission::new(1));
    assert!(adm.try_acquire());
    let ahead = {
        let adm = adm.clone();
        tokio::spawn(async move { adm.acquire(|| 0, far()).await })
    };
    while adm.waiting() < 1 {
        tokio::task::yield_now().await;
    }
    let err = adm
        .acquire(|| 10, Instant::now() + Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!((err.position, err.queue_len), (2, 2));
    adm.release();
    ahead.await.unwrap().unwrap();
    adm.release();
    assert_eq!(adm.available(), 1);
}

#[tokio::test]
async fn a_dropped_waiter_passes_on_a_permit_it_was_handed() {
    let adm = Arc::new(Admission::new(1));
    assert!(adm.try_acquire());
    // Enqueue, then have the permit handed to it while nobody polls it, then drop it.
    let mut fut = Box::pin(adm.acquire(|| 0, far()));
    assert!(futures::poll!(fut.as_mut()).is_pending());
    assert_eq!(adm.waiting(), 1);
    adm.release();
    drop(fut);
    assert_eq!(adm.waiting(), 0);
    assert_eq!(adm.available(), 1, "the handed permit went back");
    // And a waiter dropped while still queued just leaves.
    assert!(adm.try_acquire());
    let mut fut = Box::pin(adm.acquire(|| 0, far()));
    assert!(futures::poll!(fut.as_mut()).is_pending());
    drop(fut);
    assert_eq!(adm.waiting(), 0);
    adm.release();
    assert_eq!(adm.available(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_acquires_timeouts_and_cancels_loses_nothing() {
    let adm = Arc::new(Admission::new(2));
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let adm = adm.clone();
            tokio::spawn(async move {
                for i in 0..200u64 {
                    let budget = Duration::from_micros((t * 7 + i * 13) % 300);
                    let acquire = adm.acquire(|| ((t + i) % 5) as i64, Instant::now() + budget);
                    // Some acquires are cut short from outside as well (future dropped).
                    let cut = tokio::time::timeout(Duration::from_micros(150), acquire);
                    if let Ok(Ok(())) = cut.await {
                        tokio::task::yield_now().await;
                        adm.release();
                    }
                }
            })
        })
        .collect();
    let all = futures::future::join_all(tasks);
    for r in tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("no waiter hangs")
    {
        r.unwrap();
    }
    assert_eq!((adm.available(), adm.waiting()), (2, 0));
}
