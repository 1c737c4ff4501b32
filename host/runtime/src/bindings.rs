//! The one place `bindgen!` runs, plus the per-Store state and the host imports.
//!
//! One `bindgen!` per world, because a component may export any subset of the four kinds
//! and each `{World}Pre` type-checks exactly one export. The quota world is generated first
//! (it imports both `host` and `types`); the other worlds map those interfaces onto it with
//! `with:`, so there is one `Host` implementation and one `usage` type (docs/measurements.md).
//!
//! Nothing here leaves `runtime/`: the rest of the host sees `rmhost_core::policy` types only
//! (conversions in `convert.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// `quota-policy`: generates `host` and `types`, shared by the other worlds.
pub(crate) mod quota {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "quota-policy",
    });
}

/// `eviction-policy`.
pub(crate) mod eviction {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "eviction-policy",
        with: {
            "rmhost:policy/host": super::quota::rmhost::policy::host,
        },
    });
}

/// `eviction-run-policy`: `eviction` plus the optional victim runs (`eviction-run`).
pub(crate) mod eviction_run {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "eviction-run-policy",
        with: {
            "rmhost:policy/host": super::quota::rmhost::policy::host,
        },
    });
}

/// `eviction-policy` of `rmhost:policy@0.1.0` (`wit/v0.1`): the host still serves 0.1
/// eviction guests, dropping the fingerprint word of each event for them (`version.rs`).
/// Its `host` import is a distinct interface (`rmhost:policy/host@0.1.0`) with the same
/// functions; `StoreState` implements it by delegating to the 0.2 one.
pub(crate) mod eviction_v01 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1",
        world: "eviction-policy",
    });
}

/// `priority-policy`.
pub(crate) mod priority {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "priority-policy",
        with: {
            "rmhost:policy/host": super::quota::rmhost::policy::host,
        },
    });
}

/// `pressure-policy`.
pub(crate) mod pressure {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "pressure-policy",
        with: {
            "rmhost:policy/host": super::quota::rmhost::policy::host,
            "rmhost:policy/types": super::quota::rmhost::policy::types,
        },
    });
}

pub(crate) use quota::rmhost::policy::host::{self as wit_host, LogLevel};
pub(crate) use quota::rmhost::policy::types as wit_types;

/// Longest log message a guest may write; the rest is cut (a guest must not flood the log).
const LOG_MAX_BYTES: usize = 1024;
/// Log lines per second per instance (token bucket, burst of the same size).
const LOG_PER_SEC: f64 = 50.0;

/// What every instance's host imports read: fixed per policy version.
#[derive(Debug)]
pub(crate) struct InstanceEnv {
    /// The policy's name, tagged on its log lines.
    pub name: Arc<str>,
    /// `[policies.NAME.settings]`.
    pub settings: Arc<BTreeMap<String, String>>,
    /// The runtime's start: `now-ms` is measured from here.
    pub start: Instant,
    /// Per-instance memory cap, bytes.
    pub memory_cap: usize,
    /// Whether the component imports WASI (then the Store carries an empty WASI context).
    pub wasi: bool,
}

/// The data of one `Store`: one policy instance's host-side state.
pub(crate) struct StoreState {
    env: Arc<InstanceEnv>,
    rng: u64,
    log_tokens: f64,
    log_last: Instant,
    log_dropped: u64,
    pub(crate) limiter: Limiter,
    wasi: Option<(WasiCtx, ResourceTable)>,
}

impl std::fmt::Debug for StoreState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreState")
            .field("policy", &self.env.name)
            .field("memory_bytes", &self.limiter.memory_bytes)
            .finish_non_exhaustive()
    }
}

impl StoreState {
    pub(crate) fn new(env: Arc<InstanceEnv>) -> Self {
        // Seeded from the name only, so two runs of `rmhost sim` draw the same numbers.
        let rng = fnv1a(env.name.as_bytes());
        let wasi = env.wasi.then(|| (empty_wasi_ctx(), ResourceTable::new()));
        let limiter = Limiter::new(env.memory_cap);
        StoreState {
            env,
            rng,
            log_tokens: LOG_PER_SEC,
            log_last: Instant::now(),
            log_dropped: 0,
            limiter,
            wasi,
        }
    }
}

/// A WASI context that grants nothing: no preopened directories, no environment, no
/// arguments, closed stdin and discarded stdout/stderr (the builder's defaults), and every
/// socket use refused (the default address check denies all; the flags say so again).
fn empty_wasi_ctx() -> WasiCtx {
    WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Only Stores of components that import WASI are linked with the WASI linker, and
        // those are created with a context (`StoreState::new` looks at `env.wasi`).
        let (ctx, table) = self
            .wasi
            .as_mut()
            .expect("WASI import called on a Store created without a WASI context");
        WasiCtxView { ctx, table }
    }
}

/// The Store's resource limiter: wasmtime's `StoreLimits` (memory, tables, instances), plus
/// a record of the linear memory in use, for stats.
pub(crate) struct Limiter {
    inner: StoreLimits,
    cap: usize,
    /// Linear memory in use by the instance, bytes (all memories together).
    pub memory_bytes: usize,
}

impl Limiter {
    fn new(memory_cap: usize) -> Self {
        Limiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_cap)
                // Tables and instance counts are bounded too, so a guest cannot grow host
                // memory through them; generous enough for componentize-py guests.
                .table_elements(1 << 20)
                .instances(1000)
                .tables(1000)
                .memories(100)
                // A denied grow traps instead of returning -1: a guest over its cap is a
                // fault the host sees, not a quiet out-of-memory inside the guest.
                .trap_on_grow_failure(true)
                .build(),
            cap: memory_cap,
            memory_bytes: 0,
        }
    }
}

