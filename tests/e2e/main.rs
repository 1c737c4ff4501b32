//! End-to-end tests: the `rmhost` binary on an ephemeral port, driven over real HTTP and
//! through its CLI verbs. One test binary with a module per area.

mod adversarial;
mod api;
mod cli;
mod dashboard;
mod harness;
mod ledger;
mod lifecycle;
mod memory;
mod observability;
mod openapi;
mod ops;
mod otlp;
mod policies;
mod pools;
mod rls_envoy;
mod rls_grpc;
mod shared_state;
