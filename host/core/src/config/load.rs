//! Layering: defaults < file < environment < CLI overrides, with the source of every leaf.
//!
//! Each layer is checked against the key table (`schema`) and written into one
//! `toml::Table` that starts as the serialised defaults; serde then turns the merged table
//! into a [`Config`]. Working on the table rather than on the structs is what lets a
//! `--set tenants.acme.memory=1` create a tenant, and lets errors name full dotted keys.

use super::schema::{self, Kind, Lookup};
use super::{Config, ConfigError, validate};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The built-in default (the original system's).
    Default,
    /// The config file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A CLI flag, e.g. `--listen` or `--set`.
    Cli(String),
}

impl Source {
    /// The compact form used in JSON: `default`, `file:PATH`, `env:VAR`, `cli:FLAG`.
    pub fn tag(&self) -> String {
        match self {
            Source::Default => "default".to_string(),
            Source::File(path) => format!("file:{}", path.display()),
            Source::Env(var) => format!("env:{var}"),
            Source::Cli(flag) => format!("cli:{flag}"),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Cli(flag) => write!(f, "cli {flag}"),
        }
    }
}

/// One CLI override: a dotted key, its value as text, and the flag it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Dotted key, e.g. `limits.max_memory_mb` or `tenants.acme.memory`.
    pub key: String,
    /// The value as typed; parsed by the key's type.
    pub value: String,
    /// The flag, for messages and `config print`: `--listen`, `--set`, ...
    pub flag: String,
}

impl Override {
    /// An override from a dedicated flag, e.g. `Override::new("listen", addr, "--listen")`.
    pub fn new(key: impl Into<String>, value: impl Into<String>, flag: impl Into<String>) -> Self {
        Override {
            key: key.into(),
            value: value.into(),
            flag: flag.into(),
        }
    }

    /// Parses `--set KEY=VALUE`.
    pub fn parse_set(arg: &str) -> Result<Self, ConfigError> {
        match arg.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok(Override::new(key.trim(), value, "--set"))
            }
            _ => Err(ConfigError::BadSetArg {
                arg: arg.to_string(),
            }),
        }
    }
}

/// The effective configuration and where each leaf came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// Dotted key -> source, for every leaf of `config` (unset optional values included).
    pub sources: BTreeMap<String, Source>,
}

impl Loaded {
    /// Defaults only, every source `Default`.
    pub fn defaults() -> Self {
        let config = Config::default();
        let sources = leaf_sources(&config, &BTreeMap::new());
        Loaded { config, sources }
    }

    /// The source of `key` (dotted); `Default` for keys without an entry.
    pub fn source(&self, key: &str) -> &Source {
        self.sources.get(key).unwrap_or(&Source::Default)
    }
}

/// The original system's environment variables and the keys they set.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("MAX_MEMORY_MB", "limits.max_memory_mb"),
    ("MAX_CPU_PERCENT", "limits.max_cpu_percentage"),
    ("MAX_CONNECTIONS", "limits.max_connections"),
    ("MAX_REQUESTS_PER_MINUTE", "limits.max_requests_per_minute"),
    ("DB_POOL_MIN", "connection_pools.database.min"),
    ("DB_POOL_MAX", "connection_pools.database.max"),
    (
        "DB_ACQUIRE_TIMEOUT",
        "connection_pools.database.acquire_timeout_ms",
    ),
    (
        "DB_IDLE_TIMEOUT",
        "connection_pools.database.idle_timeout_ms",
    ),
    ("DATABASE_URL", "connection_pools.database.url"),
    ("REDIS_POOL_MIN", "connection_pools.redis.min"),
    ("REDIS_POOL_MAX", "connection_pools.redis.max"),
    ("REDIS_URL", "connection_pools.redis.url"),
    (
        "MEMORY_WARNING_THRESHOLD",
        "memory.warning_threshold_percent",
    ),
    (
        "MEMORY_CRITICAL_THRESHOLD",
        "memory.critical_threshold_percent",
    ),
    ("ENABLE_MEMORY_PROFILING", "memory.enable_memory_profiling"),
    ("ENABLE_LEAK_DETECTION", "memory.enable_leak_detection"),
    ("METRICS_INTERVAL", "monitoring.metrics_interval_ms"),
    (
        "HEALTH_CHECK_INTERVAL",
        "monitoring.health_check_interval_ms",
    ),
    ("RMHOST_STATE_LEDGER", "state.ledger"),
    ("RMHOST_STATE_RATELIMIT", "state.ratelimit"),
    ("RMHOST_HOST_ID", "state.host_id"),
    ("RMHOST_GRPC_LISTEN", "grpc.listen"),
];

/// The real process environment, for the binary: `load(path, &process_env, &overrides)`.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads the configuration: defaults, then `path` (if given; it must exist), then `env`,
/// then `overrides`, and validates the result.
pub fn load(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &[Override],
) -> Result<Loaded, ConfigError> {
    let mut layers = Layers::new()?;
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ConfigError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        layers.file(&text, path)?;
    }
    layers.finish(env, overrides)
}

/// Like [`load`], with the file's text given; `file` names it in messages and sources.
pub fn load_str(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    overrides: &[Override],
) -> Result<Loaded, ConfigError> {
    let mut layers = Layers::new()?;
    layers.file(text, file)?;
    layers.finish(env, overrides)
}

