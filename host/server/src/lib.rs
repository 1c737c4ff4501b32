//! rmhost-server: the rmhost daemon as a library.
//!
//! # Map
//! | module | owns | must not |
//! |---|---|---|
//! | [`daemon`] | the composition root: builds the managers, background tasks, serve + drain | hold business logic |
//! | [`api`] | axum routes, auth, `ApiError`, SSE, `/metrics` | make decisions |
//!
//! The managers come from `rmhost-core`, the Wasm policies from `rmhost-runtime`.

pub mod api;
pub mod daemon;
