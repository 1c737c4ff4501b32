//! The bounds on everything a client or a policy sends: string lengths, cache sizes.
//!
//! Every string a tenant supplies is copied into the event ring, the broadcast buffer and
//! the audit log, so an unbounded one multiplies (60 allocations with a 1.9 MB owner took
//! the daemon from 14 to 156 MiB). Numbers are bounded so sums cannot wrap: a cache's
//! capacity is at most [`MAX_CAPACITY_BYTES`], so its bytes (capacity plus one entry at
//! most) stay far from `u64::MAX`.

/// Longest allocation owner, bytes.
pub const MAX_OWNER_LEN: usize = 256;
/// Longest tenant, cache or policy name, bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest cache key, bytes (memcached allows 250, Redis far more; 1 KiB covers URLs).
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value stored with a cache entry, bytes.
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Longest reason a policy may give (a deny reason, an alert); longer ones are cut.
pub const MAX_REASON_LEN: usize = 1024;
/// Largest cache capacity, bytes (4 EiB: no machine has it, and sums cannot wrap).
pub const MAX_CAPACITY_BYTES: u64 = 1 << 62;

/// A value over its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {len} bytes is longer than the limit of {max}")]
pub struct TooLong {
    /// Which field.
    pub field: &'static str,
    /// Its length.
    pub len: usize,
    /// The bound.
    pub max: usize,
}

/// Errors when `value` is longer than `max` bytes.
pub fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), TooLong> {
    if value.len() > max {
        Err(TooLong {
            field,
            len: value.len(),
            max,
        })
    } else {
        Ok(())
    }
}

/// `text` cut to at most [`MAX_REASON_LEN`] bytes on a character boundary, marked when cut:
/// what a policy says is kept, but never more of it than a log line can carry.
pub fn truncate_reason(text: String) -> String {
    if text.len() <= MAX_REASON_LEN {
        return text;
    }
    let mut end = MAX_REASON_LEN - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let total = text.len();
    format!("{}... ({total} bytes)", &text[..end])
}

/// Whether `name` is a valid tenant name: 1 to [`MAX_NAME_LEN`] characters of
/// `A-Z a-z 0-9 - _ .` (what every route and the ledger accept).
pub fn is_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_in_bytes() {
        assert!(check_len("owner", &"x".repeat(MAX_OWNER_LEN), MAX_OWNER_LEN).is_ok());
        let e = check_len("owner", &"x".repeat(MAX_OWNER_LEN + 1), MAX_OWNER_LEN).unwrap_err();
        assert_eq!(
            e.to_string(),
            "owner: 257 bytes is longer than the limit of 256"
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let r = truncate_reason("é".repeat(2000));
        assert!(r.len() <= MAX_REASON_LEN + 20, "{}", r.len());
        assert!(r.ends_with("... (4000 bytes)"), "{r}");
        assert_eq!(truncate_reason("short".into()), "short");
    }
}
