//! The registry: loaded policies (one slot per name, whose version is swapped atomically),
//! bindings, fault accounting and quarantine, and the public [`PolicyRuntime`] handle.
//!
//! A slot outlives unloads and reloads of its name, so an eviction adapter holding the slot
//! notices a new version (the slot's generation moved) at its next `observe`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use wasmtime::Engine;
use wasmtime::component::Linker;

use super::bindings::{self, StoreState};
use super::engine::{self, Ticker};
use super::health::Health;
use super::stats::Stats;
use super::version::{BuildCtx, PolicyVersion};
use super::{RuntimeError, RuntimeOptions};
use rmhost_core::events::{Event, EventBus};
use rmhost_core::policy::PolicyKind;

/// One policy name: its current version, health and stats.
pub(crate) struct PolicySlot {
    pub name: Arc<str>,
    current: RwLock<Option<Arc<PolicyVersion>>>,
    /// Bumped at every swap (load or unload): adapters compare it to notice a new version.
    pub generation: AtomicU64,
    /// Faults and quarantine per tenant.
    pub health: Health,
    pub stats: Stats,
}

impl std::fmt::Debug for PolicySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySlot")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl PolicySlot {
    /// The version serving `tenant` now, unless unloaded or quarantined for it.
    pub(crate) fn serving(&self, tenant: Option<&str>) -> Option<(u64, Arc<PolicyVersion>)> {
        if self.health.quarantined(tenant) {
            return None;
        }
        let cur = self.current.read();
        cur.as_ref()
            .map(|v| (self.generation.load(Relaxed), v.clone()))
    }

    pub(crate) fn current(&self) -> Option<Arc<PolicyVersion>> {
        self.current.read().clone()
    }
}

#[derive(Debug, Default)]
struct Bindings {
    // Slots, not names, so resolving a call is one map lookup and no allocation.
    defaults: HashMap<PolicyKind, Arc<PolicySlot>>,
    tenants: HashMap<String, HashMap<PolicyKind, Arc<PolicySlot>>>,
}

/// The runtime's state behind the cheap-to-clone handle.
pub(crate) struct Shared {
    pub engine: Engine,
    pub pooling: bool,
    linker: Linker<StoreState>,
    wasi_linker: Linker<StoreState>,
    pub opts: RuntimeOptions,
    pub events: EventBus,
    pub start: Instant,
    slots: RwLock<HashMap<String, Arc<PolicySlot>>>,
    bindings: RwLock<Bindings>,
    /// Bumped at every binding change, so adapters re-resolve only when needed.
    pub bind_gen: AtomicU64,
    pub dirs: Mutex<Vec<PathBuf>>,
    _ticker: Ticker,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("pooling", &self.pooling)
            .finish_non_exhaustive()
    }
}

/// The policy runtime. Cheap to clone; the epoch thread stops when the last clone (and
/// every resolver made from it) is dropped.
#[derive(Debug, Clone)]
pub struct PolicyRuntime {
    pub(crate) shared: Arc<Shared>,
}

/// One binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BindingInfo {
    /// Tenant, or `None` for the default binding.
    pub tenant: Option<String>,
    /// Kind.
    pub kind: PolicyKind,
    /// Policy name.
    pub policy: String,
}

/// A loaded policy, for `policy list` and the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyInfo {
    /// Name (file stem).
    pub name: String,
    /// SHA-256 of the component, hex.
    pub hash: String,
    /// Component size, bytes.
    pub size_bytes: usize,
    /// Kinds it implements.
    pub kinds: Vec<PolicyKind>,
    /// The file it came from, if any.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub path: Option<PathBuf>,
    /// Whether it imports WASI (and so runs with an empty WASI context).
    pub wasi: bool,
    /// Compile (or artifact-cache load) time of this version, µs.
    pub compile_us: u64,
    /// Whether this version came from the artifact cache.
    pub from_cache: bool,
    /// Version counter of this name (bumped at every load).
    pub generation: u64,
    /// Guest calls since the name was first loaded.
    pub calls: u64,
    /// Faults since the name was first loaded.
    pub faults: u64,
    /// Whether it is quarantined for tenant-less calls (the pressure binding), which then
    /// use the native default.
    pub quarantined: bool,
    /// Tenants it is quarantined for: their calls and caches use the native defaults,
    /// other tenants' keep using it.
    pub quarantined_tenants: Vec<String>,
    /// Mean call time, ns.
    pub mean_ns: u64,
    /// 99th percentile call time, ns.
    pub p99_ns: u64,
    /// Largest linear memory of an instance of this version, bytes.
    pub memory_bytes: u64,
    /// Bindings naming it.
    pub bindings: Vec<BindingInfo>,
}

