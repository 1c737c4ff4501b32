//! Orphan cleanup: leases that were not renewed and allocations whose owner process has
//! exited are reclaimed by a background task, each with an `OrphanReclaimed` event.

use super::{Allocation, ResourceManager};
use crate::events::Event;
use crate::events::ReleaseReason;
use std::time::Duration;

/// Tells whether a process is still running; injectable for tests.
pub trait ProcessProbe: Send + Sync + std::fmt::Debug {
    /// Whether `pid` is alive.
    fn is_alive(&self, pid: u32) -> bool;
}

/// The real probe: `kill(pid, 0)`, which checks existence without sending anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcfsProbe;

impl ProcessProbe for ProcfsProbe {
    fn is_alive(&self, pid: u32) -> bool {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 performs only the existence and permission check.
        let rc = unsafe { libc::kill(pid, 0) };
        if rc == 0 {
            // A zombie still exists for kill(); it has exited all the same.
            return !is_zombie(pid);
        }
        // EPERM: it exists but belongs to someone else.
        std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

fn is_zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Runs `reclaim_orphans` every `interval` until the returned task is aborted.
pub fn spawn_reaper(manager: ResourceManager, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // A shared ledger answers over the network: off the async workers.
            let m = manager.clone();
            let Ok(reclaimed) = tokio::task::spawn_blocking(move || m.reclaim_orphans()).await
            else {
                continue;
            };
            if !reclaimed.is_empty() {
                tracing::info!(count = reclaimed.len(), "reclaimed orphaned allocations");
            }
        }
    })
}

impl ResourceManager {
    /// Reclaims expired leases and allocations whose owner process is gone, with an
    /// `OrphanReclaimed` event each. Returns what was reclaimed.
    pub fn reclaim_orphans(&self) -> Vec<Allocation> {
        if let Some(shared) = &self.inner.shared {
            let reaped = match shared.reap(self.inner.probe.as_ref()) {
                Ok(r) => r,
                // Nothing is reaped by a host that cannot see the ledger; the next tick
                // (or another host) will.
                Err(e) => {
                    tracing::debug!(error = %e, "reaping skipped: the shared ledger is unavailable");
                    return Vec::new();
                }
            };
            let mut out = Vec::with_capacity(reaped.len());
            for (a, reason) in reaped {
                self.inner.stats.lock().reclaimed += 1;
                self.inner.events.publish(Event::OrphanReclaimed {
                    id: a.id,
                    tenant: a.tenant.clone(),
                    kind: a.kind,
                    amount: a.amount,
                    reason,
                });
                out.push(a);
            }
            return out;
        }
        let now = self.inner.clock.now_ms();
        let (expired, pids) = {
            let l = self.inner.ledger.lock();
            (l.expired(now), l.pids())
        };
        let mut out = Vec::new();
        for id in expired {
            if let Ok(a) = self.release_with(id, ReleaseReason::LeaseExpired) {
                out.push(a);
            }
        }
        for pid in pids {
            if self.inner.probe.is_alive(pid) {
                continue;
            }
            let ids = self.inner.ledger.lock().held_by(pid);
            for id in ids {
                if let Ok(a) = self.release_with(id, ReleaseReason::OwnerGone) {
                    out.push(a);
                }
            }
        }
        out
    }
}
