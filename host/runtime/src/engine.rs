//! The Engine (configured once), the epoch ticker that enforces deadlines, and the on-disk
//! cache of precompiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeError;

/// How often the epoch advances; deadlines are whole ticks, so this is their resolution.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// The engine and whether it got the pooling allocator.
pub(crate) fn build_engine(
    pool_slots: u32,
    max_memory: usize,
) -> Result<(Engine, bool), RuntimeError> {
    let base = || {
        let mut c = Config::new();
        c.wasm_component_model(true)
            .epoch_interruption(true)
            .strategy(wasmtime::Strategy::Cranelift)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        c
    };
    if pool_slots > 0 {
        let mut pool = PoolingAllocationConfig::new();
        // Limits sized for componentize-py guests (many core instances and tables) while
        // keeping the reserved address space per engine bounded by `pool_slots`.
        pool.total_component_instances(pool_slots)
            .total_core_instances(pool_slots * 4)
            .total_memories(pool_slots * 2)
            .total_tables(pool_slots * 4)
            .max_memories_per_component(8)
            .max_tables_per_component(16)
            .max_core_instances_per_component(64)
            .table_elements(1 << 20)
            .max_memory_size(max_memory)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(4 << 20);
        let mut c = base();
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&c) {
            Ok(e) => return Ok((e, true)),
            Err(e) => tracing::warn!(
                error = %e,
                "the pooling allocator could not be set up (address space or overcommit \
                 limits?); falling back to on-demand instance allocation (slower instantiation)"
            ),
        }
    } else {
        tracing::warn!("pooling allocator disabled by options; using on-demand allocation");
    }
    Engine::new(&base())
        .map(|e| (e, false))
        .map_err(|e| RuntimeError::Engine(e.to_string()))
}

/// Advances the engine's epoch every `TICK` until dropped.
#[derive(Debug)]
pub(crate) struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn start(engine: Engine) -> Result<Self, RuntimeError> {
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rmhost-epoch".into())
            .spawn(move || {
                // recv_timeout doubles as the sleep; a dropped sender (or a message) stops us.
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TICK) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Ticker {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Deadline in epoch ticks: at least one, rounded up.
pub(crate) fn ticks(deadline: Duration) -> u64 {
    let t = deadline.as_nanos().div_ceil(TICK.as_nanos());
    u64::try_from(t).unwrap_or(u64::MAX).max(1)
}

/// `$XDG_CACHE_HOME/rmhost/cwasm`, else `~/.cache/rmhost/cwasm`.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("rmhost").join("cwasm"))
}

/// SHA-256 of the component, hex: the policy's identity in events and stats.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Cranelift compiled it now (cache off, miss, or a bad entry).
    Compiled,
    /// Loaded from the artifact cache.
    Cached,
}

/// Compiles `bytes`, through the artifact cache when there is one. A cache entry that fails
/// to load (corrupt, truncated, from another wasmtime) is recompiled and overwritten; cache
/// I/O errors are logged and never fail the load.
pub(crate) fn compile(
    engine: &Engine,
    cache_dir: Option<&Path>,
    hash: &str,
    bytes: &[u8],
) -> Result<(Component, Origin, Duration), wasmtime::Error> {
    let t0 = Instant::now();
    let Some(dir) = cache_dir else {
        let c = Component::new(engine, bytes)?;
        return Ok((c, Origin::Compiled, t0.elapsed()));
    };
    let path = dir.join(format!("{hash}-{}.cwasm", engine_key(engine)));
    if path.is_file() {
        // SAFETY: `deserialize_file` trusts that the file is a wasmtime artifact made by a
        // compatible engine; running an arbitrary file would be unsound. This file is ours:
        // its name holds the SHA-256 of the component it was compiled from and a hash of
        // this engine's compatibility key, it was written by `precompile_component` below
        // into a directory we created with mode 0700, and it was put in place by an atomic
        // rename of a complete temporary file, so no reader ever sees a partial write.
        // wasmtime still checks the header (version, target, flags) and rejects mismatches,
        // which is the error path we recompile on. The file is mmapped while the component
        // lives, so it must never be modified in place: we only ever replace entries by
        // rename (a new inode), and nothing else should write into this directory.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok((c, Origin::Cached, t0.elapsed())),
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "cached policy artifact is unusable; recompiling"
            ),
        }
    }
    let artifact = engine.precompile_component(bytes)?;
    if let Err(e) = write_atomically(dir, &path, &artifact) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write policy artifact cache");
    }
    // SAFETY: `artifact` was produced by `precompile_component` on this very engine a
    // moment ago and never left memory.
    let c = unsafe { Component::deserialize(engine, &artifact)? };
    Ok((c, Origin::Compiled, t0.elapsed()))
}

/// A hash of what makes an artifact loadable: wasmtime's version and the engine settings
/// that affect code generation (wasmtime's own compatibility hash covers both).
fn engine_key(engine: &Engine) -> String {
    let mut h = Fnv(super::bindings::fnv1a(b"rmhost-cwasm-v1"));
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// A stable `Hasher` (std's `DefaultHasher` is allowed to change between releases, which
/// would only cost a recompile, but a stable key keeps the cache warm across upgrades).
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    create_private_dir(dir)?;
    // Unique per process and call, so concurrent loads of the same component never share
    // a temporary file; the last rename wins, and both wrote the same bytes.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artifact"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}
