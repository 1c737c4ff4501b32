//! Aging priority: `rank = enqueued_ms - priority * boost_ms`; the lowest rank is served
//! first, so a waiter of priority p goes before any waiter of lower priority that arrived
//! less than `boost_ms` per level before it, and nobody starves. `boost_ms` comes from the
//! setting of that name (default 1000). Decides like the host's `NativePriority`
//! (saturating arithmetic included).

use rmhost_policy::{Priority, Waiter, setting};

/// The priority policy.
#[derive(Debug, Clone, Copy)]
pub struct Aging {
    /// How many milliseconds of waiting one priority level is worth.
    pub boost_ms: i64,
}

impl Default for Aging {
    fn default() -> Self {
        Aging {
            boost_ms: setting("boost_ms")
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1000),
        }
    }
}

impl Priority for Aging {
    fn rank(&mut self, w: &Waiter) -> i64 {
        // `as i64` wraps above 2^63 ms, as the native twin does; the host clock never gets there.
        (w.enqueued_ms as i64).saturating_sub((w.priority as i64).saturating_mul(self.boost_ms))
    }
}

rmhost_policy::export_priority!(Aging);

#[cfg(test)]
mod tests {
    use super::*;
    use rmhost_policy::testing::set_setting;

    fn w(priority: u8, enqueued_ms: u64) -> Waiter {
        Waiter {
            tenant: "t".into(),
            priority,
            enqueued_ms,
            queue: "q".into(),
        }
    }

    #[test]
    fn ranks_by_boost() {
        let mut p = Aging { boost_ms: 100 };
        assert!(p.rank(&w(2, 1150)) < p.rank(&w(0, 1000)));
        assert!(p.rank(&w(1, 1150)) > p.rank(&w(0, 1000)));
        assert_eq!(p.rank(&w(3, 50)), -250);
    }

    #[test]
    fn boost_comes_from_settings() {
        assert_eq!(Aging::default().boost_ms, 1000);
        set_setting("boost_ms", Some(" 250 "));
        assert_eq!(Aging::default().boost_ms, 250);
        set_setting("boost_ms", Some("nonsense"));
        assert_eq!(Aging::default().boost_ms, 1000);
        set_setting("boost_ms", None);
        let mut huge = Aging { boost_ms: i64::MAX };
        assert_eq!(huge.rank(&w(255, 0)), i64::MIN + 1);
    }
}
