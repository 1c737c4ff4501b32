//! rmhost-core: the library behind rmhost, with no CLI, TUI, HTTP or Wasm dependencies.
//!
//! # Map of the modules
//! Data flows one way: telemetry -> state -> decisions -> actions -> events.
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`clock`] | the one monotonic millisecond clock (real or manual) | - |
//! | [`config`] | `rmhost.toml`, env and CLI layering, validation, `config print` | touch any manager |
//! | [`telemetry`] | CPU, memory, PSI, cgroup, fds, connection and request counters | decide anything |
//! | [`policy`] | the decision traits, domain types mirroring `wit/`, native defaults (eviction algorithms from `rmhost-abi`) | import wasmtime |
//! | [`resources`] | the allocation ledger, quotas, preemption, leases, orphans, rate limits | know about HTTP or Wasm |
//! | [`memory`] | caches and their eviction protocol, pressure levels and responses, leaks, gc, snapshots, `sim` | import wasmtime |
//! | [`pools`] | PostgreSQL and Redis pools (cargo features `postgres`, `redis`): recycling, retry, breaker, health, ranked wait queue, metrics | decide waiter order itself |
//! | [`tls`] | TLS to PostgreSQL: `sslmode` / `sslrootcert` to a rustls connector, for the pools and the ledger (feature `postgres`) | open connections itself |
//! | [`events`] | the broadcast bus and the recent-events ring (audit log via tracing) | block a publisher |
//! | [`health`] | the health report shape and its status rules | gather data itself |
//! | [`limits`] | the bounds on client- and policy-supplied strings and sizes | - |
//! | [`invariant`] | the error of the ledger's and caches' self-checks | - |
//! | [`host`] | [`host::Host`]: the managers composed in dependency order by [`host::HostBuilder`], background tasks, health | hold business logic |
//!
//! Embedding: `Host::builder(config).policies(provider).build()` gives every manager (see
//! `examples/embed.rs`). The Wasm policy runtime (`rmhost-runtime`) implements this crate's
//! policy traits and [`host::PolicyProvider`]; the daemon (`rmhost-server`) serves the HTTP
//! API over a [`host::Host`]; the `rmhost` binary adds the CLI.

#![deny(missing_docs)]
// Library code says what went wrong instead of panicking; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod clock;
pub mod config;
pub mod events;
pub mod health;
pub mod host;
pub mod invariant;
pub mod limits;
pub mod memory;
pub mod policy;
pub mod pools;
pub mod resources;
pub mod telemetry;
#[cfg(feature = "postgres")]
pub mod tls;
