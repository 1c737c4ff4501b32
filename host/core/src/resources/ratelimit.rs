//! Per-tenant request rate limiting with GCRA (`governor`): a limit in requests per
//! minute, the config's `max_requests_per_minute` by default, overridable per tenant and
//! temporarily lowered by a pressure policy's `throttle` action.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use hashbrown::HashMap;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::sync::Arc;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// The answer to a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateDecision {
    /// Whether the requests may proceed (they were counted if so).
    pub allowed: bool,
    /// How many more requests fit in the current burst.
    pub remaining: u32,
    /// When not allowed: milliseconds until `cost` requests would be.
    pub retry_after_ms: u64,
    /// The tenant's limit, requests per minute.
    pub limit_per_minute: u32,
}

impl RateDecision {
    /// The refusal of a check that costs more than the whole burst (`per_minute`): no wait
    /// makes it fit, so it is refused without asking a limiter (governor's GCRA multiplies
    /// the cost by the emission interval and overflows near `u32::MAX`; the shared
    /// limiter would remember the tenant as denied for years).
    pub fn beyond_burst(per_minute: u32) -> RateDecision {
        RateDecision {
            allowed: false,
            remaining: 0,
            retry_after_ms: 60_000,
            limit_per_minute: per_minute,
        }
    }

    /// Whether a refusal is [`RateDecision::beyond_burst`]'s: `cost` can never fit.
    pub fn never_fits(cost: u32, per_minute: u32) -> bool {
        cost > per_minute.max(1)
    }
}

#[derive(Debug)]
struct TenantLimiter {
    per_minute: u32,
    limiter: Limiter,
}

/// Rate limiters by tenant, created on first use.
#[derive(Debug)]
pub struct RateLimits {
    default_per_minute: u32,
    overrides: RwLock<HashMap<String, u32>>,
    throttles: RwLock<HashMap<String, u32>>,
    limiters: RwLock<HashMap<String, Arc<TenantLimiter>>>,
    clock: DefaultClock,
}

impl RateLimits {
    /// Limits with `default_per_minute` for tenants without an override (0 is treated as 1).
    pub fn new(default_per_minute: u32) -> Self {
        RateLimits {
            default_per_minute: default_per_minute.max(1),
            overrides: RwLock::default(),
            throttles: RwLock::default(),
            limiters: RwLock::default(),
            clock: DefaultClock::default(),
        }
    }

    /// The tenant's limit before any pressure throttle: its override or the default.
    pub fn base_limit_for(&self, tenant: &str) -> u32 {
        self.overrides
            .read()
            .get(tenant)
            .copied()
            .unwrap_or(self.default_per_minute)
    }

    /// The limit in force for `tenant` (its base limit, or a pressure throttle below it).
    pub fn limit_for(&self, tenant: &str) -> u32 {
        let base = self.base_limit_for(tenant);
        match self.throttles.read().get(tenant) {
            Some(t) => (*t).min(base),
            None => base,
        }
    }

    /// Sets (or with `None` removes) a tenant's own limit.
    pub fn set_override(&self, tenant: &str, per_minute: Option<u32>) {
        match per_minute {
            Some(n) => self.overrides.write().insert(tenant.to_string(), n.max(1)),
            None => self.overrides.write().remove(tenant),
        };
    }

    /// Throttles a tenant until `clear_throttles` (pressure back to normal).
    pub fn throttle(&self, tenant: &str, per_minute: u32) {
        self.throttles
            .write()
            .insert(tenant.to_string(), per_minute.max(1));
    }

    /// Lifts every throttle.
    pub fn clear_throttles(&self) {
        self.throttles.write().clear();
    }

    fn limiter(&self, tenant: &str, want: u32) -> Arc<TenantLimiter> {
        if let Some(l) = self.limiters.read().get(tenant)
            && l.per_minute == want
        {
            return l.clone();
        }
        // A changed limit starts a fresh GCRA state: the simplest correct reading of "the
        // limit is now N per minute".
        let quota = Quota::per_minute(NonZeroU32::new(want).unwrap_or(NonZeroU32::MIN));
        let l = Arc::new(TenantLimiter {
            per_minute: want,
            limiter: RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>(),
        });
        self.limiters.write().insert(tenant.to_string(), l.clone());
        l
    }

    /// Checks (and on success counts) `cost` requests for `tenant`.
    pub fn check(&self, tenant: &str, cost: u32) -> RateDecision {
        self.check_at(tenant, cost, self.limit_for(tenant))
    }

