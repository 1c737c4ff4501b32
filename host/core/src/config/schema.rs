//! The table of every key rmhost accepts, with its type.
//!
//! The file, the environment and CLI overrides are all checked against this one table and
//! turned into typed `toml::Value`s before serde sees them, so every error can name the
//! full dotted key (serde's own messages name only the last segment). A test checks that
//! the table and the `Config` structs agree.

use std::net::SocketAddr;
use toml::Value;

/// `*` in a pattern matches any one segment (a tenant or policy name, a setting key).
pub(crate) const WILD: &str = "*";

/// The type of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string.
    Str,
    /// A socket address, `IP:PORT`, stored as a string.
    Addr,
    /// `true` / `false`.
    Bool,
    /// A whole number from 0 to `max`.
    Int(u64),
    /// A policy setting: any scalar, kept as its text.
    Setting,
}

const U8: Kind = Kind::Int(u8::MAX as u64);
const U32: Kind = Kind::Int(u32::MAX as u64);
// TOML integers are i64.
const U64: Kind = Kind::Int(i64::MAX as u64);

/// Every leaf, in the order `config print` shows them.
pub(crate) const KEYS: &[(&str, Kind)] = &[
    ("listen", Kind::Addr),
    ("shutdown_timeout_ms", U64),
    ("limits.max_memory_mb", U64),
    ("limits.max_cpu_percentage", U32),
    ("limits.max_connections", U32),
    ("limits.max_requests_per_minute", U32),
    ("limits.max_file_handles", U64),
    ("limits.max_caches_per_tenant", U32),
    ("connection_pools.database.min", U32),
    ("connection_pools.database.max", U32),
    ("connection_pools.database.acquire_timeout_ms", U64),
    ("connection_pools.database.idle_timeout_ms", U64),
    ("connection_pools.database.url", Kind::Str),
    ("connection_pools.redis.min", U32),
    ("connection_pools.redis.max", U32),
    ("connection_pools.redis.acquire_timeout_ms", U64),
    ("connection_pools.redis.url", Kind::Str),
    ("memory.warning_threshold_percent", U8),
    ("memory.critical_threshold_percent", U8),
    ("memory.enable_memory_profiling", Kind::Bool),
    ("memory.enable_leak_detection", Kind::Bool),
    ("monitoring.metrics_interval_ms", U64),
    ("monitoring.health_check_interval_ms", U64),
    ("monitoring.sample_interval_ms", U64),
    ("monitoring.orphan_scan_interval_ms", U64),
    ("state.ledger", Kind::Str),
    ("state.ledger_pool_size", U32),
    ("state.host_lapse_ms", U64),
    ("state.ratelimit", Kind::Str),
    ("state.ratelimit_failure", Kind::Str),
    ("state.backend_timeout_ms", U64),
    ("state.key_prefix", Kind::Str),
    ("state.host_id", Kind::Str),
    ("http.max_connections", U32),
    ("http.header_read_timeout_ms", U64),
    ("http.max_body_bytes", U64),
    ("http.max_profiles", U32),
    ("grpc.listen", Kind::Addr),
    ("grpc.tenant_key", Kind::Str),
    ("grpc.domain", Kind::Str),
    ("grpc.max_connections", U32),
    ("grpc.max_concurrent_streams", U32),
    ("auth.admin_token_sha256", Kind::Str),
    ("auth.metrics_public", Kind::Bool),
    ("auth.tenants.*.token_sha256", Kind::Str),
    ("policies.dir", Kind::Str),
    ("policies.deadline_ms", U64),
    ("policies.memory_cap_mb", U64),
    ("policies.max_faults", U32),
    ("policies.fault_window_ms", U64),
    ("policies.max_file_bytes", U64),
    ("policies.cache_dir", Kind::Str),
    ("policies.bindings.eviction", Kind::Str),
    ("policies.bindings.quota", Kind::Str),
    ("policies.bindings.priority", Kind::Str),
    ("policies.bindings.pressure", Kind::Str),
    ("policies.policy.*.settings.*", Kind::Setting),
    ("policies.policy.*.deadline_ms", U64),
    ("policies.policy.*.memory_cap_mb", U64),
    ("tenants.*.memory", U64),
    ("tenants.*.cpu", U64),
    ("tenants.*.connections", U64),
    ("tenants.*.requests", U64),
    ("tenants.*.file_handles", U64),
    ("tenants.*.requests_per_minute", U32),
    ("tenant_defaults.memory", U64),
    ("tenant_defaults.cpu", U64),
    ("tenant_defaults.connections", U64),
    ("tenant_defaults.requests", U64),
    ("tenant_defaults.file_handles", U64),
    ("tenant_defaults.requests_per_minute", U32),
    // Named pools; `health_check_interval_ms` is the monitoring one (HEALTH_CHECK_INTERVAL).
    ("pools.postgres.*.url", Kind::Str),
    ("pools.postgres.*.min", U32),
    ("pools.postgres.*.max", U32),
    ("pools.postgres.*.acquire_timeout_ms", U64),
    ("pools.postgres.*.idle_timeout_ms", U64),
    ("pools.postgres.*.max_lifetime_ms", U64),
    ("pools.postgres.*.lifetime_jitter_percent", U8),
    ("pools.postgres.*.connect_timeout_ms", U64),
    ("pools.postgres.*.recycle_check", Kind::Str),
    ("pools.postgres.*.application_name", Kind::Str),
    ("pools.postgres.*.retry.attempts", U32),
    ("pools.postgres.*.retry.base_ms", U64),
    ("pools.postgres.*.retry.max_ms", U64),
    ("pools.postgres.*.breaker.failure_threshold", U32),
    ("pools.postgres.*.breaker.timeout_threshold", U32),
    ("pools.postgres.*.breaker.open_ms", U64),
    ("pools.redis.*.url", Kind::Str),
    ("pools.redis.*.min", U32),
    ("pools.redis.*.max", U32),
    ("pools.redis.*.acquire_timeout_ms", U64),
    ("pools.redis.*.idle_timeout_ms", U64),
    ("pools.redis.*.max_lifetime_ms", U64),
    ("pools.redis.*.lifetime_jitter_percent", U8),
    ("pools.redis.*.connect_timeout_ms", U64),
    ("pools.redis.*.command_timeout_ms", U64),
    ("pools.redis.*.retry.attempts", U32),
    ("pools.redis.*.retry.base_ms", U64),
    ("pools.redis.*.retry.max_ms", U64),
    ("pools.redis.*.breaker.failure_threshold", U32),
    ("pools.redis.*.breaker.timeout_threshold", U32),
    ("pools.redis.*.breaker.open_ms", U64),
];

