//! `ResourceManager`'s operations. The quota policy is consulted outside the ledger lock (a
//! Wasm policy may take up to its deadline), so every decision is re-validated against the
//! ledger as it is when the lock is taken again: a grant that no longer fits is refused, a
//! preempted allocation that is already gone is skipped.

use super::*;

/// Builder-style options for [`ResourceManager::new`].
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Global limits.
    pub limits: GlobalLimits,
    /// Default rate limit, requests per minute per tenant.
    pub requests_per_minute: u32,
    /// Quotas for tenants that have none of their own (`[tenant_defaults]`).
    pub tenant_defaults: crate::config::TenantQuota,
}

/// What a manager decides through and reads, besides its options. The defaults are the
/// native quota policy, zero system usage, the real clock and `/proc` for owner pids; the
/// host's builder passes the runtime's quota resolver and the telemetry-backed usage.
#[derive(Clone)]
pub struct ManagerParts {
    /// Decides every request (the runtime's per-tenant resolver, or a native policy).
    pub quota_policy: Arc<dyn QuotaPolicy>,
    /// The system usage quota policies are shown.
    pub system_usage: SystemUsageFn,
    /// Leases and allocation ages.
    pub clock: Clock,
    /// Whether owner processes are alive.
    pub probe: Arc<dyn ProcessProbe>,
    /// Memory tenants hold outside the ledger (the host's caches), counted against their
    /// memory quota and share.
    pub held_elsewhere: Arc<dyn HeldElsewhere>,
    /// A ledger shared with other hosts (`None`: this host's own, in memory).
    pub shared_ledger: Option<Arc<dyn SharedLedger>>,
}

impl Default for ManagerParts {
    fn default() -> Self {
        ManagerParts {
            quota_policy: Arc::new(NativeQuota),
            system_usage: Arc::new(SystemUsage::default),
            clock: Clock::real(),
            probe: Arc::new(ProcfsProbe),
            held_elsewhere: Arc::new(NothingElsewhere),
            shared_ledger: None,
        }
    }
}

