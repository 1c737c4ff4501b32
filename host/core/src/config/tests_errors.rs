//! Every way a configuration can be wrong names the key or variable and the bad value.

use super::tests::{env_of, no_env};
use super::*;
use std::path::Path;

fn file_err(text: &str) -> String {
    load_str(text, Path::new("rmhost.toml"), &no_env, &[])
        .unwrap_err()
        .to_string()
}

fn env_err(pairs: &[(&str, &str)]) -> String {
    load(None, &env_of(pairs), &[]).unwrap_err().to_string()
}

fn cli_err(key: &str, value: &str, flag: &str) -> String {
    load(None, &no_env, &[Override::new(key, value, flag)])
        .unwrap_err()
        .to_string()
}

fn has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} should contain {p:?}");
    }
}

#[test]
fn unknown_keys_name_the_full_path_and_file() {
    let msg = file_err("[limits]\nmax_memroy_mb = 1\n");
    has(
        &msg,
        &["`limits.max_memroy_mb`", "rmhost.toml", "unknown key"],
    );
    has(&file_err("lisen = \"x\"\n"), &["`lisen`"]);
    has(
        &file_err("[tenants.acme]\nmemroy = 1\n"),
        &["`tenants.acme.memroy`"],
    );
    has(
        &file_err("[policies.lru.settings]\nalgorithm = \"lru\"\n"),
        &["`policies.lru`"],
    );
    has(
        &file_err("[policies.bindings]\nevictoin = \"lru\"\n"),
        &["`policies.bindings.evictoin`"],
    );
    has(
        &file_err("[connection_pools.postgres]\nmax = 1\n"),
        &["`connection_pools.postgres`"],
    );
}

#[test]
fn bad_types_in_the_file_name_key_and_value() {
    has(
        &file_err("[limits]\nmax_memory_mb = \"lots\"\n"),
        &["`limits.max_memory_mb`", "\"lots\"", "whole number"],
    );
    has(
        &file_err("[limits]\nmax_connections = -5\n"),
        &["`limits.max_connections`", "-5"],
    );
    has(
        &file_err("[memory]\nwarning_threshold_percent = 300\n"),
        &["`memory.warning_threshold_percent`", "300", "255"],
    );
    has(
        &file_err("[memory]\nenable_leak_detection = \"yes\"\n"),
        &["`memory.enable_leak_detection`", "\"yes\"", "true or false"],
    );
    has(&file_err("limits = 5\n"), &["`limits`", "5", "a table"]);
    has(
        &file_err("[limits.max_memory_mb]\n"),
        &["`limits.max_memory_mb`", "a table"],
    );
    has(
        &file_err("listen = \"localhost\"\n"),
        &["`listen`", "\"localhost\"", "socket address"],
    );
    has(
        &file_err("[policies.policy.lru.settings]\nlist = [1, 2]\n"),
        &["`policies.policy.lru.settings.list`", "[1, 2]"],
    );
    has(&file_err("listen = \n"), &["rmhost.toml", "invalid TOML"]);
}

#[test]
fn bad_environment_variables_name_variable_and_value() {
    assert_eq!(
        env_err(&[("MAX_MEMORY_MB", "abc")]),
        "MAX_MEMORY_MB=\"abc\": not a whole number (it sets `limits.max_memory_mb`)"
    );
    has(
        &env_err(&[("DB_POOL_MAX", "-1")]),
        &["DB_POOL_MAX=\"-1\"", "not a whole number"],
    );
    has(
        &env_err(&[("MEMORY_WARNING_THRESHOLD", "70.5")]),
        &["MEMORY_WARNING_THRESHOLD=\"70.5\""],
    );
    has(
        &env_err(&[("MEMORY_CRITICAL_THRESHOLD", "1000")]),
        &["MEMORY_CRITICAL_THRESHOLD=\"1000\"", "between 0 and 255"],
    );
    has(
        &env_err(&[("ENABLE_LEAK_DETECTION", "maybe")]),
        &["ENABLE_LEAK_DETECTION=\"maybe\"", "boolean"],
    );
    has(
        &env_err(&[("METRICS_INTERVAL", "1m")]),
        &["METRICS_INTERVAL=\"1m\""],
    );
    has(
        &env_err(&[("MAX_CONNECTIONS", "0")]),
        &[
            "limits.max_connections = 0",
            "env MAX_CONNECTIONS",
            "greater than 0",
        ],
    );
}