/// What a path is in the key table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A leaf of this kind.
    Leaf(Kind),
    /// A table (a strict prefix of some pattern).
    Table,
    /// Nothing rmhost knows.
    Unknown,
}

fn segment_matches(pattern: &str, segment: &str) -> bool {
    pattern == WILD || pattern == segment
}

/// Classifies `path` against the key table.
pub(crate) fn lookup(path: &[String]) -> Lookup {
    let mut table = false;
    for (pattern, kind) in KEYS {
        let pat: Vec<&str> = pattern.split('.').collect();
        if pat.len() < path.len() {
            continue;
        }
        if !path.iter().zip(&pat).all(|(s, p)| segment_matches(p, s)) {
            continue;
        }
        if pat.len() == path.len() {
            return Lookup::Leaf(*kind);
        }
        table = true;
    }
    if table {
        Lookup::Table
    } else {
        Lookup::Unknown
    }
}

/// The position of the first pattern `path` is (a prefix of), for display order.
pub(crate) fn order(path: &[String]) -> usize {
    KEYS.iter()
        .position(|(pattern, _)| {
            let pat: Vec<&str> = pattern.split('.').collect();
            pat.len() >= path.len() && path.iter().zip(&pat).all(|(s, p)| segment_matches(p, s))
        })
        .unwrap_or(usize::MAX)
}

/// A key segment as TOML writes it: bare when it can be, quoted otherwise.
pub(crate) fn quote_segment(segment: &str) -> String {
    let bare = !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        segment.to_string()
    } else {
        // A JSON string is a valid TOML basic string.
        serde_json::to_string(segment).unwrap_or_else(|_| format!("\"{segment}\""))
    }
}

