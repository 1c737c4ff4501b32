//! The allocation ledger: live allocations and the totals derived from them, kept exactly
//! in step. It is plain data with no locking, clock or policy, so the property tests can
//! drive it directly; `ResourceManager` wraps it in a lock and adds decisions and events.

use crate::invariant::InvariantViolation;
use crate::policy::{Holder, ResourceKind};
use hashbrown::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

/// One granted allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Allocation {
    /// Unique id, never reused.
    pub id: u64,
    /// The tenant it counts against.
    pub tenant: String,
    /// What it is counted in.
    pub kind: ResourceKind,
    /// How much.
    pub amount: u64,
    /// Who holds it within the tenant.
    pub owner: String,
    /// Higher is more important; lower-priority allocations can be preempted.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 255))]
    pub priority: u8,
    /// Host clock when granted, ms.
    pub created_ms: u64,
    /// Lease length, when the allocation is a lease that must be renewed.
    pub ttl_ms: Option<u64>,
    /// Host clock when the lease runs out.
    pub expires_ms: Option<u64>,
    /// Owner process; the allocation is reclaimed when it exits.
    pub pid: Option<u32>,
}

/// Use of one kind by one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of live amounts.
    pub used: u64,
    /// Live allocations.
    pub count: u32,
}

/// Live allocations and their totals per tenant and kind, and globally.
#[derive(Debug, Default)]
pub struct Ledger {
    allocs: HashMap<u64, Allocation>,
    by_tenant: HashMap<String, HashSet<u64>>,
    totals: HashMap<(String, ResourceKind), Totals>,
    global: [Totals; 5],
    next_id: u64,
}

