//! The self-checks of the ledger and the caches (property tests and debugging run them).

/// A broken internal invariant: totals that do not match the live allocations, a cache
/// entry without its slot. The message says which and by how much.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant broken: {0}")]
pub struct InvariantViolation(pub String);