impl PolicyRuntime {
    /// Sets up the engine, the linkers and the epoch thread.
    pub fn new(opts: RuntimeOptions, events: EventBus) -> Result<Self, RuntimeError> {
        let max_mem = opts
            .per_policy
            .values()
            .filter_map(|p| p.memory_cap_bytes)
            .fold(opts.memory_cap_bytes, usize::max);
        let (engine, pooling) = engine::build_engine(opts.pool_slots, max_mem)?;
        let (linker, wasi_linker) =
            bindings::linkers(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let ticker = Ticker::start(engine.clone())?;
        Ok(PolicyRuntime {
            shared: Arc::new(Shared {
                engine,
                pooling,
                linker,
                wasi_linker,
                opts,
                events,
                start: Instant::now(),
                slots: RwLock::new(HashMap::new()),
                bindings: RwLock::new(Bindings::default()),
                bind_gen: AtomicU64::new(0),
                dirs: Mutex::new(Vec::new()),
                _ticker: ticker,
            }),
        })
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.shared.pooling
    }

    /// Loads `path`, named by its stem (`lru.wasm` -> `lru`). See [`Self::load_bytes`]. A
    /// file over [`RuntimeOptions::max_file_bytes`] is refused before it is read.
    pub fn load_file(&self, path: &Path) -> Result<PolicyInfo, RuntimeError> {
        let name = policy_name(path)?;
        let bytes = self.read_policy_file(&name, path)?;
        self.load_read(&name, &bytes, path)
    }

    /// Loads the `bytes` already read from `path`.
    pub(crate) fn load_read(
        &self,
        name: &str,
        bytes: &[u8],
        path: &Path,
    ) -> Result<PolicyInfo, RuntimeError> {
        self.load(name, bytes, Some(path.to_path_buf()))
    }

    /// Reads a policy file, at most [`RuntimeOptions::max_file_bytes`] of it: the size is
    /// checked before reading and the read is bounded, in case the file grows meanwhile (a
    /// 1 GiB sparse file was once read and hashed whole before its header was looked at).
    /// A refusal also sends `PolicyReloadFailed`.
    pub(crate) fn read_policy_file(
        &self,
        name: &str,
        path: &Path,
    ) -> Result<Vec<u8>, RuntimeError> {
        let limit = self.shared.opts.max_file_bytes;
        let res = read_bounded(path, limit);
        if let Err(e) = &res {
            self.shared.events.publish(Event::PolicyReloadFailed {
                name: name.to_string(),
                reason: e.to_string(),
            });
        }
        res
    }

    /// Compiles and validates `bytes` to one side, then swaps it in as `name`; in-flight
    /// calls finish on the old version. On failure the old version keeps serving and a
    /// `PolicyReloadFailed` event says why.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<PolicyInfo, RuntimeError> {
        self.load(name, bytes, None)
    }

    fn load(
        &self,
        name: &str,
        bytes: &[u8],
        path: Option<PathBuf>,
    ) -> Result<PolicyInfo, RuntimeError> {
        let sh = &self.shared;
        let slot = sh.slot(name);
        // The same bytes again (an editor touching the file, a re-read) are a no-op, and do
        // not lift a quarantine either: only a new version or `lift_quarantine` does.
        let hash = engine::content_hash(bytes);
        if let Some(cur) = slot.current()
            && cur.hash == hash
        {
            return Ok(self.info(&slot, &cur));
        }
        let built = sh
            .build(name, bytes, path)
            .and_then(|v| v.smoke().map(|_| v));
        let v = match built {
            Ok(v) => {
                v.arm();
                Arc::new(v)
            }
            Err(reason) => {
                sh.events.publish(Event::PolicyReloadFailed {
                    name: name.to_string(),
                    reason: reason.clone(),
                });
                return Err(RuntimeError::Invalid {
                    name: name.to_string(),
                    reason,
                });
            }
        };
        {
            let mut cur = slot.current.write();
            *cur = Some(v.clone());
            slot.generation.fetch_add(1, Relaxed);
            slot.health.reset();
            slot.stats.memory_bytes.store(0, Relaxed);
        }
        tracing::info!(policy = name, hash = %v.hash, kinds = ?v.kinds, "policy loaded");
        sh.events.publish(Event::PolicyLoaded {
            name: name.to_string(),
            kinds: v.kinds.clone(),
            hash: v.hash.clone(),
        });
        Ok(self.info(&slot, &v))
    }

