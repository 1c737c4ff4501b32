//! Wiring the policy runtime into the host: options from `[policies]`, the policies given
//! on the command line, the watched directory, the config's default bindings, and the
//! resolvers handed to the managers.

use super::{Host, HostError};
use rmhost_core::config::Config;
use rmhost_core::policy::{EvictionPolicy, PolicyKind};
use rmhost_runtime::{PolicyOptions, PolicyRuntime, RuntimeOptions, WatchHandle};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runtime options from the config's `[policies]`.
pub fn runtime_options(config: &Config) -> RuntimeOptions {
    let p = &config.policies;
    let mut opts = RuntimeOptions {
        deadline: Duration::from_millis(p.deadline_ms),
        memory_cap_bytes: (p.memory_cap_mb as usize) << 20,
        max_faults: p.max_faults,
        fault_window: Duration::from_millis(p.fault_window_ms),
        ..RuntimeOptions::default()
    };
    if let Some(dir) = &p.cache_dir {
        opts.cache_dir = Some(PathBuf::from(dir));
    }
    for (name, s) in &p.policy {
        opts.per_policy.insert(
            name.clone(),
            PolicyOptions {
                settings: s.settings.clone(),
                deadline: s.deadline_ms.map(Duration::from_millis),
                memory_cap_bytes: s.memory_cap_mb.map(|m| (m as usize) << 20),
            },
        );
    }
    opts
}

/// Where `rmhost run` gets its policies.
#[derive(Debug, Clone, Default)]
pub struct PolicySources {
    /// `--policy FILE`: loaded before serving, bound as the default for every kind each
    /// exports.
    pub files: Vec<PathBuf>,
    /// The directory to load and watch (`--policies-dir`, else `policies.dir`).
    pub dir: Option<PathBuf>,
    /// Whether `dir` was asked for explicitly (then a missing directory is an error).
    pub dir_explicit: bool,
}

impl Host {
    /// Loads the `--policy` files and binds each as the default for the kinds it exports,
    /// then applies `[policies.bindings]`. Errors name the file and the reason.
    pub fn load_policy_files(&self, files: &[PathBuf]) -> Result<(), HostError> {
        for f in files {
            let info = self.runtime.load_file(f).map_err(|e| HostError::Policy {
                file: f.display().to_string(),
                reason: e.to_string(),
            })?;
            let kinds =
                self.runtime
                    .bind_defaults_for(&info.name)
                    .map_err(|e| HostError::Policy {
                        file: f.display().to_string(),
                        reason: e.to_string(),
                    })?;
            tracing::info!(policy = %info.name, ?kinds, "bound as the default");
        }
        Ok(())
    }

    /// Applies `[policies.bindings]` (kind -> policy name) as default bindings.
    pub fn apply_config_bindings(&self) -> Result<(), HostError> {
        for (kind, name) in &self.config.policies.bindings {
            self.runtime
                .bind(None, *kind, Some(name))
                .map_err(|e| HostError::Policy {
                    file: format!("policies.bindings.{kind}"),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Loads every `*.wasm` in `dir` and watches it for changes. A broken file is reported
    /// (event and log) and skipped; it never stops the host.
    pub fn watch_policies(&self, dir: &Path) -> Result<WatchHandle, HostError> {
        self.runtime.watch_dir(dir).map_err(|e| HostError::Policy {
            file: dir.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// A fresh eviction policy instance for a cache of `tenant`: the named one (a builtin
    /// such as `lru` / `builtin:lru`, or a loaded Wasm policy), else the tenant's binding,
    /// else the native LRU.
    pub fn eviction_policy(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Box<dyn EvictionPolicy>, String> {
        let Some(n) = name else {
            return Ok(self.runtime.eviction_policy(tenant, None));
        };
        if let Some(builtin) = n.strip_prefix("builtin:") {
            return rmhost_core::memory::sim::builtin(builtin).ok_or_else(|| unknown(n));
        }
        if let Some(info) = self.runtime.get(n) {
            if !info.kinds.contains(&PolicyKind::Eviction) {
                return Err(format!(
                    "policy {n:?} does not export the eviction interface"
                ));
            }
            return Ok(self.runtime.eviction_policy(tenant, Some(n)));
        }
        rmhost_core::memory::sim::builtin(n).ok_or_else(|| unknown(n))
    }

    /// Linear memory of every loaded policy's instances.
    pub fn policy_instance_memory(&self) -> Vec<rmhost_core::memory::purge::InstanceMemory> {
        self.runtime
            .list()
            .into_iter()
            .map(|p| rmhost_core::memory::purge::InstanceMemory {
                name: p.name,
                bytes: p.memory_bytes,
            })
            .collect()
    }
}

fn unknown(n: &str) -> String {
    format!(
        "unknown eviction policy {n:?}: not a loaded Wasm policy nor a builtin ({})",
        rmhost_core::memory::sim::BUILTINS.join(", ")
    )
}

/// Builds the runtime for `config`.
pub fn build_runtime(
    config: &Config,
    events: rmhost_core::events::EventBus,
) -> Result<PolicyRuntime, HostError> {
    PolicyRuntime::new(runtime_options(config), events).map_err(|e| HostError::Policy {
        file: "(runtime)".into(),
        reason: e.to_string(),
    })
}