    /// Like [`Self::check`] at `per_minute` instead of the tenant's limit (the shared
    /// limiter's fail-open fallback runs each host at its part of the limit).
    pub fn check_at(&self, tenant: &str, cost: u32, per_minute: u32) -> RateDecision {
        let l = self.limiter(tenant, per_minute.max(1));
        if RateDecision::never_fits(cost, l.per_minute) {
            return RateDecision::beyond_burst(l.per_minute);
        }
        let cost_nz = NonZeroU32::new(cost.max(1)).unwrap_or(NonZeroU32::MIN);
        match l.limiter.check_n(cost_nz) {
            Ok(Ok(snap)) => RateDecision {
                allowed: true,
                remaining: snap.remaining_burst_capacity(),
                retry_after_ms: 0,
                limit_per_minute: l.per_minute,
            },
            Ok(Err(not_until)) => RateDecision {
                allowed: false,
                remaining: 0,
                retry_after_ms: not_until
                    .wait_time_from(self.clock.now())
                    .as_millis()
                    .max(1) as u64,
                limit_per_minute: l.per_minute,
            },
            // More than the whole burst can ever allow (caught above; kept for safety).
            Err(_) => RateDecision::beyond_burst(l.per_minute),
        }
    }
}

use super::views::validate_tenant;
use super::{ResourceError, ResourceManager};
use crate::events::Event;

impl ResourceManager {
    /// Checks (and on success counts) `cost` requests against the tenant's rate limit.
    pub fn rate_check(&self, tenant: &str, cost: u32) -> Result<RateDecision, ResourceError> {
        self.validate_rate(tenant, cost)?;
        let d = self.inner.rates.check(tenant, cost);
        self.note_rate(tenant, &d);
        Ok(d)
    }

    /// Errors unless `tenant` and `cost` make a valid check.
    pub fn validate_rate(&self, tenant: &str, cost: u32) -> Result<(), ResourceError> {
        validate_tenant(tenant)?;
        if cost == 0 {
            return Err(ResourceError::InvalidRequest {
                field: "cost".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Counts a decision made here or on the shared backend, and announces a refusal.
    pub fn note_rate(&self, tenant: &str, d: &RateDecision) {
        let mut stats = self.inner.stats.lock();
        if d.allowed {
            stats.rate_allowed += 1;
        } else {
            stats.rate_limited += 1;
            drop(stats);
            self.inner.events.publish(Event::RateLimited {
                tenant: tenant.to_string(),
                retry_after_ms: d.retry_after_ms,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses_with_a_retry_time() {
        let r = RateLimits::new(3);
        assert!(r.check("a", 1).allowed);
        assert_eq!(r.check("a", 1).remaining, 1);
        assert!(r.check("a", 1).allowed);
        let d = r.check("a", 1);
        assert!(!d.allowed);
        assert!(d.retry_after_ms > 0 && d.retry_after_ms <= 20_000, "{d:?}");
        // Tenants are independent.
        assert!(r.check("b", 3).allowed);
    }

    #[test]
    fn overrides_and_throttles_change_the_limit() {
        let r = RateLimits::new(100);
        r.set_override("a", Some(2));
        assert_eq!(r.limit_for("a"), 2);
        r.throttle("b", 1);
        assert_eq!(r.limit_for("b"), 1);
        assert!(r.check("b", 1).allowed);
        assert!(!r.check("b", 1).allowed);
        r.clear_throttles();
        assert_eq!(r.limit_for("b"), 100);
        assert!(r.check("b", 1).allowed);
        assert!(!r.check("a", 5).allowed);
    }

    #[test]
    fn a_cost_beyond_the_burst_is_refused_without_overflow() {
        // governor computed `interval * (cost - 1)` in u64 nanoseconds: at 1 per minute
        // that overflowed (a panic in debug builds) for costs near u32::MAX.
        for limit in [1, 2, 1000, u32::MAX] {
            let r = RateLimits::new(limit);
            let d = r.check("a", u32::MAX);
            if limit == u32::MAX {
                continue; // u32::MAX fits a burst of u32::MAX; only "no panic" matters.
            }
            assert!(!d.allowed, "{limit}: {d:?}");
            assert_eq!(d, RateDecision::beyond_burst(limit));
            // The refusal took nothing: the whole burst is still there.
            assert!(r.check("a", limit).allowed, "{limit}");
        }
    }
}
