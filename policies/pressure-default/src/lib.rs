//! The default pressure response, action for action the host's `NativePressure`
//! (`host/core/src/policy/native.rs`):
//!
//! - normal: nothing;
//! - warning: trim every non-empty cache by 10% of its bytes;
//! - critical: trim every non-empty cache by 30%, shrink every pool by its idle
//!   connections, shed work below priority 2, purge the allocator, and alert with the
//!   process RSS.
//!
//! In that order. `policies/pressure-py/app.py` is the same policy in Python.

use rmhost_policy::{Action, CacheStat, PoolStat, Pressure, PressureLevel, Shrink, Trim, Usage};

/// The pressure policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPressure;

impl Pressure for DefaultPressure {
    fn respond(
        &mut self,
        level: PressureLevel,
        system: &Usage,
        caches: &[CacheStat],
        pools: &[PoolStat],
    ) -> Vec<Action> {
        let pct: u64 = match level {
            PressureLevel::Normal => return Vec::new(),
            PressureLevel::Warning => 10,
            PressureLevel::Critical => 30,
        };
        // wrapping_mul: the native twin's release build wraps the same way on absurd sizes.
        let mut out: Vec<Action> = caches
            .iter()
            .filter(|c| c.bytes > 0)
            .map(|c| {
                Action::TrimCache(Trim {
                    cache: c.name.clone(),
                    bytes: c.bytes.wrapping_mul(pct) / 100,
                })
            })
            .collect();
        if level == PressureLevel::Critical {
            out.extend(pools.iter().filter(|p| p.idle > 0).map(|p| {
                Action::ShrinkPool(Shrink {
                    pool: p.name.clone(),
                    idle: p.idle,
                })
            }));
            out.push(Action::ShedBelow(2));
            out.push(Action::PurgeAllocator);
            out.push(Action::Alert(format!(
                "critical memory pressure: process RSS {} MiB",
                system.process_rss_bytes >> 20
            )));
        }
        out
    }
}

rmhost_policy::export_pressure!(DefaultPressure);

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(rss: u64) -> Usage {
        Usage {
            cpu_percent: 50.0,
            memory_used_bytes: 0,
            memory_total_bytes: 0,
            process_rss_bytes: rss,
            connections_active: 0,
            requests_per_minute: 0,
            load_average_1m: 0.0,
            pressure: PressureLevel::Critical,
        }
    }

    fn cache(name: &str, bytes: u64) -> CacheStat {
        CacheStat {
            name: name.into(),
            bytes,
            entries: 10,
            hit_ratio: 0.5,
        }
    }

    fn pool(name: &str, idle: u32) -> PoolStat {
        PoolStat {
            name: name.into(),
            size: 8,
            idle,
            waiting: 0,
        }
    }

    #[test]
    fn follows_the_native_twin() {
        let caches = [cache("a", 1000), cache("empty", 0), cache("b", 55)];
        let pools = [pool("pg", 3), pool("busy", 0), pool("redis", 1)];
        let mut p = DefaultPressure;
        let s = usage(300 << 20);
        assert!(
            p.respond(PressureLevel::Normal, &s, &caches, &pools)
                .is_empty()
        );
        assert_eq!(
            p.respond(PressureLevel::Warning, &s, &caches, &pools),
            vec![
                Action::TrimCache(Trim {
                    cache: "a".into(),
                    bytes: 100
                }),
                Action::TrimCache(Trim {
                    cache: "b".into(),
                    bytes: 5
                }),
            ]
        );
        assert_eq!(
            p.respond(PressureLevel::Critical, &s, &caches, &pools),
            vec![
                Action::TrimCache(Trim {
                    cache: "a".into(),
                    bytes: 300
                }),
                Action::TrimCache(Trim {
                    cache: "b".into(),
                    bytes: 16
                }),
                Action::ShrinkPool(Shrink {
                    pool: "pg".into(),
                    idle: 3
                }),
                Action::ShrinkPool(Shrink {
                    pool: "redis".into(),
                    idle: 1
                }),
                Action::ShedBelow(2),
                Action::PurgeAllocator,
                Action::Alert("critical memory pressure: process RSS 300 MiB".into()),
            ]
        );
        let bare = p.respond(PressureLevel::Critical, &usage(0), &[], &[]);
        assert_eq!(bare.len(), 3);
    }
}
