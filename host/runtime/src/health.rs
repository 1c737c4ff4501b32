//! Fault accounting and quarantine, per (policy, tenant): one tenant's caches or calls
//! faulting quarantine the policy for that tenant only; other tenants bound to the same
//! policy (directly or through the default binding) keep being served by it. Calls that
//! carry no tenant (pressure) have their own account, reported as [`PolicyInfo::quarantined`].
//!
//! A quarantine ends only with a new version of the policy (a new hash) or
//! [`PolicyRuntime::lift_quarantine`]; reloading the same bytes does not lift it.
//!
//! [`PolicyInfo::quarantined`]: super::PolicyInfo::quarantined

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::RuntimeError;
use super::registry::{PolicyRuntime, PolicySlot, Shared};
use super::version::Fault;
use rmhost_core::events::Event;
use rmhost_core::policy::PolicyKind;

/// Tenants with a fault account kept per policy; past this, accounts with no fault in the
/// window and no quarantine are dropped first. Bounds what a stream of made-up tenant
/// names can make the host remember.
const MAX_ACCOUNTS: usize = 4096;

/// One (policy, tenant)'s recent faults.
#[derive(Debug, Default)]
struct Account {
    faults: VecDeque<Instant>,
    quarantined: bool,
}

#[derive(Debug, Default)]
struct Accounts {
    /// Calls without a tenant.
    untenanted: Account,
    tenants: HashMap<String, Account>,
}

/// A policy's fault accounts.
#[derive(Debug, Default)]
pub(crate) struct Health {
    accounts: Mutex<Accounts>,
    /// How many accounts are quarantined: zero (the usual case) answers `quarantined`
    /// without taking the lock on the call path.
    quarantines: AtomicU32,
    /// Quarantines ever entered (never reset: a counter for `/metrics`).
    pub(crate) entered: AtomicU64,
}

impl Health {
    /// Whether calls for `tenant` (`None`: tenant-less calls) are quarantined.
    pub(crate) fn quarantined(&self, tenant: Option<&str>) -> bool {
        if self.quarantines.load(Relaxed) == 0 {
            return false;
        }
        let a = self.accounts.lock();
        match tenant {
            None => a.untenanted.quarantined,
            Some(t) => a.tenants.get(t).is_some_and(|x| x.quarantined),
        }
    }

    /// How many accounts (tenants, and tenant-less calls) are quarantined now.
    pub(crate) fn quarantined_accounts(&self) -> u32 {
        self.quarantines.load(Relaxed)
    }

    /// The quarantined tenants, sorted.
    pub(crate) fn quarantined_tenants(&self) -> Vec<String> {
        if self.quarantines.load(Relaxed) == 0 {
            return Vec::new();
        }
        let a = self.accounts.lock();
        let mut out: Vec<String> = a
            .tenants
            .iter()
            .filter(|(_, x)| x.quarantined)
            .map(|(t, _)| t.clone())
            .collect();
        out.sort();
        out
    }

    /// Forgets every fault and lifts every quarantine; returns how many were lifted.
    pub(crate) fn reset(&self) -> u32 {
        let mut a = self.accounts.lock();
        *a = Accounts::default();
        self.quarantines.swap(0, Relaxed)
    }

    /// Records a fault for `tenant` now; returns the faults in the window and whether
    /// this one quarantined the account.
    fn record(&self, tenant: Option<&str>, window: Duration, max: u32) -> (u32, bool) {
        let now = Instant::now();
        let mut a = self.accounts.lock();
        if tenant.is_some_and(|t| !a.tenants.contains_key(t)) && a.tenants.len() >= MAX_ACCOUNTS {
            a.tenants.retain(|_, x| {
                x.quarantined
                    || x.faults
                        .back()
                        .is_some_and(|t| now.duration_since(*t) <= window)
            });
        }
        let acc = match tenant {
            None => &mut a.untenanted,
            Some(t) => a.tenants.entry(t.to_string()).or_default(),
        };
        acc.faults.push_back(now);
        while acc
            .faults
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            acc.faults.pop_front();
        }
        let n = acc.faults.len() as u32;
        let newly = n >= max && !acc.quarantined;
        if newly {
            acc.quarantined = true;
            self.quarantines.fetch_add(1, Relaxed);
            self.entered.fetch_add(1, Relaxed);
        }
        (n, newly)
    }
}

impl PolicyRuntime {
    /// The admin's way to end a quarantine without a new version: forgets `name`'s faults
    /// and lifts its quarantine for every tenant. Returns how many (policy, tenant)
    /// quarantines were lifted.
    pub fn lift_quarantine(&self, name: &str) -> Result<u32, RuntimeError> {
        let slot = self
            .shared
            .loaded_slot(name)
            .ok_or_else(|| RuntimeError::NotLoaded(name.to_string()))?;
        let lifted = slot.health.reset();
        tracing::info!(
            policy = name,
            lifted,
            "policy quarantine lifted by an admin"
        );
        Ok(lifted)
    }
}

impl Shared {
    /// Counts a fault of `slot` for `tenant`, sends `PolicyFault`, and after `max_faults`
    /// in the window quarantines it for that tenant (`PolicyQuarantined` + `Alert`).
    pub(crate) fn fault(
        &self,
        slot: &PolicySlot,
        tenant: Option<&str>,
        kind: PolicyKind,
        fault: Fault,
    ) {
        slot.stats.faults.fetch_add(1, Relaxed);
        let (in_window, newly) =
            slot.health
                .record(tenant, self.opts.fault_window, self.opts.max_faults);
        let who = tenant.map_or_else(
            || "tenant-less calls".to_string(),
            |t| format!("tenant {t}"),
        );
        tracing::warn!(policy = %slot.name, tenant, %kind, reason = %fault, fault_kind = %fault.kind(), in_window, "policy fault");
        self.events.publish(Event::PolicyFault {
            policy: slot.name.to_string(),
            kind,
            fault: fault.kind(),
            reason: format!("{fault} ({who})"),
            faults_in_window: in_window,
        });
        if newly {
            let reason = format!(
                "{in_window} faults within {} for {who}; last: {fault}",
                fmt_duration(self.opts.fault_window),
            );
            tracing::error!(policy = %slot.name, tenant, %reason, "policy quarantined");
            self.events.publish(Event::PolicyQuarantined {
                policy: slot.name.to_string(),
                reason: reason.clone(),
            });
            self.events.publish(Event::Alert {
                message: format!(
                    "policy {} quarantined for {who} ({reason}); those bindings use the native \
                     defaults until a new version is loaded or an admin lifts it",
                    slot.name
                ),
            });
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.as_secs() > 0 && d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{d:?}")
    }
}
