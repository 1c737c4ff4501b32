//! `ResourceManager`'s operations when the ledger is shared with other hosts: the quota
//! policy decides on a snapshot, and the grant commits only if the tenant's counter still
//! has the snapshot's version; on a conflict the policy is asked again on a fresh snapshot.
//! After [`MAX_ATTEMPTS`] conflicts the last decision commits without the version check,
//! re-validated against the counters as they are (the in-memory ledger's rule), so a tenant
//! under heavy contention is slowed, never starved.

use super::*;
use crate::resources::shared::{Grant, GrantOutcome, RemoteChange};

/// Snapshots a grant may take before it commits without the version check.
pub(super) const MAX_ATTEMPTS: u32 = 4;

/// The refusal of a request that would take the kind's global use past `limit`.
fn over_limit(req: &AllocationRequest, used: u64, limit: u64) -> ResourceError {
    ResourceError::LimitExceeded {
        kind: req.kind,
        used,
        requested: req.amount,
        limit,
    }
}

impl ResourceManager {
    /// The shared ledger, when `[state] ledger` names one.
    pub fn shared_ledger(&self) -> Option<&Arc<dyn SharedLedger>> {
        self.inner.shared.as_ref()
    }

    pub(super) fn allocate_shared(
        &self,
        shared: &Arc<dyn SharedLedger>,
        req: &AllocationRequest,
        global_limit: u64,
        elsewhere: u64,
    ) -> Result<Allocation, ResourceError> {
        let default_quota = self.inner.defaults.limit(req.kind);
        let policy = self.inner.policy.clone();
        let qreq = QuotaRequest {
            tenant: req.tenant.clone(),
            owner: req.owner.clone(),
            kind: req.kind,
            amount: req.amount,
            priority: req.priority,
        };
        // The built-in quota policy grants exactly what fits the quota, which rm_grant
        // checks itself: one round trip, no snapshot. Over the quota it may preempt, which
        // needs the holders, so a refusal goes on to the snapshot and the policy below.
        if policy.grants_what_fits(&req.tenant) {
            let grant = Grant {
                request: req,
                default_quota,
                global_limit,
                elsewhere,
                version: None,
                victims: Vec::new(),
            };
            match shared.grant(&grant)? {
                GrantOutcome::Granted {
                    allocation,
                    preempted,
                    tenant_used,
                    global_used,
                    quota,
                } => {
                    self.after_grant(
                        &allocation,
                        &preempted,
                        (tenant_used, quota),
                        (global_used, global_limit),
                    );
                    return Ok(allocation);
                }
                GrantOutcome::Limit { used } => return Err(over_limit(req, used, global_limit)),
                GrantOutcome::Quota { .. } | GrantOutcome::Conflict => {}
            }
        }
        let mut attempt = 0;
        let (allocation, preempted, tenant_used, global_used, quota) = loop {
            attempt += 1;
            let snap = shared.snapshot(req, default_quota, elsewhere)?;
            if snap.global_used.saturating_add(req.amount) > global_limit {
                return Err(over_limit(req, snap.global_used, global_limit));
            }
            let used = snap.tenant.used.saturating_add(elsewhere);
            let state = TenantState {
                used,
                limit: snap.quota,
                allocations: snap.tenant.count,
            };
            let system = (self.inner.system)();
            let victims = match policy.decide(&qreq, &state, &system, &snap.holders) {
                QuotaDecision::Grant => Vec::new(),
                QuotaDecision::Deny(reason) => {
                    return Err(manager::refusal(req, used, snap.quota, &policy, reason));
                }
                // Only what was offered may go.
                QuotaDecision::Preempt(ids) => {
                    let mut v: Vec<u64> = ids
                        .into_iter()
                        .filter(|id| snap.holders.iter().any(|h| h.allocation == *id))
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    v
                }
            };
            let grant = Grant {
                request: req,
                default_quota,
                global_limit,
                elsewhere,
                version: (attempt < MAX_ATTEMPTS).then_some(snap.version),
                victims,
            };
            match shared.grant(&grant)? {
                GrantOutcome::Granted {
                    allocation,
                    preempted,
                    tenant_used,
                    global_used,
                    quota,
                } => break (allocation, preempted, tenant_used, global_used, quota),
                GrantOutcome::Conflict => {
                    self.inner.stats.lock().conflicts += 1;
                    continue;
                }
                GrantOutcome::Quota { used, limit } => {
                    return Err(ResourceError::QuotaExceeded {
                        tenant: req.tenant.clone(),
                        kind: req.kind,
                        used,
                        requested: req.amount,
                        limit,
                    });
                }
                GrantOutcome::Limit { used } => return Err(over_limit(req, used, global_limit)),
            }
        };
        self.after_grant(
            &allocation,
            &preempted,
            (tenant_used, quota),
            (global_used, global_limit),
        );
        Ok(allocation)
    }

