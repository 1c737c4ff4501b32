//! One loaded version of a policy: its compiled component, a `{World}Pre` per exported
//! kind, and the shared instance (one Store each) for the quota, priority and pressure
//! kinds. Every guest call goes through [`guarded`], which sets the epoch deadline and turns
//! traps into [`Fault`]s.
//!
//! Calls block the calling thread for at most the deadline (plus one epoch tick); async
//! callers wrap them in `spawn_blocking`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store, Trap};

use super::bindings::MemoryCapExceeded;
use super::bindings::{
    InstanceEnv, StoreState, eviction, eviction_run, eviction_v01, pressure, priority, quota,
};
use super::contract::{CONTRACT, CONTRACT_V01, check_versions, export_name};
use super::convert;
use super::engine::{self, Origin};
use super::samples;

mod smoke;
use rmhost_core::policy::{
    CacheStat, FaultKind, Holder, PolicyKind, PoolStat, PressureAction, PressureLevel,
    QuotaDecision, QuotaRequest, SystemUsage, TenantState, Waiter,
};

/// The deadline of instantiation, smoke calls and conformance runs (or the policy's own
/// deadline when longer).
pub(crate) const SETUP_DEADLINE: Duration = Duration::from_secs(1);

/// Why a guest call did not produce a usable answer. The message says it for a user; the
/// [`FaultKind`] says it for code (events, metrics, tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Fault {
    /// The call was interrupted at its deadline.
    #[error("missed its deadline of {0:?}")]
    Deadline(Duration),
    /// The instance asked for more memory than its cap.
    #[error("exceeded its memory cap of {0} bytes")]
    MemoryCap(usize),
    /// The guest trapped.
    #[error("trapped: {0}")]
    Trap(String),
    /// The answer breaks the contract.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// No instance could be made (or the kind is not exported).
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
}

impl Fault {
    /// What kind of fault this is.
    pub(crate) fn kind(&self) -> FaultKind {
        match self {
            Fault::Deadline(_) => FaultKind::Deadline,
            Fault::MemoryCap(_) => FaultKind::MemoryCap,
            Fault::Trap(_) => FaultKind::Trap,
            Fault::Malformed(_) => FaultKind::MalformedAnswer,
            Fault::Instantiate(_) => FaultKind::Instantiate,
        }
    }
}

/// A live instance of one world: its Store and the typed exports.
pub(crate) struct Inst<B> {
    store: Store<StoreState>,
    bindings: B,
}

impl<B> std::fmt::Debug for Inst<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inst")
            .field("store", self.store.data())
            .finish()
    }
}

impl<B> Inst<B> {
    /// Linear memory in use, bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.store.data().limiter.memory_bytes
    }
}

/// An eviction instance of either contract version.
pub(crate) enum EvictionBindings {
    /// `rmhost:policy@0.2.0`: events as the host packs them.
    V02(eviction::EvictionPolicy),
    /// `rmhost:policy@0.2.0` with victim runs (`eviction-run`).
    V02Run(eviction_run::EvictionRunPolicy),
    /// `rmhost:policy@0.1.0`: each event without its fingerprint word.
    V01(eviction_v01::EvictionPolicy),
}

/// The eviction `Pre` of either contract version.
enum EvictionPre {
    V02(eviction::EvictionPolicyPre<StoreState>),
    V02Run(eviction_run::EvictionRunPolicyPre<StoreState>),
    V01(eviction_v01::EvictionPolicyPre<StoreState>),
}

pub(crate) type EvictionInst = Inst<EvictionBindings>;
type QuotaInst = Inst<quota::QuotaPolicy>;
type PriorityInst = Inst<priority::PriorityPolicy>;
type PressureInst = Inst<pressure::PressurePolicy>;

/// What a build needs from the runtime.
pub(crate) struct BuildCtx<'a> {
    pub engine: &'a Engine,
    pub linker: &'a wasmtime::component::Linker<StoreState>,
    pub wasi_linker: &'a wasmtime::component::Linker<StoreState>,
    pub cache_dir: Option<&'a std::path::Path>,
    pub name: Arc<str>,
    pub settings: Arc<std::collections::BTreeMap<String, String>>,
    pub start: Instant,
    pub memory_cap: usize,
    pub deadline: Duration,
}