/// The dotted form of a path, e.g. `tenants.acme.memory` or `tenants."a.b".memory`.
pub(crate) fn dotted(path: &[String]) -> String {
    path.iter()
        .map(|s| quote_segment(s))
        .collect::<Vec<_>>()
        .join(".")
}

/// Splits a dotted key into segments; `"..."` quotes a segment that contains dots.
pub(crate) fn split_dotted(key: &str) -> Option<Vec<String>> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut chars = key.trim().chars();
    let mut quoted_segment = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if current.is_empty() && !quoted_segment => {
                for q in chars.by_ref() {
                    if q == '"' {
                        quoted_segment = true;
                        break;
                    }
                    current.push(q);
                }
                if !quoted_segment {
                    return None;
                }
            }
            '.' => {
                if current.is_empty() && !quoted_segment {
                    return None;
                }
                segments.push(std::mem::take(&mut current));
                quoted_segment = false;
            }
            _ if quoted_segment => return None,
            c => current.push(c),
        }
    }
    if current.is_empty() && !quoted_segment {
        return None;
    }
    segments.push(current);
    Some(segments)
}

/// What `kind` accepts, for error messages.
pub(crate) fn expected(kind: Kind) -> String {
    match kind {
        Kind::Str => "a string".to_string(),
        Kind::Addr => "a socket address such as \"127.0.0.1:7070\"".to_string(),
        Kind::Bool => "true or false".to_string(),
        Kind::Int(max) => format!("a whole number between 0 and {max}"),
        Kind::Setting => "a string, number or boolean".to_string(),
    }
}

/// Checks a value from the file against `kind`, normalising settings to strings.
pub(crate) fn check_file_value(kind: Kind, value: &Value) -> Option<Value> {
    match (kind, value) {
        (Kind::Str, Value::String(_)) | (Kind::Bool, Value::Boolean(_)) => Some(value.clone()),
        (Kind::Addr, Value::String(s)) => s.parse::<SocketAddr>().ok().map(|_| value.clone()),
        (Kind::Int(max), Value::Integer(i)) => {
            (*i >= 0 && (*i as u64) <= max).then(|| value.clone())
        }
        (Kind::Setting, Value::String(_)) => Some(value.clone()),
        (Kind::Setting, Value::Integer(_) | Value::Float(_) | Value::Boolean(_)) => {
            Some(Value::String(value.to_string()))
        }
        (Kind::Setting, Value::Datetime(d)) => Some(Value::String(d.to_string())),
        _ => None,
    }
}

/// Why a string from the environment or the CLI is not a `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TextError {
    NotNumber,
    TooLarge(u64),
    NotBool,
    NotAddr,
}

impl TextError {
    /// The phrase used after the value, e.g. `not a whole number`.
    pub(crate) fn describe(&self) -> String {
        match self {
            TextError::NotNumber => "not a whole number".to_string(),
            TextError::TooLarge(max) => format!("not a whole number between 0 and {max}"),
            TextError::NotBool => "not a boolean (true/false/1/0/yes/no)".to_string(),
            TextError::NotAddr => {
                "not a socket address (expected IP:PORT, e.g. 127.0.0.1:7070)".to_string()
            }
        }
    }
}

/// Parses a string from the environment or the CLI as `kind`.
pub(crate) fn parse_text(kind: Kind, text: &str) -> Result<Value, TextError> {
    let t = text.trim();
    match kind {
        Kind::Str | Kind::Setting => Ok(Value::String(text.to_string())),
        Kind::Addr => t
            .parse::<SocketAddr>()
            .map(|_| Value::String(t.to_string()))
            .map_err(|_| TextError::NotAddr),
        Kind::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" => Ok(Value::Boolean(false)),
            _ => Err(TextError::NotBool),
        },
        Kind::Int(max) => {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TextError::NotNumber);
            }
            match t.parse::<u64>() {
                Ok(n) if n <= max => Ok(Value::Integer(n as i64)),
                _ => Err(TextError::TooLarge(max)),
            }
        }
    }
}

/// A value as the user wrote it, for error messages.
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::Table(_) => "a table".to_string(),
        other => other.to_string(),
    }
}
