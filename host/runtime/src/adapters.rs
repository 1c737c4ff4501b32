//! The host traits implemented over the registry, so managers never see Wasm.
//!
//! Quota, priority and pressure resolvers look the binding up at every call (tenant ->
//! default -> native) and use the bound version's shared instance. A fault makes that call
//! return the native default's decision.
//!
//! Eviction is per cache: [`WasmEviction`] owns its own instance. How it learns of a new
//! version: it holds the policy's slot (which outlives reloads) and, at every `observe`,
//! compares the slot's generation (and, for a tenant-bound cache, the runtime's binding
//! generation) with the ones its instance was made from; two relaxed atomic loads. When
//! they differ it instantiates the new version (or the native LRU, when the policy was
//! unloaded or quarantined), drops the batch, answers no victims and sets `needs_replay`,
//! so the cache replays its live entries (oldest access first) into the new instance and
//! fills the shortfall itself. A fault takes the same path with a rebuilt instance.
//!
//! A replay that faults is retried once on a fresh instance; if that faults too, the cache's
//! LRU fallback decides, and every later batch is dropped with a new request for the full
//! replay until one succeeds (or the policy is quarantined for the tenant and the native
//! LRU takes the replay). A half-replayed or replay-less instance never answers.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::registry::{PolicyRuntime, PolicySlot, Shared};
use super::span;
use super::version::{EvictionInst, Fault, PolicyVersion};
use rmhost_core::policy::{
    CacheStat, EvictionPolicy, Holder, NativeLru, NativePressure, NativePriority, NativeQuota,
    PolicyKind, PoolStat, PressureAction, PressureLevel, PressurePolicy, PriorityPolicy,
    QuotaDecision, QuotaPolicy, QuotaRequest, SystemUsage, TenantState, Waiter,
};

impl PolicyRuntime {
    /// A quota policy that resolves `req.tenant`'s binding at every call.
    pub fn quota_policy(&self) -> Arc<dyn QuotaPolicy> {
        Arc::new(Resolver(self.shared.clone()))
    }

    /// A priority policy that resolves `waiter.tenant`'s binding at every call.
    pub fn priority_policy(&self) -> Arc<dyn PriorityPolicy> {
        Arc::new(Resolver(self.shared.clone()))
    }

    /// A pressure policy that uses the default binding.
    pub fn pressure_policy(&self) -> Arc<dyn PressurePolicy> {
        Arc::new(Resolver(self.shared.clone()))
    }

    /// A new eviction instance for one cache: the policy the cache names, else `tenant`'s
    /// eviction binding (re-resolved when bindings change), else the native LRU.
    pub fn eviction_policy(&self, tenant: &str, policy: Option<&str>) -> Box<dyn EvictionPolicy> {
        let target = match policy {
            Some(p) => Target::Named(self.shared.slot(p)),
            None => Target::Tenant(tenant.to_string()),
        };
        let mut ev = WasmEviction {
            shared: self.shared.clone(),
            tenant: tenant.to_string(),
            target,
            bind_gen: u64::MAX,
            slot: None,
            active: Active::Native(NativeLru::new()),
            configured: None,
            fed: false,
            replay: Replay::Synced,
            name: "builtin:lru".into(),
        };
        // Pick the serving policy now, so `name()` is right before the first batch (the
        // instance itself is made at the first `observe`).
        ev.follow();
        Box::new(ev)
    }
}

#[derive(Debug)]
struct Resolver(Arc<Shared>);

impl Resolver {
    /// Runs `call` on the bound version; `None` (use the native default) when nothing is
    /// bound or the call faulted.
    fn run<R>(
        &self,
        tenant: Option<&str>,
        kind: PolicyKind,
        call: impl FnOnce(&PolicyVersion) -> Result<(R, usize), Fault>,
    ) -> Option<R> {
        let (slot, v) = self.0.resolve(tenant, kind)?;
        let span = span::call_span(&slot.name, kind);
        let t = Instant::now();
        let res = call(&v);
        let mem = res.as_ref().ok().map(|(_, m)| *m);
        slot.stats.record(t.elapsed(), mem);
        span::outcome(&span, res.as_ref().err());
        match res {
            Ok((r, _)) => Some(r),
            Err(f) => {
                self.0.fault(&slot, tenant, kind, f);
                None
            }
        }
    }
}