/// The error a grow past the cap fails with; `version::fault` recognises it by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("memory cap of {cap} bytes exceeded (asked for {asked})")]
pub(crate) struct MemoryCapExceeded {
    /// The instance's cap, bytes.
    pub cap: usize,
    /// The total it asked for, bytes.
    pub asked: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The cap is per memory in StoreLimits; we also cap the sum, which is what the
        // operator means by "64 MiB per instance".
        let total = self.memory_bytes - current.min(self.memory_bytes) + desired;
        if total > self.cap {
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                cap: self.cap,
                asked: total,
            }));
        }
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        if ok {
            self.memory_bytes = total;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// FNV-1a: a stable hash (unlike `DefaultHasher`, which may change between Rust releases).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64: tiny, fast, and good enough for a policy's sampling decisions.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl wit_host::Host for StoreState {
    fn log(&mut self, level: LogLevel, message: String) {
        // Token bucket: a guest logging in a hot loop costs us a counter, not the log.
        let now = Instant::now();
        let refill = now.duration_since(self.log_last).as_secs_f64() * LOG_PER_SEC;
        self.log_last = now;
        self.log_tokens = (self.log_tokens + refill).min(LOG_PER_SEC);
        if self.log_tokens < 1.0 {
            self.log_dropped += 1;
            return;
        }
        self.log_tokens -= 1.0;
        let msg = truncate(&message, LOG_MAX_BYTES);
        let policy = &*self.env.name;
        let dropped = std::mem::take(&mut self.log_dropped);
        match level {
            LogLevel::Trace => tracing::trace!(target: "rmhost::policy", policy, dropped, "{msg}"),
            LogLevel::Debug => tracing::debug!(target: "rmhost::policy", policy, dropped, "{msg}"),
            LogLevel::Info => tracing::info!(target: "rmhost::policy", policy, dropped, "{msg}"),
            LogLevel::Warn => tracing::warn!(target: "rmhost::policy", policy, dropped, "{msg}"),
            LogLevel::Error => tracing::error!(target: "rmhost::policy", policy, dropped, "{msg}"),
        }
    }

    fn now_ms(&mut self) -> u64 {
        self.env.start.elapsed().as_millis() as u64
    }

    fn random_u64(&mut self) -> u64 {
        splitmix64(&mut self.rng)
    }

    fn setting(&mut self, key: String) -> Option<String> {
        self.env.settings.get(&key).cloned()
    }
}

impl wit_types::Host for StoreState {}

impl eviction_v01::rmhost::policy::host::Host for StoreState {
    fn log(&mut self, level: eviction_v01::rmhost::policy::host::LogLevel, message: String) {
        use eviction_v01::rmhost::policy::host::LogLevel as L;
        let level = match level {
            L::Trace => LogLevel::Trace,
            L::Debug => LogLevel::Debug,
            L::Info => LogLevel::Info,
            L::Warn => LogLevel::Warn,
            L::Error => LogLevel::Error,
        };
        wit_host::Host::log(self, level, message);
    }

    fn now_ms(&mut self) -> u64 {
        wit_host::Host::now_ms(self)
    }

    fn random_u64(&mut self) -> u64 {
        wit_host::Host::random_u64(self)
    }

    fn setting(&mut self, key: String) -> Option<String> {
        wit_host::Host::setting(self, key)
    }
}

/// Cuts `s` to at most `max` bytes on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The two linkers: `host` + `types` (0.2, and 0.1's `host` for 0.1 eviction guests) for
/// Rust/C guests, and the same plus WASI p2 for guests (Python, JS) whose runtimes import
/// WASI.
pub(crate) fn linkers(
    engine: &wasmtime::Engine,
) -> wasmtime::Result<(Linker<StoreState>, Linker<StoreState>)> {
    let mut plain = Linker::new(engine);
    quota::QuotaPolicy::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut plain, |s| s)?;
    eviction_v01::EvictionPolicy::add_to_linker::<StoreState, HasSelf<StoreState>>(
        &mut plain,
        |s| s,
    )?;
    let mut wasi = Linker::new(engine);
    quota::QuotaPolicy::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut wasi, |s| s)?;
    eviction_v01::EvictionPolicy::add_to_linker::<StoreState, HasSelf<StoreState>>(
        &mut wasi,
        |s| s,
    )?;
    wasmtime_wasi::p2::add_to_linker_sync(&mut wasi)?;
    Ok((plain, wasi))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn host_imports_work_without_wasm() {
        use wit_host::Host;
        let env = Arc::new(InstanceEnv {
            name: "p".into(),
            settings: Arc::new(BTreeMap::from([("algorithm".into(), "lru".into())])),
            start: Instant::now(),
            memory_cap: 1 << 20,
            wasi: false,
        });
        let (mut a, mut b) = (StoreState::new(env.clone()), StoreState::new(env));
        assert_eq!(a.setting("algorithm".into()).as_deref(), Some("lru"));
        assert_eq!(a.setting("nope".into()), None);
        assert_eq!(a.random_u64(), b.random_u64());
        assert_ne!(a.random_u64(), a.random_u64());
        assert!(a.now_ms() < 1000);
        // A flood of log lines is cut to the bucket's size and counted.
        for _ in 0..200 {
            a.log(LogLevel::Debug, "x".repeat(5000));
        }
        assert!(a.log_dropped >= 100, "{}", a.log_dropped);
    }

    #[test]
    fn rng_is_reproducible_per_name() {
        let (mut a, mut b) = (fnv1a(b"lru"), fnv1a(b"lru"));
        assert_eq!(splitmix64(&mut a), splitmix64(&mut b));
        assert_ne!(fnv1a(b"lru"), fnv1a(b"lfu"));
    }
}
