//! rmhost: a resource-management host whose decisions are pluggable WebAssembly.
pub mod events;
pub mod policy;
pub mod resources;
