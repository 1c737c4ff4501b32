//! Rules the types alone do not express: ranges, orderings, non-zero limits, hash shapes.
//!
//! `origin(key)` describes where a key's value came from (e.g. ` (env DB_POOL_MIN)`), so
//! a user told that min > max also learns which layer to fix.

use super::{Config, ConfigError};

type Origin<'a> = &'a dyn Fn(&str) -> String;

pub(crate) fn validate(config: &Config, origin: Origin<'_>) -> Result<(), ConfigError> {
    let zero = |key: &str| ConfigError::Zero {
        key: key.to_string(),
        origin: origin(key),
    };
    let l = &config.limits;
    let db = &config.connection_pools.database;
    let redis = &config.connection_pools.redis;
    let mon = &config.monitoring;
    let pol = &config.policies;
    let http = &config.http;
    let grpc = &config.grpc;
    let non_zero: [(&str, u64); 25] = [
        ("http.max_connections", http.max_connections.into()),
        ("grpc.max_connections", grpc.max_connections.into()),
        (
            "grpc.max_concurrent_streams",
            grpc.max_concurrent_streams.into(),
        ),
        ("http.header_read_timeout_ms", http.header_read_timeout_ms),
        ("http.max_body_bytes", http.max_body_bytes),
        ("http.max_profiles", http.max_profiles.into()),
        (
            "limits.max_caches_per_tenant",
            l.max_caches_per_tenant.into(),
        ),
        ("limits.max_memory_mb", l.max_memory_mb),
        ("limits.max_connections", l.max_connections.into()),
        (
            "limits.max_requests_per_minute",
            l.max_requests_per_minute.into(),
        ),
        ("limits.max_file_handles", l.max_file_handles),
        ("connection_pools.database.max", db.max.into()),
        (
            "connection_pools.database.acquire_timeout_ms",
            db.acquire_timeout_ms,
        ),
        (
            "connection_pools.database.idle_timeout_ms",
            db.idle_timeout_ms,
        ),
        ("connection_pools.redis.max", redis.max.into()),
        (
            "connection_pools.redis.acquire_timeout_ms",
            redis.acquire_timeout_ms,
        ),
        ("monitoring.metrics_interval_ms", mon.metrics_interval_ms),
        (
            "monitoring.health_check_interval_ms",
            mon.health_check_interval_ms,
        ),
        ("monitoring.sample_interval_ms", mon.sample_interval_ms),
        (
            "monitoring.orphan_scan_interval_ms",
            mon.orphan_scan_interval_ms,
        ),
        ("policies.deadline_ms", pol.deadline_ms),
        ("policies.memory_cap_mb", pol.memory_cap_mb),
        ("policies.max_faults", pol.max_faults.into()),
        ("policies.fault_window_ms", pol.fault_window_ms),
        ("policies.max_file_bytes", pol.max_file_bytes),
    ];
    for (key, value) in non_zero {
        if value == 0 {
            return Err(zero(key));
        }
    }
    for (name, p) in &pol.policy {
        let prefix = format!("policies.policy.{}", super::schema::quote_segment(name));
        if p.deadline_ms == Some(0) {
            return Err(zero(&format!("{prefix}.deadline_ms")));
        }
        if p.memory_cap_mb == Some(0) {
            return Err(zero(&format!("{prefix}.memory_cap_mb")));
        }
    }

    let percents: [(&str, u64); 3] = [
        ("limits.max_cpu_percentage", l.max_cpu_percentage.into()),
        (
            "memory.warning_threshold_percent",
            config.memory.warning_threshold_percent.into(),
        ),
        (
            "memory.critical_threshold_percent",
            config.memory.critical_threshold_percent.into(),
        ),
    ];
    for (key, value) in percents {
        if !(1..=100).contains(&value) {
            return Err(ConfigError::OutOfRange {
                key: key.to_string(),
                value,
                origin: origin(key),
                min: 1,
                max: 100,
            });
        }
    }
    let (warning, critical) = (
        config.memory.warning_threshold_percent,
        config.memory.critical_threshold_percent,
    );
    if warning >= critical {
        return Err(ConfigError::ThresholdOrder {
            warning,
            warning_origin: origin("memory.warning_threshold_percent"),
            critical,
            critical_origin: origin("memory.critical_threshold_percent"),
        });
    }

    for (pool, min, max) in [
        ("database", db.min, db.max),
        ("redis", redis.min, redis.max),
    ] {
        if min > max {
            return Err(ConfigError::PoolMinMax {
                pool,
                min,
                min_origin: origin(&format!("connection_pools.{pool}.min")),
                max,
                max_origin: origin(&format!("connection_pools.{pool}.max")),
            });
        }
    }

    let st = &config.state;
    let bad = |key: &str, value: &str, expected: &'static str| ConfigError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        origin: origin(key),
        expected,
    };
    if st.ratelimit != "local"
        && !(st.ratelimit.starts_with("redis://")
            || st.ratelimit.starts_with("rediss://")
            || st.ratelimit.starts_with("redis+cluster://"))
    {
        return Err(bad(
            "state.ratelimit",
            &st.ratelimit,
            "\"local\", a redis:// or rediss:// URL, or redis+cluster://HOST:PORT,HOST:PORT",
        ));
    }
    if st.ledger != "memory"
        && !(st.ledger.starts_with("postgres://") || st.ledger.starts_with("postgresql://"))
    {
        return Err(bad(
            "state.ledger",
            &st.ledger,
            "\"memory\" or a postgres:// or postgresql:// URL",
        ));
    }
    if st.ledger_pool_size == 0 {
        return Err(zero("state.ledger_pool_size"));
    }
    if st.host_lapse_ms < 500 {
        return Err(bad(
            "state.host_lapse_ms",
            &st.host_lapse_ms.to_string(),
            "at least 500 (ms): a lapse shorter than a few heartbeats reclaims live hosts' allocations",
        ));
    }
    if !matches!(st.ratelimit_failure.as_str(), "open" | "closed") {
        return Err(bad(
            "state.ratelimit_failure",
            &st.ratelimit_failure,
            "\"open\" or \"closed\"",
        ));
    }
    if st.backend_timeout_ms == 0 {
        return Err(zero("state.backend_timeout_ms"));
    }
    if st.key_prefix.is_empty() || st.key_prefix.contains(['{', '}']) {
        return Err(bad(
            "state.key_prefix",
            &st.key_prefix,
            "a non-empty prefix without braces",
        ));
    }
    if grpc.tenant_key.trim().is_empty() {
        return Err(bad(
            "grpc.tenant_key",
            &grpc.tenant_key,
            "a non-empty descriptor key, e.g. \"tenant\"",
        ));
    }
    if let Some(listen) = grpc.listen
        && listen.port() != 0
        && listen == config.listen
    {
        return Err(bad(
            "grpc.listen",
            &listen.to_string(),
            "an address other than `listen` (the HTTP API's)",
        ));
    }
    if grpc.domain.as_deref().is_some_and(|d| d.trim().is_empty()) {
        return Err(bad(
            "grpc.domain",
            "",
            "a non-empty rate-limit domain, or no key at all to accept any",
        ));
    }

    let mut hashes: Vec<(String, &str)> = Vec::new();
    if let Some(h) = &config.auth.admin_token_sha256 {
        hashes.push(("auth.admin_token_sha256".to_string(), h));
    }
    for (tenant, t) in &config.auth.tenants {
        let key = format!(
            "auth.tenants.{}.token_sha256",
            super::schema::quote_segment(tenant)
        );
        hashes.push((key, &t.token_sha256));
    }
    for (key, value) in hashes {
        if !is_sha256_hex(value) {
            return Err(ConfigError::BadTokenHash {
                origin: origin(&key),
                key,
                value: value.to_string(),
            });
        }
    }
    config.pools.validate()?;
    Ok(())
}

/// 64 hex digits (either case).
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
