//! Bodies of the cache and memory routes (caches answer the core `CacheInfo`, `/v1/memory`
//! a `MemoryStatus`, `/v1/gc` a `GcReport`, `/v1/snapshot` a `MemorySnapshot`).

use rmhost_core::memory::Leak;
use serde::{Deserialize, Serialize};

/// `DELETE /v1/caches/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CacheDeleted {
    /// The cache removed.
    pub deleted: String,
}

/// `PUT /v1/caches/{name}/entries/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryStored {
    /// The cache.
    pub cache: String,
    /// The key.
    pub key: String,
    /// The bytes accounted for it.
    pub size: u64,
    /// Whether the cache holds it (`false`: larger than the cache, or not admitted).
    pub held: bool,
}

/// `GET /v1/caches/{name}/entries/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryValue {
    /// The cache.
    pub cache: String,
    /// The key.
    pub key: String,
    /// The stored value (`null` when stored without one). Any JSON: clients store their
    /// own documents.
    pub value: serde_json::Value,
}

/// `DELETE /v1/caches/{name}/entries/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryRemoved {
    /// The cache.
    pub cache: String,
    /// The key.
    pub key: String,
    /// Always true (a missing entry is a 404).
    pub removed: bool,
}

/// `POST /v1/caches/{name}/trim`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Trimmed {
    /// The cache.
    pub cache: String,
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// `GET /v1/leaks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeakList {
    /// The suspected leaks.
    pub leaks: Vec<Leak>,
}
