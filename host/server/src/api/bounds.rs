//! The bounds the OpenAPI document states for what clients send, enforced where serde
//! alone would accept more: tenant names (a pattern) and integers, which the document types
//! as int64 (JSON clients, and the PostgreSQL ledger's BIGINT columns, stop at 2^63 - 1),
//! while the handlers deserialize them as `u64`.

use super::ApiError;

/// Errors (400) unless `tenant` is a tenant name: 1-128 characters of `A-Z a-z 0-9 - _ .`,
/// what the ledger accepts and what the OpenAPI document states as the pattern. A route
/// that takes a tenant checks it first, so a malformed name is refused the same way
/// everywhere, admin or not.
pub fn valid_tenant(tenant: &str) -> Result<(), ApiError> {
    if rmhost_core::limits::is_tenant_name(tenant) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "tenant: {tenant:?} must be 1-128 characters of A-Z a-z 0-9 - _ ."
        )))
    }
}

/// Errors (400) when `value` is above the int64 range the document states for `field`.
pub fn int64(field: &str, value: u64) -> Result<u64, ApiError> {
    if value > i64::MAX as u64 {
        Err(ApiError::invalid(format!(
            "{field}: {value} is above the largest allowed, {}",
            i64::MAX
        )))
    } else {
        Ok(value)
    }
}

/// [`int64`] for an optional field.
pub fn int64_opt(field: &str, value: Option<u64>) -> Result<(), ApiError> {
    value.map_or(Ok(()), |v| int64(field, v).map(drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_and_int64() {
        for ok in ["a", "acme", "A-b_c.9", &"x".repeat(128)] {
            assert!(valid_tenant(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/b", "a b", "\u{e9}", &"x".repeat(129)] {
            assert!(valid_tenant(bad).is_err(), "{bad}");
        }
        assert_eq!(int64("n", i64::MAX as u64).ok(), Some(i64::MAX as u64));
        assert!(int64("n", i64::MAX as u64 + 1).is_err());
        assert!(int64_opt("n", Some(u64::MAX)).is_err());
        assert!(int64_opt("n", None).is_ok());
    }
}
