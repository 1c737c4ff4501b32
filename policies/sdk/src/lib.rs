//! # rmhost-policy: write rmhost policies in Rust
//!
//! A policy is a WebAssembly component that exports one of the interfaces of
//! `wit/policy.wit` (package `rmhost:policy@0.2.0`). This crate hides the bindings: implement
//! one trait per kind ([`Eviction`], [`Quota`], [`Priority`], [`Pressure`]) on a type that is
//! `Default`, and export it with the matching macro ([`export_eviction!`],
//! [`export_quota!`], [`export_priority!`], [`export_pressure!`]). Each macro produces a
//! component that exports exactly its interface and imports at most `rmhost:policy/host`
//! (and `types`), never WASI.
//!
//! The instance of your type lives in a `static` made by the macro: it is created with
//! `Default` on the first call and kept across calls (components are single-threaded and
//! their exports are never re-entered). Eviction events arrive packed; the SDK decodes them
//! and calls `on_insert`/`on_hit`/`on_update`/`on_remove` in order, then `victims` when the
//! host needs bytes freed. A policy written against the ABI crate's
//! `rmhost_abi::EvictionPolicy` (the host's own native algorithms) is exported as is with
//! [`export_native_eviction!`]: it reads the packed events itself.
//!
//! ```no_run
//! // A policy crate: crate-type = ["cdylib"], depends on rmhost-policy.
//! use rmhost_policy::{Priority, Waiter, setting};
//!
//! struct Aging { boost_ms: i64 }
//! impl Default for Aging {
//!     fn default() -> Self {
//!         Aging { boost_ms: setting("boost_ms").and_then(|s| s.parse().ok()).unwrap_or(1000) }
//!     }
//! }
//! impl Priority for Aging {
//!     fn rank(&mut self, w: &Waiter) -> i64 { w.enqueued_ms as i64 - w.priority as i64 * self.boost_ms }
//! }
//! rmhost_policy::export_priority!(Aging);
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown`, then
//! `wasm-tools component new target/.../name.wasm -o name.wasm` (`policies/build` does it all).
//!
//! Natively (for `cargo test`), the host helpers are stand-ins: [`setting`] reads values set
//! with [`testing::set_setting`], [`now_ms`] counts from the first call, [`random_u64`] is a
//! fixed-seed xorshift and [`log`] prints to stderr. The export macros compile natively too,
//! so a policy crate's logic can be unit-tested with plain `cargo test`.

mod bindings;
pub mod events;
mod host;

pub use events::{Event, EventKind};
pub use host::{log, now_ms, random_u64, setting, testing};

pub use bindings::eviction::rmhost::policy::host::LogLevel;
pub use bindings::pressure::exports::rmhost::policy::pressure::{
    Action, CacheStat, PoolStat, Shrink, ThrottleLimit, Trim,
};
pub use bindings::priority::exports::rmhost::policy::priority::Waiter;
pub use bindings::quota::exports::rmhost::policy::quota::{Decision, Holder, Request, TenantState};
pub use bindings::quota::rmhost::policy::types::{PressureLevel, ResourceKind, Usage};

/// An eviction policy over the host's dense entry ids.
///
/// Ids are slot numbers: the host hands out the smallest free one and reuses the id of a
/// removed entry, so keep per-entry state in arrays indexed by id and grow them on insert.
/// The host never inserts a live id and never sends a hit, update or remove for an id that
/// is not live; a policy should still tolerate it (ignore, or treat an insert of a live id
/// as an update), since a wrong answer is only corrected by the host's fallback.
pub trait Eviction: Default {
    /// Sizing hint, once per instance before the first event. `expected_entries` is 0 when
    /// the host cannot estimate it.
    fn configure(&mut self, capacity_bytes: u64, expected_entries: u32) {
        let _ = (capacity_bytes, expected_entries);
    }
    /// A new entry. `fingerprint` identifies its key: a per-cache keyed 64-bit hash, the
    /// same when an evicted key comes back (key ghosts and frequency sketches by it; ids
    /// are reused for unrelated keys).
    fn on_insert(&mut self, id: u32, fingerprint: u64, size: u64, priority: u8, at_ms: u64);
    /// A read of a live entry.
    fn on_hit(&mut self, id: u32, at_ms: u64);
    /// A live entry's size or priority changed; counts as an access.
    fn on_update(&mut self, id: u32, size: u64, priority: u8, at_ms: u64);
    /// The entry left the cache (removed, expired or evicted); its id is free again.
    fn on_remove(&mut self, id: u32);
    /// Pushes ids to evict onto `out`, best first, until they free at least
    /// `bytes_to_free` or `max_count` ids are chosen. Only called with `bytes_to_free > 0`.
    /// Do not forget the victims yet: the host sends their remove events in the next batch
    /// (an id that it did not evict after all may still be hit). Returning the id of an
    /// entry inserted in this batch rejects it (admission control).
    fn victims(&mut self, bytes_to_free: u64, max_count: u32, out: &mut Vec<u64>);
}

/// Opt-in to victim runs (WIT `eviction-run`; export with [`export_eviction_runs!`]): the
/// host asks for the next victims in advance and evicts them one at a time without calling
/// the policy each time. Implement it only if your order is stable: the ids answered stay
/// your next victims, in order, while the host inserts new entries and accesses or removes
/// entries outside the run (an LRU or a FIFO; not CLOCK/SIEVE, S3-FIFO, W-TinyLFU or ARC).
/// The host drops a run at the first event that touches one of its entries.
pub trait StableOrder: Eviction {
    /// Pushes up to `max_count` next victims onto `out`, best first, without forgetting
    /// them (their remove events come later, and only for those the host evicts). The
    /// default reads them off [`Eviction::victims`] with no byte target.
    fn next_victims(&mut self, max_count: u32, out: &mut Vec<u64>) {
        self.victims(u64::MAX, max_count, out);
    }
}

/// A quota policy: whether to grant an allocation request.
pub trait Quota: Default {
    /// Decides one request. `preemptible` is the tenant's lower-priority allocations of the
    /// same kind (lowest priority, then oldest, first), only when granting would exceed the
    /// limit. A `Decision::Preempt` must name only ids from it.
    fn decide(
        &mut self,
        req: &Request,
        tenant: &TenantState,
        system: &Usage,
        preemptible: &[Holder],
    ) -> Decision;
}

/// A priority policy: the order in which waiters are served (lowest rank first, ties in
/// arrival order).
pub trait Priority: Default {
    /// The waiter's rank, computed once when it starts waiting.
    fn rank(&mut self, w: &Waiter) -> i64;
}

/// A pressure policy: what to do about memory pressure.
pub trait Pressure: Default {
    /// Called on every level change, and every health interval while the level is not
    /// normal. The host carries out the actions in order.
    fn respond(
        &mut self,
        level: PressureLevel,
        system: &Usage,
        caches: &[CacheStat],
        pools: &[PoolStat],
    ) -> Vec<Action>;
}

/// Glue between the export macros and the generated bindings. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::*;
    use crate::{Eviction, Pressure, Priority, Quota};
    use core::cell::UnsafeCell;
    pub use rmhost_abi::EvictionPolicy as NativeEvictionPolicy;

    /// Holds a policy instance in a `static`. Components are single-threaded and an export
    /// is never re-entered (the component model forbids it), so handing out one `&mut` per
    /// call is sound; on native targets (tests) the export functions are never called.
    pub struct Slot<T>(UnsafeCell<Option<T>>);

    // SAFETY: see the type's docs: one thread, no re-entrance.
    unsafe impl<T> Sync for Slot<T> {}

    impl<T: Default> Default for Slot<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<T: Default> Slot<T> {
        pub const fn new() -> Self {
            Slot(UnsafeCell::new(None))
        }

        /// The instance, created on first use.
        #[inline(always)]
        #[allow(clippy::mut_from_ref)]
        pub fn get(&'static self) -> &'static mut T {
            // SAFETY: single-threaded and not re-entered (type docs); the returned borrow
            // is used for one export call only.
            unsafe { (*self.0.get()).get_or_insert_with(T::default) }
        }
    }

    /// Implemented by the type each export macro declares; names the policy and its slot.
    pub trait Export {
        type Policy: Default + 'static;
        fn slot() -> &'static Slot<Self::Policy>;
    }

    pub struct Adapter<E>(core::marker::PhantomData<E>);

    impl<E: Export> eviction::exports::rmhost::policy::eviction::Guest for Adapter<E>
    where
        E::Policy: Eviction,
    {
        fn configure(capacity_bytes: u64, expected_entries: u32) {
            E::slot().get().configure(capacity_bytes, expected_entries);
        }
        fn observe(events: Vec<u64>, bytes_to_free: u64, max_count: u32) -> Vec<u64> {
            crate::events::observe(E::slot().get(), &events, bytes_to_free, max_count)
        }
    }

    /// The adapter of [`export_native_eviction!`](crate::export_native_eviction): the
    /// policy reads the packed events itself, as the host's native algorithms do.
    impl<E: Export> eviction_run::exports::rmhost::policy::eviction_run::Guest for Adapter<E>
    where
        E::Policy: crate::StableOrder,
    {
        fn next_victims(events: Vec<u64>, max_count: u32) -> Vec<u64> {
            let p = E::slot().get();
            // Same decoding as `observe`, with no victims asked.
            let _ = crate::events::observe(p, &events, 0, 0);
            let mut out = Vec::new();
            if max_count > 0 {
                crate::StableOrder::next_victims(p, max_count, &mut out);
            }
            out.truncate(max_count as usize);
            out
        }
    }

    pub struct NativeAdapter<E>(core::marker::PhantomData<E>);

    impl<E: Export> eviction::exports::rmhost::policy::eviction::Guest for NativeAdapter<E>
    where
        E::Policy: rmhost_abi::EvictionPolicy,
    {
        fn configure(capacity_bytes: u64, expected_entries: u32) {
            E::slot().get().configure(capacity_bytes, expected_entries);
        }
        fn observe(events: Vec<u64>, bytes_to_free: u64, max_count: u32) -> Vec<u64> {
            let mut out = E::slot().get().observe(&events, bytes_to_free, max_count);
            out.truncate(max_count as usize);
            out
        }
    }

    impl<E: Export> quota::exports::rmhost::policy::quota::Guest for Adapter<E>
    where
        E::Policy: Quota,
    {
        fn decide(
            req: crate::Request,
            tenant: crate::TenantState,
            system: crate::Usage,
            preemptible: Vec<crate::Holder>,
        ) -> crate::Decision {
            E::slot().get().decide(&req, &tenant, &system, &preemptible)
        }
    }

    impl<E: Export> priority::exports::rmhost::policy::priority::Guest for Adapter<E>
    where
        E::Policy: Priority,
    {
        fn rank(w: crate::Waiter) -> i64 {
            E::slot().get().rank(&w)
        }
    }

    impl<E: Export> pressure::exports::rmhost::policy::pressure::Guest for Adapter<E>
    where
        E::Policy: Pressure,
    {
        fn respond(
            level: crate::PressureLevel,
            system: crate::Usage,
            caches: Vec<crate::CacheStat>,
            pools: Vec<crate::PoolStat>,
        ) -> Vec<crate::Action> {
            E::slot().get().respond(level, &system, &caches, &pools)
        }
    }

    /// Shared body of the four export macros: declares the slot and the adapter type,
    /// then calls the world's wit-bindgen export macro on it.
    #[macro_export]
    #[doc(hidden)]
    macro_rules! __rmhost_export {
        ($policy:ty, $world:ident, $world_macro:ident, $kind:ident) => {
            $crate::__rmhost_export!($policy, $world, $world_macro, $crate::$kind, Adapter);
        };
        ($policy:ty, $world:ident, $world_macro:ident, $bound:path, $adapter:ident) => {
            $crate::__rmhost_export!(@worlds $policy, $bound, $adapter, $world::$world_macro);
        };
        // One policy instance behind one or more worlds' exports (victim runs export the
        // `eviction` world and the `eviction-run-only` world from the same instance).
        (@worlds $policy:ty, $bound:path, $adapter:ident, $($world:ident :: $world_macro:ident),+) => {
            // Natively only check the type: the export symbols (`rmhost:policy/...#observe`)
            // are not valid in an ELF version script, and native builds are for tests.
            #[cfg(not(target_arch = "wasm32"))]
            const _: fn() = || {
                fn implements<T: $bound + Default>() {}
                implements::<$policy>();
            };
            #[cfg(target_arch = "wasm32")]
            const _: () = {
                struct __RmhostExport;
                impl $crate::__private::Export for __RmhostExport {
                    type Policy = $policy;
                    #[inline(always)]
                    fn slot() -> &'static $crate::__private::Slot<$policy> {
                        static SLOT: $crate::__private::Slot<$policy> =
                            $crate::__private::Slot::new();
                        &SLOT
                    }
                }
                type __RmhostAdapter = $crate::__private::$adapter<__RmhostExport>;
                $($crate::__private::$world::$world_macro!(
                    __RmhostAdapter with_types_in $crate::__private::$world
                );)+
            };
        };
    }
}