impl QuotaPolicy for Resolver {
    fn name(&self) -> &str {
        "runtime:quota"
    }

    fn decide(
        &self,
        req: &QuotaRequest,
        tenant: &TenantState,
        system: &SystemUsage,
        preemptible: &[Holder],
    ) -> QuotaDecision {
        self.run(Some(&req.tenant), PolicyKind::Quota, |v| {
            v.decide(req, tenant, system, preemptible)
        })
        .unwrap_or_else(|| NativeQuota.decide(req, tenant, system, preemptible))
    }

    fn name_for(&self, tenant: &str) -> String {
        match self.0.resolve(Some(tenant), PolicyKind::Quota) {
            Some((slot, _)) => slot.name.to_string(),
            None => NativeQuota.name().to_string(),
        }
    }

    // With no Wasm policy bound for the tenant (or its binding quarantined), the native
    // policy decides.
    fn grants_what_fits(&self, tenant: &str) -> bool {
        self.0.resolve(Some(tenant), PolicyKind::Quota).is_none()
    }
}

impl PriorityPolicy for Resolver {
    fn name(&self) -> &str {
        "runtime:priority"
    }

    fn rank(&self, w: &Waiter) -> i64 {
        self.run(Some(&w.tenant), PolicyKind::Priority, |v| v.rank(w))
            .unwrap_or_else(|| NativePriority::default().rank(w))
    }
}

impl PressurePolicy for Resolver {
    fn name(&self) -> &str {
        "runtime:pressure"
    }

    fn respond(
        &self,
        level: PressureLevel,
        system: &SystemUsage,
        caches: &[CacheStat],
        pools: &[PoolStat],
    ) -> Vec<PressureAction> {
        self.run(None, PolicyKind::Pressure, |v| {
            v.respond(level, system, caches, pools)
        })
        .unwrap_or_else(|| NativePressure.respond(level, system, caches, pools))
    }
}

#[derive(Debug)]
enum Target {
    /// The cache names its policy.
    Named(Arc<PolicySlot>),
    /// The tenant's eviction binding (or the default one).
    Tenant(String),
}

enum Active {
    /// The native LRU (nothing bound, or the bound policy is unloaded or quarantined).
    Native(NativeLru),
    /// A Wasm instance of `version` (slot generation `generation`); `None` after a fault
    /// until the next call rebuilds it.
    Wasm {
        version: Arc<PolicyVersion>,
        generation: u64,
        inst: Option<EvictionInst>,
    },
}

/// One cache's eviction policy: a Wasm instance when one is bound and healthy, else the
/// native LRU. See the module docs for how it follows reloads.
pub(crate) struct WasmEviction {
    shared: Arc<Shared>,
    /// The cache's tenant: its faults count against (policy, tenant) only.
    tenant: String,
    target: Target,
    bind_gen: u64,
    slot: Option<Arc<PolicySlot>>,
    active: Active,
    configured: Option<(u64, u32)>,
    /// Whether any event reached the active policy (a switch before that needs no replay).
    fed: bool,
    replay: Replay,
    name: String,
}

/// Where the active policy stands with the cache's live entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// It has seen every event (or nothing needed it to).
    Synced,
    /// It lacks the live entries: the cache was asked to replay them, so the next batch is
    /// that replay.
    Asked,
    /// The replay faulted, even retried: the cache's own LRU fallback decided, and the next
    /// batch is an ordinary one that must not reach a fresh instance alone (it would know
    /// only the newest entries, and the cache would keep the wrong ones forever). It is
    /// dropped and the replay asked for again.
    Failed,
}

/// Attempts at one replay before the call gives up and the native fallback decides: a
/// second, fresh instance rides out a one-off fault (a first call's page faults, a timer
/// tick) without doubling the worst-case stall of a policy that always faults.
const REPLAY_ATTEMPTS: u32 = 2;