/// A compiled, linked and validated policy version.
pub(crate) struct PolicyVersion {
    pub hash: String,
    pub size: usize,
    pub kinds: Vec<PolicyKind>,
    pub wasi: bool,
    pub path: Option<PathBuf>,
    pub compile_time: Duration,
    pub from_cache: bool,
    pub deadline: Duration,
    env: Arc<InstanceEnv>,
    engine: Engine,
    /// The per-call deadline in force: relaxed (see [`SETUP_DEADLINE`]) until [`Self::arm`].
    call_ticks: AtomicU64,
    deadline_ticks: u64,
    eviction: Option<EvictionPre>,
    quota: Option<quota::QuotaPolicyPre<StoreState>>,
    priority: Option<priority::PriorityPolicyPre<StoreState>>,
    pressure: Option<pressure::PressurePolicyPre<StoreState>>,
    quota_inst: Mutex<Option<QuotaInst>>,
    priority_inst: Mutex<Option<PriorityInst>>,
    pressure_inst: Mutex<Option<PressureInst>>,
}

impl std::fmt::Debug for PolicyVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyVersion")
            .field("name", &self.env.name)
            .field("hash", &self.hash)
            .field("kinds", &self.kinds)
            .finish_non_exhaustive()
    }
}

impl PolicyVersion {
    /// Compiles, links and type-checks `bytes`. The error is the reason, for the user.
    pub(crate) fn build(
        cx: &BuildCtx<'_>,
        bytes: &[u8],
        path: Option<PathBuf>,
    ) -> Result<Self, String> {
        let hash = engine::content_hash(bytes);
        let (component, origin, compile_time) =
            engine::compile(cx.engine, cx.cache_dir, &hash, bytes)
                .map_err(|e| format!("not a valid WebAssembly component: {e:#}"))?;
        let ty = component.component_type();
        let mut wasi = false;
        for (import, _) in ty.imports(cx.engine) {
            if import.starts_with("wasi:") {
                wasi = true;
            } else if !(import.starts_with("rmhost:policy/host")
                || import.starts_with("rmhost:policy/types"))
            {
                return Err(format!(
                    "imports `{import}`, which the host does not provide (a policy may import \
                     rmhost:policy/host, rmhost:policy/types and, for Python/JS runtimes, WASI)"
                ));
            }
        }
        let exports: Vec<String> = ty.exports(cx.engine).map(|(n, _)| n.to_string()).collect();
        check_versions(ty.imports(cx.engine).map(|(n, _)| n), &exports)?;
        let linker = if wasi { cx.wasi_linker } else { cx.linker };
        let pre: InstancePre<StoreState> = linker
            .instantiate_pre(&component)
            .map_err(|e| format!("cannot be linked: {e:#}"))?;
        let claims = |k: PolicyKind| {
            let base = export_name(k).split('@').next().unwrap_or_default();
            exports.iter().any(|e| e.split('@').next() == Some(base))
        };
        let mismatch = |k: PolicyKind, e: wasmtime::Error| {
            format!(
                "exports `{}` with types that do not match the contract: {e:#}",
                export_name(k)
            )
        };
        let mut v = PolicyVersion {
            hash,
            size: bytes.len(),
            kinds: Vec::new(),
            wasi,
            path,
            compile_time,
            from_cache: origin == Origin::Cached,
            deadline: cx.deadline,
            env: Arc::new(InstanceEnv {
                name: cx.name.clone(),
                settings: cx.settings.clone(),
                start: cx.start,
                memory_cap: cx.memory_cap,
                wasi,
            }),
            engine: cx.engine.clone(),
            call_ticks: AtomicU64::new(engine::ticks(cx.deadline.max(SETUP_DEADLINE))),
            deadline_ticks: engine::ticks(cx.deadline),
            eviction: None,
            quota: None,
            priority: None,
            pressure: None,
            quota_inst: Mutex::new(None),
            priority_inst: Mutex::new(None),
            pressure_inst: Mutex::new(None),
        };
        if claims(PolicyKind::Eviction) {
            let v01 = format!("rmhost:policy/eviction@{CONTRACT_V01}");
            let p = if exports.contains(&v01) {
                tracing::info!(
                    policy = %cx.name,
                    "serving an eviction policy built for rmhost:policy@{CONTRACT_V01}: its \
                     events carry no key fingerprints (rebuild it for @{CONTRACT} to get them)"
                );
                eviction_v01::EvictionPolicyPre::new(pre.clone())
                    .map(EvictionPre::V01)
                    .map_err(|e| {
                        format!("exports `{v01}` with types that do not match it: {e:#}")
                    })?
            } else if exports.contains(&format!("rmhost:policy/eviction-run@{CONTRACT}")) {
                eviction_run::EvictionRunPolicyPre::new(pre.clone())
                    .map(EvictionPre::V02Run)
                    .map_err(|e| {
                        format!(
                            "exports `rmhost:policy/eviction-run@{CONTRACT}` with types that do \
                             not match the contract: {e:#}"
                        )
                    })?
            } else {
                eviction::EvictionPolicyPre::new(pre.clone())
                    .map(EvictionPre::V02)
                    .map_err(|e| mismatch(PolicyKind::Eviction, e))?
            };
            v.eviction = Some(p);
            v.kinds.push(PolicyKind::Eviction);
        }
        if claims(PolicyKind::Quota) {
            let p = quota::QuotaPolicyPre::new(pre.clone())
                .map_err(|e| mismatch(PolicyKind::Quota, e))?;
            v.quota = Some(p);
            v.kinds.push(PolicyKind::Quota);
        }
        if claims(PolicyKind::Priority) {
            let p = priority::PriorityPolicyPre::new(pre.clone())
                .map_err(|e| mismatch(PolicyKind::Priority, e))?;
            v.priority = Some(p);
            v.kinds.push(PolicyKind::Priority);
        }
        if claims(PolicyKind::Pressure) {
            let p = pressure::PressurePolicyPre::new(pre)
                .map_err(|e| mismatch(PolicyKind::Pressure, e))?;
            v.pressure = Some(p);
            v.kinds.push(PolicyKind::Pressure);
        }
        if v.kinds.is_empty() {
            return Err(format!(
                "exports none of the policy interfaces (rmhost:policy/eviction, quota, priority \
                 or pressure @{CONTRACT}); it exports: [{}]",
                exports.join(", ")
            ));
        }
        Ok(v)
    }