/// Exports `$policy` (a type implementing [`Eviction`] and `Default`) as the component's
/// `rmhost:policy/eviction` interface. Use once, in a `cdylib` crate.
#[macro_export]
macro_rules! export_eviction {
    ($policy:ty) => {
        $crate::__rmhost_export!($policy, eviction, export_eviction_world, Eviction);
    };
}

/// Exports an [`Eviction`] + [`StableOrder`] policy as the `eviction` and `eviction-run`
/// interfaces (world `eviction-run-policy`), sharing one policy instance. Use once, in a
/// `cdylib` crate, instead of [`export_eviction!`].
#[macro_export]
macro_rules! export_eviction_runs {
    ($policy:ty) => {
        $crate::__rmhost_export!(
            @worlds $policy,
            $crate::StableOrder,
            Adapter,
            eviction::export_eviction_world,
            eviction_run::export_eviction_run_world
        );
    };
}

/// Exports `$policy`, a type implementing the ABI crate's `rmhost_abi::EvictionPolicy` and
/// `Default` (the host's native algorithms: `NativeS3Fifo`, `NativeArc`, ...), as the
/// component's `rmhost:policy/eviction` interface: the Wasm policy then answers victim for
/// victim like the host's `builtin:` twin.
#[macro_export]
macro_rules! export_native_eviction {
    ($policy:ty) => {
        $crate::__rmhost_export!(
            $policy,
            eviction,
            export_eviction_world,
            $crate::__private::NativeEvictionPolicy,
            NativeAdapter
        );
    };
}

/// Exports `$policy` (a type implementing [`Quota`] and `Default`) as the component's
/// `rmhost:policy/quota` interface.
#[macro_export]
macro_rules! export_quota {
    ($policy:ty) => {
        $crate::__rmhost_export!($policy, quota, export_quota_world, Quota);
    };
}

/// Exports `$policy` (a type implementing [`Priority`] and `Default`) as the component's
/// `rmhost:policy/priority` interface.
#[macro_export]
macro_rules! export_priority {
    ($policy:ty) => {
        $crate::__rmhost_export!($policy, priority, export_priority_world, Priority);
    };
}

/// Exports `$policy` (a type implementing [`Pressure`] and `Default`) as the component's
/// `rmhost:policy/pressure` interface.
#[macro_export]
macro_rules! export_pressure {
    ($policy:ty) => {
        $crate::__rmhost_export!($policy, pressure, export_pressure_world, Pressure);
    };
}