    /// Unloads `name`: its bindings are removed (they fall back to the native defaults) and
    /// caches using it switch to the native LRU at their next batch.
    pub fn unload(&self, name: &str) -> Result<(), RuntimeError> {
        let sh = &self.shared;
        let slot = sh.slots.read().get(name).cloned();
        let Some(slot) = slot.filter(|s| s.current().is_some()) else {
            return Err(RuntimeError::NotLoaded(name.to_string()));
        };
        {
            let mut b = sh.bindings.write();
            b.defaults.retain(|_, p| *p.name != *name);
            for t in b.tenants.values_mut() {
                t.retain(|_, p| *p.name != *name);
            }
            b.tenants.retain(|_, t| !t.is_empty());
            sh.bind_gen.fetch_add(1, Relaxed);
        }
        *slot.current.write() = None;
        slot.generation.fetch_add(1, Relaxed);
        sh.events.publish(Event::PolicyUnloaded {
            name: name.to_string(),
        });
        Ok(())
    }

    /// Binds `policy` for `kind`, for `tenant` or (with `None`) as the default; `policy`
    /// `None` removes the binding.
    pub fn bind(
        &self,
        tenant: Option<&str>,
        kind: PolicyKind,
        policy: Option<&str>,
    ) -> Result<(), RuntimeError> {
        let sh = &self.shared;
        let slot = match policy {
            None => None,
            Some(p) => {
                let slot = sh.slots.read().get(p).cloned();
                let v = slot
                    .as_ref()
                    .and_then(|s| s.current())
                    .ok_or_else(|| RuntimeError::NotLoaded(p.to_string()))?;
                if !v.has(kind) {
                    return Err(RuntimeError::WrongKind {
                        name: p.to_string(),
                        kind,
                        implements: kinds_list(&v.kinds),
                    });
                }
                slot
            }
        };
        {
            let mut b = sh.bindings.write();
            let map = match tenant {
                None => &mut b.defaults,
                Some(t) => b.tenants.entry(t.to_string()).or_default(),
            };
            match slot {
                Some(s) => map.insert(kind, s),
                None => map.remove(&kind),
            };
            b.tenants.retain(|_, t| !t.is_empty());
            sh.bind_gen.fetch_add(1, Relaxed);
        }
        sh.events.publish(Event::PolicyBound {
            tenant: tenant.map(str::to_string),
            kind,
            policy: policy.map(str::to_string),
        });
        Ok(())
    }

    /// Binds `name` as the default for every kind it implements (`rmhost run --policy`).
    pub fn bind_defaults_for(&self, name: &str) -> Result<Vec<PolicyKind>, RuntimeError> {
        let v = self
            .shared
            .slots
            .read()
            .get(name)
            .and_then(|s| s.current())
            .ok_or_else(|| RuntimeError::NotLoaded(name.to_string()))?;
        for k in &v.kinds {
            self.bind(None, *k, Some(name))?;
        }
        Ok(v.kinds.clone())
    }

    /// Every binding, defaults first.
    pub fn bindings(&self) -> Vec<BindingInfo> {
        let b = self.shared.bindings.read();
        let mut out: Vec<BindingInfo> = b
            .defaults
            .iter()
            .map(|(k, p)| BindingInfo {
                tenant: None,
                kind: *k,
                policy: p.name.to_string(),
            })
            .chain(b.tenants.iter().flat_map(|(t, m)| {
                m.iter().map(|(k, p)| BindingInfo {
                    tenant: Some(t.clone()),
                    kind: *k,
                    policy: p.name.to_string(),
                })
            }))
            .collect();
        out.sort_by(|a, b| (&a.tenant, a.kind).cmp(&(&b.tenant, b.kind)));
        out
    }

