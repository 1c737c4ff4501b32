//! rmhost: a resource-management host whose decisions are pluggable WebAssembly.
//!
//! # Map of the modules
//! Data flows one way: telemetry -> state -> decisions -> actions -> events.
//!
//! | module | owns | must not |
//! |---|---|---|
//! | [`config`] | `rmhost.toml`, env and CLI layering, validation, `config print` | touch any manager |
//! | [`telemetry`] | CPU, memory, PSI, cgroup, fds, connection and request counters | decide anything |
//! | [`policy`] | the decision traits, domain types mirroring `wit/`, native defaults | import wasmtime |
//! | [`runtime`] | wasmtime: engine, bindings, limits, artifact cache, loader, watcher, bindings registry, adapters | leak wasmtime types out |
//! | [`resources`] | the allocation ledger, quotas, preemption, leases, orphans, rate limits | know about HTTP or Wasm |
//! | [`memory`] | caches and their eviction protocol, pressure levels and responses, leaks, gc, snapshots, `sim` | import wasmtime |
//! | [`pools`] | PostgreSQL and Redis pools: recycling, retry, breaker, health, ranked wait queue, metrics | decide waiter order itself |
//! | [`events`] | the broadcast bus and the recent-events ring (audit log via tracing) | block a publisher |
//! | [`health`] | the health report shape and its status rules | gather data itself |
//! | [`daemon`] | the composition root: builds managers, background tasks, serve + drain | hold business logic |
//! | [`api`] | axum routes, auth, `ApiError`, SSE, `/metrics` | make decisions |
//! | [`cli`] | clap verbs; the daemon's clients | be used by the library's managers |
//!
//! Embedding: build a [`config::Config`], then [`daemon::Host::new`] gives every manager;
//! [`daemon::serve`] runs the API. The `rmhost` binary is a thin wrapper over [`cli`].

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod events;
pub mod health;
pub mod memory;
pub mod policy;
pub mod pools;
pub mod resources;
pub mod runtime;
pub mod telemetry;
