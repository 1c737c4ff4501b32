//! The ranked admission layer in front of deadpool.
//!
//! deadpool's own semaphore serves waiters first come, first served. To serve by the
//! priority policy's rank instead, each pool has `max` permits here; deadpool's pool has
//! the same `max`, so a caller holding one of our permits (almost) never waits inside
//! deadpool.
//!
//! A released permit goes straight to the best waiter (lowest rank, then arrival), never
//! back to the free count while someone is queued. A waiter that gives up (timeout or its
//! future dropped) removes itself under the lock a hand-over takes, and if a permit was
//! already handed to it, passes it on: no permit is ever lost.
//!
//! The uncontended path is lock-free (one atomic read and one compare-exchange each way),
//! because every acquire pays it. `queued` mirrors the queue's length so that path can
//! see waiters without the lock; a release and a waiter that race each re-check the
//! other's counter after publishing their own (all SeqCst), so a permit freed as a
//! waiter queues is always noticed by one of them.

use parking_lot::{Mutex, MutexGuard};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Why a queued acquire gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueTimeout {
    /// 1-based position when the time ran out (0: the admission layer is gone).
    pub position: usize,
    /// Queue length at that moment, including the waiter.
    pub queue_len: usize,
}

#[derive(Debug, Default)]
struct Queue {
    /// (rank, arrival) -> the waiter's channel; the first entry is served next.
    waiters: BTreeMap<(i64, u64), oneshot::Sender<()>>,
    seq: u64,
}

#[derive(Debug)]
pub(crate) struct Admission {
    available: AtomicUsize,
    queued: AtomicUsize,
    queue: Mutex<Queue>,
}

impl Admission {
    pub fn new(permits: usize) -> Self {
        Admission {
            available: AtomicUsize::new(permits),
            queued: AtomicUsize::new(0),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Takes a permit if one is free and nobody is queued (queued waiters come first).
    pub fn try_acquire(&self) -> bool {
        self.queued.load(SeqCst) == 0 && self.take_free()
    }

    fn take_free(&self) -> bool {
        let mut cur = self.available.load(SeqCst);
        while cur > 0 {
            match self
                .available
                .compare_exchange_weak(cur, cur - 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    /// Takes a permit, queueing with the rank `rank()` gives if none is free. `rank` is
    /// only called when the caller has to wait, and outside the lock: a Wasm policy may
    /// take microseconds. `Err` when `deadline` passed first.
    pub async fn acquire(
        &self,
        rank: impl FnOnce() -> i64,
        deadline: Instant,
    ) -> Result<(), QueueTimeout> {
        if self.try_acquire() {
            return Ok(());
        }
        let rank = rank();
        let (tx, rx) = oneshot::channel();
        let key = {
            let mut q = self.queue.lock();
            // A permit may have come back while the policy ranked us.
            if q.waiters.is_empty() && self.take_free() {
                return Ok(());
            }
            q.seq += 1;
            let key = (rank, q.seq);
            q.waiters.insert(key, tx);
            self.queued.fetch_add(1, SeqCst);
            // A release that saw no waiter may have freed a permit just now: serve the
            // head of the queue with it (perhaps us).
            self.dispatch(&mut q);
            key
        };
        let mut wait = Queued {
            adm: self,
            key,
            rx,
            settled: false,
        };
        match tokio::time::timeout_at(deadline, &mut wait.rx).await {
            Ok(Ok(())) => {
                wait.settled = true;
                Ok(())
            }
            // The sender is only dropped unsent if the Admission itself is gone.
            Ok(Err(_)) => {
                wait.settled = true;
                Err(QueueTimeout {
                    position: 0,
                    queue_len: 0,
                })
            }
            Err(_) => {
                let mut q = self.queue.lock();
                wait.settled = true;
                if q.waiters.contains_key(&key) {
                    let position = q.waiters.range(..key).count() + 1;
                    let queue_len = q.waiters.len();
                    q.waiters.remove(&key);
                    self.queued.fetch_sub(1, SeqCst);
                    Err(QueueTimeout {
                        position,
                        queue_len,
                    })
                } else {
                    // Granted in the instant the time ran out: the permit is ours; take it
                    // rather than report a timeout and hand it on.
                    drop(q);
                    match wait.rx.try_recv() {
                        Ok(()) => Ok(()),
                        Err(_) => Err(QueueTimeout {
                            position: 0,
                            queue_len: 0,
                        }),
                    }
                }
            }
        }
    }

    /// Gives a permit back: to the best waiter, or to the free count.
    pub fn release(&self) {
        if self.queued.load(SeqCst) == 0 {
            self.available.fetch_add(1, SeqCst);
            // A waiter may have queued between the two lines above, after it last looked
            // at `available`.
            if self.queued.load(SeqCst) != 0 {
                self.dispatch(&mut self.queue.lock());
            }
            return;
        }
        self.hand_over(&mut self.queue.lock());
    }

    /// Hands one permit to the best waiter, or frees it when nobody (left) waits.
    fn hand_over(&self, q: &mut MutexGuard<'_, Queue>) {
        while let Some((_, tx)) = q.waiters.pop_first() {
            self.queued.fetch_sub(1, SeqCst);
            // A waiter removes itself under this lock before dropping its receiver, so
            // a failed send is defensive only: then try the next one.
            if tx.send(()).is_ok() {
                return;
            }
        }
        self.available.fetch_add(1, SeqCst);
    }

    /// Moves free permits to queued waiters, best first.
    fn dispatch(&self, q: &mut MutexGuard<'_, Queue>) {
        while !q.waiters.is_empty() && self.take_free() {
            self.hand_over(q);
        }
    }

    /// Callers queued now.
    pub fn waiting(&self) -> usize {
        self.queued.load(SeqCst)
    }

    /// Permits not held by anyone.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.available.load(SeqCst)
    }
}

/// A caller in the queue. Dropping it unsettled (the acquire future was cancelled) takes
/// it out of the queue, or passes on a permit it was handed but never saw.
struct Queued<'a> {
    adm: &'a Admission,
    key: (i64, u64),
    rx: oneshot::Receiver<()>,
    settled: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut q = self.adm.queue.lock();
        if q.waiters.remove(&self.key).is_some() {
            self.adm.queued.fetch_sub(1, SeqCst);
        } else if self.rx.try_recv().is_ok() {
            self.adm.hand_over(&mut q);
        }
    }
}