    /// Switches from the setup deadline to the policy's real per-call deadline; called just
    /// before the version is swapped in. Smoke calls and `policy check` conformance runs
    /// check answers, not speed, so they run under the relaxed one (a loaded machine or a
    /// debug build of the host must not fail a correct policy).
    pub(crate) fn arm(&self) {
        self.call_ticks.store(self.deadline_ticks, Relaxed);
    }

    /// The policy's name.
    pub(crate) fn name(&self) -> &str {
        &self.env.name
    }

    /// Whether the policy's settings call it an LRU (conformance then compares victims).
    pub(crate) fn setting(&self, key: &str) -> Option<&str> {
        self.env.settings.get(key).map(String::as_str)
    }

    fn store(&self) -> Store<StoreState> {
        let mut store = Store::new(&self.engine, StoreState::new(self.env.clone()));
        store.limiter(|s| &mut s.limiter);
        // Instantiation runs guest start code, so it is bounded too, but by the setup
        // deadline: a first instantiation pays page faults and lazy guest initialisation.
        store.set_epoch_deadline(engine::ticks(self.deadline.max(SETUP_DEADLINE)));
        store.epoch_deadline_trap();
        store
    }

    pub(crate) fn has(&self, kind: PolicyKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// A fresh eviction instance (one per cache).
    pub(crate) fn new_eviction(&self) -> Result<EvictionInst, Fault> {
        let pre = self
            .eviction
            .as_ref()
            .ok_or_else(|| no_kind(PolicyKind::Eviction))?;
        let mut store = self.store();
        let bindings = match pre {
            EvictionPre::V02(p) => p.instantiate(&mut store).map(EvictionBindings::V02),
            EvictionPre::V02Run(p) => p.instantiate(&mut store).map(EvictionBindings::V02Run),
            EvictionPre::V01(p) => p.instantiate(&mut store).map(EvictionBindings::V01),
        }
        .map_err(|e| instantiate_fault(self, e))?;
        Ok(Inst { store, bindings })
    }

    pub(crate) fn configure(&self, inst: &mut EvictionInst, cap: u64, n: u32) -> Result<(), Fault> {
        self.guarded(inst, |b, s| match b {
            EvictionBindings::V02(b) => b.rmhost_policy_eviction().call_configure(s, cap, n),
            EvictionBindings::V02Run(b) => b.rmhost_policy_eviction().call_configure(s, cap, n),
            EvictionBindings::V01(b) => b.rmhost_policy_eviction().call_configure(s, cap, n),
        })
    }

    /// One `observe`; a malformed answer (more than `max_count` ids) is a fault.
    pub(crate) fn observe(
        &self,
        inst: &mut EvictionInst,
        events: &[u64],
        bytes: u64,
        max_count: u32,
    ) -> Result<Vec<u64>, Fault> {
        let ids = self.guarded(inst, |b, s| match b {
            EvictionBindings::V02(b) => b
                .rmhost_policy_eviction()
                .call_observe(s, events, bytes, max_count),
            EvictionBindings::V02Run(b) => b
                .rmhost_policy_eviction()
                .call_observe(s, events, bytes, max_count),
            EvictionBindings::V01(b) => {
                // A 0.1 guest reads three words per event: drop the fingerprints.
                let mut v01 = Vec::new();
                rmhost_core::policy::strip_fingerprints(events, &mut v01);
                b.rmhost_policy_eviction()
                    .call_observe(s, &v01, bytes, max_count)
            }
        })?;
        if ids.len() > max_count as usize {
            return Err(Fault::Malformed(format!(
                "{} victims where at most {max_count} were allowed",
                ids.len()
            )));
        }
        Ok(ids)
    }

    /// Whether this version offers victim runs (exports `eviction-run`).
    pub(crate) fn has_runs(&self) -> bool {
        matches!(self.eviction, Some(EvictionPre::V02Run(_)))
    }

    /// One `next-victims` (victim runs); a malformed answer (more than `max_count` ids) is a
    /// fault. Only for versions that [`PolicyVersion::has_runs`].
    pub(crate) fn next_victims(
        &self,
        inst: &mut EvictionInst,
        events: &[u64],
        max_count: u32,
    ) -> Result<Vec<u64>, Fault> {
        let ids = self.guarded(inst, |b, s| match b {
            EvictionBindings::V02Run(b) => b
                .rmhost_policy_eviction_run()
                .call_next_victims(s, events, max_count),
            _ => Err(wasmtime::Error::msg(
                "next-victims called on an instance without eviction-run",
            )),
        })?;
        if ids.len() > max_count as usize {
            return Err(Fault::Malformed(format!(
                "{} next victims where at most {max_count} were allowed",
                ids.len()
            )));
        }
        Ok(ids)
    }

    /// A quota decision on the version's shared instance; rebuilt lazily after a fault.
    pub(crate) fn decide(
        &self,
        req: &QuotaRequest,
        tenant: &TenantState,
        system: &SystemUsage,
        preemptible: &[Holder],
    ) -> Result<(QuotaDecision, usize), Fault> {
        let pre = self
            .quota
            .as_ref()
            .ok_or_else(|| no_kind(PolicyKind::Quota))?;
        let mut slot = self.quota_inst.lock();
        let (r, t, u, h) = (
            convert::request(req),
            convert::tenant_state(tenant),
            convert::usage(system),
            convert::holders(preemptible),
        );
        let res = self
            .with_shared(
                &mut slot,
                |s| pre.instantiate(s),
                |b, s| b.rmhost_policy_quota().call_decide(s, &r, t, u, &h),
            )
            .map(|(d, m)| (convert::decision(d), m));
        let checked = res.and_then(|(d, m)| check_preempt(&d, preemptible).map(|()| (d, m)));
        if checked.is_err() {
            *slot = None;
        }
        checked
    }

    pub(crate) fn rank(&self, w: &Waiter) -> Result<(i64, usize), Fault> {
        let pre = self
            .priority
            .as_ref()
            .ok_or_else(|| no_kind(PolicyKind::Priority))?;
        let mut slot = self.priority_inst.lock();
        let w = convert::waiter(w);
        self.with_shared(
            &mut slot,
            |s| pre.instantiate(s),
            |b, s| b.rmhost_policy_priority().call_rank(s, &w),
        )
    }

    pub(crate) fn respond(
        &self,
        level: PressureLevel,
        system: &SystemUsage,
        caches: &[CacheStat],
        pools: &[PoolStat],
    ) -> Result<(Vec<PressureAction>, usize), Fault> {
        let pre = self
            .pressure
            .as_ref()
            .ok_or_else(|| no_kind(PolicyKind::Pressure))?;
        let mut slot = self.pressure_inst.lock();
        let (l, u, c, p) = (
            convert::level(level),
            convert::usage(system),
            convert::cache_stats(caches),
            convert::pool_stats(pools),
        );
        self.with_shared(
            &mut slot,
            |s| pre.instantiate(s),
            |b, s| b.rmhost_policy_pressure().call_respond(s, l, u, &c, &p),
        )
        .map(|(a, m)| (convert::actions(a), m))
    }

    /// Runs `call` on the shared instance in `slot`, creating it first if needed; after a
    /// fault the slot is emptied, so the next call gets a fresh instance from the same Pre.
    fn with_shared<B, R>(
        &self,
        slot: &mut Option<Inst<B>>,
        make: impl FnOnce(&mut Store<StoreState>) -> wasmtime::Result<B>,
        call: impl FnOnce(&B, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<(R, usize), Fault> {
        if slot.is_none() {
            let mut store = self.store();
            let bindings = make(&mut store).map_err(|e| instantiate_fault(self, e))?;
            *slot = Some(Inst { store, bindings });
        }
        let inst = slot.as_mut().expect("instance created above");
        match self.guarded(inst, call) {
            Ok(r) => Ok((r, inst.memory_bytes())),
            Err(f) => {
                *slot = None;
                Err(f)
            }
        }
    }

    /// Runs one guest call under the deadline.
    fn guarded<B, R>(
        &self,
        inst: &mut Inst<B>,
        call: impl FnOnce(&B, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        inst.store.set_epoch_deadline(self.call_ticks.load(Relaxed));
        call(&inst.bindings, &mut inst.store).map_err(|e| fault(self, e))
    }
}

/// Every preempted id must come from `preemptible`, and a preempt must name at least one.
fn check_preempt(d: &QuotaDecision, preemptible: &[Holder]) -> Result<(), Fault> {
    let QuotaDecision::Preempt(ids) = d else {
        return Ok(());
    };
    if ids.is_empty() {
        return Err(Fault::Malformed("a preempt naming no allocation".into()));
    }
    match ids
        .iter()
        .find(|id| !preemptible.iter().any(|h| h.allocation == **id))
    {
        Some(id) => Err(Fault::Malformed(format!(
            "preempt of allocation {id}, which was not offered as preemptible"
        ))),
        None => Ok(()),
    }
}

fn no_kind(kind: PolicyKind) -> Fault {
    Fault::Instantiate(format!("the policy does not export {kind}"))
}

/// Describes a failed call: a missed deadline, the memory cap, or a trap.
fn fault(v: &PolicyVersion, e: wasmtime::Error) -> Fault {
    if let Some(Trap::Interrupt) = e.downcast_ref::<Trap>() {
        return Fault::Deadline(v.deadline);
    }
    if let Some(cap) = e.downcast_ref::<MemoryCapExceeded>() {
        return Fault::MemoryCap(cap.cap);
    }
    Fault::Trap(format!("{e:#}").replace('\n', " "))
}

/// Instantiation failed: a trap in a start function, the memory cap, or the pooling
/// allocator full.
fn instantiate_fault(v: &PolicyVersion, e: wasmtime::Error) -> Fault {
    match fault(v, e) {
        Fault::Trap(t) => Fault::Instantiate(t),
        other => other,
    }
}