    /// Applies a change another host made: its releases reach this host's event streams
    /// (a tenant watching here sees its allocation preempted or reclaimed there), its quota
    /// and rate-override changes this host's caches of them. Binding and cache changes are
    /// left to the host, which owns the runtime and the caches.
    pub fn apply_remote(&self, change: RemoteChange) {
        match change {
            RemoteChange::Released {
                allocations,
                reason,
            } => {
                for a in allocations {
                    let event = match reason {
                        ReleaseReason::LeaseExpired | ReleaseReason::OwnerGone => {
                            Event::OrphanReclaimed {
                                id: a.id,
                                tenant: a.tenant,
                                kind: a.kind,
                                amount: a.amount,
                                reason,
                            }
                        }
                        _ => Event::ResourceReleased {
                            id: a.id,
                            tenant: a.tenant,
                            kind: a.kind,
                            amount: a.amount,
                            reason,
                        },
                    };
                    self.inner.events.publish(event);
                }
            }
            RemoteChange::Quota {
                tenant,
                kind,
                limit,
            } => {
                let key = (tenant.clone(), kind);
                match limit {
                    Some(l) => self.inner.quotas.write().insert(key, l),
                    None => self.inner.quotas.write().remove(&key),
                };
                self.inner.events.publish(Event::QuotaChanged {
                    tenant,
                    kind,
                    limit,
                });
            }
            RemoteChange::Rate { tenant, per_minute } => {
                self.inner.rates.set_override(&tenant, per_minute);
            }
            RemoteChange::Resync => {
                if let Err(e) = self.load_shared() {
                    tracing::warn!(error = %e, "quotas and overrides not reloaded");
                }
            }
            // Bindings and caches are the host's (`Host::apply_remote`), not the ledger's.
            RemoteChange::Binding(_) | RemoteChange::Cache { .. } => {}
        }
    }

    /// Loads the shared ledger's quotas and rate overrides into this host's caches (at
    /// start; later changes arrive through [`apply_remote`](Self::apply_remote)).
    pub fn load_shared(&self) -> Result<(), ResourceError> {
        let Some(shared) = &self.inner.shared else {
            return Ok(());
        };
        let quotas = shared.quotas()?;
        {
            let mut q = self.inner.quotas.write();
            q.clear();
            for (t, k, l) in quotas {
                q.insert((t, k), l);
            }
        }
        for (t, rpm) in shared.rate_overrides()? {
            self.inner.rates.set_override(&t, Some(rpm));
        }
        Ok(())
    }

    /// Seeds a quota from the config: on the shared ledger only when it holds none for
    /// the tenant and kind (what the API set survives a restart); in memory, set.
    pub fn seed_quota(
        &self,
        tenant: &str,
        kind: ResourceKind,
        limit: u64,
    ) -> Result<(), ResourceError> {
        let Some(shared) = &self.inner.shared else {
            return self.set_quota(tenant, kind, Some(limit));
        };
        views::validate_tenant(tenant)?;
        if let Some(l) = shared.set_quota(tenant, kind, Some(limit), true)? {
            self.inner
                .quotas
                .write()
                .insert((tenant.to_string(), kind), l);
        }
        Ok(())
    }

    /// Sets (or with `None` removes) a tenant's rate-limit override, on the shared ledger
    /// too when there is one (other hosts apply it as they hear of it).
    pub fn set_rate_override(
        &self,
        tenant: &str,
        per_minute: Option<u32>,
    ) -> Result<(), ResourceError> {
        views::validate_tenant(tenant)?;
        if let Some(shared) = &self.inner.shared {
            shared.set_rate_override(tenant, per_minute)?;
        }
        self.inner.rates.set_override(tenant, per_minute);
        Ok(())
    }

    /// Recomputes the shared ledger's counters from its live rows (drift repair); answers
    /// how many counter rows were wrong. In memory there is nothing to repair: 0.
    pub fn repair(&self) -> Result<u64, ResourceError> {
        match &self.inner.shared {
            Some(s) => s.repair(),
            None => Ok(0),
        }
    }
}