/// A kind's index in [`ResourceKind::ALL`] (the order of per-kind arrays).
pub(crate) fn slot(kind: ResourceKind) -> usize {
    ResourceKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger {
            next_id: 1,
            ..Default::default()
        }
    }

    /// Global use of `kind`.
    pub fn global_used(&self, kind: ResourceKind) -> u64 {
        self.global[slot(kind)].used
    }

    /// Global use and live allocations of `kind`.
    pub fn global_totals(&self, kind: ResourceKind) -> Totals {
        self.global[slot(kind)]
    }

    /// The tenant's use of `kind`.
    pub fn tenant_totals(&self, tenant: &str, kind: ResourceKind) -> Totals {
        self.totals
            .get(&(tenant.to_string(), kind))
            .copied()
            .unwrap_or_default()
    }

    /// Tenants with at least one live allocation.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .by_tenant
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        t.sort();
        t
    }

    /// The allocation with this id.
    pub fn get(&self, id: u64) -> Option<&Allocation> {
        self.allocs.get(&id)
    }

    /// Every live allocation (unordered).
    pub fn iter(&self) -> impl Iterator<Item = &Allocation> {
        self.allocs.values()
    }

    /// Live allocations.
    pub fn len(&self) -> usize {
        self.allocs.len()
    }

    /// Whether nothing is allocated.
    pub fn is_empty(&self) -> bool {
        self.allocs.is_empty()
    }

    /// The tenant's allocations of `kind` with priority below `below`, lowest priority and
    /// then oldest first: the order a preempting policy should consider them in.
    pub fn preemptible(
        &self,
        tenant: &str,
        kind: ResourceKind,
        below: u8,
        now_ms: u64,
    ) -> Vec<Holder> {
        let Some(ids) = self.by_tenant.get(tenant) else {
            return Vec::new();
        };
        let mut v: Vec<&Allocation> = ids
            .iter()
            .filter_map(|id| self.allocs.get(id))
            .filter(|a| a.kind == kind && a.priority < below)
            .collect();
        v.sort_by_key(|a| (a.priority, a.created_ms, a.id));
        v.into_iter()
            .map(|a| Holder {
                allocation: a.id,
                owner: a.owner.clone(),
                amount: a.amount,
                priority: a.priority,
                age_ms: now_ms.saturating_sub(a.created_ms),
            })
            .collect()
    }

    /// Records a new allocation, assigning its id. Totals cannot overflow: an amount that
    /// would overflow them is refused by the caller's limit check first, and saturates here.
    pub fn insert(&mut self, mut a: Allocation) -> &Allocation {
        a.id = self.next_id;
        self.next_id += 1;
        let t = self.totals.entry((a.tenant.clone(), a.kind)).or_default();
        t.used = t.used.saturating_add(a.amount);
        t.count += 1;
        let g = &mut self.global[slot(a.kind)];
        g.used = g.used.saturating_add(a.amount);
        g.count += 1;
        self.by_tenant
            .entry(a.tenant.clone())
            .or_default()
            .insert(a.id);
        let id = a.id;
        self.allocs.entry(id).or_insert(a)
    }

    /// Removes an allocation, returning it; `None` when it is not live (so a second release
    /// is reported, never double-counted).
    pub fn remove(&mut self, id: u64) -> Option<Allocation> {
        let a = self.allocs.remove(&id)?;
        let key = (a.tenant.clone(), a.kind);
        if let Some(t) = self.totals.get_mut(&key) {
            // Totals are sums of live amounts, so these never underflow; `debug_assert`
            // makes the property tests fail loudly if that ever stops being true.
            debug_assert!(t.used >= a.amount && t.count > 0);
            t.used -= a.amount.min(t.used);
            t.count = t.count.saturating_sub(1);
            if t.count == 0 {
                self.totals.remove(&key);
            }
        }
        let g = &mut self.global[slot(a.kind)];
        debug_assert!(g.used >= a.amount && g.count > 0);
        g.used -= a.amount.min(g.used);
        g.count = g.count.saturating_sub(1);
        if let Some(ids) = self.by_tenant.get_mut(&a.tenant) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_tenant.remove(&a.tenant);
            }
        }
        Some(a)
    }

    /// Extends a lease to `now + ttl`; returns the allocation, or `None` when not live.
    pub fn renew(&mut self, id: u64, now_ms: u64) -> Option<&Allocation> {
        let a = self.allocs.get_mut(&id)?;
        if let Some(ttl) = a.ttl_ms {
            a.expires_ms = Some(now_ms.saturating_add(ttl));
        }
        Some(a)
    }

    /// Ids of leases that ran out at or before `now_ms`.
    pub fn expired(&self, now_ms: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .allocs
            .values()
            .filter(|a| a.expires_ms.is_some_and(|e| e <= now_ms))
            .map(|a| a.id)
            .collect();
        v.sort_unstable();
        v
    }

    /// Distinct owner pids of live allocations.
    pub fn pids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.allocs.values().filter_map(|a| a.pid).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Ids of allocations held by `pid`.
    pub fn held_by(&self, pid: u32) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .allocs
            .values()
            .filter(|a| a.pid == Some(pid))
            .map(|a| a.id)
            .collect();
        v.sort_unstable();
        v
    }

    /// Recomputes every total from the live allocations and compares: the invariant the
    /// property tests check after each step.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let mut totals: HashMap<(String, ResourceKind), Totals> = HashMap::new();
        let mut global = [Totals::default(); 5];
        for a in self.allocs.values() {
            let t = totals.entry((a.tenant.clone(), a.kind)).or_default();
            t.used += a.amount;
            t.count += 1;
            global[slot(a.kind)].used += a.amount;
            global[slot(a.kind)].count += 1;
            if !self
                .by_tenant
                .get(&a.tenant)
                .is_some_and(|s| s.contains(&a.id))
            {
                return Err(InvariantViolation(format!(
                    "allocation {} missing from its tenant index",
                    a.id
                )));
            }
        }
        if totals != self.totals {
            return Err(InvariantViolation(format!(
                "tenant totals drifted: {:?} vs {:?}",
                self.totals, totals
            )));
        }
        if global != self.global {
            return Err(InvariantViolation(format!(
                "global totals drifted: {:?} vs {:?}",
                self.global, global
            )));
        }
        let indexed: usize = self.by_tenant.values().map(|s| s.len()).sum();
        if indexed != self.allocs.len() {
            return Err(InvariantViolation(format!(
                "tenant index holds {indexed} ids for {} allocations",
                self.allocs.len()
            )));
        }
        Ok(())
    }
}