/// The merged table and who set what.
struct Layers {
    tree: Table,
    set: BTreeMap<Vec<String>, Source>,
}

impl Layers {
    fn new() -> Result<Self, ConfigError> {
        let tree = Table::try_from(Config::default()).map_err(|e| ConfigError::Internal {
            message: e.to_string(),
        })?;
        Ok(Layers {
            tree,
            set: BTreeMap::new(),
        })
    }

    fn file(&mut self, text: &str, file: &Path) -> Result<(), ConfigError> {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                path: file.to_path_buf(),
                message: e.to_string().trim_end().to_string(),
            })?;
        let source = Source::File(file.to_path_buf());
        self.walk(&table, &mut Vec::new(), file, &source)
    }

    fn walk(
        &mut self,
        table: &Table,
        path: &mut Vec<String>,
        file: &Path,
        source: &Source,
    ) -> Result<(), ConfigError> {
        for (key, value) in table {
            path.push(key.clone());
            match (schema::lookup(path), value) {
                (Lookup::Table, Value::Table(inner)) => {
                    // Created even when empty: `[tenants.acme]` alone declares a tenant.
                    self.ensure_table(path);
                    self.walk(inner, path, file, source)?;
                }
                (Lookup::Table, other) => {
                    return Err(ConfigError::BadType {
                        key: schema::dotted(path),
                        value: schema::show(other),
                        expected: "a table".to_string(),
                        file: file.to_path_buf(),
                    });
                }
                (Lookup::Leaf(kind), value) => match schema::check_file_value(kind, value) {
                    Some(v) => self.assign(path, v, source.clone()),
                    None => {
                        return Err(ConfigError::BadType {
                            key: schema::dotted(path),
                            value: schema::show(value),
                            expected: schema::expected(kind),
                            file: file.to_path_buf(),
                        });
                    }
                },
                (Lookup::Unknown, _) => {
                    return Err(ConfigError::UnknownKey {
                        key: schema::dotted(path),
                        file: file.to_path_buf(),
                    });
                }
            }
            path.pop();
        }
        Ok(())
    }

    fn env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for (var, key) in ENV_VARS {
            // An empty variable counts as unset, as `${VAR:-default}` would.
            let Some(value) = env(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let path = schema::split_dotted(key).unwrap_or_default();
            let kind = leaf_kind(&path).unwrap_or(Kind::Str);
            let parsed = schema::parse_text(kind, &value).map_err(|e| ConfigError::BadEnv {
                var: (*var).to_string(),
                value: value.clone(),
                key: (*key).to_string(),
                expected: e.describe(),
            })?;
            self.assign(&path, parsed, Source::Env((*var).to_string()));
        }
        Ok(())
    }

    fn overrides(&mut self, overrides: &[Override]) -> Result<(), ConfigError> {
        for o in overrides {
            let unknown = || ConfigError::UnknownOverride {
                key: o.key.clone(),
                flag: o.flag.clone(),
            };
            let path = schema::split_dotted(&o.key).ok_or_else(unknown)?;
            let kind = leaf_kind(&path).ok_or_else(unknown)?;
            let parsed =
                schema::parse_text(kind, &o.value).map_err(|e| ConfigError::BadOverride {
                    key: o.key.clone(),
                    value: o.value.clone(),
                    flag: o.flag.clone(),
                    expected: e.describe(),
                })?;
            self.assign(&path, parsed, Source::Cli(o.flag.clone()));
        }
        Ok(())
    }

    fn finish(
        mut self,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &[Override],
    ) -> Result<Loaded, ConfigError> {
        self.env(env)?;
        self.overrides(overrides)?;
        let config: Config = Value::Table(self.tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Internal {
                message: e.to_string(),
            })?;
        let sources = leaf_sources(&config, &self.set);
        let origin = |key: &str| {
            sources
                .get(key)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        };
        validate::validate(&config, &origin)?;
        Ok(Loaded { config, sources })
    }

    fn ensure_table(&mut self, path: &[String]) -> &mut Table {
        let mut table = &mut self.tree;
        for segment in path {
            let entry = table
                .entry(segment.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            table = match entry {
                Value::Table(t) => t,
                _ => unreachable!("replaced by a table above"),
            };
        }
        table
    }

    fn assign(&mut self, path: &[String], value: Value, source: Source) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        self.ensure_table(parents).insert(last.clone(), value);
        self.set.insert(path.to_vec(), source);
    }
}

fn leaf_kind(path: &[String]) -> Option<Kind> {
    match schema::lookup(path) {
        Lookup::Leaf(kind) => Some(kind),
        _ => None,
    }
}

/// A source entry for every leaf of `config`, including unset optional values.
fn leaf_sources(config: &Config, set: &BTreeMap<Vec<String>, Source>) -> BTreeMap<String, Source> {
    fn walk(
        value: &serde_json::Value,
        path: &mut Vec<String>,
        set: &BTreeMap<Vec<String>, Source>,
        out: &mut BTreeMap<String, Source>,
    ) {
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                path.push(k.clone());
                walk(v, path, set, out);
                path.pop();
            }
        } else {
            let source = set.get(path.as_slice()).cloned().unwrap_or(Source::Default);
            out.insert(schema::dotted(path), source);
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(json) = serde_json::to_value(config) {
        walk(&json, &mut Vec::new(), set, &mut out);
    }
    out
}