#[test]
fn bad_overrides_name_flag_key_and_value() {
    has(
        &cli_err("listen", "nowhere", "--listen"),
        &["--listen", "`listen`", "\"nowhere\"", "socket address"],
    );
    has(
        &cli_err("limits.max_memory_mb", "big", "--set"),
        &["--set", "`limits.max_memory_mb`", "\"big\""],
    );
    has(
        &cli_err("limits.max_memroy_mb", "1", "--set"),
        &["--set", "unknown key `limits.max_memroy_mb`"],
    );
    has(&cli_err("limits", "1", "--set"), &["unknown key `limits`"]);
    has(
        &Override::parse_set("novalue").unwrap_err().to_string(),
        &["--set", "\"novalue\"", "KEY=VALUE"],
    );
}

#[test]
fn cross_field_rules_show_both_values() {
    let msg = file_err("[memory]\nwarning_threshold_percent = 90\n");
    has(
        &msg,
        &[
            "memory.warning_threshold_percent = 90 (file rmhost.toml)",
            "memory.critical_threshold_percent = 85 (default)",
        ],
    );
    let msg = env_err(&[("DB_POOL_MIN", "20")]);
    has(
        &msg,
        &[
            "connection_pools.database.min = 20 (env DB_POOL_MIN)",
            "connection_pools.database.max = 10 (default)",
        ],
    );
    let msg = env_err(&[("REDIS_POOL_MIN", "5"), ("REDIS_POOL_MAX", "2")]);
    has(
        &msg,
        &[
            "connection_pools.redis.min = 5",
            "connection_pools.redis.max = 2",
        ],
    );
}

#[test]
fn zero_and_ranges() {
    for (text, key) in [
        ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
        ("[grpc]\nmax_connections = 0\n", "grpc.max_connections"),
        (
            "[grpc]\nmax_concurrent_streams = 0\n",
            "grpc.max_concurrent_streams",
        ),
        ("[limits]\nmax_memory_mb = 0\n", "limits.max_memory_mb"),
        (
            "[monitoring]\nsample_interval_ms = 0\n",
            "monitoring.sample_interval_ms",
        ),
        (
            "[monitoring]\nmetrics_interval_ms = 0\n",
            "monitoring.metrics_interval_ms",
        ),
        (
            "[connection_pools.redis]\nmin = 0\nmax = 0\n",
            "connection_pools.redis.max",
        ),
        (
            "[policies]\nmax_file_bytes = 0\n",
            "policies.max_file_bytes",
        ),
        (
            "[policies.policy.x]\ndeadline_ms = 0\n",
            "policies.policy.x.deadline_ms",
        ),
    ] {
        has(&file_err(text), &[&format!("{key} = 0"), "greater than 0"]);
    }
    has(
        &file_err("[memory]\ncritical_threshold_percent = 101\n"),
        &[
            "memory.critical_threshold_percent = 101",
            "between 1 and 100",
        ],
    );
    has(
        &file_err("[memory]\nwarning_threshold_percent = 0\n"),
        &["memory.warning_threshold_percent = 0", "between 1 and 100"],
    );
    has(
        &file_err("[limits]\nmax_cpu_percentage = 150\n"),
        &["limits.max_cpu_percentage = 150", "between 1 and 100"],
    );
}

#[test]
fn token_hashes_must_be_64_hex() {
    has(
        &file_err("[auth]\nadmin_token_sha256 = \"secret\"\n"),
        &["auth.admin_token_sha256", "\"secret\"", "SHA-256"],
    );
    has(
        &file_err("[auth.tenants.acme]\ntoken_sha256 = \"zz\"\n"),
        &["auth.tenants.acme.token_sha256", "\"zz\""],
    );
    has(
        &file_err("[auth.tenants.acme]\n"),
        &["auth.tenants.acme.token_sha256", "\"\""],
    );
    let upper = hash_token("t").to_uppercase();
    load_str(
        &format!("[auth]\nadmin_token_sha256 = \"{upper}\"\n"),
        Path::new("rmhost.toml"),
        &no_env,
        &[],
    )
    .unwrap();
}

#[test]
fn missing_explicit_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = load(Some(&path), &no_env, &[]).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }));
    has(&err.to_string(), &["nope.toml", "not found"]);
}
