//! The smoke calls a new version must pass before it is swapped in.

use std::time::{Duration, Instant};

use super::{Fault, PolicyVersion, samples};
use rmhost_core::policy::{PolicyKind, PressureLevel, SystemUsage};

impl PolicyVersion {
    /// Calls each exported kind once on a fresh instance with a small, valid input, so a
    /// component that traps or answers nonsense never gets swapped in. Returns the time
    /// of the first instantiation.
    pub(crate) fn smoke(&self) -> Result<Duration, String> {
        let mut inst_time = None;
        let mut timed = |t: Instant| {
            inst_time.get_or_insert(t.elapsed());
        };
        let fail = |k: PolicyKind, f: Fault| format!("smoke call to {k} failed: {f}");
        if self.eviction.is_some() {
            let t = Instant::now();
            let mut inst = self
                .new_eviction()
                .map_err(|f| fail(PolicyKind::Eviction, f))?;
            timed(t);
            self.configure(&mut inst, 1 << 20, 16)
                .map_err(|f| fail(PolicyKind::Eviction, f))?;
            let mut events = Vec::new();
            for id in 0..4 {
                events.extend_from_slice(&[id, 100, 0, 0x5eed ^ id]);
            }
            events.extend_from_slice(&[0, 100, 1 << 8, 0x5eed]); // a hit on id 0
            let ids = self
                .observe(&mut inst, &events, 150, 4)
                .map_err(|f| fail(PolicyKind::Eviction, f))?;
            if let Some(bad) = ids.iter().find(|id| **id >= 4) {
                return Err(format!(
                    "smoke call to eviction failed: victim {bad} is not a live id (live: 0-3)"
                ));
            }
        }
        let usage = SystemUsage::default();
        if self.quota.is_some() {
            let t = Instant::now();
            let (req, ts) = samples::quota(1);
            self.decide(&req, &ts, &usage, &[])
                .map_err(|f| fail(PolicyKind::Quota, f))?;
            timed(t);
        }
        if self.priority.is_some() {
            let t = Instant::now();
            self.rank(&samples::waiter(1))
                .map_err(|f| fail(PolicyKind::Priority, f))?;
            timed(t);
        }
        if self.pressure.is_some() {
            let t = Instant::now();
            let (caches, pools) = samples::standing();
            self.respond(PressureLevel::Warning, &usage, &caches, &pools)
                .map_err(|f| fail(PolicyKind::Pressure, f))?;
            timed(t);
        }
        // The shared instances the smoke calls made carry smoke state: start clean.
        *self.quota_inst.lock() = None;
        *self.priority_inst.lock() = None;
        *self.pressure_inst.lock() = None;
        Ok(inst_time.unwrap_or_default())
    }
}
