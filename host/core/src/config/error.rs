//! One error type for everything that can be wrong with a configuration. The binary maps
//! every variant to exit code 2, so each message alone must tell the user what to fix:
//! the key or variable, the bad value, and where it came from.

use std::path::PathBuf;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file named explicitly does not exist.
    #[error("config file {} not found", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}: invalid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file has a key rmhost does not know (often a typo).
    #[error("{}: unknown key `{key}`", file.display())]
    UnknownKey {
        /// Full dotted path, e.g. `limits.max_memroy_mb`.
        key: String,
        /// The file.
        file: PathBuf,
    },
    /// A value in the file has the wrong type or range.
    #[error("{}: `{key}` = {value}: expected {expected}", file.display())]
    BadType {
        /// Full dotted path.
        key: String,
        /// The value as written (TOML syntax).
        value: String,
        /// What would have been accepted.
        expected: String,
        /// The file.
        file: PathBuf,
    },
    /// An environment variable cannot be parsed.
    #[error("{var}={value:?}: {expected} (it sets `{key}`)")]
    BadEnv {
        /// The variable, e.g. `MAX_MEMORY_MB`.
        var: String,
        /// Its value.
        value: String,
        /// The key it sets.
        key: String,
        /// What is wrong, e.g. `not a whole number`.
        expected: String,
    },
    /// A CLI override names a key rmhost does not know.
    #[error("{flag}: unknown key `{key}`")]
    UnknownOverride {
        /// The dotted key given.
        key: String,
        /// The flag it came with, e.g. `--set`.
        flag: String,
    },
    /// A CLI override's value cannot be parsed.
    #[error("{flag}: `{key}` = {value:?}: expected {expected}")]
    BadOverride {
        /// The dotted key.
        key: String,
        /// The value given.
        value: String,
        /// The flag, e.g. `--listen`.
        flag: String,
        /// What would have been accepted.
        expected: String,
    },
    /// `--set` without `=`.
    #[error("--set {arg:?}: expected KEY=VALUE, e.g. limits.max_memory_mb=4096")]
    BadSetArg {
        /// The argument given.
        arg: String,
    },
    /// The warning threshold is not below the critical one.
    #[error(
        "memory.warning_threshold_percent = {warning}{warning_origin} must be below \
         memory.critical_threshold_percent = {critical}{critical_origin}"
    )]
    ThresholdOrder {
        /// The warning threshold.
        warning: u8,
        /// Where it came from, e.g. ` (env MEMORY_WARNING_THRESHOLD)`, or empty.
        warning_origin: String,
        /// The critical threshold.
        critical: u8,
        /// Where it came from, or empty.
        critical_origin: String,
    },
    /// A pool's `min` is above its `max`.
    #[error(
        "connection_pools.{pool}.min = {min}{min_origin} is above \
         connection_pools.{pool}.max = {max}{max_origin}"
    )]
    PoolMinMax {
        /// `database` or `redis`.
        pool: &'static str,
        /// Its min.
        min: u32,
        /// Where min came from, or empty.
        min_origin: String,
        /// Its max.
        max: u32,
        /// Where max came from, or empty.
        max_origin: String,
    },
    /// Zero where zero makes no sense (a limit, an interval, a pool's max).
    #[error("{key} = 0{origin}: must be greater than 0")]
    Zero {
        /// The dotted key.
        key: String,
        /// Where it came from, or empty.
        origin: String,
    },
    /// A value outside its range.
    #[error("{key} = {value}{origin}: must be between {min} and {max}")]
    OutOfRange {
        /// The dotted key.
        key: String,
        /// The value.
        value: u64,
        /// Where it came from, or empty.
        origin: String,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// A token hash that is not 64 hex digits.
    #[error(
        "{key} = {value:?}{origin}: not a hex SHA-256 (64 hex digits; \
         store the hash of the token, not the token)"
    )]
    BadTokenHash {
        /// The dotted key.
        key: String,
        /// The value.
        value: String,
        /// Where it came from, or empty.
        origin: String,
    },
    /// A value outside the words or URL schemes the key accepts.
    #[error("{key} = {value:?}{origin}: expected {expected}")]
    BadValue {
        /// The dotted key.
        key: String,
        /// The value.
        value: String,
        /// Where it came from, or empty.
        origin: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// An invalid `[pools.*]` setting (names the key and value).
    #[error("{0}")]
    Pool(#[from] crate::pools::SettingsError),
    /// The layered values do not form a `Config` (a bug: the key table and the structs
    /// disagree).
    #[error("configuration does not deserialize: {message}")]
    Internal {
        /// serde's message.
        message: String,
    },
}
