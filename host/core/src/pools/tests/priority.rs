//! Real server: a high-priority waiter is served before earlier low-priority ones, and
//! the priority policy can be swapped at runtime.

use super::support::*;
use crate::policy::{PriorityPolicy, Waiter};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

async fn service_order(
    pools: &crate::pools::PoolManager,
    waiters: &[(&'static str, u8)],
) -> Vec<&'static str> {
    let pool = pools.postgres("t").unwrap();
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (i, &(label, priority)) in waiters.iter().enumerate() {
        let (p, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let conn = p.get_with("tenant", priority).await.unwrap();
            order.lock().push(label);
            conn.simple_query("SELECT 1").await.unwrap();
        }));
        wait_until("the waiter to queue", Duration::from_secs(10), || async {
            pool.metrics().waiting as usize == i + 1
        })
        .await;
    }
    drop(held);
    for t in tasks {
        t.await.unwrap();
    }
    order.lock().clone()
}

#[tokio::test]
async fn a_high_priority_waiter_goes_before_earlier_low_ones() {
    pg_admin().await;
    let (pools, _bus) = pg_manager(pg_settings(&unique("priority"), 1));
    let order = service_order(&pools, &[("low1", 0), ("low2", 0), ("high", 9)]).await;
    assert_eq!(order, ["high", "low1", "low2"]);
}

/// Ranks by tenant only: `vip` first, whatever the priority.
struct VipFirst(Arc<Mutex<Vec<Waiter>>>);

impl PriorityPolicy for VipFirst {
    fn name(&self) -> &str {
        "test:vip"
    }
    fn rank(&self, w: &Waiter) -> i64 {
        self.0.lock().push(w.clone());
        if w.priority == 1 { 0 } else { 1 }
    }
}

#[tokio::test]
async fn the_bound_policy_ranks_and_sees_the_waiter() {
    pg_admin().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (pools, _bus) = pg_manager_with(
        pg_settings(&unique("priority-policy"), 1),
        Arc::new(VipFirst(seen.clone())),
    );
    assert_eq!(pools.priority_policy().name(), "test:vip");
    // Under the native policy the priority-9 waiter would go first.
    let order = service_order(&pools, &[("p9", 9), ("p1", 1)]).await;
    assert_eq!(order, ["p1", "p9"]);
    let seen = seen.lock();
    assert_eq!(seen.len(), 2, "rank is asked once per waiter");
    assert_eq!(
        (seen[0].tenant.as_str(), seen[0].queue.as_str()),
        ("tenant", "postgres/t")
    );
    assert!(seen[0].enqueued_ms <= seen[1].enqueued_ms);
    assert!(seen[1].enqueued_ms <= pools.now_ms());
}