impl std::fmt::Debug for ManagerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerParts")
            .field("quota_policy", &self.quota_policy.name())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl ResourceManager {
    /// A manager with the default parts (see [`ManagerParts`]).
    pub fn new(opts: ManagerOptions, events: EventBus) -> Self {
        Self::with_parts(opts, events, ManagerParts::default())
    }

    /// A manager deciding through and reading `parts`.
    pub fn with_parts(opts: ManagerOptions, events: EventBus, parts: ManagerParts) -> Self {
        ResourceManager {
            inner: Arc::new(Inner {
                limits: opts.limits,
                ledger: Mutex::new(Ledger::new()),
                quotas: RwLock::default(),
                alerted: Mutex::default(),
                policy: parts.quota_policy,
                system: parts.system_usage,
                rates: RateLimits::new(opts.requests_per_minute),
                shed_below: AtomicU8::new(0),
                events,
                clock: parts.clock,
                probe: parts.probe,
                stats: Mutex::default(),
                defaults: opts.tenant_defaults,
                elsewhere: parts.held_elsewhere,
                shared: parts.shared_ledger,
            }),
        }
    }

    /// The manager's clock, ms (allocation `created_ms` is on it).
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The global limits.
    pub fn limits(&self) -> GlobalLimits {
        self.inner.limits
    }

    /// The event bus this manager publishes on.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Subscribes to every event from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<crate::events::Envelope>> {
        self.inner.events.subscribe()
    }

    /// The per-tenant rate limiters.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.inner.rates
    }

    /// Refuses new allocations below `priority` (0 lifts it): a pressure `shed-below`.
    pub fn shed_below(&self, priority: u8) {
        self.inner.shed_below.store(priority, Ordering::Relaxed);
    }

    /// The current shed threshold (0 = none).
    pub fn shed_threshold(&self) -> u8 {
        self.inner.shed_below.load(Ordering::Relaxed)
    }

    /// The tenant's quota for `kind`, if any: its own, else the `[tenant_defaults]` one.
    pub fn quota(&self, tenant: &str, kind: ResourceKind) -> Option<u64> {
        self.inner
            .quotas
            .read()
            .get(&(tenant.to_string(), kind))
            .copied()
            .or_else(|| self.inner.defaults.limit(kind))
    }

    /// Sets (or with `None` removes) a tenant's quota. Existing allocations stay; new ones
    /// must fit.
    pub fn set_quota(
        &self,
        tenant: &str,
        kind: ResourceKind,
        limit: Option<u64>,
    ) -> Result<(), ResourceError> {
        views::validate_tenant(tenant)?;
        if let Some(shared) = &self.inner.shared {
            shared.set_quota(tenant, kind, limit, false)?;
        }
        let key = (tenant.to_string(), kind);
        match limit {
            Some(l) => self.inner.quotas.write().insert(key, l),
            None => self.inner.quotas.write().remove(&key),
        };
        self.inner.events.publish(Event::QuotaChanged {
            tenant: tenant.to_string(),
            kind,
            limit,
        });
        Ok(())
    }

    /// Allocates, or says precisely why not.
    pub fn allocate(&self, req: AllocationRequest) -> Result<Allocation, ResourceError> {
        let result = self.try_allocate(&req);
        if let Err(e) = &result {
            *self
                .inner
                .stats
                .lock()
                .denied
                .entry(e.code().to_string())
                .or_default() += 1;
            self.inner.events.publish(Event::AllocationDenied {
                tenant: req.tenant.clone(),
                kind: req.kind,
                amount: req.amount,
                code: e.code().to_string(),
                reason: e.to_string(),
            });
        }
        result
    }

    fn try_allocate(&self, req: &AllocationRequest) -> Result<Allocation, ResourceError> {
        views::validate_tenant(&req.tenant)?;
        crate::limits::check_len("owner", &req.owner, crate::limits::MAX_OWNER_LEN).map_err(
            |e| ResourceError::InvalidRequest {
                field: "owner".into(),
                reason: e.to_string(),
            },
        )?;
        if req.amount == 0 {
            return Err(ResourceError::InvalidAmount {
                kind: req.kind,
                amount: 0,
                reason: "must be greater than zero".into(),
            });
        }
        if req.ttl_ms == Some(0) {
            return Err(ResourceError::InvalidRequest {
                field: "ttl_ms".into(),
                reason: "a lease must last at least 1 ms".into(),
            });
        }
        let shed = self.shed_threshold();
        if req.priority < shed && self.sheddable(&req.tenant) {
            return Err(ResourceError::Shed {
                priority: req.priority,
                threshold: shed,
            });
        }
        let global_limit = self.inner.limits.get(req.kind);
        if req.amount > global_limit {
            return Err(ResourceError::InvalidAmount {
                kind: req.kind,
                amount: req.amount,
                reason: format!("larger than the global limit of {global_limit}"),
            });
        }
        let quota = self.quota(&req.tenant, req.kind);
        let now = self.inner.clock.now_ms();
        // Cache capacity the tenant declared counts against its memory quota too.
        let elsewhere = match req.kind {
            ResourceKind::Memory => self.held_elsewhere(&req.tenant),
            _ => 0,
        };
        if let Some(shared) = &self.inner.shared {
            return self.allocate_shared(shared, req, global_limit, elsewhere);
        }
        let used_of = |t: Totals| t.used.saturating_add(elsewhere);

        // 1. Read the state the policy will see.
        let (state, offered) = {
            let ledger = self.inner.ledger.lock();
            self.check_global(&ledger, req)?;
            let t = ledger.tenant_totals(&req.tenant, req.kind);
            let over = quota.is_some_and(|q| used_of(t).saturating_add(req.amount) > q);
            let offered = if over {
                ledger.preemptible(&req.tenant, req.kind, req.priority, now)
            } else {
                Vec::new()
            };
            (
                TenantState {
                    used: used_of(t),
                    limit: quota,
                    allocations: t.count,
                },
                offered,
            )
        };

        // 2. Decide without the lock.
        let policy = self.inner.policy.clone();
        let system = (self.inner.system)();
        let qreq = QuotaRequest {
            tenant: req.tenant.clone(),
            owner: req.owner.clone(),
            kind: req.kind,
            amount: req.amount,
            priority: req.priority,
        };
        let decision = policy.decide(&qreq, &state, &system, &offered);

        // 3. Apply against the ledger as it is now.
        let mut ledger = self.inner.ledger.lock();
        let victims: Vec<u64> = match decision {
            QuotaDecision::Grant => Vec::new(),
            QuotaDecision::Deny(reason) => {
                let t = ledger.tenant_totals(&req.tenant, req.kind);
                return Err(refusal(req, used_of(t), quota, &policy, reason));
            }
            // Only what was offered may go, and only if it is still what was offered.
            QuotaDecision::Preempt(ids) => {
                let mut v: Vec<u64> = Vec::new();
                for id in ids {
                    let still = offered.iter().any(|h| h.allocation == id)
                        && ledger.get(id).is_some_and(|a| {
                            a.tenant == req.tenant
                                && a.kind == req.kind
                                && a.priority < req.priority
                        });
                    if still && !v.contains(&id) {
                        v.push(id);
                    }
                }
                v
            }
        };
        // The grant must fit the ledger as it is now, counting what the victims free;
        // nothing is released unless it does, so preemption is atomic with the grant
        // (victims go together with it, or not at all).
        let freed = victims
            .iter()
            .filter_map(|id| ledger.get(*id))
            .fold(0u64, |s, a| s.saturating_add(a.amount));
        let t = ledger.tenant_totals(&req.tenant, req.kind);
        let global_used = ledger.global_used(req.kind);
        if global_used.saturating_sub(freed).saturating_add(req.amount) > global_limit {
            return Err(ResourceError::LimitExceeded {
                kind: req.kind,
                used: global_used,
                requested: req.amount,
                limit: global_limit,
            });
        }
        if quota.is_some_and(|q| used_of(t).saturating_sub(freed).saturating_add(req.amount) > q) {
            return Err(ResourceError::QuotaExceeded {
                tenant: req.tenant.clone(),
                kind: req.kind,
                used: used_of(t),
                requested: req.amount,
                limit: quota.unwrap_or(u64::MAX),
            });
        }
        let preempted: Vec<Allocation> =
            victims.iter().filter_map(|id| ledger.remove(*id)).collect();
        let alloc = ledger
            .insert(Allocation {
                id: 0,
                tenant: req.tenant.clone(),
                kind: req.kind,
                amount: req.amount,
                owner: req.owner.clone(),
                priority: req.priority,
                created_ms: now,
                ttl_ms: req.ttl_ms,
                expires_ms: req.ttl_ms.map(|t| now.saturating_add(t)),
                pid: req.pid,
            })
            .clone();
        let tenant_used = ledger.tenant_totals(&req.tenant, req.kind).used;
        let global_used = ledger.global_used(req.kind);
        drop(ledger);

        self.after_grant(
            &alloc,
            &preempted,
            (tenant_used, quota),
            (global_used, global_limit),
        );
        Ok(alloc)
    }

    /// What follows every grant, whichever ledger made it: the preempted victims' events,
    /// the grant's event and counter, and the 80% / 100% alerts for the tenant and globally.
    pub(super) fn after_grant(
        &self,
        alloc: &Allocation,
        preempted: &[Allocation],
        (tenant_used, quota): (u64, Option<u64>),
        (global_used, global_limit): (u64, u64),
    ) {
        self.publish_preempted(preempted);
        self.inner.stats.lock().allocated += 1;
        self.inner.events.publish(Event::ResourceAllocated {
            id: alloc.id,
            tenant: alloc.tenant.clone(),
            kind: alloc.kind,
            amount: alloc.amount,
            owner: alloc.owner.clone(),
            priority: alloc.priority,
        });
        self.check_alerts(Some(&alloc.tenant), alloc.kind, tenant_used, quota);
        self.check_alerts(None, alloc.kind, global_used, Some(global_limit));
    }

    fn check_global(&self, ledger: &Ledger, req: &AllocationRequest) -> Result<(), ResourceError> {
        let used = ledger.global_used(req.kind);
        let limit = self.inner.limits.get(req.kind);
        if used.saturating_add(req.amount) > limit {
            return Err(ResourceError::LimitExceeded {
                kind: req.kind,
                used,
                requested: req.amount,
                limit,
            });
        }
        Ok(())
    }

    fn publish_preempted(&self, preempted: &[Allocation]) {
        if preempted.is_empty() {
            return;
        }
        self.inner.stats.lock().preempted += preempted.len() as u64;
        for a in preempted {
            self.inner.events.publish(Event::ResourceReleased {
                id: a.id,
                tenant: a.tenant.clone(),
                kind: a.kind,
                amount: a.amount,
                reason: ReleaseReason::Preempted,
            });
            self.after_release(a);
        }
    }

    /// Announces crossings of 80% and 100% upward, once each until use falls below 80%.
    fn check_alerts(
        &self,
        tenant: Option<&str>,
        kind: ResourceKind,
        used: u64,
        limit: Option<u64>,
    ) {
        self.alert_on(tenant, kind, used, limit, false);
    }

    /// Feeds measured use (telemetry) against a limit, announcing 80% / 100% crossings with
    /// scope `system`. The daemon calls it after each telemetry sample.
    pub fn observe_system(&self, kind: ResourceKind, used: u64, limit: u64) {
        self.alert_on(None, kind, used, Some(limit), true);
    }

    fn alert_on(
        &self,
        tenant: Option<&str>,
        kind: ResourceKind,
        used: u64,
        limit: Option<u64>,
        system: bool,
    ) {
        let Some(limit) = limit.filter(|l| *l > 0) else {
            return;
        };
        let pct = used.saturating_mul(100) / limit;
        let level = if pct >= 100 {
            100
        } else if pct >= 80 {
            80
        } else {
            0
        };
        let key = (tenant.map(str::to_string), kind, system);
        let mut alerted = self.inner.alerted.lock();
        let prev = alerted.get(&key).copied().unwrap_or(0);
        if level == prev {
            return;
        }
        if level == 0 {
            alerted.remove(&key);
            return;
        }
        alerted.insert(key, level);
        drop(alerted);
        if level > prev {
            let scope = match (tenant, system) {
                (_, true) => "system",
                (Some(_), false) => "tenant",
                (None, false) => "allocations",
            };
            self.inner.events.publish(Event::ResourceAlerts {
                kind,
                tenant: tenant.map(str::to_string),
                scope: scope.to_string(),
                threshold_percent: level,
                used,
                limit,
            });
        }
    }

    fn after_release(&self, a: &Allocation) {
        if let Some(shared) = &self.inner.shared {
            // The tenant's use would cost a round trip; the global one is cached. A tenant
            // alert re-arms at its next grant, which reads the counter anyway.
            self.check_alerts(
                None,
                a.kind,
                shared.global_used_cached(a.kind),
                Some(self.inner.limits.get(a.kind)),
            );
            return;
        }
        let (tenant_used, global_used) = {
            let l = self.inner.ledger.lock();
            (
                l.tenant_totals(&a.tenant, a.kind).used,
                l.global_used(a.kind),
            )
        };
        self.check_alerts(
            Some(&a.tenant),
            a.kind,
            tenant_used,
            self.quota(&a.tenant, a.kind),
        );
        self.check_alerts(
            None,
            a.kind,
            global_used,
            Some(self.inner.limits.get(a.kind)),
        );
    }

    /// Releases an allocation. A second release of the same id is `UnknownAllocation`.
    pub fn release(&self, id: u64) -> Result<Allocation, ResourceError> {
        self.release_with(id, ReleaseReason::Released)
    }

    pub(super) fn release_with(
        &self,
        id: u64,
        reason: ReleaseReason,
    ) -> Result<Allocation, ResourceError> {
        let removed = match &self.inner.shared {
            Some(shared) => shared.release(id, reason)?,
            None => self.inner.ledger.lock().remove(id),
        };
        let a = removed.ok_or(ResourceError::UnknownAllocation { id })?;
        let event = match reason {
            ReleaseReason::LeaseExpired | ReleaseReason::OwnerGone => {
                self.inner.stats.lock().reclaimed += 1;
                Event::OrphanReclaimed {
                    id,
                    tenant: a.tenant.clone(),
                    kind: a.kind,
                    amount: a.amount,
                    reason,
                }
            }
            _ => {
                self.inner.stats.lock().released += 1;
                Event::ResourceReleased {
                    id,
                    tenant: a.tenant.clone(),
                    kind: a.kind,
                    amount: a.amount,
                    reason,
                }
            }
        };
        self.inner.events.publish(event);
        self.after_release(&a);
        Ok(a)
    }

    /// Renews a lease for another TTL from now. Renewing an allocation without a lease
    /// succeeds and changes nothing.
    pub fn renew(&self, id: u64) -> Result<Allocation, ResourceError> {
        if let Some(shared) = &self.inner.shared {
            return shared
                .renew(id)?
                .ok_or(ResourceError::UnknownAllocation { id });
        }
        let now = self.inner.clock.now_ms();
        self.inner
            .ledger
            .lock()
            .renew(id, now)
            .cloned()
            .ok_or(ResourceError::UnknownAllocation { id })
    }
}

/// What a policy's denial is reported as: over the quota when the request does not fit it
/// (whatever the policy's reason), else the policy's own refusal.
pub(super) fn refusal(
    req: &AllocationRequest,
    used: u64,
    quota: Option<u64>,
    policy: &Arc<dyn QuotaPolicy>,
    reason: String,
) -> ResourceError {
    match quota {
        Some(limit) if used.saturating_add(req.amount) > limit => ResourceError::QuotaExceeded {
            tenant: req.tenant.clone(),
            kind: req.kind,
            used,
            requested: req.amount,
            limit,
        },
        _ => ResourceError::Denied {
            tenant: req.tenant.clone(),
            kind: req.kind,
            policy: policy.name_for(&req.tenant),
            reason: crate::limits::truncate_reason(reason),
        },
    }
}