impl std::fmt::Debug for WasmEviction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEviction")
            .field("name", &self.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl WasmEviction {
    /// The slot this cache should follow now.
    fn current_slot(&mut self) -> Option<Arc<PolicySlot>> {
        match &self.target {
            Target::Named(s) => Some(s.clone()),
            Target::Tenant(t) => {
                let g = self.shared.bind_gen.load(Relaxed);
                if g != self.bind_gen {
                    self.bind_gen = g;
                    self.slot = self.shared.bound_slot(Some(t), PolicyKind::Eviction);
                }
                self.slot.clone()
            }
        }
    }

    /// What should serve now: a version of the followed slot, or `None` for the native LRU.
    fn wanted(&mut self) -> Option<(u64, Arc<PolicyVersion>)> {
        let slot = self.current_slot();
        slot.as_ref()
            .and_then(|s| s.serving(Some(&self.tenant)))
            .filter(|(_, v)| v.has(PolicyKind::Eviction))
    }

    /// Whether what serves is not what should (`follow` would switch).
    fn switch_pending(&mut self) -> bool {
        let want = self.wanted();
        !self.is_active(&want)
    }

    fn is_active(&self, want: &Option<(u64, Arc<PolicyVersion>)>) -> bool {
        match (&self.active, want) {
            (
                Active::Wasm {
                    generation,
                    version,
                    ..
                },
                Some((g, v)),
            ) => *generation == *g && Arc::ptr_eq(version, v),
            // A native LRU keeps its state whatever the reason it serves.
            (Active::Native(_), None) => true,
            _ => false,
        }
    }

    /// Switches to what should serve now; true when it switched after events were fed.
    fn follow(&mut self) -> bool {
        let want = self.wanted();
        let same = self.is_active(&want);
        if same {
            return false;
        }
        self.active = match want {
            Some((generation, version)) => {
                self.name = version.name().to_string();
                Active::Wasm {
                    version,
                    generation,
                    inst: None,
                }
            }
            None => {
                self.name = "builtin:lru".into();
                let mut lru = NativeLru::new();
                if let Some((cap, n)) = self.configured {
                    lru.configure(cap, n);
                }
                Active::Native(lru)
            }
        };
        std::mem::replace(&mut self.fed, false)
    }

    /// Counts a fault and drops the instance: the next one is built fresh.
    fn fault(&mut self, f: Fault) {
        if let Some(slot) = self.slot_for_stats() {
            self.shared
                .fault(&slot, Some(&self.tenant), PolicyKind::Eviction, f);
        }
        if let Active::Wasm { inst, .. } = &mut self.active {
            *inst = None;
        }
        self.fed = false;
    }

    /// One call on the Wasm instance (built first if there is none), in its span:
    /// `observe`, or `next-victims` when `ask` is a run.
    fn call_wasm(&mut self, events: &[u64], ask: Ask) -> Result<Vec<u64>, Fault> {
        let Active::Wasm { version, .. } = &self.active else {
            return Ok(Vec::new());
        };
        let span = match ask {
            Ask::Victims { .. } => span::call_span(version.name(), PolicyKind::Eviction),
            Ask::Run { .. } => span::run_span(version.name()),
        };
        let res = self.call_wasm_timed(events, ask);
        span::outcome(&span, res.as_ref().err());
        res
    }

    /// The call itself, timed into the policy's stats.
    fn call_wasm_timed(&mut self, events: &[u64], ask: Ask) -> Result<Vec<u64>, Fault> {
        let Active::Wasm { version, inst, .. } = &mut self.active else {
            return Ok(Vec::new());
        };
        let version = version.clone();
        let t = Instant::now();
        if inst.is_none() {
            let mut i = version.new_eviction()?;
            if let Some((cap, n)) = self.configured {
                version.configure(&mut i, cap, n)?;
            }
            *inst = Some(i);
        }
        let Some(i) = inst.as_mut() else {
            return Ok(Vec::new());
        };
        let res = match ask {
            Ask::Victims { bytes, max_count } => version.observe(i, events, bytes, max_count),
            Ask::Run { max_count } => version.next_victims(i, events, max_count),
        };
        let mem = i.memory_bytes();
        if let Some(slot) = self.slot_for_stats() {
            slot.stats.record(t.elapsed(), Some(mem));
        }
        res
    }

    fn slot_for_stats(&self) -> Option<Arc<PolicySlot>> {
        match &self.target {
            Target::Named(s) => Some(s.clone()),
            Target::Tenant(_) => self.slot.clone(),
        }
    }
}

impl EvictionPolicy for WasmEviction {
    fn name(&self) -> &str {
        &self.name
    }

    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32) {
        self.configured = Some((capacity_bytes, expected_entries));
        // A Wasm instance is configured when it is (re)built, at its first observe.
        if let Active::Native(lru) = &mut self.active {
            lru.configure(capacity_bytes, expected_entries);
        }
    }

    fn observe(&mut self, events: &[u64], bytes_to_free: u64, max_count: u32) -> Vec<u64> {
        let phase = std::mem::replace(&mut self.replay, Replay::Synced);
        // A switch after events were fed, or a replay that never succeeded: drop this
        // batch (the replay covers it) and ask for the live entries.
        if self.follow() || phase == Replay::Failed {
            self.replay = Replay::Asked;
            return Vec::new();
        }
        if let Active::Native(lru) = &mut self.active {
            self.fed = true;
            return lru.observe(events, bytes_to_free, max_count);
        }
        // A replay is retried on a fresh instance; an ordinary batch is not (the instance
        // that faulted saw earlier events the batch lacks), it asks for a replay instead.
        let attempts = if phase == Replay::Asked {
            REPLAY_ATTEMPTS
        } else {
            1
        };
        for _ in 0..attempts {
            let ask = Ask::Victims {
                bytes: bytes_to_free,
                max_count,
            };
            match self.call_wasm(events, ask) {
                Ok(ids) => {
                    self.fed = true;
                    return ids;
                }
                Err(f) => {
                    self.fault(f);
                    // Quarantined by this fault: the native LRU takes the next replay.
                    self.follow();
                    if matches!(self.active, Active::Native(_)) {
                        break;
                    }
                }
            }
        }
        // After an ordinary batch the cache replays at once; after a failed replay it does
        // not, so the next ordinary batch must ask again.
        self.replay = if phase == Replay::Asked {
            Replay::Failed
        } else {
            Replay::Asked
        };
        Vec::new()
    }

    fn needs_replay(&self) -> bool {
        self.replay != Replay::Synced
    }

    /// Runs when what serves offers them: the native LRU, or a Wasm version exporting
    /// `eviction-run`. Anything that `observe` would handle specially (a pending switch, a
    /// replay under way) answers `None` before touching the batch, so `observe` gets it.
    fn next_victims(&mut self, events: &[u64], max_count: u32) -> Option<Vec<u64>> {
        if self.replay != Replay::Synced || self.switch_pending() {
            return None;
        }
        match &mut self.active {
            Active::Native(lru) => {
                self.fed = true;
                lru.next_victims(events, max_count)
            }
            Active::Wasm { version, .. } if version.has_runs() => {
                match self.call_wasm(events, Ask::Run { max_count }) {
                    Ok(ids) => {
                        self.fed = true;
                        Some(ids)
                    }
                    Err(f) => {
                        // As for an ordinary batch: the rebuilt instance lacks this batch
                        // and everything before it, so the cache replays at once.
                        self.fault(f);
                        self.follow();
                        self.replay = Replay::Asked;
                        Some(Vec::new())
                    }
                }
            }
            Active::Wasm { .. } => None,
        }
    }
}

/// What a Wasm eviction call asks for.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// `observe`: victims freeing `bytes`.
    Victims { bytes: u64, max_count: u32 },
    /// `next-victims`: a victim run.
    Run { max_count: u32 },
}