    /// Every loaded policy, by name.
    pub fn list(&self) -> Vec<PolicyInfo> {
        let slots = self.shared.all_slots();
        let mut out: Vec<PolicyInfo> = slots
            .iter()
            .filter_map(|s| s.current().map(|v| self.info(s, &v)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One loaded policy.
    pub fn get(&self, name: &str) -> Option<PolicyInfo> {
        let slot = self.shared.slots.read().get(name).cloned()?;
        slot.current().map(|v| self.info(&slot, &v))
    }

    fn info(&self, slot: &PolicySlot, v: &PolicyVersion) -> PolicyInfo {
        let s = &slot.stats;
        PolicyInfo {
            name: slot.name.to_string(),
            hash: v.hash.clone(),
            size_bytes: v.size,
            kinds: v.kinds.clone(),
            path: v.path.clone(),
            wasi: v.wasi,
            compile_us: v.compile_time.as_micros() as u64,
            from_cache: v.from_cache,
            generation: slot.generation.load(Relaxed),
            calls: s.calls.load(Relaxed),
            faults: s.faults.load(Relaxed),
            quarantined: slot.health.quarantined(None),
            quarantined_tenants: slot.health.quarantined_tenants(),
            mean_ns: s.mean_ns(),
            p99_ns: s.p99_ns(),
            memory_bytes: s.memory_bytes.load(Relaxed),
            bindings: self
                .bindings()
                .into_iter()
                .filter(|b| *b.policy == *slot.name)
                .collect(),
        }
    }
}

impl Shared {
    /// Every slot, loaded or not (cloned out of the lock).
    pub(crate) fn all_slots(&self) -> Vec<Arc<PolicySlot>> {
        self.slots.read().values().cloned().collect()
    }

    /// The slot for `name`, created empty if new.
    pub(crate) fn slot(&self, name: &str) -> Arc<PolicySlot> {
        if let Some(s) = self.slots.read().get(name) {
            return s.clone();
        }
        self.slots
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(PolicySlot {
                    name: name.into(),
                    current: RwLock::new(None),
                    generation: AtomicU64::new(0),
                    health: Health::default(),
                    stats: Stats::default(),
                })
            })
            .clone()
    }

    /// Compiles, links and type-checks a version (no smoke call yet).
    pub(crate) fn build(
        &self,
        name: &str,
        bytes: &[u8],
        path: Option<PathBuf>,
    ) -> Result<PolicyVersion, String> {
        // A file must be a binary component (or WAT text, which tests use); anything else
        // gets this message rather than a WAT parse error.
        let looks_like_wat = std::str::from_utf8(bytes)
            .is_ok_and(|t| t.trim_start().starts_with('(') || t.trim_start().starts_with(";;"));
        if path.is_some() && !bytes.starts_with(b"\0asm") && !looks_like_wat {
            return Err(format!(
                "not a WebAssembly component: the file does not start with the \\0asm magic ({} bytes)",
                bytes.len()
            ));
        }
        let po = self.opts.per_policy.get(name);
        let cx = BuildCtx {
            engine: &self.engine,
            linker: &self.linker,
            wasi_linker: &self.wasi_linker,
            cache_dir: self.opts.cache_dir.as_deref(),
            name: name.into(),
            settings: Arc::new(po.map(|p| p.settings.clone()).unwrap_or_default()),
            start: self.start,
            memory_cap: po
                .and_then(|p| p.memory_cap_bytes)
                .unwrap_or(self.opts.memory_cap_bytes),
            deadline: po.and_then(|p| p.deadline).unwrap_or(self.opts.deadline),
        };
        PolicyVersion::build(&cx, bytes, path)
    }

    /// The slot of a loaded policy.
    pub(crate) fn loaded_slot(&self, name: &str) -> Option<Arc<PolicySlot>> {
        let slot = self.slots.read().get(name).cloned()?;
        slot.current().is_some().then_some(slot)
    }

    /// The bound policy for (tenant, kind): the tenant's binding, else the default.
    pub(crate) fn bound_slot(
        &self,
        tenant: Option<&str>,
        kind: PolicyKind,
    ) -> Option<Arc<PolicySlot>> {
        let b = self.bindings.read();
        tenant
            .and_then(|t| b.tenants.get(t))
            .and_then(|m| m.get(&kind))
            .or_else(|| b.defaults.get(&kind))
            .cloned()
    }

    /// The serving version bound for (tenant, kind), or `None` for the native default (no
    /// binding, unloaded, quarantined, or the version lacks the kind).
    pub(crate) fn resolve(
        &self,
        tenant: Option<&str>,
        kind: PolicyKind,
    ) -> Option<(Arc<PolicySlot>, Arc<PolicyVersion>)> {
        let slot = self.bound_slot(tenant, kind)?;
        let (_, v) = slot.serving(tenant)?;
        v.has(kind).then_some((slot, v))
    }
}

/// Reads at most `limit` bytes of `path`, refusing a larger file before reading it.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, RuntimeError> {
    use std::io::Read;
    let io = |source| RuntimeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size| RuntimeError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len > limit {
        return Err(too_large(len));
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // One byte past the limit tells a file that grew past it from one that fits exactly.
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

/// `lru.wasm` -> `lru`.
pub(crate) fn policy_name(path: &Path) -> Result<String, RuntimeError> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| RuntimeError::BadName(path.to_path_buf()))
}

fn kinds_list(kinds: &[PolicyKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
