//! rmhost-server: the rmhost daemon as a library.
//!
//! # Map
//! | module | owns | must not |
//! |---|---|---|
//! | [`daemon`] | the composition root: builds the managers, background tasks, serve + drain | hold business logic |
//! | [`api`] | axum routes (each with its OpenAPI operation, served at `/openapi.json`), auth, `ApiError`, SSE, the `/metrics` handler | make decisions |
//! | [`metrics`] | the `prometheus-client` registry: collectors over the managers, the HTTP layer | hold state the managers already count |
//! | [`rls`] | Envoy's rate-limit service over gRPC (`[grpc] listen`) | make decisions |
//! | [`wire`] | the JSON bodies the API answers, shared with clients | hold behaviour |
//!
//! The managers come from `rmhost-core`, the Wasm policies from `rmhost-runtime`.

#![deny(missing_docs)]
// Library code says what went wrong instead of panicking; tests may unwrap.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod api;
pub mod daemon;
pub mod metrics;
pub mod rls;
pub mod wire;
